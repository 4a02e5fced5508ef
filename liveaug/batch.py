"""Re-analysis of many sessions on a Dask cluster (a local one by default).

Each session is cut into frame ranges; a task predicts and analyses one range on a worker that
loads the models once (a per-process cache, not per task) and writes the range's rows to its own
Parquet file, atomically (temporary name, then rename). A rerun skips ranges already written; a
task whose worker died is retried by Dask and, since a range file appears whole or not at all, no
row is lost or written twice.

Tracking needs history, so each range starts ``warmup`` frames early. Those frames are analysed
again (not written as results) and their cells — segmented identically, frame for frame — are
matched to the previous range's rows at the same frames, which carries the global cell ids
across the boundary. Tracks born inside a range are numbered after every id used before it, in
their order of birth, exactly as one sequential run numbers them.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from liveaug.errors import LiveaugError, one_line
from liveaug.progress import progress as bar_for

#: Columns that identify the same cell in the same frame in two independent analyses.
MATCH_COLUMNS = ("frame", "x", "y", "area_px")
RANGES_DIR = "_ranges"


@dataclass(frozen=True, slots=True)
class RangeTask:
    """One unit of work: frames ``[start, stop)`` of one session."""

    session: str
    name: str
    start: int
    stop: int
    warmup: int
    out: str
    maps: str = "model"
    models: tuple[str, ...] = ()
    rules: str | None = None
    threads: int | None = None
    """onnxruntime threads per worker (local clusters: the cores shared out; None: all)."""
    views: int = 1
    """Test-time views of the models (:class:`liveaug.inference.Predictor`)."""
    nuclei_channel: str | None = None
    """A recorded nuclear stain segmented instead of the virtual DAPI."""

    @property
    def part(self) -> Path:
        """Where the range's rows go (local track ids, warm-up rows flagged)."""
        return Path(self.out) / RANGES_DIR / self.name / f"{self.start:07d}-{self.stop:07d}.parquet"

    @property
    def partial(self) -> Path:
        """Where the rows before a damaged frame go (never taken for the finished range)."""
        return self.part.with_name(self.part.name.replace(".parquet", ".partial.parquet"))


def require_dask() -> None:
    """Raise one line naming the extra when Dask's ``distributed`` is not installed."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise LiveaugError(
            "liveaug batch needs Dask (the 'distributed' package is not installed)",
            "install the batch extra: pip install 'liveaug[batch]'",
        ) from None


# -- on the worker ---------------------------------------------------------------------------------
_ENGINES: dict[tuple[Any, ...], Any] = {}
"""Per-process predictor cache: a worker loads each model set once, whatever the task count."""


def _predictor(task: RangeTask, metadata: dict[str, Any]) -> tuple[Any, bool]:
    from liveaug.analysis.batch import make_predictor

    key = (
        task.maps,
        task.models,
        task.views,
        json.dumps(metadata.get("simulation"), sort_keys=True) if task.maps == "truth" else None,
    )
    loaded = key not in _ENGINES
    if loaded:
        _ENGINES[key] = make_predictor(
            task.maps,
            models=list(task.models) or None,
            metadata=metadata,
            threads=task.threads,
            views=task.views,
        )
    return _ENGINES[key], loaded


def run_range(task: RangeTask) -> dict[str, Any]:
    """Predict and analyse one range (plus its warm-up); write its rows; return a summary."""
    from liveaug.analysis.analyzer import Analyzer
    from liveaug.session import Session

    if task.part.exists():
        return {"start": task.start, "skipped": True, "pid": os.getpid()}
    t0 = time.perf_counter()
    session = Session.open(task.session)
    predictor, loaded = _predictor(task, session.metadata)
    analyzer = Analyzer(rules=task.rules, nuclei_channel=task.nuclei_channel)
    tables, events = [], []
    units: dict[str, str] = {}
    predict_ms, analyze_ms = [], []
    failure: LiveaugError | None = None
    for i in range(max(0, task.start - task.warmup), task.stop):
        try:
            frame = session.frame(i)
        except LiveaugError as exc:  # a damaged frame: keep the rows before it, like replay
            failure = exc
            break
        a = time.perf_counter_ns()
        prediction = predictor.predict(frame, analyzer.required_roles)
        b = time.perf_counter_ns()
        result = analyzer.analyze(frame, prediction)
        c = time.perf_counter_ns()
        df = result.cells.to_pandas()
        units.update(result.cells.units)
        df["warmup"] = i < task.start
        tables.append(df)
        if i >= task.start:
            predict_ms.append((b - a) / 1e6)
            analyze_ms.append((c - b) / 1e6)
            events.extend(
                {
                    "frame": e.frame_index,
                    "cell_id": e.cell_id,
                    "rule": e.rule,
                    "x": e.x,
                    "y": e.y,
                    "message": e.message,
                }
                for e in result.events
            )
    rows = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    good = task.stop - task.start
    target = task.part
    if failure is not None:
        good = max(0, i - task.start)
        target = task.partial
        if not good:
            rows = rows.iloc[:0]
    _write_range(target, rows, units, events)
    return {
        "start": task.start,
        "skipped": False,
        "pid": os.getpid(),
        "loaded_models": loaded,
        "frames": good,
        "failure": None if failure is None else [failure.what, failure.fix],
        "seconds": time.perf_counter() - t0,
        "predict_ms": float(np.median(predict_ms)) if predict_ms else 0.0,
        "analyze_ms": float(np.median(analyze_ms)) if analyze_ms else 0.0,
    }


def _write_range(
    target: Path, rows: pd.DataFrame, units: dict[str, str], events: list[Any]
) -> None:
    """Rows, units and events of one range, each file renamed into place whole."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    rows.to_parquet(tmp, index=False)
    for suffix, content in ((".units.json", units), (".events.json", events)):
        tmp.with_suffix(suffix).write_text(json.dumps(content))
        os.replace(tmp.with_suffix(suffix), target.with_suffix(suffix))
    os.replace(tmp, target)  # the range exists only once it is complete


# -- on the client ---------------------------------------------------------------------------------
def plan(
    sessions: Sequence[Path],
    out: Path,
    *,
    chunk: int,
    warmup: int,
    maps: str,
    models: Sequence[str],
    rules: str | None,
    threads: int | None = None,
    views: int = 1,
    nuclei_channel: str | None = None,
) -> list[RangeTask]:
    """Cut every session into ranges of ``chunk`` frames (every session must record
    ``nuclei_channel`` when one is given)."""
    from liveaug.analysis.analyzer import require_channel
    from liveaug.session import Session

    if chunk <= warmup:
        raise LiveaugError(
            f"--chunk {chunk} must be larger than the warm-up ({warmup} frames)",
            "use a larger --chunk",
        )
    tasks = []
    names = set()
    for path in sessions:
        session = Session.open(path)
        require_channel(nuclei_channel, session.channel_names, str(path))
        n = session.n_frames
        if maps == "truth" and not session.metadata.get("simulation"):
            raise LiveaugError(
                f"{path}: --maps truth needs a simulated session (with ground truth)",
                "use --maps model for a recorded camera session",
            )
        name = Path(path).name.removesuffix(".ome.zarr").removesuffix(".zarr")
        if name in names:
            raise LiveaugError(
                f"two sessions are named {name!r}", "give sessions distinct folder names"
            )
        names.add(name)
        tasks += [
            RangeTask(
                str(path),
                name,
                s,
                min(s + chunk, n),
                warmup,
                str(out),
                maps,
                tuple(models),
                rules,
                threads,
                views,
                nuclei_channel,
            )
            for s in range(0, n, chunk)
        ]
    return tasks


def stitch(files: Sequence[Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One session's range files, in order → rows and events with the ids a sequential run
    gives."""
    rows_out, events_out = [], []
    prev: pd.DataFrame | None = None
    next_id = 1
    for file in files:
        rows = pd.read_parquet(file)
        if "parent_id" in rows:  # NA (no parent) in the files, 0 in the arithmetic below
            rows["parent_id"] = rows["parent_id"].fillna(0).astype(np.int64)
        events = pd.DataFrame(
            json.loads(file.with_suffix(".events.json").read_text()),
            columns=["frame", "cell_id", "rule", "x", "y", "message"],
        )
        mapping: dict[int, int] = {}
        parent_of: dict[int, int] = {}
        if prev is not None and len(rows):
            warm = rows[rows["warmup"]]
            ref = prev[[*MATCH_COLUMNS, "cell_id", "parent_id"]].rename(
                columns={"cell_id": "cell_id_global", "parent_id": "parent_id_global"}
            )
            hit = warm.merge(ref, on=list(MATCH_COLUMNS), how="inner")
            for lid, gid, gpid in zip(
                hit["cell_id"], hit["cell_id_global"], hit["parent_id_global"], strict=True
            ):
                mapping[int(lid)] = int(gid)  # later frames overwrite earlier: latest wins
                parent_of[int(gid)] = int(gpid)
        kept = rows[~rows["warmup"]].copy()
        born = sorted(set(kept["cell_id"].astype(int)) - set(mapping))
        for lid in born:
            mapping[lid] = next_id
            next_id += 1
        gids = np.array([mapping[int(i)] for i in kept["cell_id"]], np.int64)
        lpar = kept["parent_id"].to_numpy()
        gpar = np.array([mapping.get(int(p), 0) if p > 0 else 0 for p in lpar], np.int64)
        keep_parent = np.array([parent_of.get(int(g), -1) for g in gids], np.int64)
        kept["cell_id"] = gids
        kept["parent_id"] = np.where(keep_parent >= 0, keep_parent, gpar)
        kept = kept.drop(columns="warmup")
        if len(events):
            events["cell_id"] = [mapping.get(int(i), 0) for i in events["cell_id"]]
        rows_out.append(kept)
        events_out.append(events)
        prev = kept  # the next range's warm-up lies inside this one (plan: chunk > warmup)
        next_id = max(next_id, int(gids.max()) + 1 if len(gids) else next_id)
    rows_all = pd.concat(rows_out, ignore_index=True) if rows_out else pd.DataFrame()
    events_all = pd.concat(events_out, ignore_index=True) if events_out else pd.DataFrame()
    return rows_all, events_all


@dataclass(frozen=True, slots=True)
class BatchSummary:
    """What a batch run did, per session and in all."""

    sessions: dict[str, dict[str, Any]]
    maps: str
    """Which maps the readouts were measured on (``model`` or ``truth``)."""
    views: int
    """Test-time views the model maps averaged (:mod:`liveaug.views`)."""
    frames: int
    ranges: int
    skipped: int
    workers: int
    seconds: float
    frames_per_s: float
    model_loads: int
    predict_ms: float
    """Median per-frame prediction time on the workers."""
    analyze_ms: float

    def to_json(self) -> str:
        """Pretty JSON for ``summary.json``."""
        return json.dumps(asdict(self), indent=2)


def _result(fut: Any, task: RangeTask) -> dict[str, Any]:
    """A range's summary; a worker that died (after Dask's retries) is one readable line."""
    try:
        return dict(fut.result())
    except LiveaugError:
        raise
    except Exception as exc:
        from distributed import KilledWorker

        if not isinstance(exc, KilledWorker):
            raise
        raise LiveaugError(
            f"Dask workers died analysing frames {task.start}–{task.stop - 1} of "
            f"{task.session} ({one_line(exc)})",
            "rerun the same command: ranges already written are skipped",
        ) from None


def _write_sessions(
    tasks: Sequence[RangeTask],
    by_task: dict[RangeTask, dict[str, Any]],
    out: Path,
    maps: str,
    views: int,
    nuclei_channel: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Stitch each session's ranges (up to its first damaged frame) and write its tables."""
    from liveaug.analysis.table import write_parquet
    from liveaug.frame import CellTable

    by_session: dict[str, list[RangeTask]] = {}
    for t in tasks:
        by_session.setdefault(t.name, []).append(t)
    summary: dict[str, dict[str, Any]] = {}
    for name, parts in by_session.items():
        files, info = [], {}
        for t in parts:
            failure = by_task[t].get("failure")
            if failure is None:
                files.append(t.part)
                continue
            if by_task[t]["frames"]:
                files.append(t.partial)
            info = {
                "incomplete": failure[0],
                "fix": failure[1],
                "recorded": int(parts[-1].stop),
            }
            break
        frames = int(parts[-1].stop) if not info else t.start + int(by_task[t]["frames"])
        summary[name] = {"frames": frames, "cells": 0, "events": 0, "tracks": 0, **info}
        if not files:
            continue
        rows, events = stitch(files)
        folder = out / "readouts" / f"session={name}"
        folder.mkdir(parents=True, exist_ok=True)
        units = json.loads(files[0].with_suffix(".units.json").read_text())
        table = CellTable({c: rows[c].to_numpy() for c in rows.columns}, units)
        extra = {"session": parts[0].session, "maps": maps, "views": views, "batch": True}
        if nuclei_channel:
            extra["nuclei_channel"] = nuclei_channel
        if info:
            extra.update(frames=frames, incomplete=info["incomplete"])
        write_parquet(table, folder / "cells.parquet", extra=extra)
        ev_folder = out / "events" / f"session={name}"
        ev_folder.mkdir(parents=True, exist_ok=True)
        events.to_parquet(ev_folder / "events.parquet", index=False)
        summary[name].update(
            cells=len(rows),
            events=len(events),
            tracks=int(rows["cell_id"].nunique()) if len(rows) else 0,
        )
    return summary


def run_batch(
    sessions: Sequence[Path],
    out: Path,
    *,
    scheduler: str | None = None,
    workers: int = 2,
    chunk: int = 50,
    warmup: int = 6,
    maps: str = "model",
    models: Sequence[str] = (),
    rules: str | None = None,
    views: int = 1,
    progress: bool = True,
    nuclei_channel: str | None = None,
) -> BatchSummary:
    """Run every range on Dask, then stitch and write ``out/readouts/session=…/``.

    A damaged frame stops its session there, as in ``replay --headless``: the frames before it
    are written, the others sessions are analysed whole, and then one :class:`LiveaugError`
    says what stopped and how many frames the outputs hold.
    """
    require_dask()
    from distributed import Client, LocalCluster, as_completed

    if logging.getLogger().getEffectiveLevel() > logging.INFO:  # liveaug --verbose shows it
        logging.getLogger("distributed").setLevel(logging.WARNING)  # Dask sets itself to INFO

    from liveaug.analysis.events import load_rules

    out = Path(out)
    load_rules(rules)  # bad input is named here, before a worker starts and fails on it
    if maps == "model":
        from liveaug.model_zoo import resolve

        for m in models:
            resolve(m)
    # a local cluster shares this machine's cores out; a remote scheduler's workers use theirs
    threads = None if scheduler else max(1, (os.cpu_count() or 1) // max(1, workers))
    tasks = plan(
        sessions,
        out,
        chunk=chunk,
        warmup=warmup,
        maps=maps,
        models=models,
        rules=rules,
        threads=threads,
        views=views,
        nuclei_channel=nuclei_channel,
    )
    t0 = time.perf_counter()
    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=40,
            # no dashboard, and its HTTP server on any free port: 8787 taken is not a warning
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        )
        client = Client(cluster)
    try:
        n_workers = len(client.scheduler_info()["workers"])
        futures = client.map(run_range, tasks, retries=3, pure=False)
        by_task: dict[RangeTask, dict[str, Any]] = {}
        task_of = {id(f): t for f, t in zip(futures, tasks, strict=True)}
        with bar_for(sum(t.stop - t.start for t in tasks), "batch") as bar:
            bar.disable = not progress
            for fut in as_completed(futures):
                task = task_of[id(fut)]
                by_task[task] = _result(fut, task)
                bar.update(task.stop - task.start)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    results = list(by_task.values())
    summary_sessions = _write_sessions(tasks, by_task, out, maps, views, nuclei_channel)
    done = [r for r in results if not r["skipped"]]
    frames = sum(r["frames"] for r in done)
    seconds = time.perf_counter() - t0
    summary = BatchSummary(
        sessions=summary_sessions,
        maps=maps,
        views=views,
        frames=frames,
        ranges=len(tasks),
        skipped=len(results) - len(done),
        workers=n_workers,
        seconds=seconds,
        frames_per_s=frames / seconds if seconds else 0.0,
        model_loads=sum(bool(r.get("loaded_models")) for r in done),
        predict_ms=float(np.median([r["predict_ms"] for r in done])) if done else 0.0,
        analyze_ms=float(np.median([r["analyze_ms"] for r in done])) if done else 0.0,
    )
    (out / "summary.json").write_text(summary.to_json())
    stopped = [(n, info) for n, info in summary_sessions.items() if "incomplete" in info]
    if stopped:
        info = stopped[0][1]
        more = f"; {len(stopped) - 1} more session(s) stopped early" if len(stopped) > 1 else ""
        raise LiveaugError(
            f"{info['incomplete']} (stopped after {info['frames']} of {info['recorded']} "
            f"frames; the outputs hold those{more}, see {out / 'summary.json'})",
            info["fix"],
        )
    return summary
