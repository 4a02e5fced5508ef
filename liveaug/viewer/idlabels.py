"""Cell-id labels drawn from a digit atlas: quads built with numpy, no per-string layout.

vispy's general ``Text`` visual lays out every string in Python when the text changes; with a
new analysis ten times a second and ~150 ids that took ~11 ms of the GUI thread per analysis
here, enough to push frames out of a 30 fps display. Ids are digits only, so one small atlas
(0-9, drawn once with Qt) and a vectorised quad builder do the same job in well under a
millisecond. Labels keep their pixel size whatever the zoom, centred on the cell; a label
that would leave the image or cover another is not drawn (:func:`place_labels`, largest cells
first), so zooming in shows more of them.
"""

from __future__ import annotations

import numpy as np
from vispy import scene
from vispy.gloo import Texture2D, VertexBuffer
from vispy.visuals import Visual

from liveaug.viewer.shaders import load_shader

#: Pixel height of the digit glyphs (framebuffer pixels).
GLYPH_PX = 11


def digit_atlas(pixel_size: int = GLYPH_PX) -> np.ndarray:
    """Coverage of the digits 0-9 side by side, uint8 (rows top to bottom), one cell each."""
    from PyQt6.QtCore import QRect, Qt
    from PyQt6.QtGui import QColor, QFont, QFontMetrics, QImage, QPainter

    font = QFont()
    font.setPixelSize(pixel_size)
    font.setBold(True)
    metrics = QFontMetrics(font)
    cw = max(metrics.horizontalAdvance(str(d)) for d in range(10)) + 1
    ch = metrics.height()
    image = QImage(10 * cw, ch, QImage.Format.Format_Grayscale8)
    image.fill(QColor(0, 0, 0))
    painter = QPainter(image)
    painter.setFont(font)
    painter.setPen(QColor(255, 255, 255))
    for d in range(10):
        painter.drawText(QRect(d * cw, 0, cw, ch), Qt.AlignmentFlag.AlignCenter, str(d))
    painter.end()
    bits = image.constBits()
    bits.setsize(image.sizeInBytes())
    rows = np.frombuffer(bits, np.uint8).reshape(ch, image.bytesPerLine())
    return rows[:, : 10 * cw].copy()


def label_quads(
    ids: np.ndarray, xy: np.ndarray, cell: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two triangles per digit of each id: (anchors, offsets, texcoords), float32 (6n, 2) each.

    ``cell`` is one digit's (width, height) in the atlas; offsets are in framebuffer pixels
    (y up), texture rows top to bottom.
    """
    ids = np.maximum(np.asarray(ids, np.int64), 0)
    n_digits = np.floor(np.log10(np.maximum(ids, 1))).astype(np.int64) + 1
    label = np.repeat(np.arange(ids.size), n_digits)
    start = np.cumsum(n_digits) - n_digits
    k = np.arange(label.size) - start[label]  # position of each digit in its label
    nd = n_digits[label]
    digit = (ids[label] // 10 ** (nd - 1 - k)) % 10
    # corners of two triangles: (dx, dy) in units of the cell, 0..1
    corners = np.array([[0, 0], [1, 0], [0, 1], [1, 0], [1, 1], [0, 1]], np.float32)
    cw, ch = cell
    cx = np.tile(corners[:, :1], (label.size, 1))
    cy = np.tile(corners[:, 1:], (label.size, 1))
    dx = np.repeat(k - nd / 2.0, 6)[:, None] + cx
    offsets = np.hstack([dx * cw, (0.5 - cy) * ch]).astype(np.float32)  # framebuffer: y up
    texcoords = np.hstack([(np.repeat(digit, 6)[:, None] + cx) / 10.0, cy]).astype(np.float32)
    anchors = np.repeat(np.asarray(xy, np.float32).reshape(-1, 2)[label], 6, axis=0)
    return anchors, offsets, texcoords


def place_labels(
    ids: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    priority: np.ndarray,
    *,
    shape: tuple[int, int],
    zoom: float,
    cell: tuple[int, int],
) -> np.ndarray:
    """Indices of the labels to draw: whole inside the image, none over another.

    Labels are centred at (x, y) (frame pixels) and ``cell`` = one digit's (width, height) in
    screen pixels, ``zoom`` screen pixels per frame pixel; higher ``priority`` (cell area)
    places first. Greedy on a grid of label-height cells, so each label is checked against
    its neighbours only.
    """
    ids = np.maximum(np.asarray(ids, np.int64), 1)
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    digits = np.floor(np.log10(ids)) + 1
    hw, hh = digits * cell[0] / 2 / zoom, cell[1] / 2 / zoom
    h, w = shape
    inside = (x - hw >= 0) & (x + hw <= w) & (y - hh >= 0) & (y + hh <= h)
    order = [i for i in np.argsort(-np.asarray(priority), kind="stable") if inside[i]]
    step = 2 * hh  # grid cell: one label height; a label spans few cells
    grid: dict[tuple[int, int], list[int]] = {}
    kept: list[int] = []
    for i in order:
        x0, x1, y0, y1 = x[i] - hw[i], x[i] + hw[i], y[i] - hh, y[i] + hh
        cells = [
            (gx, gy)
            for gx in range(int(x0 // step), int(x1 // step) + 1)
            for gy in range(int(y0 // step), int(y1 // step) + 1)
        ]
        if any(
            x0 < x[j] + hw[j] and x[j] - hw[j] < x1 and y0 < y[j] + hh and y[j] - hh < y1
            for c in cells
            for j in grid.get(c, ())
        ):
            continue
        kept.append(i)
        for c in cells:
            grid.setdefault(c, []).append(i)
    return np.array(sorted(kept), np.int64)


class IdLabelsVisual(Visual):
    """Integer labels at positions (frame pixels), constant on-screen size."""

    def __init__(self) -> None:
        super().__init__(
            vcode=load_shader("idlabels.vert.glsl"), fcode=load_shader("idlabels.frag.glsl")
        )
        self._atlas: Texture2D | None = None
        self._cell = (0, 0)
        self._buffers = {
            name: VertexBuffer(np.zeros((0, 2), np.float32))
            for name in ("a_anchor", "a_offset", "a_texcoord")
        }
        for name, buf in self._buffers.items():
            self.shared_program[name] = buf
        self._count = 0
        self._pending: tuple[np.ndarray, np.ndarray] | None = None
        self.color = (1.0, 1.0, 1.0, 1.0)
        self.set_gl_state("translucent", depth_test=False, cull_face=False)
        self._draw_mode = "triangles"

    @property
    def color(self) -> tuple[float, float, float, float]:
        """RGBA of the digits."""
        return self._color

    @color.setter
    def color(self, rgba: tuple[float, ...]) -> None:
        self._color = tuple(float(v) for v in (*rgba, 1.0)[:4])  # type: ignore[assignment]
        self.shared_program["u_color"] = self._color
        self.update()

    def set_labels(self, ids: np.ndarray, xy: np.ndarray) -> None:
        """Show ``ids[i]`` centred at ``xy[i]`` (frame pixels); vertices are built at draw."""
        self._pending = (np.asarray(ids), np.asarray(xy, np.float32).reshape(-1, 2))
        self.update()

    @property
    def cell(self) -> tuple[int, int]:
        """One digit's (width, height) on screen (an estimate until the first draw)."""
        return self._cell if self._cell[0] else (round(GLYPH_PX * 0.65), GLYPH_PX + 2)

    @property
    def count(self) -> int:
        """Digits drawn at the last draw."""
        return self._count

    def _prepare_transforms(self, view: object) -> None:
        vert = view.view_program.vert  # type: ignore[attr-defined]
        vert["visual_to_framebuffer"] = view.get_transform("visual", "framebuffer")  # type: ignore[attr-defined]
        vert["framebuffer_to_render"] = view.get_transform("framebuffer", "render")  # type: ignore[attr-defined]

    def _prepare_draw(self, view: object) -> bool:
        if self._atlas is None:  # needs the GL context and Qt: made at the first draw
            atlas = digit_atlas()
            self._cell = (atlas.shape[1] // 10, atlas.shape[0])
            self._atlas = Texture2D(atlas, interpolation="linear", internalformat="r8")
            self.shared_program["u_atlas"] = self._atlas
            self.shared_program["u_texel"] = (1.0 / atlas.shape[1], 1.0 / atlas.shape[0])
        if self._pending is not None:
            ids, xy = self._pending
            self._pending = None
            for name, data in zip(
                ("a_anchor", "a_offset", "a_texcoord"),
                label_quads(ids, xy, self._cell),
                strict=True,
            ):
                self._buffers[name].set_data(data)
            self._count = int(self._buffers["a_anchor"].size // 6)
        return self._count > 0

    def _compute_bounds(self, axis: int, view: object) -> None:
        return None


#: Scene-graph node of :class:`IdLabelsVisual` (``IdLabels(parent=view.scene)``).
IdLabels = scene.visuals.create_visual_node(IdLabelsVisual)
