"""The pipeline on a real GenTL producer (viky.cti): faults reach subscribers, stop releases."""

from __future__ import annotations

import time

import pytest
from soak_support import rss_growth_mb

from liveaug.pipeline import Pipeline, PipelineEvent
from liveaug.sources.camera import CameraSettings, CameraSource, Reconnect, bundled_simulator_cti

VIKY = bundled_simulator_cti()
pytestmark = [
    pytest.mark.camera,
    pytest.mark.skipif(VIKY is None, reason="the genicam wheel ships no viky.cti here"),
    pytest.mark.timeout(120),
]


def _camera(**kwargs) -> CameraSource:
    return CameraSource(
        "1",
        cti=[VIKY],
        use_env=False,
        settings=CameraSettings(pixel_format="Mono8", width=320, height=240, frame_rate_hz=50.0),
        **kwargs,
    )


def test_unplugged_camera_is_an_event_and_the_stream_resumes():
    events: list[PipelineEvent] = []
    cam = _camera(reconnect=Reconnect(attempts=3, first_delay_s=0.05))
    pipe = Pipeline(cam)
    pipe.event.connect(events.append)
    pipe.start()
    try:
        time.sleep(0.5)
        n = pipe.stats()["acquired"]
        assert n >= 10
        cam.acquirer.device.module.close()  # what a pulled cable looks like to the host
        deadline = time.monotonic() + 10
        while pipe.stats()["acquired"] < n + 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pipe.stats()["acquired"] >= n + 20
    finally:
        t0 = time.monotonic()
        assert pipe.stop(timeout_s=1.0)
        assert time.monotonic() - t0 < 1.5
    stages = [e.stage for e in events if e.kind == "fault"]
    assert "acquire:lost" in stages and "acquire:reconnected" in stages
    # the device was released: a second open in the same process works
    again = _camera()
    again.open()
    assert again.read(timeout_s=5).image.shape == (240, 320)
    again.close()


@pytest.mark.slow
def test_memory_flat_over_10000_viky_frames():
    cam = CameraSource(
        "1",
        cti=[VIKY],
        use_env=False,
        settings=CameraSettings(pixel_format="Mono8", width=256, height=256, frame_rate_hz=200.0),
    )
    pipe = Pipeline(cam)
    pipe.start()
    try:
        grown = rss_growth_mb(pipe)
    finally:
        assert pipe.stop()
    assert grown < 8.0, f"RSS grew {grown:.1f} MB over 9 000 frames"
