"""The analysis stage of the pipeline: segment, measure, track, fire rules — one frame at a time.

:class:`Analyzer` satisfies :class:`liveaug.pipeline.Analyzer`. It keeps the session's history
(every frame's CellTable) so the viewer can ask for one cell's time series or lineage, and the
replay command can export the whole session at the end. No Qt, no GL.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from liveaug.analysis.events import Hook, Rule, RuleEngine, load_rules
from liveaug.analysis.readouts import measure
from liveaug.analysis.segmentation import SegmentParams, segment
from liveaug.analysis.table import concat_tables
from liveaug.analysis.tracking import Tracker
from liveaug.errors import LiveaugError
from liveaug.frame import ROLES, Analysis, CellEvent, CellTable, Frame, Prediction
from liveaug.preprocess import bin_image
from liveaug.reliability import cell_reliability

log = logging.getLogger(__name__)

#: Pixel size assumed when a frame does not carry one (the simulator's 10x default), µm.
DEFAULT_PIXEL_UM = 0.65


def acquisition_time_s(frame: Frame) -> float:
    """When the frame was taken, s: a simulated frame's experiment time (the live simulator
    renders a 3-hour time-lapse at 30 frames/s), else its recorded timestamp."""
    sim_time_s = frame.meta.get("sim_time_s")
    return float(sim_time_s) if sim_time_s is not None else frame.timestamp_ns / 1e9


def require_channel(name: str | None, available: Iterable[str], where: str = "the source") -> None:
    """Raise one readable :class:`LiveaugError` when ``name`` (a ``--nuclei-channel``) is not
    among the fluorescence channels ``available`` (None: nothing asked, nothing to check)."""
    if name is None:
        return
    real = list(available)
    if name in real:
        return
    if real:
        fix = f"its channels are: {', '.join(real)}"
    else:
        fix = "it records no fluorescence channel (brightfield only): drop --nuclei-channel"
    raise LiveaugError(f"--nuclei-channel {name}: {where} records no channel {name!r}", fix)


class Analyzer:
    """Prediction maps → tracked cells, readouts and events.

    Parameters
    ----------
    params : SegmentParams, optional
        Segmentation settings (µm, model output units).
    rules : list of Rule, path to a rules YAML, or None
        Event rules; None uses the shipped ``rules.yaml``; ``[]`` disables events.
    hooks : dict, optional
        Event hooks by name (see :mod:`liveaug.analysis.events`).
    source : optional
        Passed to hooks so they can act on the camera.
    keep_history : bool
        Keep frames' tables for :meth:`series`, :meth:`lineage` and :meth:`table`.
    history_frames : int or None
        How many of the latest frames to keep (~36 kB each at 150 cells, so 2000 ≈ 70 MB for a
        live run that never ends); None keeps all (a batch that exports the whole session).
    max_gap, max_step_um : tracking settings (see :class:`~liveaug.analysis.tracking.Tracker`).
    nuclei_channel : str, optional
        A recorded real nuclear stain (``Frame.channels`` name: Hoechst, SiR-DNA …) segmented
        as the nucleus map instead of the virtual DAPI; readouts still measure every map.
    """

    required_roles: frozenset[str] = frozenset(ROLES)

    def __init__(
        self,
        *,
        params: SegmentParams | None = None,
        rules: list[Rule] | str | Path | None = None,
        hooks: dict[str, Hook] | None = None,
        source: Any = None,
        event_sink: Any = None,
        snapshot_dir: str | Path | None = None,
        keep_history: bool = True,
        history_frames: int | None = 2000,
        max_gap: int = 2,
        max_step_um: float = 12.0,
        nuclei_channel: str | None = None,
    ) -> None:
        self.params = params or SegmentParams()
        self.nuclei_channel = nuclei_channel
        settings: dict[str, Any] = {}
        if rules is None or isinstance(rules, str | Path):
            rules, settings = load_rules(rules)
        self.rules = RuleEngine(
            list(rules),
            snapshot_dir=snapshot_dir or settings.get("snapshot_dir"),
            hooks=hooks,
            sink=event_sink,
        )
        self.rules.source = source
        self.keep_history = keep_history
        self.history_frames = history_frames
        self._max_gap, self._max_step_um = max_gap, max_step_um
        self.tracker: Tracker | None = None
        self._lock = threading.Lock()
        self._tables: dict[int, CellTable] = {}  # frame sequence number -> table
        self._seq = 0
        self._rows_of: dict[int, deque[tuple[int, int]]] = {}
        self._parent: dict[int, int] = {}
        self._recent_ids: deque[np.ndarray] = deque(maxlen=max_gap + 2)
        self._analyses = 0
        self._said_no_pixel_size = False
        self.events: deque[CellEvent] = deque(maxlen=10_000)
        """The latest events fired (all of them in a batch run of fewer)."""

    @property
    def source(self) -> Any:
        """What event hooks may act on (a camera, a replay)."""
        return self.rules.source

    @source.setter
    def source(self, value: Any) -> None:
        self.rules.source = value

    def reset(self) -> None:
        """Start over: new tracks, no history, rules re-armed (after a seek, a new dish)."""
        with self._lock:
            self.tracker = None
            self._tables.clear()
            self._rows_of.clear()
            self._seq = 0
            self._parent.clear()
            self.events.clear()
        self.rules.reset()

    def check_source(self, info: Any) -> None:
        """Fail early, in one line, when the source does not record :attr:`nuclei_channel`
        (``info``: a :class:`~liveaug.sources.base.SourceInfo`)."""
        require_channel(self.nuclei_channel, getattr(info, "channel_names", ()))

    def _nucleus_map(self, frame: Frame, prediction: Prediction) -> tuple[np.ndarray, bool]:
        """The map nuclei are found in, at model resolution, and whether it is in counts."""
        if self.nuclei_channel is None:
            return prediction.maps["dapi"], False
        require_channel(self.nuclei_channel, tuple(frame.channels), f"frame {frame.index}")
        plane = bin_image(frame.channels[self.nuclei_channel], round(1.0 / prediction.scale))
        shape = prediction.maps["dapi"].shape
        if plane.shape != shape:  # a model that pads or crops: same field, its grid
            plane = cv2.resize(plane, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
        return plane, True

    # -- the pipeline stage ------------------------------------------------------------------------
    def analyze(self, frame: Frame, prediction: Prediction) -> Analysis:
        """Segment, measure and track one frame; rules fire on the tracked table."""
        missing = {"dapi", "membrane"} - set(prediction.maps)
        if missing:
            raise LiveaugError(
                f"analysis needs the {sorted(missing)} prediction maps",
                "load a model that predicts them",
            )
        timings: dict[str, float] = {}
        t0 = time.perf_counter_ns()
        if not frame.pixel_size_um and not self._said_no_pixel_size:
            self._said_no_pixel_size = True
            log.warning(
                "the frames carry no pixel size: area_um2 stays empty and the segmentation "
                "assumes %s µm/px — give it with --pixel-size UM (record, view, replay)",
                DEFAULT_PIXEL_UM,
            )
        px_frame = frame.pixel_size_um or DEFAULT_PIXEL_UM
        px_model = px_frame / prediction.scale
        nucleus_map, counts = self._nucleus_map(frame, prediction)
        seg = segment(
            nucleus_map,
            prediction.maps["membrane"],
            pixel_size_um=px_model,
            params=self.params,
            counts=counts,
        )
        t1 = time.perf_counter_ns()
        model = ";".join(sorted(set(prediction.models.values())))
        table = measure(
            seg.labels,
            seg.nuclei,
            prediction.maps,
            scale=prediction.scale,
            pixel_size_um=frame.pixel_size_um,
            channels=frame.channels,
            frame_index=frame.index,
            timestamp_s=acquisition_time_s(frame),
            model=model,
        )
        t2 = time.perf_counter_ns()
        if self.tracker is None:
            self.tracker = Tracker(
                pixel_size_um=px_model, max_gap=self._max_gap, max_step_um=self._max_step_um
            )
        n = len(table)
        s = prediction.scale
        links = self.tracker.update(
            frame.index,
            seg.labels,
            (table["x"] + 0.5) * s - 0.5,
            (table["y"] + 0.5) * s - 0.5,
            table["area_px"] * s * s,
            table["p_M"] if "phase" in prediction.maps else None,
        )
        lut = np.concatenate([[0], links.ids]).astype(np.uint32)
        labels, nuclei = lut[seg.labels], lut[seg.nuclei]
        cols = dict(table.columns)
        cols["cell_id"] = links.ids
        parents = links.parent_ids.copy()
        if n:  # a continuing track keeps the parent recorded when it was born
            with self._lock:
                known = np.array([self._parent.get(int(i), -1) for i in links.ids], np.int64)
                parents = np.where(known >= 0, known, parents)
                for cid, pid in zip(links.ids.tolist(), parents.tolist(), strict=True):
                    self._parent.setdefault(cid, pid)
        cols["parent_id"] = parents
        units = dict(table.units)
        if prediction.trust is not None:  # how like the training data each cell and frame is
            rel = cell_reliability(prediction.trust, seg.labels)
            cols["reliability"] = rel.astype(np.float32)
            cols["frame_reliability"] = np.full(n, prediction.trust.frame, np.float32)
            units.update(reliability="1", frame_reliability="1")
        table = CellTable(cols, units)
        t3 = time.perf_counter_ns()
        events = self.rules.update(frame, table, prediction=prediction, labels=labels)
        t4 = time.perf_counter_ns()
        if self.keep_history:
            self._remember(table)
        else:
            self._forget_ended_tracks(links.ids)
        self.events.extend(events)
        timings.update(
            segment=(t1 - t0) / 1e6,
            readouts=(t2 - t1) / 1e6,
            tracking=(t3 - t2) / 1e6,
            events=(t4 - t3) / 1e6,
        )
        return Analysis(
            frame_index=frame.index,
            labels=labels,
            nuclei=nuclei,
            cells=table,
            events=tuple(events),
            timings_ms=timings,
        )

    # -- history for the viewer and export -------------------------------------------------------
    def _remember(self, table: CellTable) -> None:
        with self._lock:
            k = self._seq
            self._seq += 1
            self._tables[k] = table
            for row, cid in enumerate(table["cell_id"].tolist()):
                self._rows_of.setdefault(cid, deque()).append((k, row))
            if self.history_frames is not None and len(self._tables) > self.history_frames:
                old = k - self.history_frames
                dropped = self._tables.pop(old, None)
                for cid in [] if dropped is None else dropped["cell_id"].tolist():
                    rows = self._rows_of.get(cid)
                    while rows and rows[0][0] <= old:
                        rows.popleft()
                    if rows is not None and not rows:
                        del self._rows_of[cid]
                        self._parent.pop(cid, None)  # the lineage reaches as far as the history

    def _forget_ended_tracks(self, ids: np.ndarray) -> None:
        """Without a history, keep parents only of tracks that may still continue (live runs
        never end: one entry per track ever born would grow without bound)."""
        self._recent_ids.append(ids)
        self._analyses += 1
        if self._analyses % 100 == 0:
            alive = set(np.concatenate(list(self._recent_ids)).tolist())
            with self._lock:
                self._parent = {k: v for k, v in self._parent.items() if k in alive}

    def series(self, cell_id: int, columns: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """One cell's readouts over time (``frame``, ``phase``, ``dapi_integrated`` …)."""
        with self._lock:
            where = list(self._rows_of.get(int(cell_id), ()))
            tables = self._tables
            if not where:
                return {}
            names = list(columns) if columns is not None else list(tables[where[0][0]].columns)
            if "frame" not in names:
                names.insert(0, "frame")
            return {c: np.array([tables[k][c][r] for k, r in where]) for c in names}

    def lineage(self, cell_id: int) -> list[int]:
        """The cell and its ancestors, newest first (ids of mothers recorded at divisions)."""
        out = [int(cell_id)]
        with self._lock:
            while (p := self._parent.get(out[-1], 0)) > 0 and p not in out:
                out.append(p)
        return out

    def table(self) -> CellTable:
        """The kept frames' rows, in order (the whole session when ``history_frames`` is None)."""
        with self._lock:
            return concat_tables(list(self._tables.values()))
