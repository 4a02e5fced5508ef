"""Small, fast plots drawn with QPainter: lines over time, a histogram, a phase strip.

Deliberately minimal (no plotting library in the live loop): each widget keeps its data and
repaints itself when given new data.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PyQt6.QtCore import QPointF, QRectF, QSize, Qt
from PyQt6.QtGui import QColor, QPainter, QPainterPath, QPen
from PyQt6.QtWidgets import QSizePolicy, QWidget

RGB = tuple[float, float, float]


def qcolor(rgb: RGB, alpha: float = 1.0) -> QColor:
    """A QColor from 0..1 floats."""
    return QColor.fromRgbF(float(rgb[0]), float(rgb[1]), float(rgb[2]), float(alpha))


class _Plot(QWidget):
    margin = 6

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = title
        self.setMinimumSize(160, 90)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def sizeHint(self) -> QSize:
        return QSize(240, 120)

    def _area(self) -> QRectF:
        m = self.margin
        return QRectF(m, m + 14, self.width() - 2 * m, self.height() - 2 * m - 14)

    def _frame(self, p: QPainter, note: str = "") -> QRectF:
        p.fillRect(self.rect(), QColor("#16161a"))
        p.setPen(QColor("#c8c8c8"))
        p.drawText(QPointF(self.margin, self.margin + 10), f"{self.title}{note}")
        area = self._area()
        p.setPen(QPen(QColor("#444"), 1))
        p.drawRect(area)
        return area


class LinePlot(_Plot):
    """Several series over a shared x axis, y from 0 (or the data minimum) to the maximum."""

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(title, parent)
        self._x = np.zeros(0)
        self._ys: list[tuple[np.ndarray, RGB]] = []

    def set_data(self, x: np.ndarray, series: Sequence[tuple[np.ndarray, RGB]]) -> None:
        """``series``: (y values, colour) pairs of the same length as ``x``."""
        self._x = np.asarray(x, np.float64)
        self._ys = [(np.asarray(y, np.float64), c) for y, c in series]
        self.update()

    def paintEvent(self, _event: object) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        ys = [y for y, _ in self._ys if y.size]
        top = max((float(np.nanmax(y)) for y in ys if np.isfinite(y).any()), default=0.0)
        area = self._frame(p, f"  (max {top:.3g})" if ys else "")
        if self._x.size < 2 or top <= 0:
            p.end()
            return
        x0, x1 = float(self._x[0]), float(self._x[-1])
        span = max(x1 - x0, 1e-9)
        for y, color in self._ys:
            path = QPainterPath()
            started = False
            for xv, yv in zip(self._x, y, strict=True):
                if not np.isfinite(yv):
                    started = False
                    continue
                pt = QPointF(
                    area.left() + (xv - x0) / span * area.width(),
                    area.bottom() - yv / top * area.height(),
                )
                if started:
                    path.lineTo(pt)
                else:
                    path.moveTo(pt)
                    started = True
            p.setPen(QPen(qcolor(color), 1.5))
            p.drawPath(path)
        p.end()


class HistogramPlot(_Plot):
    """Bar histogram with optional marker lines (contrast limits, G1/G2 positions)."""

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(title, parent)
        self._counts = np.zeros(0)
        self._markers: list[tuple[float, RGB]] = []
        self.log = False
        self.color: RGB = (0.6, 0.7, 0.9)

    def set_data(
        self, counts: np.ndarray, markers: Sequence[tuple[float, RGB]] = (), note: str = ""
    ) -> None:
        """``markers``: (position as a fraction 0..1 of the range, colour)."""
        self._counts = np.asarray(counts, np.float64)
        self._markers = list(markers)
        self._note = note
        self.update()

    def paintEvent(self, _event: object) -> None:
        p = QPainter(self)
        area = self._frame(p, getattr(self, "_note", ""))
        c = self._counts
        if c.size and c.max() > 0:
            v = np.log1p(c) if self.log else c
            v = v / v.max()
            w = area.width() / c.size
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(qcolor(self.color))
            for i, h in enumerate(v):
                if h > 0:
                    p.drawRect(
                        QRectF(
                            area.left() + i * w,
                            area.bottom() - h * area.height(),
                            w,
                            h * area.height(),
                        )
                    )
        for pos, color in self._markers:
            x = area.left() + float(np.clip(pos, 0, 1)) * area.width()
            p.setPen(QPen(qcolor(color), 1))
            p.drawLine(QPointF(x, area.top()), QPointF(x, area.bottom()))
        p.end()


class PhaseStrip(_Plot):
    """A cell's phase over time as a coloured strip, with its DAPI trace on top."""

    def __init__(self, title: str, colors: Sequence[RGB], parent: QWidget | None = None) -> None:
        super().__init__(title, parent)
        self.colors = list(colors)
        self._phase = np.zeros(0, np.int64)
        self._traces: list[tuple[np.ndarray, RGB]] = []

    def set_data(
        self, phase: np.ndarray, traces: Sequence[tuple[np.ndarray, RGB]], note: str = ""
    ) -> None:
        """Phase class per frame and traces (each scaled to its own maximum)."""
        self._phase = np.asarray(phase, np.int64)
        self._traces = [(np.asarray(t, np.float64), c) for t, c in traces]
        self._note = note
        self.update()

    def paintEvent(self, _event: object) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        area = self._frame(p, getattr(self, "_note", ""))
        n = self._phase.size
        if n:
            w = area.width() / n
            strip = QRectF(area.left(), area.bottom() - 8, area.width(), 8)
            p.setPen(Qt.PenStyle.NoPen)
            for i, k in enumerate(self._phase):
                p.setBrush(qcolor(self.colors[int(k) % len(self.colors)]))
                p.drawRect(QRectF(strip.left() + i * w, strip.top(), w + 0.5, strip.height()))
            for y, color in self._traces:
                finite = np.isfinite(y)
                if n < 2 or not finite.any() or np.nanmax(y) <= 0:
                    continue
                top = float(np.nanmax(y))
                path = QPainterPath()
                for i, v in enumerate(y):
                    pt = QPointF(
                        area.left() + (i + 0.5) * w,
                        strip.top() - 2 - (v / top if np.isfinite(v) else 0) * (area.height() - 12),
                    )
                    path.lineTo(pt) if i else path.moveTo(pt)
                p.setPen(QPen(qcolor(color), 1.5))
                p.setBrush(Qt.BrushStyle.NoBrush)
                p.drawPath(path)
        p.end()
