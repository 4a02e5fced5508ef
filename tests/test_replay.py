"""Replaying a session as a Source: pacing, seek, loop, end of stream, interruption."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from liveaug.errors import EndOfStream, SessionError, SourceError
from liveaug.frame import Frame
from liveaug.session import SessionWriter
from liveaug.sources.base import Source
from liveaug.sources.replay import ReplaySource

H, W = 32, 32


def record(
    path: Path,
    n: int = 20,
    fps: float = 50.0,
    *,
    timestamps: list[int] | None = None,
    frame_interval_s: float | None = None,
) -> Path:
    """A brightfield-only session of ``n`` frames recorded at ``fps`` (device clock)."""
    rng = np.random.default_rng(1)
    stamps = timestamps or [7_000_000_000 + round(i * 1e9 / fps) for i in range(n)]
    with SessionWriter(
        path,
        shape=(H, W),
        dtype="uint8",
        bit_depth=8,
        frame_interval_s=frame_interval_s,
        metadata={"source": "test"},
    ) as w:
        for i, ts in enumerate(stamps):
            img = rng.integers(0, 255, (H, W), dtype=np.uint8)
            w.append(
                Frame(
                    image=img,
                    index=1000 + i,
                    timestamp_ns=ts,
                    clock="device",
                    pixel_format="Mono8",
                    bit_depth=8,
                )
            )
    return path


@pytest.fixture
def session(tmp_path: Path) -> Path:
    return record(tmp_path / "run.ome.zarr")


def play(src: ReplaySource, n: int) -> tuple[list[Frame], float]:
    """Read ``n`` frames; return them and the time from the first to the last."""
    frames = [src.read()]
    t0 = time.monotonic()
    frames += [src.read() for _ in range(n - 1)]
    return frames, time.monotonic() - t0


@pytest.mark.parametrize("speed", [1.0, 2.0])
def test_paces_at_recorded_rate_times_speed(session: Path, speed: float) -> None:
    src = ReplaySource(session, speed=speed)
    info = src.open()
    assert info.frame_rate_hz == pytest.approx(50.0 * speed)
    frames, elapsed = play(src, 20)
    assert [f.index for f in frames] == list(range(1000, 1020))
    expected = 19 / (50.0 * speed)
    assert elapsed == pytest.approx(expected, rel=0.10)
    with pytest.raises(EndOfStream):
        src.read()
    src.close()


def test_frames_are_the_recorded_frames(session: Path) -> None:
    src = ReplaySource(session, speed=None)
    info = src.open()
    assert isinstance(src, Source)
    assert info.shape == (H, W) and info.dtype == "uint8" and info.bit_depth == 8
    assert info.frame_rate_hz is None and not info.has_truth
    assert info.settings["source"] == "test" and info.settings["replay"]["speed"] is None
    frames, elapsed = play(src, 20)
    assert elapsed < 0.3  # as fast as possible, not 0.38 s
    assert [f.index for f in frames] == list(range(1000, 1020))
    assert frames[3].timestamp_ns == 7_000_000_000 + 3 * 20_000_000
    assert all(f.clock == "device" for f in frames)
    assert len(src) == 20
    src.close()
    src.close()  # twice is fine


def test_falls_back_to_frame_interval_without_timestamps(tmp_path: Path) -> None:
    path = record(tmp_path / "flat.ome.zarr", n=6, timestamps=[0] * 6, frame_interval_s=0.04)
    src = ReplaySource(path)
    assert src.open().frame_rate_hz == pytest.approx(25.0)
    _, elapsed = play(src, 6)
    assert elapsed == pytest.approx(5 * 0.04, rel=0.10)


def test_seek_and_start(session: Path) -> None:
    src = ReplaySource(session, speed=None, start=5)
    src.open()
    assert src.read().index == 1005
    src.seek(15)
    assert src.position == 15
    assert [src.read().index for _ in range(5)] == [1015, 1016, 1017, 1018, 1019]
    with pytest.raises(EndOfStream):
        src.read()
    src.seek(0)
    assert src.read().index == 1000
    with pytest.raises(SourceError, match="0 … 19"):
        src.seek(20)
    with pytest.raises(SourceError, match="position 99"):
        ReplaySource(session, start=99).open()


def test_loop_restarts_at_zero_and_keeps_pace(session: Path) -> None:
    src = ReplaySource(session, speed=2.0, loop=True, start=17)
    src.open()
    frames, elapsed = play(src, 6)
    assert [f.index for f in frames] == [1017, 1018, 1019, 1000, 1001, 1002]
    assert elapsed == pytest.approx(5 / 100.0, rel=0.10)  # the wrap takes one frame period


def test_timeout_leaves_the_frame_for_the_next_read(session: Path) -> None:
    src = ReplaySource(session, speed=0.1)  # one frame per 0.2 s
    src.open()
    src.read()
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        src.read(timeout_s=0.03)
    assert time.monotonic() - t0 < 0.1
    assert src.read(timeout_s=1.0).index == 1001


def test_seek_and_close_interrupt_a_waiting_read(session: Path) -> None:
    src = ReplaySource(session, speed=0.01)  # 2 s per frame: the read would wait that long
    src.open()
    src.read()
    threading.Timer(0.05, src.seek, args=(9,)).start()
    t0 = time.monotonic()
    assert src.read().index == 1009
    assert time.monotonic() - t0 < 0.5
    threading.Timer(0.05, src.close).start()
    with pytest.raises(EndOfStream):
        src.read()
    assert time.monotonic() - t0 < 1.0


def test_bad_paths_and_misuse(tmp_path: Path, session: Path) -> None:
    with pytest.raises(SessionError, match="does not exist"):
        ReplaySource(tmp_path / "missing.ome.zarr").open()
    with pytest.raises(SourceError, match="speed"):
        ReplaySource(session, speed=0)
    with pytest.raises(RuntimeError, match="before open"):
        ReplaySource(session).read()
    empty = tmp_path / "empty.ome.zarr"
    with SessionWriter(empty, shape=(H, W), dtype="uint8", bit_depth=8):
        pass
    with pytest.raises(SourceError, match="no complete frames"):
        ReplaySource(empty).open()


def test_a_time_lapse_plays_at_30_frames_per_s_times_speed(tmp_path: Path) -> None:
    """Frames 180 s apart would show one frame every 3 minutes at the recorded pace: a session
    whose frames are more than a second apart plays at 30 frames/s × speed unless asked not to."""
    stamps = [i * 180_000_000_000 for i in range(6)]
    path = record(tmp_path / "tl.ome.zarr", n=6, timestamps=stamps, frame_interval_s=180.0)
    src = ReplaySource(path, speed=2.0)
    assert src.open().frame_rate_hz == pytest.approx(60.0) and src.timelapse
    t0 = time.monotonic()
    frames = [src.read(timeout_s=5.0) for _ in range(6)]
    assert time.monotonic() - t0 < 5.0  # at the recorded pace: 15 minutes
    assert [f.timestamp_ns for f in frames] == stamps  # the frames keep their recorded times
    src.close()
    recorded = ReplaySource(path, speed=1.0, pace="recorded")
    assert recorded.open().frame_rate_hz == pytest.approx(1 / 180) and not recorded.timelapse
    recorded.close()
    live = ReplaySource(record(tmp_path / "v.ome.zarr", n=4), speed=1.0)
    assert live.open().frame_rate_hz == pytest.approx(50.0) and not live.timelapse
    live.close()
