"""Argument types for counts, sizes and rates: nonsense (``--frames -3``) is refused by argparse,
with its usual usage line and exit status 2, before anything is opened or written."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """A whole number ≥ 1 (frames, workers, sizes)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a whole number ≥ 1")
    return value


def nonnegative_int(text: str) -> int:
    """A whole number ≥ 0 (warm-up frames)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is not a whole number ≥ 0")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (rates, durations, pixel sizes)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text} is not a number") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a number > 0")
    return value
