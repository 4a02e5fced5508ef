"""The viewer's Qt-free parts: contrast, histories, the switchable recorder, layer models."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from viewer_support import write_session

from liveaug.frame import CellTable
from liveaug.session import Session
from liveaug.sources.replay import ReplaySource
from liveaug.viewer.contrast import Contrast, histogram, percentile_limits, saturated_fraction
from liveaug.viewer.history import History
from liveaug.viewer.layers import default_layers
from liveaug.viewer.recording import SwitchableRecorder


def test_one_hot_pixel_cannot_move_the_auto_contrast():
    rng = np.random.default_rng(0)
    img = rng.normal(1000, 50, (512, 512)).clip(0, 4095).astype(np.uint16)
    lo, hi = percentile_limits(img)
    img[100, 100] = 4095  # hot pixel
    img[::7, ::7][3, 3] = 4095  # and one on the sampling grid
    assert percentile_limits(img) == pytest.approx((lo, hi), rel=0.01)
    assert hi < 1300


def test_auto_contrast_follows_the_image_and_manual_limits_stay():
    c = Contrast(smoothing=0.5)
    dark = np.full((64, 64), 100, np.uint16) + np.arange(64, dtype=np.uint16)
    c.update(dark)
    for _ in range(20):
        lo, hi = c.update(dark + 2000)  # the lamp was turned up: limits are not frozen
    assert lo > 1900 and hi > 2000
    c.auto, c.lo, c.hi = False, 5.0, 10.0
    assert c.update(dark) == (5.0, 10.0)
    counts = histogram(dark, 4096, bins=64)
    assert counts.sum() == dark.size and counts[1] + counts[2] == dark.size  # 64-wide bins


def test_saturated_or_flat_images_stay_visible():
    """A camera at 255 over 99.75 % of the field made the window 255-256: all black."""
    img = np.full((240, 320), 255, np.uint8)
    img[:1, :192] = np.arange(192)  # 0.25 % below saturation
    lo, hi = percentile_limits(img)
    assert lo < 255 and (255 - lo) / (hi - lo) >= 0.99  # saturated pixels are white
    assert saturated_fraction(img, 8) == pytest.approx(1 - 192 / img.size, abs=0.01)
    assert saturated_fraction(img // 2, 8) == 0.0
    for value in (0, 700):  # flat: mid-window, visible as grey, not clipped to black
        lo, hi = percentile_limits(np.full((64, 64), value, np.uint16))
        assert lo < value < hi


def _table(frame: int, ids, phases, dapi) -> CellTable:
    n = len(ids)
    return CellTable(
        {
            "frame": np.full(n, frame),
            "cell_id": np.asarray(ids),
            "phase": np.asarray(phases, dtype=object),
            "dapi_integrated": np.asarray(dapi, float),
            "reporter_nc_ratio": np.linspace(1, 2, n),
        }
    )


def test_history_keeps_bounded_series_per_cell_and_counts_per_phase():
    h = History(frames=5)
    for f in range(8):
        h.add(f, _table(f, [1, 2], ["G1", "M" if f > 5 else "S"], [10.0 + f, 20.0]))
    frames, counts = h.phase_counts()
    assert list(frames) == [3, 4, 5, 6, 7] and counts.shape == (5, 5)
    assert list(counts[-1]) == [0, 1, 0, 0, 1]
    s = h.cells[1]
    assert list(s.frames) == [3, 4, 5, 6, 7] and list(s.dapi)[-1] == 17.0
    assert "reporter_nc_ratio" in s.channels
    h.add(7, _table(7, [1], ["G1"], [0.0]))  # same frame again: ignored
    assert len(h.counts) == 5
    h.add(2, _table(2, [1], ["G1"], [0.0]))  # replay sought back: history starts over
    assert len(h.counts) == 1


def test_switchable_recorder_writes_only_while_on(tmp_path):
    src = ReplaySource(write_session(tmp_path / "in.ome.zarr", frames=6, size=48), speed=None)
    info = src.open()
    rec = SwitchableRecorder(info)
    rec.append(src.read())  # not recording: dropped
    rec.start(tmp_path / "out.ome.zarr")
    for _ in range(3):
        rec.append(src.read())
    assert rec.recording and rec.frames == 3
    assert rec.stop() == tmp_path / "out.ome.zarr" and not rec.recording
    rec.append(src.read())
    rec.close()
    src.close()
    out = Session.open(tmp_path / "out.ome.zarr")
    assert out.n_frames == 3 and out.has_truth
    assert [out.frame(i).index for i in range(3)] == [1, 2, 3]


def test_stopping_writes_the_frames_still_queued_from_before_the_click(tmp_path):
    import threading
    import time

    src = ReplaySource(write_session(tmp_path / "in.ome.zarr", frames=8, size=48), speed=None)
    info = src.open()
    frames = [src.read() for _ in range(8)]
    src.close()
    rec = SwitchableRecorder(info)
    rec.start(tmp_path / "out.ome.zarr")

    def late_recorder_thread() -> None:  # a backlog: frames reach the recorder after the click
        for f in frames:
            time.sleep(0.02)
            rec.append(f)

    t = threading.Thread(target=late_recorder_thread)
    t.start()
    rec.stop(through=6)  # six frames had been acquired when stop was pressed
    t.join()
    assert Session.open(tmp_path / "out.ome.zarr").n_frames == 6 and rec.offered == 8


def test_layers_have_unique_keys_and_channels_follow():
    layers = default_layers(("reporter", "mCherry", "extra"))
    keys = [lay.key for lay in layers]
    assert keys == list(range(1, 9)) and len({lay.name for lay in layers}) == 8
    assert layers[6].name == "channel:reporter" and layers[7].color == (1.0, 0.3, 0.2)
    seen = []
    layers[0].events.visible.connect(seen.append)
    layers[0].visible = False
    assert seen == [False]


def test_viewer_models_load_no_gui():
    code = (
        "import liveaug.viewer.layers, liveaug.viewer.history, liveaug.viewer.contrast, "
        "liveaug.viewer.recording, liveaug.commands.demo, liveaug.commands.view\n"
        "import sys; print([m for m in ('PyQt6', 'vispy') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
