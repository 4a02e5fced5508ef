"""The image canvas: brightfield and overlays, pan/zoom, scale bar, picking, draw timing."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from psygnal import SignalInstance
from vispy import scene
from vispy.visuals.transforms import STTransform

from liveaug.frame import CellEvent, Frame
from liveaug.reliability import trust_warning
from liveaug.viewer.adapters import ADAPTERS, EventsAdapter, OverlayAdapter, label_scale
from liveaug.viewer.layers import OverlayLayer
from liveaug.viewer.visuals import CompositeVisual

Composite = scene.visuals.create_visual_node(CompositeVisual)

#: Scale-bar lengths to choose from, µm.
NICE_UM = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)


class LiveCanvas(scene.SceneCanvas):
    """A vispy canvas showing one frame with every overlay composited on the GPU.

    ``set_frame`` / ``set_result`` only hand data to the visuals (marking textures dirty); the
    upload happens in the next draw. ``draw_ms`` holds recent draw durations.

    ``cell_clicked`` emits the cell id (int) under a click, or None on background;
    ``hovered`` emits ``(x, y, value)`` of the frame pixel under the cursor, or None outside.
    (Signal instances, not class descriptors: vispy's frozen canvas forbids descriptor caching.)
    """

    def __init__(
        self,
        layers: Sequence[OverlayLayer],
        *,
        size: tuple[int, int] = (900, 700),
        on_draw_ns: Callable[[int], None] | None = None,
        **kwargs: Any,
    ) -> None:
        # autoswap off: QOpenGLWidget composes the window itself; vispy's extra swapBuffers of
        # the whole top-level surface doubles the cost of every frame on a software rasteriser
        super().__init__(size=size, bgcolor="#101014", keys=None, autoswap=False, **kwargs)
        self.unfreeze()
        self.cell_clicked = SignalInstance((object,), name="cell_clicked")
        self.hovered = SignalInstance((object,), name="hovered")
        self.view = self.central_widget.add_view()
        self.view.camera = scene.PanZoomCamera(aspect=1, flip=(False, True))
        self.composite = Composite(parent=self.view.scene)
        self.layers = {lay.name: lay for lay in layers}
        self.adapters: dict[str, OverlayAdapter] = {
            lay.name: ADAPTERS[lay.kind](lay, self.composite, self.view.scene) for lay in layers
        }
        self.frame: Frame | None = None
        self.result: Any = None
        self.selected: int | None = None
        self.pixel_size_um: float | None = None
        self.scale_bar = True
        """Draw the scale bar (needs the frame's pixel size)."""
        self.draw_ms: list[float] = []
        self._on_draw_ns = on_draw_ns
        self._press_pos: tuple[float, float] | None = None
        self._shape: tuple[int, int] | None = None
        self._bar = scene.visuals.Line(
            pos=np.zeros((2, 2), np.float32), color="white", width=3, parent=self.scene
        )
        self._bar_text = scene.visuals.Text(
            "", color="white", font_size=9, anchor_x="center", anchor_y="top", parent=self.scene
        )
        self._warning = scene.visuals.Text(
            "",
            color=(1.0, 0.25, 0.2, 1.0),
            bold=True,
            font_size=12,
            anchor_x="left",
            anchor_y="top",
            parent=self.scene,
        )
        self._warning.transform = STTransform(translate=(14, 14))
        self._warning.visible = False
        self._bar.order = self._bar_text.order = self._warning.order = 10
        self._bar_text.transform = STTransform()
        self._bar_key: tuple[float, ...] = ()
        self._view_rect: tuple[float, ...] | None = None  # x, y, w, h, zoom
        self.events.mouse_press.connect(self._on_press)
        self.events.mouse_release.connect(self._on_release)
        self.events.mouse_move.connect(self._on_move)
        self.freeze()

    # -- data ----------------------------------------------------------------------------------
    def set_frame(self, frame: Frame) -> None:
        """Show ``frame`` (its texture is uploaded at the next draw)."""
        self.frame = frame
        self.composite.set_image(frame.image)
        if frame.pixel_size_um and frame.pixel_size_um != self.pixel_size_um:
            self.pixel_size_um = frame.pixel_size_um
            self._update_scale_bar()
        if frame.shape != self._shape:
            self._shape = frame.shape
            self.reset_view()
        for adapter in self.adapters.values():
            adapter.on_frame(frame)

    def set_contrast(self, clim: tuple[float, float], gamma: float = 1.0) -> None:
        """Base image window in raw frame units."""
        self.composite.set_contrast(clim, gamma)

    def set_result(self, result: Any) -> None:
        """Draw overlays for ``result`` (a ``pipeline.Result``)."""
        self.result = result
        for adapter in self.adapters.values():
            adapter.on_result(result)
        self.set_warning(trust_warning(result.prediction) if result is not None else None)

    def set_warning(self, text: str | None) -> None:
        """A warning written over the image (top left), or none."""
        on = bool(text)
        if on and self._warning.text != text:
            self._warning.text = text
        if self._warning.visible != on:
            self._warning.visible = on

    def add_events(self, events: list[CellEvent]) -> None:
        """New cell events to mark."""
        for adapter in self.adapters.values():
            if isinstance(adapter, EventsAdapter):
                adapter.add_events(events)

    def select(self, cell_id: int | None) -> None:
        """Highlight one cell (None: none)."""
        self.selected = cell_id
        for adapter in self.adapters.values():
            adapter.on_selection(cell_id)
        self.update()

    def reset_view(self) -> None:
        """Fit the whole frame."""
        if self._shape is not None:
            h, w = self._shape
            m = 0.01 * max(h, w)
            self.view.camera.rect = (-m, -m, w + 2 * m, h + 2 * m)

    # -- coordinates and picking ---------------------------------------------------------------
    def frame_coords(self, canvas_pos: Sequence[float]) -> tuple[float, float]:
        """Canvas pixel (x, y) → frame pixel coordinates (x, y), not rounded."""
        tr = self.scene.node_transform(self.view.scene)
        x, y = tr.map(np.asarray(canvas_pos[:2], np.float64))[:2]
        return float(x), float(y)

    def cell_at(self, x: float, y: float) -> int | None:
        """The cell id at frame pixel (x, y) in the shown analysis, or None."""
        analysis = getattr(self.result, "analysis", None)
        pred = getattr(self.result, "prediction", None)
        if analysis is None or getattr(analysis, "labels", None) is None:
            return None
        lab = analysis.labels
        scale = label_scale(lab, self.result.frame.shape, pred)
        r, c = math.floor(y * scale), math.floor(x * scale)
        if 0 <= r < lab.shape[0] and 0 <= c < lab.shape[1]:
            v = int(lab[r, c])
            return v or None
        return None

    def _on_press(self, event: Any) -> None:
        self._press_pos = tuple(event.pos[:2])

    def _on_release(self, event: Any) -> None:
        if self._press_pos is None or event.button != 1:
            return
        moved = np.hypot(*(np.asarray(event.pos[:2]) - self._press_pos))
        self._press_pos = None
        if moved <= 3:
            x, y = self.frame_coords(event.pos)
            self.cell_clicked.emit(self.cell_at(x, y))

    def _on_move(self, event: Any) -> None:
        if self.frame is None:
            return
        x, y = self.frame_coords(event.pos)
        h, w = self.frame.shape
        if 0 <= x < w and 0 <= y < h:
            xi, yi = int(x), int(y)
            self.hovered.emit((xi, yi, self.frame.image[yi, xi].item()))
        else:
            self.hovered.emit(None)

    @property
    def warning(self) -> str | None:
        """The warning shown over the image, if any."""
        return str(self._warning.text) if self._warning.visible else None

    # -- scale bar -----------------------------------------------------------------------------
    def _update_scale_bar(self, *_: object) -> None:
        if not (self.scale_bar and self.pixel_size_um) or self._shape is None:
            self._show_bar(False)
            return
        tr = self.view.scene.node_transform(self.scene)
        p0 = tr.map([0.0, 0.0])[:2]
        p1 = tr.map([1.0, 0.0])[:2]
        screen_px_per_frame_px = float(np.hypot(*(p1 - p0)))
        if screen_px_per_frame_px <= 0:
            return
        um_per_screen_px = self.pixel_size_um / screen_px_per_frame_px
        target = 120 * um_per_screen_px
        um = max([v for v in NICE_UM if v <= target] or [NICE_UM[0]])
        length = um / um_per_screen_px
        w, h = self.size
        x1, y = w - 24.0, h - 24.0
        key = (x1, y, length, um)
        if key != self._bar_key:  # only touch the nodes when the bar changes
            self._bar_key = key
            self._bar.set_data(pos=np.array([[x1 - length, y], [x1, y]], np.float32))
            self._bar_text.text = f"{um:g} µm"
            self._bar_text.transform.translate = (x1 - length / 2, y - 8)
        self._show_bar(True)

    def _show_bar(self, on: bool) -> None:
        # only on change: setting ``visible`` asks for another draw, even to the same value
        if self._bar.visible != on:
            self._bar.visible = self._bar_text.visible = on

    # -- drawing -------------------------------------------------------------------------------
    def _draw_scene(self, bgcolor: Any = None) -> None:
        # both on_draw and render() come here: the scale bar follows the camera as drawn
        self._update_scale_bar()
        rect = self.view.camera.rect
        view = (float(rect.left), float(rect.bottom), float(rect.width), float(rect.height))
        zoom = min(
            float(self.view.size[0]) / max(view[2], 1e-9),
            float(self.view.size[1]) / max(view[3], 1e-9),
        )
        if (*view, zoom) != self._view_rect:
            self._view_rect = (*view, zoom)
            for adapter in self.adapters.values():
                adapter.on_view(view, zoom)
        super()._draw_scene(bgcolor=bgcolor)

    def on_draw(self, event: Any) -> None:
        """Draw, and time it (upload of dirty textures included)."""
        t0 = time.perf_counter_ns()
        super().on_draw(event)
        if not hasattr(self, "draw_ms"):  # a draw during vispy's own __init__
            return
        dt = time.perf_counter_ns() - t0
        self.draw_ms.append(dt / 1e6)
        del self.draw_ms[:-120]
        if self._on_draw_ns is not None:
            self._on_draw_ns(dt)
