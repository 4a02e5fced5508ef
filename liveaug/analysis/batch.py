"""Headless batch runs: every frame of a session through predictor and analyzer, in order.

The live :class:`~liveaug.pipeline.Pipeline` always computes the *newest* frame and drops the
rest — right for a microscope, wrong for a batch: tracking needs consecutive frames and a results
table must have every frame. So batch runs read the session on one thread, a few frames ahead
(disk and decompression overlap the compute), and predict + analyse every frame on the caller's
thread, in order, never dropping one.
"""

from __future__ import annotations

import queue
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from liveaug.errors import EndOfStream, LiveaugError
from liveaug.frame import Frame


def read_ahead(source: Any, depth: int = 4) -> Iterator[Frame]:
    """Every frame of an opened finite ``source``, read ``depth`` frames ahead on a thread."""
    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def reader() -> None:
        try:
            while not stop.is_set():
                q.put(source.read())
        except EndOfStream:
            pass
        except BaseException as exc:  # handed to the consumer, raised there
            q.put(exc)
        q.put(done)

    t = threading.Thread(target=reader, name="liveaug-read-ahead", daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while t.is_alive():  # unblock a reader waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                t.join(0.05)


class StopOnInterrupt:
    """Ctrl-C (SIGINT) asks the loop to stop after the frame in progress, so the tables hold
    whole frames and get their metadata; a second Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def _handler(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> StopOnInterrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


def make_predictor(
    maps: str,
    *,
    models: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
    resolution: str = "speed",
    threads: int | None = None,
    views: int = 1,
) -> Any:
    """The predictor a command asked for: the shipped/given models or truth-derived maps.

    ``threads`` caps onnxruntime's intra-op threads (None: every core this process may use);
    ``views`` is the models' test-time augmentation (truth maps ignore it).
    """
    if maps == "truth":
        from liveaug.analysis.truthmaps import TruthPredictor

        if not (metadata or {}).get("simulation"):
            raise LiveaugError(
                "--maps truth needs a simulated session (with ground truth)",
                "use --maps model for a recorded camera session",
            )
        return TruthPredictor.for_session(metadata or {})
    from liveaug.inference import Predictor
    from liveaug.model_zoo import resolve

    paths = [resolve(m) for m in models] if models else None
    return Predictor(
        paths,  # type: ignore[arg-type]
        resolution=resolution,  # type: ignore[arg-type]
        threads=threads,
        views=views,
    )


class JsonlSink:
    """Appends event records to a JSON-lines file, flushed per line (a killed run keeps them)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._f = self.path.open("w", encoding="utf-8")
        self.count = 0

    def __call__(self, record: dict[str, Any]) -> None:
        import json

        self._f.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._f.flush()
        self.count += 1

    def close(self) -> None:
        """Close the file."""
        self._f.close()


class CsvAppender:
    """Writes a session's readouts frame by frame (header once), then the units sidecar."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._f = self.path.open("w", encoding="utf-8", newline="")
        self._columns: list[str] | None = None

    def append(self, table: Any) -> None:
        """Rows of one frame's CellTable."""
        from liveaug import __version__

        if not len(table):
            return
        df = table.to_pandas()
        df["liveaug_version"] = __version__
        if self._columns is None:
            self._columns = list(df.columns)
        df = df.reindex(columns=self._columns)
        df.to_csv(self._f, index=False, header=self._f.tell() == 0, float_format="%.6g")
        self._f.flush()

    def close(self, table: Any, extra: dict[str, Any] | None = None) -> None:
        """Close the CSV and write its ``-metadata.json`` (units, provenance) from ``table``."""
        from liveaug.analysis.table import write_csv_metadata

        self._f.close()
        write_csv_metadata(table, self.path, extra=extra)


def run_replay(args: Any) -> int:
    """``liveaug replay --headless``: source → predictor → analyzer for every frame → tables."""
    from liveaug.analysis.analyzer import Analyzer, require_channel
    from liveaug.analysis.events import load_rules
    from liveaug.analysis.table import write_parquet
    from liveaug.progress import progress
    from liveaug.sources.replay import ReplaySource

    if not (args.readouts or args.parquet or args.events):
        raise LiveaugError(
            "replay --headless writes nothing without an output",
            "pass --readouts OUT.csv, --parquet OUT.parquet and/or --events OUT.jsonl",
        )
    for out in (args.readouts, args.parquet, args.events):
        if out is not None and not Path(out).parent.is_dir():
            raise LiveaugError(
                f"{out}: folder {Path(out).parent} does not exist", "create it or write elsewhere"
            )
    load_rules(args.rules)  # a bad rules file is named before any frame is read
    source = ReplaySource(args.session, speed=None, pixel_size_um=args.pixel_size)
    info = source.open()
    nuclei_channel = getattr(args, "nuclei_channel", None)
    try:
        require_channel(nuclei_channel, info.channel_names, str(args.session))
    except LiveaugError:
        source.close()
        raise
    predictor = make_predictor(
        args.maps, models=args.model, metadata=info.settings, views=args.views
    )
    sink = JsonlSink(args.events) if args.events else None
    snapshots = args.snapshots
    if snapshots is None:  # beside the first output, never in the working directory
        first = next(p for p in (args.readouts, args.parquet, args.events) if p)
        snapshots = first.with_name(first.name.split(".")[0] + "_snapshots")
    analyzer = Analyzer(
        rules=args.rules,
        event_sink=sink,
        snapshot_dir=snapshots,
        history_frames=None,
        nuclei_channel=nuclei_channel,
    )
    analyzer.source = source
    csv = CsvAppender(args.readouts) if args.readouts else None
    n = len(source) if args.frames is None else min(args.frames, len(source))
    done = 0
    failure: LiveaugError | None = None
    stop = StopOnInterrupt()
    try:
        with stop, progress(n, "replay") as bar:
            for frame in read_ahead(source):
                if done >= n or stop.requested:
                    break
                prediction = predictor.predict(frame, analyzer.required_roles)
                result = analyzer.analyze(frame, prediction)
                if csv is not None:
                    csv.append(result.cells)
                done += 1
                bar.update()
    except LiveaugError as exc:  # e.g. a corrupt frame: the frames before it are kept
        failure = exc
    finally:
        source.close()
        if sink is not None:
            sink.close()
    table = analyzer.table()
    extra = {"session": str(args.session), "frames": done, "maps": args.maps, "views": args.views}
    if nuclei_channel is not None:
        extra["nuclei_channel"] = nuclei_channel
    if failure is not None:
        extra["incomplete"] = failure.what
    elif stop.requested and done < n:
        extra["incomplete"] = "interrupted"
    if csv is not None:
        csv.close(table, extra)
    if args.parquet:
        write_parquet(table, args.parquet, extra=extra)
    if failure is not None:
        raise LiveaugError(
            f"{failure.what} (stopped after {done} of {n} frames; the outputs hold those)",
            failure.fix,
        )
    events = len(analyzer.events)
    wrote = "".join(f"; wrote {p}" for p in (args.readouts, args.parquet, args.events) if p)
    if extra.get("incomplete") == "interrupted":
        print(
            f"liveaug replay: interrupted; kept {done} of {n} frames, {len(table)} cell rows, "
            f"{events} events{wrote}",
            file=sys.stderr,
        )
        return 130
    print(f"analysed {done} frames, {len(table)} cell rows, {events} events{wrote}")
    return 0
