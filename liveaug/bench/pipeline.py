"""The pipeline against the naive single loop, on the same source and models.

Sources: a replayed simulated session (default), the simulated microscope live, or a GenICam
camera; each schedule opens its own instance of the source (``make_source``). Three measurements
in one process, so their ratios compare like with like on a noisy machine:

1. **compute alone** — prediction + analysis per frame, one after another: the floor any
   schedule must pay for an analysed frame;
2. **naive loop** — one thread: acquire → predict → analyse → draw, as a first prototype would;
3. **pipeline** — the threaded engine with a recorder, and a display loop that draws the newest
   frame at the source rate, as the viewer does.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from liveaug.errors import SessionError
from liveaug.frame import ROLES, Frame
from liveaug.pipeline import Analyzer, Pipeline, Predictor, Result
from liveaug.session import Session, SessionWriter
from liveaug.sources.base import Source, SourceInfo
from liveaug.sources.replay import ReplaySource
from liveaug.sources.simulated import SimulatedMicroscope, SimulationConfig
from liveaug.timing import summarize_ms

Draw = Callable[[Frame, "Result | None"], object]
MakeSource = Callable[[], Source]


#: Frame rate of the replayed bench session.
SOURCE_FPS = 30.0


def make_bench_session(
    folder: Path, size: int, frames: int, seed: int = 0, *, truth: bool = False
) -> Path:
    """A simulated session (30 fps timestamps) to replay; reused when it already exists.

    Brightfield only by default, as a camera delivers it: replayed truth channels would be
    recorded again by the pipeline's recorder, a cost no live run has. ``truth=True`` for the
    simulator's truth maps in place of models.
    """
    path = folder / f"bench-{size}-{frames}-seed{seed}{'-truth' if truth else ''}.ome.zarr"
    try:
        if Session.open(path).n_frames == frames:
            return path
    except SessionError:  # missing or unreadable: write it anew
        pass
    config = SimulationConfig(height=size, width=size, seed=seed, truth=truth)
    sim = SimulatedMicroscope(config, fps=None)
    info = sim.open()
    with SessionWriter.for_source(path, info, frame_interval_s=1 / SOURCE_FPS, overwrite=True) as w:
        for _ in range(frames):
            w.append(sim.read())
    return path


def _compute(predictor: Predictor, analyzer: Analyzer | None, frame: Frame) -> tuple[Any, Any]:
    pred = predictor.predict(frame, ROLES)
    return pred, (analyzer.analyze(frame, pred) if analyzer is not None else None)


def sample_frames(make_source: MakeSource, n: int) -> tuple[list[Frame], SourceInfo]:
    """``n`` frames from a freshly opened source, and what it delivers."""
    src = make_source()
    info = src.open()
    try:
        return [src.read(timeout_s=5.0) for _ in range(n)], info
    finally:
        src.close()


def compute_alone(
    predictor: Predictor, analyzer: Analyzer | None, frames: list[Frame]
) -> dict[str, float]:
    """Median/p95 ms of prediction + analysis per frame with nothing else running."""
    _compute(predictor, analyzer, frames[0])  # warm-up (allocations, graph init)
    samples = []
    for f in frames[2:]:
        t0 = time.perf_counter_ns()
        _compute(predictor, analyzer, f)
        samples.append(time.perf_counter_ns() - t0)
    return summarize_ms(samples)


def naive_loop(
    predictor: Predictor,
    analyzer: Analyzer | None,
    make_source: MakeSource,
    seconds: float,
    draw: Draw | None,
) -> dict[str, float]:
    """acquire → predict → analyse → draw in one thread."""
    src = make_source()
    src.open()
    drawn, latencies = 0, []
    t_end = time.monotonic() + seconds
    t0 = time.monotonic()
    try:
        while time.monotonic() < t_end:
            frame = src.read(timeout_s=5.0)
            arrived = time.perf_counter_ns()
            pred, analysis = _compute(predictor, analyzer, frame)
            latency = time.perf_counter_ns() - arrived
            latencies.append(latency)
            if draw is not None:
                draw(frame, Result(frame, arrived, pred, analysis, {}, latency / 1e6, 0))
            drawn += 1
    finally:
        src.close()
    elapsed = time.monotonic() - t0
    lat = summarize_ms(latencies)
    return {
        "displayed_fps": drawn / elapsed,
        "analysed_fps": drawn / elapsed,
        "latency_p95_ms": lat["p95_ms"],
    }


def pipeline_run(
    predictor: Predictor,
    analyzer: Analyzer | None,
    make_source: MakeSource,
    info: SourceInfo,
    seconds: float,
    draw: Draw | None,
    record_to: Path,
) -> dict[str, Any]:
    """The threaded engine, recording every frame, with a display loop polling at 60 Hz."""
    # record what a camera would give: brightfield (and real channels), no simulator truth
    writer = SessionWriter.for_source(record_to, info, truth=False, overwrite=True)
    pipe = Pipeline(make_source(), predictor=predictor, analyzer=analyzer, recorder=writer)
    pipe.start()
    time.sleep(1.0)  # warm-up: first inference, first allocations
    pipe.timings.clear()
    a0 = pipe.counts["analysed"]
    acq0 = pipe.counts["acquired"]
    drawn, last = 0, None
    draw_ns = []
    t0 = time.monotonic()
    next_tick = t0
    while (now := time.monotonic()) - t0 < seconds:
        frame = pipe.latest_frame()
        if frame is not None and frame is not last:
            d0 = time.perf_counter_ns()
            if draw is not None:
                draw(frame, pipe.latest_result())
            draw_ns.append(time.perf_counter_ns() - d0)
            drawn += 1
            last = frame
        next_tick += 1 / 60  # poll at twice the source rate, as a display timer would
        time.sleep(max(0.0, next_tick - now))
    elapsed = time.monotonic() - t0
    stats = pipe.stats()
    assert pipe.stop(timeout_s=2.0), "pipeline threads did not stop"
    acquired = pipe.counts["acquired"]  # after stop: frames that came in since stats() too
    recorded = Session.open(record_to).n_frames
    stages = stats["stages"]
    return {
        "displayed_fps": drawn / elapsed,
        "analysed_fps": (stats["analysed"] - a0) / elapsed,
        "acquired_fps": (stats["acquired"] - acq0) / elapsed,
        "latency_p95_ms": stages.get("latency", {}).get("p95_ms", float("nan")),
        "latency_median_ms": stages.get("latency", {}).get("median_ms", float("nan")),
        "dropped_for_analysis": stats["dropped"],
        "acquired": acquired,
        "recorded": recorded,
        "record_drops": acquired - recorded,
        "draw_ms": summarize_ms(draw_ns)["median_ms"] if draw_ns else 0.0,
        "stages": {
            k: {"median_ms": v["median_ms"], "p95_ms": v["p95_ms"]} for k, v in stages.items()
        },
    }


def replay_source(folder: Path, size: int) -> MakeSource:
    """Replays of a 90-frame simulated session at 30 fps, looping."""
    session = make_bench_session(folder, size, frames=90)
    return lambda: ReplaySource(session, speed=1.0, loop=True)


def simulator_source(size: int) -> MakeSource:
    """The simulated microscope live at 30 fps (brightfield only, rendered as frames fall due)."""
    config = SimulationConfig(height=size, width=size, seed=0, truth=False)
    return lambda: SimulatedMicroscope(config, fps=SOURCE_FPS)


def pipeline_benchmarks(
    predictor: Predictor,
    analyzer: Analyzer | None = None,
    *,
    make_source: MakeSource,
    seconds: float = 10.0,
    draw: Draw | None = None,
    workdir: Path | None = None,
) -> dict[str, Any]:
    """Compute alone, the naive loop and the pipeline on the same source; the ratios."""
    folder = Path(workdir or tempfile.mkdtemp(prefix="liveaug-bench-"))
    frames, info = sample_frames(make_source, 22)
    reset = getattr(analyzer, "reset", lambda: None)  # fresh tracks for each schedule
    alone = compute_alone(predictor, analyzer, frames)
    reset()
    naive = naive_loop(predictor, analyzer, make_source, seconds / 2, draw)
    reset()
    piped = pipeline_run(
        predictor, analyzer, make_source, info, seconds, draw, folder / "rec.ome.zarr"
    )
    source_fps = piped["acquired_fps"]
    t_c = alone["median_ms"]
    frame_ms = 1000 / source_fps
    # what the analysis could reach with everything else hidden: its own rate, or the source's
    # when the compute is faster than the frames come
    reachable = min(1000 / t_c, source_fps)
    return {
        "source": info.name,
        "size": f"{info.shape[1]}x{info.shape[0]}",
        "compute_alone_ms": alone,
        "naive": naive,
        "pipeline": piped,
        "targets": {
            "analysed_fps / (0.9 min(1/compute, source))": piped["analysed_fps"]
            / (0.9 * reachable),
            "displayed_fps (>= 29)": piped["displayed_fps"],
            "displayed vs naive (>= 3)": piped["displayed_fps"] / max(naive["displayed_fps"], 1e-9),
            "latency_p95 / (1.2 compute + frame) (<= 1)": piped["latency_p95_ms"]
            / (1.2 * t_c + frame_ms),
            "record drops (== 0)": piped["record_drops"],
        },
        "compute_fraction_of_frame": float(np.round(t_c / frame_ms, 2)),
    }
