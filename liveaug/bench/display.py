"""How fast the viewer draws, and how many frames it shows while the analysis runs.

Two measurements, both in a real window (run under ``xvfb-run`` on a machine without a screen;
the GL renderer is reported, e.g. Mesa llvmpipe, so figures are never mistaken for a GPU's):

- **draw time per frame** at 512² and 2048² with every overlay on (virtual DAPI and membrane,
  phase-coloured outlines, apoptosis, cell ids, event markers, a real fluorescence channel):
  texture upload + draw + ``glFinish``, for a new frame alone (the common case: frames come
  faster than analyses) and for a new frame with a new analysis;
- **display rate under analysis load**: a 30 fps replay through the real pipeline (models, or
  the simulator's truth maps when no model is installed) into the full window; displayed,
  acquired and analysed frames per second, latency and overlay lag.
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from liveaug.timing import summarize_ms

CANVAS = (1024, 768)


def _prepare(size: int, frames: int) -> tuple[list[Any], list[Any]]:
    """Simulated frames (with a reporter channel) and their analysed results."""
    from liveaug.analysis.analyzer import Analyzer
    from liveaug.analysis.truthmaps import TruthPredictor
    from liveaug.frame import ROLES, CellEvent
    from liveaug.pipeline import Result
    from liveaug.sources.simulated import SimulatedMicroscope, SimulationConfig

    config = SimulationConfig(height=size, width=size, seed=3).with_(biology__reporter=True)
    sim = SimulatedMicroscope(config)
    sim.open()
    predictor = TruthPredictor(config.to_dict()["camera"])
    analyzer = Analyzer(rules=[], keep_history=False)
    out_frames, results = [], []
    for _ in range(frames):
        frame = sim.read()
        pred = predictor.predict(frame, ROLES)
        analysis = analyzer.analyze(frame, pred)
        cells = analysis.cells
        events = tuple(  # a few markers, so that layer draws too
            CellEvent(frame.index, int(c), "bench", float(x), float(y))
            for c, x, y in list(zip(cells["cell_id"], cells["x"], cells["y"], strict=True))[:8]
        )
        analysis = dataclasses.replace(analysis, events=events)
        out_frames.append(frame)
        results.append(Result(frame, time.perf_counter_ns(), pred, analysis, {}, 0.0, 0))
    return out_frames, results


@contextlib.contextmanager
def canvas_drawer(
    channel_names: tuple[str, ...] = (),
) -> Iterator[Callable[[Any, Any], int]]:
    """A real canvas with every overlay on; yields ``draw(frame, result) -> ns`` (GL finished).

    ``result`` (a pipeline Result, or None) is uploaded only when it changes, as in the viewer.
    """
    from vispy import gloo

    from liveaug.viewer.app import qt_app
    from liveaug.viewer.canvas import LiveCanvas
    from liveaug.viewer.contrast import Contrast
    from liveaug.viewer.layers import default_layers

    qapp = qt_app()
    layers = default_layers(channel_names)
    for layer in layers:
        layer.visible = True
    canvas = LiveCanvas(layers, size=CANVAS)
    canvas.show()
    contrast = Contrast()
    shown: list[Any] = [None]

    def draw(frame: Any, result: Any) -> int:
        t0 = time.perf_counter_ns()
        canvas.set_frame(frame)
        canvas.set_contrast(contrast.update(frame.image))
        if result is not None and result is not shown[0]:
            canvas.set_result(result)
            events = getattr(result.analysis, "events", ())
            if events:
                canvas.add_events(list(events))
            shown[0] = result
        canvas.on_draw(None)
        gloo.gl.glFinish()
        return time.perf_counter_ns() - t0

    try:
        yield draw
    finally:
        canvas.close()
        qapp.processEvents()


def draw_times(size: int, *, repeats: int = 30, frames: int = 2) -> dict[str, Any]:
    """Per-frame draw time with every overlay on, at ``size`` x ``size``."""
    from vispy import gloo

    frame_list, results = _prepare(size, frames)
    with canvas_drawer(tuple(frame_list[0].channels)) as draw:
        draw(frame_list[0], results[0])  # compile and first uploads, not timed
        new_frame = [draw(frame_list[i % len(frame_list)], results[0]) for i in range(repeats)]
        new_result = [
            draw(frame_list[i % len(frame_list)], results[(i + 1) % len(results)])
            for i in range(repeats)
        ]
        renderer = gloo.gl.glGetParameter(gloo.gl.GL_RENDERER)
    n_cells = len(results[0].analysis.cells)
    return {
        "new frame": summarize_ms(new_frame),
        "new frame + new analysis": summarize_ms(new_result),
        "cells": n_cells,
        "canvas": f"{CANVAS[0]}x{CANVAS[1]}",
        "renderer": str(renderer),
    }


def display_rate(
    size: int = 512,
    *,
    seconds: float = 8.0,
    warmup_s: float = 2.0,
    maps: str = "auto",
    analysis: bool = True,
) -> dict[str, Any]:
    """Frames shown per second from a 30 fps replay while the pipeline analyses it.

    ``analysis=False`` runs the same window without predictor and analyzer: the display's own
    ceiling on this machine, to tell what the analysis load costs from what drawing costs.
    """
    from PyQt6.QtCore import QSettings

    from liveaug.bench.pipeline import make_bench_session
    from liveaug.commands.demo import choose_maps
    from liveaug.session import Session
    from liveaug.sources.replay import ReplaySource
    from liveaug.viewer.app import live_pipeline, qt_app
    from liveaug.viewer.window import ViewerWindow

    qapp = qt_app()
    maps = choose_maps(maps, None)
    with tempfile.TemporaryDirectory(prefix="liveaug-display-") as tmp:
        session = make_bench_session(Path(tmp), size, 60, truth=analysis and maps == "truth")
        metadata = Session.open(session).metadata
        source = ReplaySource(session, speed=1.0, loop=True)
        if analysis:
            pipeline = live_pipeline(source, maps=maps, metadata=metadata)
        else:
            from liveaug.pipeline import Pipeline

            pipeline = Pipeline(source)
        settings = QSettings(str(Path(tmp) / "viewer.ini"), QSettings.Format.IniFormat)
        window = ViewerWindow(pipeline, settings=settings, title="liveaug bench")
        for layer in window.layers:
            layer.visible = True
        window.resize(1280, 900)
        window.show()
        try:
            _run_for(qapp, warmup_s)
            d0, c0 = window.drawn_frames, dict(pipeline.counts)
            window._latency_ms.clear()
            t0 = time.perf_counter()
            _run_for(qapp, seconds)
            dt = time.perf_counter() - t0
            drawn = window.drawn_frames - d0
            counts = pipeline.counts
            stages = pipeline.stats()["stages"]
            result = window._result
            provider = getattr(getattr(result, "prediction", None), "provider", "none")
            out = {
                "maps": maps if analysis else "none (display alone)",
                "provider": provider,
                "source_fps": 30.0,
                "displayed_fps": drawn / dt,
                "acquired_fps": (counts["acquired"] - c0["acquired"]) / dt,
                "analysed_fps": (counts["analysed"] - c0["analysed"]) / dt,
                "latency_ms (arrival → drawn, median)": float(np.median(window._latency_ms))
                if window._latency_ms
                else float("nan"),
                "overlay_lag_frames": window._lag[0],
                "draw_ms (median)": stages.get("draw", {}).get("median_ms", float("nan")),
                "seconds": dt,
            }
        finally:
            window.close()
            qapp.processEvents()
    return out


def _run_for(qapp: Any, seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        qapp.processEvents()
        time.sleep(0.001)


def display_benchmarks(
    sizes: tuple[int, ...] = (512, 2048), *, seconds: float = 8.0
) -> dict[str, Any]:
    """Draw time per frame at each size with every overlay on, and the display rate under load."""
    out: dict[str, Any] = {}
    for size in sizes:
        out[f"draw {size}x{size}, all overlays"] = draw_times(size)
    out["display under analysis load, 512x512 30 fps replay"] = display_rate(512, seconds=seconds)
    out["display alone, 512x512 30 fps replay"] = display_rate(512, seconds=seconds, analysis=False)
    return out
