"""The composite canvas under real GL (Xvfb + Mesa): pixels from ``canvas.render()``."""

from __future__ import annotations

import dataclasses

import cv2  # opencv bundles its own Qt plugins: keep it loaded beside real GL
import numpy as np
import pytest
from viewer_support import truth_result

from liveaug.frame import Analysis, CellTable, Frame, Prediction
from liveaug.pipeline import Result
from liveaug.sources.simulated import SimulatedMicroscope, SimulationConfig

pytestmark = pytest.mark.gl

SIZE = 128  # frame pixels; the canvas shows them 2x (256 x 256)


@pytest.fixture(scope="module")
def frames():
    sim = SimulatedMicroscope(SimulationConfig(height=SIZE, width=SIZE, seed=11))
    sim.open()
    return [sim.read() for _ in range(3)]


@pytest.fixture
def canvas(qapp):
    from liveaug.viewer.app import qt_app
    from liveaug.viewer.canvas import LiveCanvas
    from liveaug.viewer.layers import default_layers

    qt_app()
    c = LiveCanvas(default_layers(), size=(2 * SIZE, 2 * SIZE))
    c.scale_bar = False  # pixel-exact comparisons over the whole view
    for layer in c.layers.values():
        layer.visible = False
    yield c
    c.close()


def _show(canvas, frame: Frame, result=None, clim=None):
    canvas.set_frame(frame)
    canvas.view.camera.rect = (0, 0, frame.shape[1], frame.shape[0])
    lo, hi = clim or (float(np.percentile(frame.image, 1)), float(np.percentile(frame.image, 99)))
    canvas.set_contrast((lo, hi))
    if result is not None:
        canvas.set_result(result)


def _render(canvas) -> np.ndarray:
    return canvas.render()[..., :3].astype(np.int16)


def test_16_bit_data_reaches_the_shader_unscaled(canvas):
    ramp = np.tile(np.linspace(0, 4095, SIZE).astype(np.uint16), (SIZE, 1))
    frame = Frame(ramp, 0, 0, bit_depth=12)
    _show(canvas, frame, clim=(0, 4095))
    img = _render(canvas)
    expected = np.round(ramp[0].astype(np.float64) / 4095 * 255)
    got = img[SIZE, 1::2, 0]  # one canvas row, the centre pixel of each frame column
    assert np.abs(got - expected)[:-1].max() <= 1.5  # (the view's last column is its border)
    # a window inside the 12-bit range stretches it: 1000…1100 fills 0…255 (no 8-bit cast)
    canvas.set_contrast((1000, 1100))
    img = _render(canvas)
    cols = np.flatnonzero((ramp[0] > 1010) & (ramp[0] < 1090))
    assert cols.size and np.all(np.diff(img[SIZE, 2 * cols + 1, 0]) > 0)


def test_textures_are_updated_in_place(canvas, frames):
    _show(canvas, frames[0], truth_result(frames[0]))
    canvas.render()
    tex = canvas.composite.image.texture
    allocations = canvas.composite.image.allocations
    for f in frames[1:] * 3:
        canvas.set_frame(f)
        canvas.set_result(truth_result(f))
        canvas.render()
    assert canvas.composite.image.texture is tex
    assert canvas.composite.image.allocations == allocations
    assert canvas.composite.image.uploads >= allocations + 6
    assert canvas.composite.labels.allocations == 2  # the 1x1 placeholder, then the labels


def test_dapi_makes_nuclei_blue_and_off_restores_the_base_exactly(canvas, frames):
    frame = frames[0]
    _show(canvas, frame, truth_result(frame))
    base = _render(canvas)
    canvas.layers["dapi"].visible = True
    on = _render(canvas)
    nuclei = np.kron(frame.truth.nucleus_labels > 0, np.ones((2, 2), bool))
    nuclei = cv2.erode(nuclei.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    assert nuclei.sum() > 200
    r, g, b = (on[..., i][nuclei].mean() for i in range(3))
    assert b > r + 40 and b > g + 20, (r, g, b)
    assert np.abs(on - base)[~nuclei].mean() < np.abs(on - base)[nuclei].mean() / 3
    canvas.layers["dapi"].visible = False
    assert np.array_equal(_render(canvas), base)


def _edge_texels(labels: np.ndarray) -> np.ndarray:
    """Label texels on a cell's inner border (the shader's 4-neighbour test)."""
    p = np.pad(labels, 1, mode="edge")
    c = p[1:-1, 1:-1]
    differs = (p[1:-1, 2:] != c) | (p[1:-1, :-2] != c) | (p[2:, 1:-1] != c) | (p[:-2, 1:-1] != c)
    return differs & (c > 0)


def test_outlines_lie_on_the_truth_label_borders_in_phase_colours(canvas, frames):
    from liveaug.viewer.layers import PHASE_COLORS

    frame = frames[1]
    result = truth_result(frame, scale=0.5)
    _show(canvas, frame, result)
    base = _render(canvas)
    canvas.layers["outlines"].visible = True
    on = _render(canvas)
    labels = result.analysis.labels  # 64 x 64 label texels, 4 x 4 canvas pixels each
    edges = _edge_texels(labels)
    k = (2 * SIZE) // labels.shape[0]
    centres = on[k // 2 :: k, k // 2 :: k]  # the canvas pixel at each texel's centre
    changed = np.abs(on - base).max(axis=-1) > 8
    edge_px = np.kron(edges, np.ones((k, k), bool))
    assert edges.sum() > 100
    assert changed[edge_px].mean() > 0.95  # borders drawn …
    assert edge_px[changed].mean() > 0.97  # … and nothing else
    phase_of = dict(
        zip(result.analysis.cells["cell_id"], result.analysis.cells["phase"], strict=True)
    )
    want = np.array([PHASE_COLORS[phase_of[i]] for i in labels[edges]]) * 255
    bad = np.abs(centres[edges] - want).max(axis=-1) > 2
    assert not bad.any(), (labels[edges][bad], np.argwhere(edges)[bad], centres[edges][bad])
    canvas.layers["outlines"].visible = False
    assert np.array_equal(_render(canvas), base)


def test_selected_cell_is_filled_and_found_under_the_cursor(canvas, frames):
    frame = frames[1]
    result = truth_result(frame, scale=0.5)
    _show(canvas, frame, result)
    canvas.layers["outlines"].visible = True
    before = _render(canvas)
    cells = result.analysis.cells
    i = int(np.argmax(cells["area_px"]))
    cid, x, y = int(cells["cell_id"][i]), float(cells["x"][i]), float(cells["y"][i])
    assert canvas.cell_at(x, y) == cid
    canvas.select(cid)
    after = _render(canvas)
    inside = np.kron(result.analysis.labels == cid, np.ones((4, 4), bool))
    changed = np.abs(after - before).max(axis=-1) > 8
    assert changed[inside].mean() > 0.5 and not changed[~inside].any()


def test_apoptosis_tints_only_where_probability_is_high(canvas, frames):
    frame = frames[0]
    p = np.zeros((SIZE // 2, SIZE // 2), np.float32)
    p[8:24, 8:24] = 1.0
    pred = Prediction(frame.index, {"apoptosis": p}, 0.5, {"apoptosis": "test"}, "CPU")
    empty = Analysis(
        frame.index, np.zeros_like(p, np.uint32), np.zeros_like(p, np.uint32), CellTable({})
    )
    _show(canvas, frame, Result(frame, 0, pred, empty, {}, 0.0, 0))
    base = _render(canvas)
    canvas.layers["apoptosis"].visible = True
    on = _render(canvas)
    inside = np.zeros((2 * SIZE, 2 * SIZE), bool)
    inside[8 * 4 + 4 : 24 * 4 - 4, 8 * 4 + 4 : 24 * 4 - 4] = True
    far = np.ones_like(inside)
    far[8 * 4 - 8 : 24 * 4 + 8, 8 * 4 - 8 : 24 * 4 + 8] = False
    d = on - base
    assert d[inside][:, 0].mean() > 20 and d[inside][:, 2].mean() < 0
    assert np.array_equal(on[far], base[far])


def test_real_fluorescence_channel_is_blended_at_frame_resolution(qapp, frames):
    from liveaug.viewer.canvas import LiveCanvas
    from liveaug.viewer.layers import default_layers

    base_frame = frames[0]
    ch = np.full(base_frame.shape, 110, np.uint16)
    ch[40:60, 70:90] = 3000
    frame = Frame(base_frame.image, 0, 0, bit_depth=12, channels={"reporter": ch})
    c = LiveCanvas(default_layers(("reporter",)), size=(2 * SIZE, 2 * SIZE))
    c.scale_bar = False
    try:
        for layer in c.layers.values():
            layer.visible = False
        _show(c, frame)
        base = _render(c)
        c.layers["channel:reporter"].visible = True
        on = _render(c)
        d = on - base
        inside = (slice(84, 116), slice(144, 176), 1)
        assert np.all(on[inside] >= np.minimum(base[inside] + 100, 255))  # green in the square
        assert np.abs(d[:70]).max() <= 1 and np.abs(d[130:]).max() <= 1  # nothing elsewhere
    finally:
        c.close()


def test_scale_bar_is_drawn_when_the_pixel_size_is_known(canvas, frames):
    canvas.scale_bar = True
    _show(canvas, frames[0])
    img = _render(canvas)
    bar_row = img[2 * SIZE - 24]
    white = np.flatnonzero(bar_row.min(axis=-1) > 240)
    assert white.size > 20 and white.min() > SIZE  # a bar in the lower right corner
    assert canvas._bar_text.text.endswith("µm")
    unknown = Frame(frames[0].image, 0, 0, bit_depth=12, pixel_size_um=None)
    canvas.pixel_size_um = None
    _show(canvas, unknown)
    _render(canvas)
    assert not canvas._bar.visible


def test_scale_bar_label_sits_above_the_bar_not_through_it(canvas):
    canvas.scale_bar = True
    black = Frame(np.zeros((SIZE, SIZE), np.uint16), 0, 0, bit_depth=12, pixel_size_um=0.65)
    _show(canvas, black, clim=(0, 4095))
    lit = _render(canvas).max(axis=-1) > 100
    per_row = lit.sum(axis=1)
    bar = np.flatnonzero(per_row == per_row.max())  # the bar: its rows are the longest
    text = np.flatnonzero(per_row)
    text = text[~np.isin(text, bar)]
    assert len(bar) >= 2 and len(text) >= 6  # a bar and a label of several rows
    assert text.max() < bar.min() - 2, (text, bar)  # the whole label above, a gap between
    cols = np.flatnonzero(lit[text].any(axis=0))
    bar_cols = np.flatnonzero(lit[bar[0]])
    assert bar_cols.min() <= cols.min() and cols.max() <= bar_cols.max()  # centred over it


def test_frame_sized_labels_and_model_sized_maps_line_up(canvas, frames):
    """Labels the analysis upsampled to the frame and maps at model size: both in place."""
    frame = frames[1]
    half = truth_result(frame, scale=0.5)
    a = half.analysis
    full = Analysis(a.frame_index, frame.truth.cell_labels, frame.truth.nucleus_labels, a.cells)
    _show(canvas, frame, Result(frame, 0, half.prediction, full, {}, 0.0, 0))
    canvas.layers["outlines"].visible = True
    base_off = _render(canvas)
    cells = a.cells
    i = int(np.argmax(cells["area_px"]))
    rows, cols = np.nonzero(frame.truth.cell_labels == cells["cell_id"][i])
    assert canvas.cell_at(cols[0] + 0.5, rows[0] + 0.5) == int(cells["cell_id"][i])
    edges = _edge_texels(frame.truth.cell_labels)
    changed = np.abs(base_off - _render_without_outlines(canvas)).max(axis=-1) > 8
    edge_px = np.kron(edges, np.ones((2, 2), bool))
    assert changed[edge_px].mean() > 0.95 and edge_px[changed].mean() > 0.97


def _render_without_outlines(canvas) -> np.ndarray:
    canvas.layers["outlines"].visible = False
    try:
        return _render(canvas)
    finally:
        canvas.layers["outlines"].visible = True


def test_overlays_are_baked_once_per_analysis_not_per_frame(canvas, frames):
    canvas.layers["dapi"].visible = True
    canvas.layers["outlines"].visible = True
    _show(canvas, frames[0], truth_result(frames[0]))
    canvas.render()
    maps, outlines = canvas.composite.maps_bake, canvas.composite.outline_bake
    runs = (maps.runs, outlines.runs)
    assert min(runs) >= 1
    for f in frames[1:]:  # new frames, same analysis: no re-bake
        canvas.set_frame(f)
        canvas.render()
    assert (maps.runs, outlines.runs) == runs
    canvas.set_result(truth_result(frames[1]))  # a new analysis: one bake each
    canvas.render()
    canvas.render()
    assert (maps.runs, outlines.runs) == (runs[0] + 1, runs[1] + 1)
    canvas.select(int(truth_result(frames[1]).analysis.cells["cell_id"][0]))
    canvas.render()  # selection changes outlines only
    assert (maps.runs, outlines.runs) == (runs[0] + 1, runs[1] + 2)


def test_cell_ids_are_drawn_centred_on_their_cells_at_any_zoom(canvas, frames):
    frame = frames[1]
    result = truth_result(frame, scale=0.5)
    _show(canvas, frame, result)
    base = _render(canvas)
    layer = canvas.layers["ids"]
    layer.color = (1.0, 0.0, 1.0)
    layer.opacity = 1.0
    layer.visible = True
    on = _render(canvas)
    cells = result.analysis.cells
    changed = np.abs(on - base).max(axis=-1) > 60
    ys, xs = np.nonzero(changed)
    assert changed.sum() > 10 * len(cells)  # every label has a few digits' worth of pixels
    # each changed pixel is near some cell centre (canvas shows frame pixels 2x) …
    cx, cy = 2 * np.asarray(cells["x"]) + 1, 2 * np.asarray(cells["y"]) + 1
    near = np.hypot(xs[:, None] - cx[None], ys[:, None] - cy[None]).min(axis=1)
    assert np.percentile(near, 99) < 20
    # … and each centre has label pixels next to it, in the layer's colour
    for x, y in zip(cx, cy, strict=True):
        if 8 < x < 2 * SIZE - 8 and 8 < y < 2 * SIZE - 8:
            patch = on[int(y) - 6 : int(y) + 7, int(x) - 6 : int(x) + 7]
            magenta = (patch[..., 0] > 200) & (patch[..., 2] > 200) & (patch[..., 1] < 60)
            assert magenta.any(), (x, y)
    # zooming in keeps the glyphs' pixel size (height of the drawn digits)
    one = CellTable({"cell_id": np.array([7]), "x": np.array([64.0]), "y": np.array([64.0])})
    analysis = dataclasses.replace(result.analysis, cells=one)
    canvas.set_result(dataclasses.replace(result, analysis=analysis))

    def label_rows() -> np.ndarray:
        """Lit pixels per canvas row of the "7" (top row first)."""
        layer.visible = False
        off = _render(canvas)
        layer.visible = True
        lit = (np.abs(_render(canvas) - off).max(axis=-1) > 60).sum(axis=1)
        rows = np.flatnonzero(lit)
        return lit[rows.min() : rows.max() + 1]

    r1 = label_rows()
    assert r1[0] > r1[-1]  # upright: a 7's bar is at the top
    canvas.view.camera.rect = (32, 32, 64, 64)
    r2 = label_rows()
    assert 6 <= len(r1) <= 16 and abs(len(r1) - len(r2)) <= 1
    layer.visible = False


def test_label_quads_spell_each_id_centred():
    from liveaug.viewer.idlabels import label_quads

    anchors, offsets, tc = label_quads(
        np.array([7, 1234, 0]), np.array([[1, 2], [3, 4], [5, 6]]), (6, 10)
    )
    assert len(anchors) == 6 * (1 + 4 + 1)
    digits = np.floor(tc[::6, 0] * 10 + 1e-6).astype(int)  # first corner of each glyph quad
    assert digits.tolist() == [7, 1, 2, 3, 4, 0]
    assert anchors[6:30].tolist() == [[3, 4]] * 24
    # 1234: four glyphs side by side, centred on the anchor
    x = offsets[6:30, 0]
    assert x.min() == -12 and x.max() == 12
    assert offsets[:, 1].min() == -5 and offsets[:, 1].max() == 5
    assert offsets[0, 1] == 5 and tc[0, 1] == 0  # the atlas' top row at the glyph's top


def test_an_unreliable_frame_is_marked_over_the_image(canvas, frames):
    from liveaug.frame import Trust

    res = truth_result(frames[0])
    _show(canvas, frames[0], res)
    assert canvas.warning is None
    plain = _render(canvas)
    flagged = dataclasses.replace(res.prediction, trust=Trust(0.002, 0.01))
    canvas.set_result(dataclasses.replace(res, prediction=flagged))
    assert "unreliable" in (canvas.warning or "")
    img = _render(canvas)
    red = (img[..., 0] > 200) & (img[..., 1] < 120) & (img[..., 2] < 120)
    changed = np.abs(img - plain).sum(-1) > 60
    assert red[: img.shape[0] // 4].sum() > 50  # warning text, in red, near the top
    assert changed[img.shape[0] // 2 :].sum() == 0  # and nothing else moved
    canvas.set_result(res)  # a trusted frame again: the warning goes
    assert canvas.warning is None
    np.testing.assert_array_equal(_render(canvas), plain)


def test_id_labels_never_overlap_nor_leave_the_image():
    from liveaug.viewer.idlabels import place_labels

    rng = np.random.default_rng(3)
    n = 400
    x, y = rng.uniform(0, 200, n), rng.uniform(0, 100, n)
    ids = rng.integers(1, 2000, n)
    area = rng.uniform(10, 100, n)
    cell = (7, 13)  # one digit's box, screen pixels
    for zoom in (0.5, 1.0, 3.0):
        keep = place_labels(ids, x, y, area, shape=(100, 200), zoom=zoom, cell=cell)
        assert keep.size > 0
        digits = np.floor(np.log10(ids[keep])) + 1
        hw, hh = digits * cell[0] / 2 / zoom, cell[1] / 2 / zoom
        x0, x1, y0, y1 = x[keep] - hw, x[keep] + hw, y[keep] - hh, y[keep] + hh
        assert (x0 >= 0).all() and (x1 <= 200).all() and (y0 >= 0).all() and (y1 <= 100).all()
        apart = (
            (x1[:, None] <= x0[None])
            | (x1[None] <= x0[:, None])
            | (y1[:, None] <= y0[None])
            | (y1[None] <= y0[:, None])
        )
        np.fill_diagonal(apart, True)
        assert apart.all()
    # two neighbours: the larger cell keeps its label at this zoom, both once zoomed in
    x2, y2 = np.array([50.0, 53.0]), np.array([50.0, 50.0])
    two = place_labels(
        np.array([5, 6]), x2, y2, np.array([10.0, 90.0]), shape=(100, 100), zoom=1.0, cell=cell
    )
    assert two.tolist() == [1]
    both = place_labels(
        np.array([5, 6]), x2, y2, np.array([10.0, 90.0]), shape=(100, 100), zoom=4.0, cell=cell
    )
    assert sorted(both.tolist()) == [0, 1]


def test_cell_ids_stay_inside_the_image(canvas, frames):
    frame = frames[1]
    result = truth_result(frame, scale=0.5)
    cells = CellTable(
        {
            "cell_id": np.array([1234, 77, 5678]),
            "x": np.array([1.0, 64.0, 120.0]),  # at the left edge, inside, near the right edge
            "y": np.array([64.0, 64.0, 126.5]),
            "area_px": np.array([50.0, 40.0, 30.0]),
        }
    )
    result = dataclasses.replace(result, analysis=dataclasses.replace(result.analysis, cells=cells))
    _show(canvas, frame, result)
    canvas.view.camera.rect = (-32, -32, SIZE + 64, SIZE + 64)  # a border around the image
    base = _render(canvas)
    layer = canvas.layers["ids"]
    layer.color, layer.opacity, layer.visible = (1.0, 0.0, 1.0), 1.0, True
    on = _render(canvas)
    layer.visible = False
    changed = np.abs(on - base).max(axis=-1) > 60
    ys, xs = np.nonzero(changed)
    assert len(xs) > 10  # the inside one is drawn
    # the canvas shows a frame pixel as 256 / 192 canvas pixels, the image from pixel 32·4/3
    lo, hi = 32 * 256 / 192, (32 + SIZE) * 256 / 192
    assert xs.min() >= lo - 1 and xs.max() <= hi + 1 and ys.min() >= lo - 1 and ys.max() <= hi + 1


def test_event_markers_are_not_a_phase_colour():
    from liveaug.viewer.layers import PHASE_COLORS, default_layers

    layers = {layer.name: layer for layer in default_layers()}
    events = np.array(layers["events"].color)
    others = [*PHASE_COLORS.values(), layers["apoptosis"].color]
    assert min(np.linalg.norm(events - np.array(c)) for c in others) > 0.4
