"""The real window (Qt + vispy, Xvfb + Mesa) on a replayed session: play, toggle, click, close."""

from __future__ import annotations

import threading
import time

import cv2  # opencv bundles its own Qt plugins: keep it loaded beside the real window
import numpy as np
import pandas as pd
import pytest
from viewer_support import TruthAnalyzer, TruthPredictor, write_session

from liveaug.frame import Frame, Prediction
from liveaug.pipeline import Pipeline
from liveaug.session import Session
from liveaug.sources.replay import ReplaySource
from liveaug.sources.simulated import SimulatedMicroscope, SimulationConfig

pytestmark = [pytest.mark.gl, pytest.mark.timeout(120)]


def _liveaug_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("liveaug-") and t.is_alive()]


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    return write_session(tmp_path_factory.mktemp("viewer") / "s.ome.zarr", frames=20, size=128)


@pytest.fixture
def settings(tmp_path):
    from PyQt6.QtCore import QSettings

    return QSettings(str(tmp_path / "viewer.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def no_leaks(qapp):
    """Fail a test that leaves a window open or a pipeline thread running."""
    yield
    qapp.processEvents()
    assert not [w for w in qapp.topLevelWidgets() if w.isVisible()], "a window was left open"
    assert not _liveaug_threads(), "pipeline threads were left running"


def _window(qtbot, pipeline, settings):
    from liveaug.viewer.app import qt_app
    from liveaug.viewer.window import ViewerWindow

    qt_app()
    win = ViewerWindow(pipeline, settings=settings, make_pipeline=None)
    win.resize(1000, 760)
    win.show()
    win.activateWindow()
    qtbot.waitExposed(win)
    return win


def _replay_pipeline(session, **kwargs):
    from liveaug.viewer.recording import SwitchableRecorder

    return Pipeline(
        ReplaySource(session, speed=1.0, loop=True),
        predictor=TruthPredictor(0.5),
        analyzer=TruthAnalyzer(),
        recorder=SwitchableRecorder(),
        **kwargs,
    )


@pytest.fixture
def window(qtbot, session, settings, no_leaks):
    win = _window(qtbot, _replay_pipeline(session), settings)
    yield win
    win.close()


def _drawn(win) -> int:
    return win.drawn_frames


def _settle_paused(qtbot, win):
    """Pause, let the last result arrive and be shown, so the picture stops changing."""
    win.toggle_live()
    assert win.pipeline.paused
    qtbot.wait(300)
    qtbot.waitUntil(lambda: win._result is win.pipeline.latest_result(), timeout=3000)
    qtbot.wait(50)


def test_replay_plays_and_every_overlay_toggles_by_its_number_key(qtbot, window):
    win = window
    for layer in win.layers:  # everything on, so every role is computed …
        if not layer.visible:
            qtbot.keyClick(win, str(layer.key))
    assert {"dapi", "membrane", "apoptosis"} <= win.pipeline.roles
    n = win.pipeline.counts["analysed"]
    qtbot.waitUntil(
        lambda: _drawn(win) >= 12 and win.pipeline.counts["analysed"] > n + 2, timeout=15000
    )
    _settle_paused(qtbot, win)
    assert "membrane" in win._result.prediction.maps
    for layer in win.layers:  # … then everything off, by keyboard
        if layer.visible:
            qtbot.keyClick(win, str(layer.key))
            assert not layer.visible
    base = win.canvas.render()
    result = win._result
    has_content = {
        "dapi": True,
        "membrane": True,
        "outlines": True,
        "ids": True,
        "apoptosis": bool(np.any(result.prediction.maps["apoptosis"] > 0.5)),
        "events": bool(win.canvas.adapters["events"].events),
    }
    for layer in win.layers:
        qtbot.keyClick(win, str(layer.key))
        assert layer.visible and win.overlay_boxes[layer.name].isChecked()
        on = win.canvas.render()
        if has_content.get(layer.name, False):
            assert not np.array_equal(on, base), f"{layer.name} on changed nothing"
        qtbot.keyClick(win, str(layer.key))
        assert not layer.visible
        assert np.array_equal(win.canvas.render(), base), f"{layer.name} off left a trace"
    # the checkbox does what the key does
    win.overlay_boxes["dapi"].setChecked(True)
    assert win.layers[0].visible
    assert "viewer" in win.pipeline._wanted and "dapi" in win.pipeline.roles


def test_clicking_a_cell_selects_its_row_and_the_row_selects_the_cell(qtbot, window):
    from PyQt6.QtCore import QPoint, Qt

    win = window
    qtbot.waitUntil(lambda: _drawn(win) >= 5 and win._result is not None, timeout=15000)
    _settle_paused(qtbot, win)
    win._update_panels()
    cells = win._result.analysis.cells
    i = int(np.argmax(cells["area_px"]))
    cid = int(cells["cell_id"][i])
    # the centroid may fall outside a curved cell: click a pixel the labels say is inside
    labels = win._result.analysis.labels
    rows, cols = np.nonzero(labels == cid)
    k = len(rows) // 2
    x, y = (cols[k] + 0.5) / 0.5, (rows[k] + 0.5) / 0.5
    tr = win.canvas.view.scene.node_transform(win.canvas.scene)
    cx, cy = tr.map([x, y])[:2]
    qtbot.mouseClick(win.canvas.native, Qt.MouseButton.LeftButton, pos=QPoint(int(cx), int(cy)))
    qtbot.waitUntil(lambda: win.selected == cid, timeout=3000)
    assert win.table.selected_cell() == cid
    assert win.canvas.selected == cid
    # and back: selecting another row selects that cell in the image
    other = win.table.model_.row_of(int(cells["cell_id"][(i + 1) % len(cells)]))
    win.table.selectRow(win.table.proxy.mapFromSource(win.table.model_.index(other, 0)).row())
    assert win.selected == int(cells["cell_id"][(i + 1) % len(cells)]) == win.canvas.selected
    # clicking the background clears the selection
    qtbot.mouseClick(win.canvas.native, Qt.MouseButton.LeftButton, pos=QPoint(3, 3))
    qtbot.waitUntil(lambda: win.selected is None, timeout=3000)


def test_snapshot_record_seek_and_hud(qtbot, window, tmp_path):
    win = window
    qtbot.waitUntil(lambda: _drawn(win) >= 5 and win._result is not None, timeout=15000)
    rec = win.start_recording(tmp_path / "rec.ome.zarr")
    qtbot.waitUntil(lambda: win.pipeline.recorder.frames >= 6, timeout=10000)
    win._update_hud()
    assert "REC" in win.hud.text()
    assert win.stop_recording() == rec
    assert Session.open(rec).n_frames >= 6
    png, csv = win.snapshot(tmp_path / "snaps")
    img = cv2.imread(str(png))
    assert img is not None and img.shape[:2] == win.canvas.size[::-1]
    table = pd.read_csv(csv)
    assert {"cell_id", "phase", "dapi_integrated"} <= set(table.columns) and len(table) > 3
    win.seek_to(15)
    qtbot.waitUntil(lambda: win._frame is not None and win._frame.index >= 15, timeout=5000)
    win._update_hud()
    hud = win.hud.text()
    for part in ("acquired", "analysed", "displayed", "latency", "overlay lag", "dropped", "truth"):
        assert part in hud, part


def test_close_stops_every_thread_and_releases_the_source_within_a_second(
    qtbot, session, settings, no_leaks
):
    pipe = _replay_pipeline(session)
    win = _window(qtbot, pipe, settings)
    qtbot.waitUntil(lambda: _drawn(win) >= 3, timeout=15000)
    assert _liveaug_threads()
    t0 = time.monotonic()
    win.close()
    assert time.monotonic() - t0 < 1.0
    assert not _liveaug_threads()
    assert pipe.source._session is None  # the session (a camera: the device) is released


def test_choices_are_remembered_between_runs(qtbot, session, settings, no_leaks):
    win = _window(qtbot, _replay_pipeline(session), settings)
    win.layers[1].visible = True  # membrane
    win.layers[0].opacity = 0.3
    win.gamma_spin.setValue(1.5)
    win.sync_box.setChecked(True)
    win.close()
    again = _window(qtbot, _replay_pipeline(session), settings)
    try:
        assert again.layers[1].visible and again.layers[0].opacity == pytest.approx(0.3)
        assert again.gamma_spin.value() == pytest.approx(1.5) and again.sync
    finally:
        again.close()


class _SlowPredictor(TruthPredictor):
    """Truth maps at a model's pace (~10 Hz)."""

    def predict(self, frame: Frame, roles) -> Prediction:
        time.sleep(0.1)
        return super().predict(frame, roles)


def test_display_never_waits_for_a_slow_analysis(qtbot, settings, no_leaks):
    src = SimulatedMicroscope(SimulationConfig(height=96, width=96, seed=4), fps=30.0)
    pipe = Pipeline(src, predictor=_SlowPredictor(0.5), analyzer=TruthAnalyzer())
    win = _window(qtbot, pipe, settings)
    try:
        qtbot.waitUntil(lambda: win._result is not None, timeout=10000)
        shown0, analysed0 = _drawn(win), pipe.counts["analysed"]
        qtbot.wait(2000)
        shown, analysed = _drawn(win) - shown0, pipe.counts["analysed"] - analysed0
        assert analysed <= 22
        assert shown >= 2 * analysed, (shown, analysed)
        assert win._lag[0] >= 1  # overlays are older than the image, and the HUD says so
        win._update_hud()
        assert "overlay lag" in win.hud.text()
    finally:
        win.close()


def _live_window_that_opens_sessions(qtbot, settings):
    """A window on a live simulator (truth maps) whose Open session… makes truth pipelines."""
    sim = SimulatedMicroscope(SimulationConfig(height=64, width=64, seed=1), fps=30.0)
    live = Pipeline(sim, predictor=TruthPredictor(0.5), analyzer=TruthAnalyzer())
    win = _window(qtbot, live, settings)
    win.make_pipeline = lambda source: Pipeline(
        source, predictor=TruthPredictor(0.5), analyzer=TruthAnalyzer()
    )
    return win, live


def test_open_session_swaps_the_source_and_stops_the_old_threads(
    qtbot, session, settings, no_leaks
):
    win, old = _live_window_that_opens_sessions(qtbot, settings)
    try:
        qtbot.waitUntil(lambda: win.drawn_frames >= 3, timeout=10000)
        assert not win.seek.isEnabled()
        win.open_session(session)
        assert win.pipeline is not old and not old._threads
        assert win.replay_source is not None and win.seek.isEnabled()
        assert win.seek.maximum() == 19
        qtbot.waitUntil(
            lambda: win._frame is not None and win._frame.shape == (128, 128), timeout=10000
        )
        qtbot.waitUntil(lambda: win._result is not None, timeout=10000)
    finally:
        win.close()


def test_a_window_that_fails_to_open_stops_the_pipeline_it_started(
    qtbot, session, settings, no_leaks, monkeypatch
):
    from liveaug.viewer import window as window_module
    from liveaug.viewer.app import qt_app

    def broken(*args, **kwargs):
        raise RuntimeError("no GL today")

    qt_app()
    monkeypatch.setattr(window_module, "LiveCanvas", broken)
    pipe = _replay_pipeline(session)
    with pytest.raises(RuntimeError, match="no GL today"):
        window_module.ViewerWindow(pipe, settings=settings, make_pipeline=None)
    assert not _liveaug_threads()
    assert pipe.source._session is None


def test_opening_a_bad_session_keeps_the_running_source(qtbot, session, settings, tmp_path):
    from liveaug.errors import LiveaugError
    from liveaug.session import SessionWriter

    empty = tmp_path / "empty.ome.zarr"
    sim = SimulatedMicroscope(SimulationConfig(height=64, width=64, seed=1))
    SessionWriter.for_source(empty, sim.open(), truth=True).close()  # no frame in it
    win, old = _live_window_that_opens_sessions(qtbot, settings)
    try:
        qtbot.waitUntil(lambda: win.drawn_frames >= 2, timeout=10000)
        with pytest.raises(LiveaugError, match=r"empty\.ome\.zarr"):
            win.open_session(empty)
        assert win.pipeline is old and old._threads
        drawn = win.drawn_frames
        qtbot.waitUntil(lambda: win.drawn_frames > drawn + 3, timeout=5000)  # still live
    finally:
        win.close()
    assert not _liveaug_threads()


def test_an_unexpected_error_in_a_handler_is_reported_in_the_window(qtbot, window, caplog):
    from liveaug.viewer.app import report_unhandled

    try:
        raise OSError("snapshot folder is read-only")
    except OSError as exc:
        report_unhandled(type(exc), exc, exc.__traceback__)
    assert "snapshot folder is read-only" in window.hud.text()
    assert "unexpected error in the viewer" in caplog.text


@pytest.fixture
def slow_session(tmp_path):
    """Three frames one second apart: at speed 0.25 the replay waits 4 s at each step, the wrap
    from the last frame to the first included."""
    from dataclasses import replace

    from liveaug.session import SessionWriter

    path = tmp_path / "slow.ome.zarr"
    sim = SimulatedMicroscope(SimulationConfig(height=96, width=96, seed=2))
    with SessionWriter.for_source(path, sim.open(), truth=True, frame_interval_s=1.0) as w:
        for i in range(3):
            w.append(replace(sim.read(), timestamp_ns=i * 1_000_000_000))
    return path


def test_position_is_the_shown_frame_and_space_at_the_end_plays_again(
    qtbot, slow_session, settings, no_leaks
):
    from PyQt6.QtCore import Qt

    settings.setValue("replay/speed", 0.25)
    pipe = Pipeline(
        ReplaySource(slow_session, speed=0.25, loop=True, start=2),
        predictor=TruthPredictor(0.5),
        analyzer=TruthAnalyzer(),
    )
    win = _window(qtbot, pipe, settings)
    replay = win.replay_source

    def shown() -> int | None:
        return None if win._frame is None else replay.position_of(win._frame)

    try:
        qtbot.waitUntil(lambda: shown() == 2, timeout=10000)
        qtbot.wait(300)  # the source now waits 4 s before the first frame again
        assert replay.position == 0 and shown() == 2
        win._update_hud()
        assert win.position_label.text().strip() == "3/3" and win.seek.value() == 2
        qtbot.keyClick(win, Qt.Key.Key_Space)  # at the end: from the start, at once
        qtbot.waitUntil(lambda: shown() == 0, timeout=2500)
        assert not win.pipeline.paused
        win._update_hud()
        assert win.position_label.text().strip() == "1/3" and win.seek.value() == 0
        win.seek_to(1)
        qtbot.waitUntil(lambda: shown() == 1, timeout=2500)
        win._update_hud()
        assert win.position_label.text().strip() == "2/3" and win.seek.value() == 1
    finally:
        win.close()
