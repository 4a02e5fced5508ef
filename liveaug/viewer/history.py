"""What the plots show over time: cells per phase, per-cell series, DNA content. No Qt."""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

import numpy as np

from liveaug.frame import PHASE_CLASSES, CellTable

_PHASE_INDEX = {name: i for i, name in enumerate(PHASE_CLASSES)}


@dataclass
class CellSeries:
    """One tracked cell over the analysed frames (bounded)."""

    frames: collections.deque[int]
    phase: collections.deque[int]
    dapi: collections.deque[float]
    channels: dict[str, collections.deque[float]] = field(default_factory=dict)


class History:
    """Bounded histories fed with each analysed CellTable (newest frames last)."""

    def __init__(self, frames: int = 600, max_cells: int = 5000) -> None:
        self.frames = frames
        self.max_cells = max_cells
        self.counts: collections.deque[tuple[int, np.ndarray]] = collections.deque(maxlen=frames)
        self.cells: collections.OrderedDict[int, CellSeries] = collections.OrderedDict()
        self.last_index: int | None = None

    def add(self, frame_index: int, table: CellTable) -> None:
        """Record one analysed frame (a repeated or older frame index is ignored)."""
        if self.last_index is not None and frame_index <= self.last_index:
            if frame_index < self.last_index:  # replay jumped back: start over
                self.clear()
            else:
                return
        self.last_index = frame_index
        n = len(table)
        cols = table.columns
        phases = cols.get("phase", np.array(["background"] * n, dtype=object))
        idx = np.array([_PHASE_INDEX.get(str(p), 0) for p in phases], np.int64)
        self.counts.append((frame_index, np.bincount(idx, minlength=len(PHASE_CLASSES))))
        if not n or "cell_id" not in cols:
            return
        dapi = cols.get("dapi_integrated", np.full(n, np.nan))
        extra = [k for k in cols if k.endswith("_nc_ratio") or k.endswith("_mean")]
        extra = [k for k in extra if not k.startswith(("dapi", "membrane"))]
        for row, cid in enumerate(np.asarray(cols["cell_id"]).tolist()):
            s = self.cells.get(cid)
            if s is None:
                m = self.frames
                s = self.cells[cid] = CellSeries(
                    collections.deque(maxlen=m),
                    collections.deque(maxlen=m),
                    collections.deque(maxlen=m),
                )
            else:
                self.cells.move_to_end(cid)
            s.frames.append(frame_index)
            s.phase.append(int(idx[row]))
            s.dapi.append(float(dapi[row]))
            for k in extra:
                s.channels.setdefault(k, collections.deque(maxlen=self.frames)).append(
                    float(cols[k][row])
                )
        while len(self.cells) > self.max_cells:
            self.cells.popitem(last=False)

    def phase_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """(frame indices, counts (n, n_classes))."""
        if not self.counts:
            return np.zeros(0), np.zeros((0, len(PHASE_CLASSES)))
        frames, counts = zip(*self.counts, strict=True)
        return np.asarray(frames), np.stack(counts)

    def clear(self) -> None:
        """Forget everything (a new source, or replay seeking back)."""
        self.counts.clear()
        self.cells.clear()
        self.last_index = None
