"""How fast the simulated microscope renders frames, on one core (the live-source budget)."""

from __future__ import annotations

from typing import Any

import cv2

from liveaug.sources.simulated import SimulatedMicroscope, SimulationConfig
from liveaug.timing import time_calls


def simulator_benchmarks(sizes: tuple[int, ...] = (512,), frames: int = 40) -> dict[str, Any]:
    """Frame time with and without truth rendering (OpenCV and FFT held to one thread)."""
    cv2.setNumThreads(1)
    out: dict[str, Any] = {}
    for size in sizes:
        for truth in (False, True):
            sim = SimulatedMicroscope(SimulationConfig(height=size, width=size, truth=truth))
            sim.open()
            stats = time_calls(sim.read, repeats=frames, warmup=3)
            stats["fps"] = 1000.0 / stats["median_ms"]
            stats["cells"] = len(sim.population.cells)
            out[f"{size}x{size} {'with truth' if truth else 'brightfield only'}"] = stats
    return out
