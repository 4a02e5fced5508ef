"""Shared helpers of the analysis tests: simulated frames with truth-derived prediction maps."""

from __future__ import annotations

import functools

import numpy as np

from liveaug.analysis.truthmaps import TruthPredictor
from liveaug.frame import Frame, Prediction
from liveaug.sources.simulated import SimulatedMicroscope, SimulationConfig


@functools.cache
def sim_frames(
    n: int = 1,
    *,
    density: float = 0.6,
    size: int = 256,
    seed: int = 7,
    reporter: bool = False,
    step: int = 1,
    magnification: float = 10.0,
    interval_s: float = 180.0,
    transloc_rate: float = 0.01,
) -> tuple[tuple[Frame, Prediction], ...]:
    """``n`` simulated frames (``step`` simulator steps apart) with truth-derived maps."""
    cfg = SimulationConfig(height=size, width=size, seed=seed).with_(
        biology__density=density,
        biology__reporter=reporter,
        biology__frame_interval_s=interval_s,
        biology__translocation_rate_per_h=transloc_rate,
        optics__magnification=magnification,
    )
    sim = SimulatedMicroscope(cfg)
    sim.open()
    tp = TruthPredictor(factor=2)
    out = []
    for _ in range(n):
        f = sim.read()
        out.append((f, tp.predict(f)))
        for _ in range(step - 1):
            sim.population.step()
    return tuple(out)


def disk_labels(shape: tuple[int, int], centres: list[tuple[float, float]], r: float) -> np.ndarray:
    """Label image of disks of radius ``r`` at ``centres`` (x, y), labels 1..n in order."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    lab = np.zeros(shape, np.int32)
    for i, (x, y) in enumerate(centres, 1):
        lab[(xx - x) ** 2 + (yy - y) ** 2 <= r * r] = i
    return lab
