"""One analysis per stage position: a multi-position time-lapse is many fields, each tracked alone.

Frames from a multi-position plan (``liveaug.sources.mmcore``) interleave fields; a single
tracker would link cells across fields. :class:`PositionAnalyzer` keeps one
:class:`~liveaug.analysis.analyzer.Analyzer` per position (``frame.meta["mda_index"]["p"]``,
or the stage position when there is no index) and satisfies the same pipeline protocol.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from liveaug.analysis.analyzer import Analyzer
from liveaug.frame import Analysis, Frame, Prediction


def position_key(frame: Frame) -> Any:
    """Which field a frame shows: the plan's position index, else its stage position."""
    index = frame.meta.get("mda_index") or {}
    if "p" in index:
        return int(index["p"])
    x, y = frame.meta.get("stage_x_um"), frame.meta.get("stage_y_um")
    if x is None or y is None:
        return None
    return round(float(x), 1), round(float(y), 1)


class PositionAnalyzer:
    """Routes each frame to its position's own :class:`Analyzer` (made on first sight).

    Parameters
    ----------
    make : callable
        Returns a new Analyzer (same rules and settings for every position).
    source : optional
        Given to every Analyzer, so rules' actions reach the microscope.
    """

    def __init__(self, make: Callable[[], Analyzer], *, source: Any = None) -> None:
        self.make = make
        self.source = source
        self.analyzers: dict[Any, Analyzer] = {}
        first = make()
        self.required_roles = first.required_roles
        self._spare: Analyzer | None = first

    def analyzer_for(self, frame: Frame) -> Analyzer:
        """The Analyzer of ``frame``'s position."""
        key = position_key(frame)
        a = self.analyzers.get(key)
        if a is None:
            a, self._spare = (self._spare or self.make()), None
            a.source = self.source
            self.analyzers[key] = a
        return a

    def analyze(self, frame: Frame, prediction: Prediction) -> Analysis:
        """Analyse ``frame`` with its position's tracker and rules."""
        return self.analyzer_for(frame).analyze(frame, prediction)

    def reset(self) -> None:
        """Forget every position."""
        self.analyzers.clear()
