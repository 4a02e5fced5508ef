"""The GenICam camera source against a real GenTL producer: viky.cti from the genicam wheel.

Nothing is mocked: harvesters loads viky.cti, which simulates three cameras (serials 0, 1, 2;
Mono8 and RGBa8; width/height 100…800; AcquisitionFrameRate 1…200 Hz; no device timestamps, no
exposure, gain, offset or binning nodes). A lost camera is simulated the way a pulled cable looks to
the host: the device handle is closed underneath the source, so every GenTL call fails.
"""

from __future__ import annotations

import json
import resource
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from liveaug.cli import main
from liveaug.commands.record import record_session
from liveaug.errors import EndOfStream, LiveaugError, SourceError
from liveaug.session import Session
from liveaug.sources.camera import (
    CameraSettings,
    CameraSource,
    FaultEvent,
    Reconnect,
    bundled_simulator_cti,
    describe_device,
    find_producers,
    list_devices,
)
from liveaug.sources.replay import ReplaySource

VIKY = bundled_simulator_cti()
pytestmark = [
    pytest.mark.camera,
    pytest.mark.skipif(VIKY is None, reason="the genicam wheel ships no viky.cti here"),
    pytest.mark.timeout(120),
]


def camera(device: str | int = "1", **kwargs: object) -> CameraSource:
    kwargs.setdefault("settings", CameraSettings(pixel_format="Mono8", width=320, height=240))
    return CameraSource(device, cti=[VIKY], use_env=False, **kwargs)  # type: ignore[arg-type]


def unplug(source: CameraSource) -> None:
    """Close the device handle underneath the source: what a pulled cable looks like."""
    source.acquirer.device.module.close()


def test_bundled_simulator_is_found() -> None:
    assert VIKY is not None and VIKY.name == "viky.cti" and VIKY.is_file()


def test_lists_every_device_with_its_producer() -> None:
    devices = list_devices([VIKY], use_env=False)
    assert [d.serial for d in devices] == ["0", "1", "2"]
    for i, d in enumerate(devices):
        assert d.index == i
        assert d.vendor == "Machine Vision Games Ltd." and d.model == "Viky"
        assert d.id.startswith("VikyTL_DEV_")
        assert d.access == "available"
        assert Path(d.producer) == VIKY.resolve()


def test_producers_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENICAM_GENTL64_PATH", f"/nonexistent:{VIKY.parent}")
    assert find_producers() == [VIKY.resolve()]
    monkeypatch.delenv("GENICAM_GENTL64_PATH")
    with pytest.raises(SourceError, match="GENICAM_GENTL64_PATH") as err:
        find_producers()
    assert "--cti" in str(err.value) and "\n" not in str(err.value)


def test_a_producer_whose_init_fails_is_named_and_the_others_still_serve(tmp_path: Path) -> None:
    import shutil
    import subprocess

    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build a producer that refuses to start")
    src = tmp_path / "bad.c"
    src.write_text(
        "#include <stdint.h>\nint32_t GCInitLib(void) { return -1001; }\n"
        "int32_t GCCloseLib(void) { return 0; }\n"
    )
    bad = tmp_path / "bad.cti"
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(bad), str(src)], check=True)
    with pytest.raises(SourceError, match=r"GenTL producer .*bad\.cti could not be loaded"):
        list_devices([bad], use_env=False)
    assert [d.serial for d in list_devices([bad, VIKY], use_env=False)] == ["0", "1", "2"]


@pytest.mark.parametrize("selector", ["1", "serial:1", "id:VikyTL_DEV_green", 1, "index:1"])
def test_open_by_serial_id_or_index(selector: str | int) -> None:
    with camera(selector) as cam:
        frame = cam.read(timeout_s=5)
        assert cam.entry is not None and cam.entry.serial == "1"
        assert frame.image.shape == (240, 320) and frame.image.dtype == np.uint8
    # Closing released the device: the same process opens it again.
    with camera(selector) as cam:
        assert cam.read(timeout_s=5).image.shape == (240, 320)


@pytest.mark.parametrize("fmt", ["Mono8", "RGBa8"])
def test_both_pixel_formats_give_an_intensity_frame(fmt: str) -> None:
    settings = CameraSettings(pixel_format=fmt, width=200, height=150)
    with camera("0", settings=settings) as cam:
        info = cam.info
        frames = [cam.read(timeout_s=5) for _ in range(3)]
    assert info is not None and info.shape == (150, 200) and info.dtype == "uint8"
    assert info.bit_depth == 8
    assert info.settings["camera"]["pixel_format"] == fmt
    for f in frames:
        assert f.image.shape == (150, 200) and f.image.dtype == np.uint8
        assert f.pixel_format == fmt and f.bit_depth == 8
        assert f.image.flags.writeable and f.image.flags.owndata
        # viky has no device clock: host monotonic time, said so, and in the metadata too.
        assert f.clock == "host" and f.meta["host_timestamp_ns"] == f.timestamp_ns
    assert [f.index for f in frames] == [0, 1, 2]
    assert frames[-1].image.std() > 0  # a picture, not a blank buffer


def test_frame_rate_pacing_within_ten_percent() -> None:
    rate = 50.0
    with camera(settings=CameraSettings(pixel_format="Mono8", frame_rate_hz=rate)) as cam:
        frames = [cam.read(timeout_s=5) for _ in range(61)]
        stats = cam.stats()
    stamps = np.array([f.timestamp_ns for f in frames], dtype=np.int64)
    measured = (len(stamps) - 1) / ((stamps[-1] - stamps[0]) / 1e9)
    assert abs(measured - rate) / rate < 0.10, measured
    assert stats.gaps == 0 and stats.host_dropped == 0 and stats.buffers_held == 0
    assert frames[0].meta["frame_rate_hz"] == rate


def test_roi_changes_between_sessions() -> None:
    for width, height in [(640, 480), (128, 100), (800, 800)]:
        with camera(settings=CameraSettings(pixel_format="Mono8", width=width, height=height)) as c:
            frame = c.read(timeout_s=5)
            assert frame.image.shape == (height, width)
            assert c.info is not None and c.info.shape == (height, width)
    # --roi X Y W H with a zero offset works on a camera that has no offset nodes.
    roi = CameraSettings(offset_x=0, offset_y=0, width=300, height=200)
    with camera(settings=roi) as cam:
        assert cam.read(timeout_s=5).image.shape == (200, 300)


def test_error_paths_are_one_line_source_errors(tmp_path: Path) -> None:
    cases: list[tuple[dict[str, object], str]] = [
        ({"cti": []}, "no GenTL producer found"),
        ({"cti": [tmp_path / "missing.cti"]}, "missing.cti does not exist"),
        ({"device": "serial:42"}, "no camera matches 'serial:42'"),
        ({"device": "model:Viky"}, "3 cameras match model 'Viky'"),
        ({"settings": CameraSettings(frame_rate_hz=500)}, r"AcquisitionFrameRate takes 1…200"),
        ({"settings": CameraSettings(width=4000)}, r"Width takes 100…800"),
        ({"settings": CameraSettings(exposure_us=1000)}, "offers no exposure control"),
        ({"settings": CameraSettings(gain_db=3)}, r"GenICam node Gain\)"),
        ({"settings": CameraSettings(binning_x=2)}, "BinningHorizontal"),
        ({"settings": CameraSettings(pixel_format="Mono12p")}, "does not offer pixel format"),
        ({"settings": CameraSettings(pixel_format="YUV422_8")}, "YUV422_8 is not supported"),
    ]
    bad = tmp_path / "not_a_producer.cti"
    bad.write_text("hello")
    cases.append(({"cti": [bad]}, "is not a loadable GenTL producer"))
    for kwargs, message in cases:
        device = kwargs.pop("device", "1")
        kwargs.setdefault("cti", [VIKY])
        source = CameraSource(device, use_env=False, **kwargs)  # type: ignore[arg-type]
        with pytest.raises(SourceError, match=message) as err:
            source.open()
        assert "\n" not in str(err.value) and " — " in str(err.value)
        source.close()
    # Every failed open released the device: it opens fine now.
    with camera() as cam:
        cam.read(timeout_s=5)


def test_missing_nodes_are_skipped_and_reported_when_lenient() -> None:
    wanted = CameraSettings(exposure_us=500, gain_db=2, frame_rate_hz=100, pixel_format="Mono8")
    with camera(settings=wanted, strict=False) as cam:
        cam.read(timeout_s=5)
        assert cam.report.unsupported == ["exposure_us", "gain_db"]
        recorded = cam.info.settings["camera"]  # type: ignore[union-attr]
        offered = cam.offered()
    assert recorded["unsupported"] == ["exposure_us", "gain_db"]
    assert recorded["frame_rate_hz"] == 100 and "exposure_us" not in recorded
    assert offered["exposure_us"] is None and offered["gain_db"] is None
    assert offered["frame_rate_hz"] == {
        "node": "AcquisitionFrameRate",
        "writable": True,
        "value": 100.0,
        "min": 1.0,
        "max": 200.0,
        "inc": 1.0,
    }
    assert offered["pixel_format"]["choices"] == ["RGBa8", "Mono8"]  # type: ignore[index]
    # Float nodes snap to their increment (viky's frame rate moves in 1 Hz steps).
    with camera(settings=CameraSettings(frame_rate_hz=42.4)) as cam:
        assert cam.report.adjusted == {"frame_rate_hz": (42.4, 42.0)}


def test_settings_round_trip_through_files(tmp_path: Path) -> None:
    settings = CameraSettings(pixel_format="Mono8", width=256, height=128, frame_rate_hz=25.0)
    for name in ("cam.yaml", "cam.json"):
        path = settings.save(tmp_path / name)
        assert CameraSettings.load(path) == settings
    assert json.loads((tmp_path / "cam.json").read_text())["width"] == 256
    (tmp_path / "typo.yaml").write_text("exposure: 100\n")
    with pytest.raises(SourceError, match="unknown camera setting 'exposure'"):
        CameraSettings.load(tmp_path / "typo.yaml")
    (tmp_path / "wrong.yaml").write_text("width: wide\n")
    with pytest.raises(SourceError, match="width = 'wide' is not a valid int"):
        CameraSettings.load(tmp_path / "wrong.yaml")
    with camera(settings=CameraSettings.load(tmp_path / "cam.yaml")) as cam:
        assert cam.read(timeout_s=5).image.shape == (128, 256)
        # What the camera runs with is itself a loadable settings file (extra fields ignored).
        again = CameraSettings.from_dict(cam.info.settings["camera"])  # type: ignore[union-attr]
    assert again == settings


def test_describe_device_without_streaming() -> None:
    entry, offered = describe_device("2", [VIKY], use_env=False)
    assert entry.serial == "2" and offered["width"]["max"] == 800  # type: ignore[index]
    assert offered["offset_x"] is None


def test_latest_mode_skips_to_the_newest_and_counts_it() -> None:
    settings = CameraSettings(pixel_format="Mono8", width=160, height=120, frame_rate_hz=100)
    with camera(settings=settings, latest=True) as cam:
        first = cam.read(timeout_s=5)
        time.sleep(0.2)  # ~20 frames arrive meanwhile
        newest = cam.read(timeout_s=5)
        stats = cam.stats()
    assert newest.index - first.index >= 10
    # Every frame between the two is accounted for: skipped for a newer one, or (on a stalled
    # shared machine) a frame-id gap the host never got.
    assert stats.skipped + stats.gaps == newest.index - first.index - 1 == stats.host_dropped
    assert stats.skipped >= 5
    assert stats.buffers_held == 0


def test_lost_camera_reconnects_and_frames_keep_counting() -> None:
    events: list[FaultEvent] = []
    cam = camera(reconnect=Reconnect(attempts=3, first_delay_s=0.05))
    cam.fault.connect(events.append)
    with cam:
        before = [cam.read(timeout_s=5) for _ in range(5)]
        unplug(cam)
        after = [cam.read(timeout_s=10) for _ in range(5)]
        stats = cam.stats()
    kinds = [e.kind for e in events]
    assert kinds == ["lost", "reconnecting", "reconnected"], kinds
    assert events[0].frames == 5 and "stopped answering" in events[0].message
    indices = [f.index for f in before + after]
    assert indices == list(range(10))  # the index runs on across the reconnection
    assert after[0].meta["connection"] == 1 and after[0].meta["frame_id"] == 1
    assert stats.reconnects == 1 and stats.delivered == 10 and stats.buffers_held == 0


def test_stalled_stream_is_a_timeout_fault_then_recovers() -> None:
    events: list[str] = []
    cam = camera(fetch_timeout_s=0.3, reconnect=Reconnect(attempts=2, first_delay_s=0.05))
    cam.fault.connect(lambda e: events.append(e.kind))
    with cam:
        cam.read(timeout_s=5)
        cam.node_map.AcquisitionStop.execute()  # the camera stops sending, device still answers
        frame = cam.read(timeout_s=10)
        assert cam.stats().timeouts == 1
    assert events == ["timeout", "reconnecting", "reconnected"]
    assert frame.index >= 1


def test_short_reads_still_detect_a_stalled_stream() -> None:
    """The pipeline reads with a 0.25 s timeout: no single call sees fetch_timeout_s pass, yet
    the stall is still a fault once that long has gone by without a frame."""
    events: list[str] = []
    cam = camera(fetch_timeout_s=0.5, reconnect=Reconnect(attempts=2, first_delay_s=0.05))
    cam.fault.connect(lambda e: events.append(e.kind))
    timeouts = 0
    with cam:
        cam.read(timeout_s=5)
        cam.node_map.AcquisitionStop.execute()
        while True:
            try:
                frame = cam.read(timeout_s=0.1)
                break
            except TimeoutError:
                timeouts += 1
                assert timeouts < 50
    assert 3 <= timeouts <= 6 and events == ["timeout", "reconnecting", "reconnected"]
    assert frame.index >= 1


def test_read_with_short_timeout_is_not_a_fault() -> None:
    from liveaug.sources.camera import CameraTimeout

    events: list[str] = []
    settings = CameraSettings(pixel_format="Mono8", frame_rate_hz=1)
    with camera(settings=settings) as cam:
        cam.fault.connect(lambda e: events.append(e.kind))
        cam.read(timeout_s=5)
        with pytest.raises(CameraTimeout, match=r"within 0\.05 s"):
            cam.read(timeout_s=0.05)
    assert events == []


def test_close_from_another_thread_ends_a_blocked_read() -> None:
    settings = CameraSettings(pixel_format="Mono8", frame_rate_hz=1)
    cam = camera(settings=settings)
    cam.open()
    cam.read(timeout_s=5)
    outcome: list[object] = []

    def reader() -> None:
        try:
            outcome.append(cam.read())
        except EndOfStream as exc:
            outcome.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    time.sleep(0.1)
    t0 = time.monotonic()
    cam.close()
    thread.join(timeout=5)
    assert not thread.is_alive() and isinstance(outcome[0], EndOfStream)
    assert time.monotonic() - t0 < 1.0
    with camera() as again:  # released
        again.read(timeout_s=5)


def test_record_then_replay_bit_exact(tmp_path: Path) -> None:
    path = tmp_path / "run.ome.zarr"
    seen = []
    settings = CameraSettings(pixel_format="Mono8", width=256, height=192, frame_rate_hz=200)
    result = record_session(camera(settings=settings), path, frames=200, on_frame=seen.append)
    assert result.frames == 200 and result.stopped == "done"
    assert result.stats.buffers_held == 0
    session = Session.open(path)
    assert session.n_frames == 200 and session.closed_cleanly
    assert session.metadata["camera"]["serial"] == "1"
    assert session.metadata["camera"]["width"] == 256
    assert session.bit_depth == 8 and session.shape == (192, 256)
    replay = ReplaySource(path, speed=None)
    replay.open()
    try:
        for original in seen:
            copy = replay.read()
            assert np.array_equal(copy.image, original.image)
            assert copy.image.dtype == original.image.dtype
            assert copy.index == original.index
            assert copy.timestamp_ns == original.timestamp_ns and copy.clock == original.clock
            assert copy.pixel_format == "Mono8" and copy.meta == original.meta
    finally:
        replay.close()
    # A stalled shared machine can make viky number frames the host never gets (frame-id gaps);
    # they are counted, and the indices keep the device's numbering rather than hiding them.
    indices = [f.index for f in seen]
    assert indices[0] == 0 and indices == sorted(set(indices))
    assert indices[-1] == 199 + result.stats.gaps


def test_recording_keeps_its_frames_through_a_reconnect(tmp_path: Path) -> None:
    path = tmp_path / "fault.ome.zarr"
    cam = camera(reconnect=Reconnect(attempts=3, first_delay_s=0.05))
    faults: list[str] = []

    def pull_at_40(frame: object) -> None:
        if getattr(frame, "index", None) == 40:
            unplug(cam)

    result = record_session(
        cam, path, frames=80, on_frame=pull_at_40, on_fault=lambda e: faults.append(e.kind)
    )
    assert result.stopped == "done" and result.frames == 80
    assert faults == ["lost", "reconnecting", "reconnected"]
    session = Session.open(path)
    assert session.n_frames == 80 and session.closed_cleanly
    assert [session.frame(i).index for i in (0, 40, 79)] == [0, 40, 79]


def test_recording_closes_cleanly_when_the_camera_never_comes_back(tmp_path: Path) -> None:
    path = tmp_path / "gone.ome.zarr"
    cam = camera(reconnect=Reconnect(attempts=2, first_delay_s=0.05))
    thief: list[CameraSource] = []

    def steal(event: FaultEvent) -> None:
        # Another client grabs the camera as soon as we lose it: reconnection cannot succeed.
        if event.kind == "lost":
            other = camera()
            other.open()
            thief.append(other)

    def pull_at_30(frame: object) -> None:
        if getattr(frame, "index", None) == 30:
            unplug(cam)

    try:
        result = record_session(cam, path, frames=500, on_frame=pull_at_30, on_fault=steal)
    finally:
        for other in thief:
            other.close()
    assert result.stopped.startswith("Machine Vision Games Ltd. Viky #1 is gone")
    assert 31 <= result.frames < 500
    session = Session.open(path)
    assert session.n_frames == result.frames and session.closed_cleanly
    assert result.faults[-1].endswith("2 reconnection attempts failed")
    with pytest.raises(EndOfStream):  # gone for good: the stream has ended
        cam.read(timeout_s=1)


def test_cli_devices_and_record(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["devices", "--cti", str(VIKY), "--no-env"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["#", "vendor", "model", "serial", "id", "access", "producer"]
    assert len(table) == 4 and "VikyTL_DEV_green" in table[2] and str(VIKY.resolve()) in table[2]
    assert main(["devices", "--cti", str(VIKY), "--no-env", "--device", "0", "--json"]) == 0
    described = json.loads(capsys.readouterr().out)
    assert described["settings"]["exposure_us"] is None

    out = tmp_path / "cli.ome.zarr"
    saved = tmp_path / "saved.yaml"
    argv = ["record", "--cti", str(VIKY), "--no-env", "--device", "2", "--frames", "30"]
    argv += ["--fps", "100", "--roi", "0", "0", "200", "100", "--save-settings", str(saved)]
    assert main([*argv, str(out)]) == 0
    err = capsys.readouterr().err
    assert "recorded 30 frames" in err and "0 frame-id gaps" in err
    session = Session.open(out)
    assert session.n_frames == 30 and session.shape == (100, 200)
    assert CameraSettings.load(saved).frame_rate_hz == 100

    # Errors: one line, exit status 2, no traceback.
    bad = ["record", "--cti", str(VIKY), "--no-env", "--device", "2", "--frames", "5"]
    assert main([*bad, "--exposure", "100", str(tmp_path / "x.ome.zarr")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "offers no exposure control" in err[0]
    assert main(["devices", "--cti", str(tmp_path / "nope.cti")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope.cti does not exist" in err[0]


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.slow
def test_five_thousand_frames_without_a_buffer_leak() -> None:
    settings = CameraSettings(pixel_format="Mono8", width=320, height=240, frame_rate_hz=200)
    with camera(settings=settings) as cam:
        for _ in range(500):
            cam.read(timeout_s=5)
        base_rss = rss_mib()
        announced = cam.stats().stream["num_announced"]
        for _ in range(4500):
            frame = cam.read(timeout_s=5)
            assert cam.stats().buffers_held == 0  # every buffer went back before read returned
        stats = cam.stats()
    assert frame.index == 4999 + stats.gaps  # gaps: frames a stalled host never got, counted
    assert stats.delivered == 5000 and stats.buffers_held == 0
    assert stats.stream["num_delivered"] == 5000
    assert stats.stream["num_announced"] == announced
    assert rss_mib() - base_rss < 16  # peak RSS did not creep up frame after frame


def test_a_failed_write_stops_the_recording_and_keeps_the_frames_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from liveaug.session import SessionWriter

    real_append = SessionWriter.append

    def append(self, frame):
        if frame.index == 5:
            raise OSError(28, "No space left on device")
        real_append(self, frame)

    monkeypatch.setattr(SessionWriter, "append", append)
    path = tmp_path / "full.ome.zarr"
    settings = CameraSettings(pixel_format="Mono8", width=128, height=100, frame_rate_hz=100)
    with pytest.raises(LiveaugError, match=r"writing frame 5 failed.*5 frames before it are kept"):
        record_session(camera(settings=settings), path, frames=20)
    session = Session.open(path)
    assert session.n_frames == 5 and session.closed_cleanly
