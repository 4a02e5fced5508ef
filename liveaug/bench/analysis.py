"""How long segmentation + readouts + tracking take per frame (the analysis' real-time budget)."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from liveaug.analysis.analyzer import Analyzer
from liveaug.analysis.truthmaps import TruthPredictor
from liveaug.sources.simulated import SimulatedMicroscope, SimulationConfig
from liveaug.timing import summarize_ms


def analysis_benchmarks(size: int = 512, frames: int = 40, density: float = 1.0) -> dict[str, Any]:
    """Analyzer time per frame on a confluent simulated field (~150 cells at 512²).

    The analysis alone, not inference: maps are made first — truth-derived at the shipped
    models' resolution (2x binned) and, when a shipped model loads, the model's own — then the
    analysis is timed; OpenCV held to one thread. Per stage: median/p95 ms.
    """
    cv2.setNumThreads(1)
    cfg = SimulationConfig(height=size, width=size, seed=2).with_(
        biology__density=density, biology__reporter=True
    )
    sim = SimulatedMicroscope(cfg)
    sim.open()
    frames_ = [sim.read() for _ in range(frames + 3)]
    tp = TruthPredictor()
    out = _time_analysis([(f, tp.predict(f)) for f in frames_], f"{size}x{size} truth maps")
    try:
        from liveaug.inference import Predictor

        predictor = Predictor()
    except Exception as exc:  # no shipped model, no onnxruntime: truth maps only
        out[f"{size}x{size} model maps"] = f"skipped ({exc})"
        return out
    pairs = [(f, predictor.predict(f)) for f in frames_]
    del predictor  # its threads must not compete with the timed analysis
    out.update(_time_analysis(pairs, f"{size}x{size} model maps"))
    return out


def _time_analysis(pairs: list, label: str) -> dict[str, Any]:
    """Median/p95 per stage of the Analyzer over ``pairs`` (first 3 frames are warm-up)."""
    an = Analyzer(rules=None, keep_history=False)
    stages: dict[str, list[int]] = {"total": []}
    cells = []
    for i, (f, p) in enumerate(pairs):
        res = an.analyze(f, p)
        if i < 3:  # warm-up
            continue
        cells.append(len(res.cells))
        core = ("segment", "readouts", "tracking")
        for k in (*core, "events"):
            stages.setdefault(k, []).append(int(res.timings_ms[k] * 1e6))
        stages["total"].append(int(sum(res.timings_ms[k] for k in core) * 1e6))
    out: dict[str, Any] = {}
    for k, v in stages.items():
        s = summarize_ms(v)
        out[f"{label} {k}"] = {"median_ms": s["median_ms"], "p95_ms": s["p95_ms"]}
    out[f"{label} total"]["cells"] = float(np.median(cells))
    return out
