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

    Maps are truth-derived at the shipped models' resolution (2x binned), so the figure is the
    analysis alone, not inference; OpenCV held to one thread. Per stage: median/p95 ms.
    """
    cv2.setNumThreads(1)
    cfg = SimulationConfig(height=size, width=size, seed=2).with_(
        biology__density=density, biology__reporter=True
    )
    sim = SimulatedMicroscope(cfg)
    sim.open()
    tp = TruthPredictor()
    pairs = [(f, tp.predict(f)) for f in (sim.read() for _ in range(frames + 3))]
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
        out[f"{size}x{size} {k}"] = {"median_ms": s["median_ms"], "p95_ms": s["p95_ms"]}
    out[f"{size}x{size} total"]["cells"] = float(np.median(cells))
    return out
