"""Helpers for the soak tests: resident memory of this process."""

from __future__ import annotations

import time


def rss_mb() -> float:
    """Resident set size now, MiB (Linux /proc, like the CI machine)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def rss_growth_mb(pipe, warm: int = 1000, total: int = 10_000) -> float:
    """RSS growth (MiB) of a started pipeline from its ``warm``-th to its ``total``-th frame."""
    while pipe.stats()["acquired"] < warm:
        time.sleep(0.05)
    base = rss_mb()
    while pipe.stats()["acquired"] < total:
        time.sleep(0.1)
    return rss_mb() - base
