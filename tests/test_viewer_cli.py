"""``liveaug demo``, ``liveaug replay SESSION`` (window) and ``liveaug view`` on a GenTL camera."""

from __future__ import annotations

import threading
import time

import cv2  # noqa: F401  (opencv bundles its own Qt plugins: keep them loaded beside the window)
import pytest
from viewer_support import write_session

from liveaug.cli import main

pytestmark = [pytest.mark.gl, pytest.mark.timeout(180)]


@pytest.fixture(autouse=True)
def _own_settings(tmp_path):
    """Windows made by the commands remember settings under tmp, not in the user's config."""
    from PyQt6.QtCore import QSettings

    fmt, scope = QSettings.Format.NativeFormat, QSettings.Scope.UserScope
    QSettings.setPath(fmt, scope, str(tmp_path / "config"))
    yield
    QSettings.setPath(fmt, scope, str(tmp_path / "config-after"))


def _liveaug_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("liveaug-") and t.is_alive()]


def test_demo_runs_the_simulator_through_the_pipeline_into_the_window(qapp, capsys):
    assert main(["demo", "--size", "96", "96", "--maps", "truth", "--frames", "15"]) == 0
    assert not _liveaug_threads()
    assert not [w for w in qapp.topLevelWidgets() if w.isVisible()]


def test_demo_with_views_runs_the_models_on_mirrored_copies(qapp, monkeypatch):
    from liveaug.viewer import app

    made = []
    live_pipeline = app.live_pipeline

    def spy(*a, **kw):
        made.append(live_pipeline(*a, **kw))
        return made[-1]

    monkeypatch.setattr(app, "live_pipeline", spy)
    assert (
        main(["demo", "--size", "96", "96", "--maps", "model", "--views", "2", "--frames", "3"])
        == 0
    )
    assert made and made[0].predictor.views == 2
    assert not _liveaug_threads()


def test_replay_window_plays_a_session(qapp, tmp_path, capsys):
    session = write_session(tmp_path / "s.ome.zarr", frames=8, size=96)
    assert main(["replay", str(session), "--maps", "truth", "--frames", "10"]) == 0
    assert not _liveaug_threads()
    # tables come from headless runs: asking the window for one is an error, not ignored
    assert main(["replay", str(session), "--readouts", str(tmp_path / "o.csv")]) == 2
    assert "--headless" in capsys.readouterr().err


def test_replay_of_a_missing_session_is_one_line(tmp_path, capsys):
    assert main(["replay", str(tmp_path / "nope.ome.zarr"), "--maps", "truth"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope.ome.zarr" in err[0]


@pytest.mark.camera
def test_closing_the_window_releases_the_camera_within_a_second(qtbot, tmp_path):
    from PyQt6.QtCore import QSettings

    from liveaug.pipeline import Pipeline
    from liveaug.sources.camera import CameraSettings, CameraSource, bundled_simulator_cti
    from liveaug.viewer.app import qt_app
    from liveaug.viewer.window import ViewerWindow

    viky = bundled_simulator_cti()
    if viky is None:
        pytest.skip("the genicam wheel ships no viky.cti here")

    def camera() -> CameraSource:
        settings = CameraSettings(pixel_format="Mono8", width=320, height=240, frame_rate_hz=30.0)
        return CameraSource("1", cti=[viky], use_env=False, settings=settings)

    qt_app()
    settings = QSettings(str(tmp_path / "v.ini"), QSettings.Format.IniFormat)
    win = ViewerWindow(Pipeline(camera()), settings=settings)
    win.show()
    qtbot.waitUntil(lambda: win.drawn_frames >= 5, timeout=20000)
    t0 = time.monotonic()
    win.close()
    assert time.monotonic() - t0 < 1.0
    assert not _liveaug_threads()
    again = camera()  # released: the same device opens again at once
    again.open()
    try:
        assert again.read(timeout_s=5).image.shape == (240, 320)
    finally:
        again.close()


@pytest.mark.camera
def test_a_saturated_camera_image_is_visible_and_the_hud_says_so(qtbot, tmp_path):
    """viky's test image is 99.75 % at 255: auto contrast once chose 255-256 (all black)."""
    from PyQt6.QtCore import QSettings

    from liveaug.pipeline import Pipeline
    from liveaug.sources.camera import CameraSettings, CameraSource, bundled_simulator_cti
    from liveaug.viewer.app import qt_app
    from liveaug.viewer.window import ViewerWindow

    viky = bundled_simulator_cti()
    if viky is None:
        pytest.skip("the genicam wheel ships no viky.cti here")
    settings = CameraSettings(pixel_format="Mono8", frame_rate_hz=30.0)  # the whole sensor
    qt_app()
    win = ViewerWindow(
        Pipeline(CameraSource("1", cti=[viky], use_env=False, settings=settings)),
        settings=QSettings(str(tmp_path / "v.ini"), QSettings.Format.IniFormat),
    )
    win.show()
    try:
        qtbot.waitUntil(lambda: win.drawn_frames >= 5, timeout=20000)
        qtbot.wait(300)
        img = win._frame.image
        assert (img == 255).mean() > 0.9  # the camera does saturate
        lo, hi = win.contrast.lo, win.contrast.hi
        assert lo < 255 and (255 - lo) / (hi - lo) >= 0.99  # drawn white, not black
        win._update_hud()
        assert "saturated" in win.hud.text()
    finally:
        win.close()


def test_without_a_screen_the_viewer_says_so_in_one_line(monkeypatch, capsys):
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(var, raising=False)
    assert main(["demo", "--maps", "truth", "--size", "64", "64"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "xvfb-run" in err[0]


@pytest.mark.camera
def test_view_command_shows_a_genicam_camera(qapp):
    from liveaug.model_zoo import find_models
    from liveaug.sources.camera import bundled_simulator_cti

    viky = bundled_simulator_cti()
    if viky is None or not find_models():
        pytest.skip("needs viky.cti and a shipped model")
    argv = ["view", "--cti", str(viky), "--no-env", "--device", "1", "--pixel-format", "Mono8"]
    assert main([*argv, "--frames", "5"]) == 0
    assert not _liveaug_threads()
