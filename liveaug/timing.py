"""Timing helpers shared by the pipeline and ``liveaug bench``: stage clocks and summaries."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np


def summarize_ms(samples_ns: Sequence[int]) -> dict[str, float]:
    """Median, p95 and mean of a list of durations in ns, reported in ms."""
    a = np.asarray(samples_ns, dtype=np.float64) / 1e6
    if a.size == 0:
        return {"median_ms": float("nan"), "p95_ms": float("nan"), "mean_ms": float("nan"), "n": 0}
    return {
        "median_ms": float(np.median(a)),
        "p95_ms": float(np.percentile(a, 95)),
        "mean_ms": float(a.mean()),
        "n": int(a.size),
    }


def time_calls(fn: Callable[[], object], *, repeats: int, warmup: int = 1) -> dict[str, float]:
    """Call ``fn`` ``warmup + repeats`` times and summarise the timed repeats."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - t0)
    return summarize_ms(samples)


class RollingTimings:
    """Per-stage durations over the last ``window`` frames, safe to feed from several threads."""

    def __init__(self, window: int = 300) -> None:
        self._lock = threading.Lock()
        self._window = window
        self._samples: dict[str, collections.deque[int]] = {}

    def add(self, stage: str, duration_ns: int) -> None:
        """Record one duration for ``stage``."""
        with self._lock:
            q = self._samples.get(stage)
            if q is None:
                q = self._samples[stage] = collections.deque(maxlen=self._window)
            q.append(int(duration_ns))

    def summary(self) -> dict[str, dict[str, float]]:
        """Median / p95 / mean (ms) per stage over the window."""
        with self._lock:
            snapshot = {k: list(v) for k, v in self._samples.items()}
        return {k: summarize_ms(v) for k, v in snapshot.items()}

    def clear(self) -> None:
        """Forget everything (e.g. after warm-up)."""
        with self._lock:
            self._samples.clear()
