"""Helpers for the soak tests: resident memory of this process."""

from __future__ import annotations


def rss_mb() -> float:
    """Resident set size now, MiB (Linux /proc, like the CI machine)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20
