"""One view adapter per overlay: listens to its layer model and drives the GPU side.

Like napari's ``_vispy/layers``: an adapter takes a model object (:class:`OverlayLayer`),
connects to its events in ``__init__`` and only translates model changes and new data into node
changes — shader uniforms of the shared :class:`CompositeVisual`, or its own vispy node (ids,
event markers). :data:`ADAPTERS` maps layer kinds to adapter classes.
"""

from __future__ import annotations

import collections
from typing import Any

import numpy as np
from vispy import scene

from liveaug.frame import PHASE_CLASSES, CellEvent, Frame
from liveaug.viewer.contrast import subsample
from liveaug.viewer.idlabels import IdLabels, place_labels
from liveaug.viewer.layers import PHASE_COLORS, OverlayLayer
from liveaug.viewer.visuals import CompositeVisual, StainStyle

_PHASE_INDEX = {name: i for i, name in enumerate(PHASE_CLASSES)}


def label_scale(labels: np.ndarray, frame_shape: tuple[int, int], prediction: Any) -> float:
    """Label pixels per frame pixel: the prediction's scale, or 1 for frame-sized labels."""
    if labels.shape == tuple(frame_shape) or prediction is None:
        return 1.0
    return float(prediction.scale)


class OverlayAdapter:
    """Base: holds the layer and the composite visual; data hooks do nothing by default."""

    def __init__(self, layer: OverlayLayer, composite: CompositeVisual, parent: Any) -> None:
        self.layer = layer
        self.composite = composite
        self.parent = parent
        layer.events.connect(self._on_layer_change)

    def _on_layer_change(self, *_: object) -> None:
        self.apply_style()

    def apply_style(self) -> None:
        """Push visible/opacity/colour to the GPU side."""

    def on_frame(self, frame: Frame) -> None:
        """A new frame is shown."""

    def on_result(self, result: Any) -> None:
        """A new analysed result (``pipeline.Result``) is shown."""

    def on_selection(self, cell_id: int | None) -> None:
        """The selected cell changed."""

    def on_view(self, rect: tuple[float, float, float, float], zoom: float = 1.0) -> None:
        """The visible part of the frame changed: (x, y, width, height) in frame pixels, at
        ``zoom`` screen pixels per frame pixel."""


class StainAdapter(OverlayAdapter):
    """A virtual stain (``dapi``, ``membrane``) from the prediction, at model resolution."""

    def __init__(self, layer: OverlayLayer, composite: CompositeVisual, parent: Any) -> None:
        super().__init__(layer, composite, parent)
        self.slot = self._slot()
        self.clim = (0.0, 1.0)
        self.apply_style()

    def _slot(self) -> str:
        return self.layer.name  # "dapi" / "membrane": the composite's slots of the same name

    def apply_style(self) -> None:
        lay = self.layer
        self.composite.set_stain_style(
            self.slot, StainStyle(lay.visible, lay.opacity, lay.color, self.clim)
        )

    def on_result(self, result: Any) -> None:
        pred = getattr(result, "prediction", None)
        if pred is None or self.layer.name not in pred.maps:
            return
        self.composite.set_stain(self.slot, pred.maps[self.layer.name], pred.scale)


class ChannelAdapter(StainAdapter):
    """A real fluorescence channel of the frame, at frame resolution, auto-windowed."""

    def _slot(self) -> str:
        return ("chan0", "chan1")[self.layer.key - 7]  # keys 7 and 8 (default_layers)

    def on_result(self, result: Any) -> None:
        """Channels come with every frame, not with results."""

    def on_frame(self, frame: Frame) -> None:
        name = self.layer.name.split(":", 1)[1]
        data = frame.channels.get(name)
        if data is None:
            return
        self._n = getattr(self, "_n", 0) + 1
        if self._n % 5 == 1:  # the window follows the channel every 5th frame
            lo, hi = (float(v) for v in np.percentile(subsample(data), (1.0, 99.9)))
            self.clim = (lo, max(hi, lo + 1.0))
            self.apply_style()
        self.composite.set_stain(self.slot, data, 1.0)


class ApoptosisAdapter(OverlayAdapter):
    """Tint where the apoptosis probability is high."""

    def __init__(self, layer: OverlayLayer, composite: CompositeVisual, parent: Any) -> None:
        super().__init__(layer, composite, parent)
        self.apply_style()

    def apply_style(self) -> None:
        lay = self.layer
        self.composite.set_apoptosis_style(lay.visible, lay.opacity, lay.color)

    def on_result(self, result: Any) -> None:
        pred = getattr(result, "prediction", None)
        if pred is not None and "apoptosis" in pred.maps:
            self.composite.set_apoptosis(pred.maps["apoptosis"], pred.scale)


class OutlineAdapter(OverlayAdapter):
    """Cell outlines from the analysis labels, coloured by each cell's phase."""

    def __init__(self, layer: OverlayLayer, composite: CompositeVisual, parent: Any) -> None:
        super().__init__(layer, composite, parent)
        composite.set_phase_colors(list(PHASE_COLORS.values()))
        self._cells: tuple[np.ndarray, np.ndarray, np.ndarray | None] | None = None
        self._selected: int | None = None
        self.apply_style()

    def apply_style(self) -> None:
        self.composite.set_outline_style(self.layer.visible, self.layer.opacity)

    def on_result(self, result: Any) -> None:
        analysis = getattr(result, "analysis", None)
        pred = getattr(result, "prediction", None)
        if analysis is None or getattr(analysis, "labels", None) is None:
            return
        scale = label_scale(analysis.labels, result.frame.shape, pred)
        self.composite.set_labels(analysis.labels, scale)
        cells = analysis.cells
        if len(cells) and "cell_id" in cells.columns:
            ids = np.asarray(cells["cell_id"], np.int64)
            phases = cells.columns.get("phase")
            idx = (
                np.array([_PHASE_INDEX.get(str(p), 0) for p in phases], np.uint8)
                if phases is not None
                else np.zeros(len(ids), np.uint8)
            )
            p_apop = cells.columns.get("p_apoptosis")
        else:
            ids, idx, p_apop = np.zeros(0, np.int64), np.zeros(0, np.uint8), None
        self._cells = (ids, idx, p_apop)
        self._push()

    def on_selection(self, cell_id: int | None) -> None:
        self._selected = cell_id
        self._push()

    def _push(self) -> None:
        if self._cells is not None:
            ids, idx, p_apop = self._cells
            self.composite.set_cells(ids, idx, p_apop, self._selected)


class IdsAdapter(OverlayAdapter):
    """Each cell's tracked id as text at its centroid, for the cells in view.

    At most ``max_labels`` (the largest cells first): past that the numbers would overlap
    unreadably anyway; zoom in to see them all. Digits come from an atlas
    (:mod:`liveaug.viewer.idlabels`), laid out with numpy at each analysis.
    """

    max_labels = 300

    def __init__(self, layer: OverlayLayer, composite: CompositeVisual, parent: Any) -> None:
        super().__init__(layer, composite, parent)
        self.node = IdLabels(parent=parent)
        self.node.order = 5
        self._cells: Any = None
        self._rect: tuple[float, float, float, float] | None = None
        self._zoom = 1.0
        self._shape: tuple[int, int] | None = None
        self._shown: tuple[int, ...] = ()
        self.apply_style()

    def on_frame(self, frame: Frame) -> None:
        self._shape = frame.shape

    def apply_style(self) -> None:
        self.node.visible = self.layer.visible
        self.node.color = (*self.layer.color, self.layer.opacity)
        if self.layer.visible:
            self._push()

    def on_result(self, result: Any) -> None:
        analysis = getattr(result, "analysis", None)
        self._cells = analysis.cells if analysis is not None else None
        self._shown = ()
        if self.layer.visible:
            self._push()

    def on_view(self, rect: tuple[float, float, float, float], zoom: float = 1.0) -> None:
        self._rect, self._zoom = rect, zoom
        if self.layer.visible:
            self._push()

    def _push(self) -> None:
        c = self._cells
        if c is None or not len(c):
            self.node.set_labels(np.zeros(0, np.int64), np.zeros((0, 2), np.float32))
            self._shown = ()
            return
        x, y = np.asarray(c["x"], np.float64), np.asarray(c["y"], np.float64)
        keep = np.ones(len(x), bool)
        if self._rect is not None:
            rx, ry, rw, rh = self._rect
            keep = (x >= rx) & (x <= rx + rw) & (y >= ry) & (y <= ry + rh)
        idx = np.flatnonzero(keep)
        area = np.asarray(c["area_px"])[idx] if "area_px" in c.columns else -idx
        if idx.size > self.max_labels:
            top = np.argsort(-area, kind="stable")[: self.max_labels]
            idx, area = idx[top], area[top]
        ids = np.asarray(c["cell_id"], np.int64)[idx]
        if self._shape is not None:  # whole labels inside the image, none over another
            placed = place_labels(
                ids, x[idx], y[idx], area, shape=self._shape, zoom=self._zoom, cell=self.node.cell
            )
            idx, ids = idx[placed], ids[placed]
        self._shown = tuple(ids.tolist())
        self.node.set_labels(ids, np.column_stack([x[idx] + 0.5, y[idx] + 0.5]))


class EventsAdapter(OverlayAdapter):
    """Rings where rules fired (entered M, apoptosis …); the last ``keep`` events."""

    keep = 32

    def __init__(self, layer: OverlayLayer, composite: CompositeVisual, parent: Any) -> None:
        super().__init__(layer, composite, parent)
        self.events: collections.deque[CellEvent] = collections.deque(maxlen=self.keep)
        self.node = scene.visuals.Markers(parent=parent)
        self.node.order = 6
        self.node.visible = False
        self.apply_style()

    def apply_style(self) -> None:
        self.node.visible = self.layer.visible and bool(self.events)
        self._push()

    def add_events(self, events: list[CellEvent]) -> None:
        """Remember newly fired events (drained from the pipeline on the GUI thread)."""
        if events:
            self.events.extend(events)
            self.apply_style()

    def _push(self) -> None:
        if not self.events:
            return
        pos = np.array([[e.x + 0.5, e.y + 0.5] for e in self.events], np.float32)
        n = len(pos)
        alpha = np.linspace(0.35, 1.0, n) * self.layer.opacity
        edge = np.column_stack([np.tile(self.layer.color, (n, 1)), alpha]).astype(np.float32)
        self.node.set_data(
            pos, size=28, face_color=(0, 0, 0, 0), edge_color=edge, edge_width=2.5, symbol="ring"
        )


ADAPTERS: dict[str, type[OverlayAdapter]] = {
    "stain": StainAdapter,
    "channel": ChannelAdapter,
    "apoptosis": ApoptosisAdapter,
    "outlines": OutlineAdapter,
    "ids": IdsAdapter,
    "events": EventsAdapter,
}
