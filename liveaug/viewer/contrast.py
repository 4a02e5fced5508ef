"""Contrast for live images: percentile limits one hot pixel cannot move, and a small histogram.

Computed on a strided subsample (≤ ~65 k pixels) so it costs well under a millisecond a frame,
and smoothed over frames so the picture stays calm while following slow changes — never frozen
at the first frame's limits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_SAMPLES = 65536


def subsample(image: np.ndarray, max_samples: int = MAX_SAMPLES) -> np.ndarray:
    """A regular strided subsample of ``image`` with at most ``max_samples`` pixels."""
    stride = max(1, int(np.ceil(np.sqrt(image.size / max_samples))))
    return image[::stride, ::stride]


def percentile_limits(
    image: np.ndarray, low: float = 0.5, high: float = 99.8
) -> tuple[float, float]:
    """(lo, hi) at the given percentiles of a subsample; hi > lo always.

    When most pixels share one value (a saturated camera: 99.75 % at 255) the percentiles
    meet and the window would put that value at black: it widens to the subsample's whole
    range instead, and a flat image sits mid-window (grey), so neither is ever drawn black.
    """
    s = subsample(image).ravel()
    lo, hi = np.percentile(s, (low, high))
    if hi - lo < 1.0:
        lo, hi = float(s.min()), float(s.max())
        if hi - lo < 1.0:  # flat
            lo, hi = lo - 1.0, lo + 1.0
    return float(lo), float(hi)


def saturated_fraction(image: np.ndarray, bit_depth: int) -> float:
    """Fraction of a subsample at the top of the ``bit_depth`` range (clipped by the camera)."""
    s = subsample(image)
    return float(np.count_nonzero(s >= (1 << bit_depth) - 1)) / max(1, s.size)


def histogram(image: np.ndarray, max_value: float, bins: int = 128) -> np.ndarray:
    """Counts of a subsample over ``[0, max_value]`` in ``bins`` bins."""
    s = subsample(image).ravel()
    counts, _ = np.histogram(s, bins=bins, range=(0.0, float(max_value)))
    return counts


@dataclass
class Contrast:
    """The base image's window: manual limits, or continuous percentile auto-contrast."""

    auto: bool = True
    low_pct: float = 0.5
    high_pct: float = 99.8
    lo: float = 0.0
    hi: float = 4095.0
    gamma: float = 1.0
    smoothing: float = 0.3
    """Weight of the newest frame's limits (1 = no smoothing)."""

    _seeded: bool = False

    def update(self, image: np.ndarray) -> tuple[float, float]:
        """Follow ``image`` when automatic; returns the limits to draw with."""
        if self.auto:
            lo, hi = percentile_limits(image, self.low_pct, self.high_pct)
            if not self._seeded:
                self.lo, self.hi, self._seeded = lo, hi, True
            else:
                a = self.smoothing
                self.lo += a * (lo - self.lo)
                self.hi += a * (hi - self.hi)
        return self.lo, self.hi
