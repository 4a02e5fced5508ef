"""Stable cell ids across frames: overlap linking, nearest-neighbour rescue, divisions.

Per frame, each segmented region is linked to the previous frame's cell it overlaps most (IoU,
greedy, best pairs first). Regions left over are linked by centroid distance to cells that were
lost in the last ``max_gap`` frames (a cell missed in one frame keeps its id) or that moved
without overlap. A previous cell whose footprint holds two new regions, when it looked mitotic
(mean M probability ≥ ``mitosis_p`` in one of its last frames; or, without a phase map, when both
regions are smaller than it), divided: the two regions get new ids recording it as their parent.
Everything else starts a new track (parent 0).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np


@dataclass
class _Track:
    id: int
    parent_id: int
    last_frame: int
    x: float
    y: float
    area: float
    p_m: deque[float] = field(default_factory=lambda: deque(maxlen=3))


@dataclass(frozen=True)
class Links:
    """What :meth:`Tracker.update` decided for each region of the frame (in label order)."""

    ids: np.ndarray
    parent_ids: np.ndarray
    divisions: tuple[tuple[int, int, int], ...]
    """(parent, daughter, daughter) for each division seen in this frame."""


class Tracker:
    """Gives every region a track id that persists while the cell is followed.

    Parameters
    ----------
    pixel_size_um : float
        Size of a label pixel (model resolution), µm.
    max_gap : int
        Frames a cell may go missing and keep its id.
    max_step_um : float
        Farthest a cell may move per frame and still be linked by distance.
    min_iou : float
        Least overlap for a link by overlap.
    mitosis_p : float
        M-phase probability that makes a two-way split a division.
    """

    def __init__(
        self,
        *,
        pixel_size_um: float,
        max_gap: int = 2,
        max_step_um: float = 12.0,
        min_iou: float = 0.2,
        mitosis_p: float = 0.3,
    ) -> None:
        self.px = float(pixel_size_um)
        self.max_gap = max_gap
        self.max_step_px = max_step_um / self.px
        self.min_iou = min_iou
        self.mitosis_p = mitosis_p
        self._next_id = 1
        self._prev_labels: np.ndarray | None = None  # previous frame, compact 1..n
        self._prev_ids = np.zeros(1, np.int64)  # compact label -> track id
        self._tracks: dict[int, _Track] = {}

    def reset(self) -> None:
        """Forget every track (a new experiment, a seek in a replay)."""
        self._next_id = 1
        self._prev_labels = None
        self._prev_ids = np.zeros(1, np.int64)
        self._tracks.clear()

    def _new_id(self) -> int:
        i = self._next_id
        self._next_id += 1
        return i

    def update(
        self,
        frame: int,
        labels: np.ndarray,
        x: np.ndarray,
        y: np.ndarray,
        area: np.ndarray,
        p_m: np.ndarray | None = None,
    ) -> Links:
        """Link regions ``1..n`` of ``labels`` (with centroids in label pixels, areas) to tracks."""
        n = len(area)
        ids = np.zeros(n, np.int64)
        parents = np.zeros(n, np.int64)
        divisions: list[tuple[int, int, int]] = []
        prev = self._prev_labels
        if prev is not None and prev.shape == labels.shape and n:
            self._link_overlap(prev, labels, area, ids, parents, divisions)
        self._link_distance(frame, x, y, ids)
        for i in np.flatnonzero(ids == 0):
            ids[i] = self._new_id()
        # update the track store
        for i in range(n):
            tid = int(ids[i])
            t = self._tracks.get(tid)
            if t is None:
                t = self._tracks[tid] = _Track(tid, int(parents[i]), frame, 0.0, 0.0, 0.0)
            t.last_frame, t.x, t.y, t.area = frame, float(x[i]), float(y[i]), float(area[i])
            t.p_m.append(float(p_m[i]) if p_m is not None else float("nan"))
        for tid in [k for k, t in self._tracks.items() if frame - t.last_frame > self.max_gap]:
            del self._tracks[tid]
        self._prev_labels = labels
        self._prev_ids = np.concatenate([[0], ids])
        return Links(ids, parents, tuple(divisions))

    def _link_overlap(
        self,
        prev: np.ndarray,
        cur: np.ndarray,
        area: np.ndarray,
        ids: np.ndarray,
        parents: np.ndarray,
        divisions: list[tuple[int, int, int]],
    ) -> None:
        n_cur = len(area) + 1
        n_prev = len(self._prev_ids)
        key = prev.astype(np.int64).ravel() * n_cur + cur.astype(np.int64).ravel()
        counts = np.bincount(key, minlength=n_prev * n_cur)  # dense contingency, ~150²
        u = np.flatnonzero(counts)
        c = counts[u]
        pi, ci = u // n_cur, u % n_cur
        sel = (pi > 0) & (ci > 0)
        pi, ci, c = pi[sel], ci[sel], c[sel].astype(np.float64)
        a_prev = np.bincount(prev.ravel(), minlength=n_prev).astype(np.float64)
        a_cur = np.concatenate([[0.0], np.asarray(area, np.float64)])
        iou = c / (a_prev[pi] + a_cur[ci] - c)
        frac_cur = c / np.maximum(a_cur[ci], 1)
        # divisions first: a mitotic previous cell holding two new regions
        best_prev = np.zeros(n_cur, np.int64)
        best_frac = np.zeros(n_cur)
        order = np.argsort(frac_cur)
        best_prev[ci[order]] = pi[order]
        best_frac[ci[order]] = frac_cur[order]
        taken_prev: set[int] = set()
        for p in np.unique(best_prev[best_prev > 0]):
            kids = np.flatnonzero((best_prev == p) & (best_frac >= 0.5))
            if len(kids) != 2:
                continue
            tid = int(self._prev_ids[p])
            t = self._tracks.get(tid)
            pm = [v for v in (t.p_m if t else ()) if v == v]
            mitotic = (
                (max(pm) >= self.mitosis_p) if pm else bool((a_cur[kids] < 0.9 * a_prev[p]).all())
            )
            small = (a_cur[kids] < 1.1 * a_prev[p]).all()
            if not (mitotic and small):
                continue
            taken_prev.add(int(p))
            self._tracks.pop(tid, None)  # the mother's track ends at its division
            d = []
            for k in kids:
                ids[k - 1] = self._new_id()
                parents[k - 1] = tid
                d.append(int(ids[k - 1]))
            divisions.append((tid, d[0], d[1]))
        # one-to-one links, best IoU first
        order = np.argsort(-iou, kind="stable")
        used_prev = set(taken_prev)
        for j in order:
            if iou[j] < self.min_iou:
                break
            p, q = int(pi[j]), int(ci[j])
            if p in used_prev or ids[q - 1] != 0:
                continue
            used_prev.add(p)
            ids[q - 1] = self._prev_ids[p]

    def _link_distance(self, frame: int, x: np.ndarray, y: np.ndarray, ids: np.ndarray) -> None:
        """Unlinked regions → nearest track not seen in this frame (moved or missed)."""
        free = np.flatnonzero(ids == 0)
        if free.size == 0:
            return
        used = set(ids[ids > 0].tolist())
        cands = [
            t
            for t in self._tracks.values()
            if t.id not in used and 0 < frame - t.last_frame <= self.max_gap + 1
        ]
        if not cands:
            return
        tx = np.array([t.x for t in cands])
        ty = np.array([t.y for t in cands])
        gap = np.array([frame - t.last_frame for t in cands], np.float64)
        d = np.hypot(x[free, None] - tx[None], y[free, None] - ty[None])
        d = np.where(d <= self.max_step_px * gap[None], d, np.inf)
        while np.isfinite(d).any():
            i, j = np.unravel_index(int(np.argmin(d)), d.shape)
            ids[free[i]] = cands[j].id
            d[i, :] = np.inf
            d[:, j] = np.inf
