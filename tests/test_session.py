"""Sessions on disk: bit-exact round trips, other OME-Zarr readers, crash safety, bad input."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import zarr

import liveaug.session
from liveaug.errors import LiveaugError, SessionError
from liveaug.frame import Frame, Truth
from liveaug.session import TRUTH_CHANNELS, Session, SessionWriter, _read_truth_log, _write_line

H, W = 48, 64
CHANNELS = ("gfp", "mcherry")
TRUTH_COLUMNS = {"id": np.uint32, "x": np.float32, "area": np.float64, "phase": np.int8}


def make_frame(
    i: int,
    *,
    dtype: str = "uint16",
    bit_depth: int = 12,
    channels: tuple[str, ...] = CHANNELS,
    truth: bool = True,
    seed: int = 0,
) -> Frame:
    """Frame ``i`` of a deterministic random stream (the same in this process and a child)."""
    rng = np.random.default_rng([seed, i])
    top = (1 << bit_depth) - 1

    def plane() -> np.ndarray:
        return rng.integers(0, top, (H, W), endpoint=True).astype(dtype)

    t = None
    if truth:
        n = int(rng.integers(0, 6))  # frames with no cells happen too
        cells = {
            name: (rng.random(n) * 100).astype(col) if col != np.int8 else rng.integers(0, 4, n)
            for name, col in TRUTH_COLUMNS.items()
        }
        cells["phase"] = cells["phase"].astype(np.int8)
        cells["id"] = np.arange(1, n + 1, dtype=np.uint32)
        labels = rng.integers(0, n + 1, (H, W)).astype(np.uint32)
        t = Truth(
            dapi=plane(),
            membrane=plane(),
            cell_labels=labels,
            nucleus_labels=np.where(rng.random((H, W)) < 0.5, labels, 0).astype(np.uint32),
            cells=cells,
        )
    return Frame(
        image=plane(),
        index=100 + i,
        timestamp_ns=5_000_000_000 + i * 20_000_000 + int(rng.integers(0, 1000)),
        clock="device",
        pixel_format="Mono12p" if bit_depth == 12 else "Mono8",
        bit_depth=bit_depth,
        pixel_size_um=0.65,
        channels={name: plane() for name in channels},
        meta={"exposure_us": 1000.0 + i, "gain_db": np.float32(2.5), "trigger": "free"},
        truth=t,
    )


def write(path: Path, frames: list[Frame], **kwargs: object) -> Path:
    f0 = frames[0]
    opts: dict[str, object] = {
        "shape": f0.shape,
        "dtype": f0.image.dtype,
        "bit_depth": f0.bit_depth,
        "pixel_size_um": 0.65,
        "channel_names": tuple(f0.channels),
        "truth": f0.truth is not None,
        "frame_interval_s": 0.02,
        "metadata": {"source": "test", "camera": {"model": "fake"}, "simulator": {"seed": 1}},
    }
    opts.update(kwargs)
    with SessionWriter(path, **opts) as writer:  # type: ignore[arg-type]
        for frame in frames:
            writer.append(frame)
        assert writer.n_frames == len(frames)
    return path


def assert_same_frame(got: Frame, want: Frame) -> None:
    for name in ("index", "timestamp_ns", "clock", "pixel_format", "bit_depth", "pixel_size_um"):
        assert getattr(got, name) == getattr(want, name), name
    assert got.image.dtype == want.image.dtype
    np.testing.assert_array_equal(got.image, want.image)
    assert list(got.channels) == list(want.channels)
    for name, plane in want.channels.items():
        assert got.channels[name].dtype == plane.dtype, name
        np.testing.assert_array_equal(got.channels[name], plane)
    assert got.meta == {
        k: (float(v) if isinstance(v, np.floating) else v) for k, v in want.meta.items()
    }
    if want.truth is None:
        assert got.truth is None
        return
    assert got.truth is not None
    for name in ("dapi", "membrane", "cell_labels", "nucleus_labels"):
        g, w = getattr(got.truth, name), getattr(want.truth, name)
        assert g.dtype == w.dtype, name
        np.testing.assert_array_equal(g, w)
    assert list(got.truth.cells) == list(want.truth.cells)
    for name, col in want.truth.cells.items():
        assert got.truth.cells[name].dtype == col.dtype, name
        np.testing.assert_array_equal(got.truth.cells[name], col)


def truth_table(frames: list[Frame]) -> pd.DataFrame:
    parts = [
        pd.DataFrame({"frame": np.full(len(f.truth.cells["id"]), t, np.int64), **f.truth.cells})
        for t, f in enumerate(frames)
        if f.truth is not None
    ]
    return pd.concat(parts, ignore_index=True)


# -- round trips ----------------------------------------------------------------------------------


def test_round_trip_uint16_12bit_channels_truth(tmp_path: Path) -> None:
    frames = [make_frame(i) for i in range(6)]
    path = write(tmp_path / "run.ome.zarr", frames)

    s = Session.open(path)
    assert len(s) == s.n_frames == 6
    assert s.shape == (H, W) and s.dtype == np.uint16 and s.bit_depth == 12
    assert s.pixel_size_um == 0.65 and s.frame_interval_s == 0.02
    assert s.channel_names == CHANNELS
    assert s.image_channels == ("brightfield", *CHANNELS, *TRUTH_CHANNELS)
    assert s.has_truth and s.closed_cleanly
    assert s.metadata == {"source": "test", "camera": {"model": "fake"}, "simulator": {"seed": 1}}
    np.testing.assert_array_equal(s.timestamps_ns, [f.timestamp_ns for f in frames])
    for t, want in enumerate(frames):
        assert_same_frame(s.frame(t), want)

    table = s.truth_cells()
    assert table is not None
    pd.testing.assert_frame_equal(table, truth_table(frames))
    # the crash-safe JSON-lines log and the Parquet written on close agree, dtypes included
    assert (path / "liveaug" / "truth_cells.parquet").is_file()
    pd.testing.assert_frame_equal(_read_truth_log(path / "liveaug" / "truth_cells.jsonl", 6), table)

    meta = s.frame_table()
    assert list(meta["index"]) == [f.index for f in frames]
    assert list(meta["meta.exposure_us"]) == [f.meta["exposure_us"] for f in frames]
    assert pd.read_parquet(path / "liveaug" / "frames.parquet")["timestamp_ns"].tolist() == [
        f.timestamp_ns for f in frames
    ]
    assert [f.index for f in s] == [f.index for f in frames]
    with pytest.raises(IndexError):
        s.frame(6)


def test_round_trip_uint8_plain(tmp_path: Path) -> None:
    frames = [make_frame(i, dtype="uint8", bit_depth=8, channels=(), truth=False) for i in range(3)]
    path = write(tmp_path / "plain.ome.zarr", frames, pixel_size_um=None, frame_interval_s=None)
    s = Session.open(path)
    assert s.n_frames == 3 and s.dtype == np.uint8 and s.bit_depth == 8
    assert s.channel_names == () and s.image_channels == ("brightfield",)
    assert not s.has_truth and s.truth_cells() is None
    with pytest.raises(
        SessionError, match=r"plain\.ome\.zarr has no ground truth — .*liveaug simulate"
    ):
        s.require_truth()  # what `models eval` / `analysis eval` say for such a session
    assert s.pixel_size_um == 0.65  # adopted from the frames
    assert s.frame_interval_s == pytest.approx(0.02, rel=1e-3)  # measured on close
    for t, want in enumerate(frames):
        assert_same_frame(s.frame(t), want)
    assert not (path / "labels").exists()


def test_all_zero_frames_are_stored(tmp_path: Path) -> None:
    """Empty chunks are written too, so a missing chunk file always means damage."""
    frame = make_frame(0)
    zero = np.zeros((H, W), np.uint16)
    assert frame.truth is not None
    frame = replace(
        frame,
        image=zero,
        truth=replace(frame.truth, cell_labels=zero.astype(np.uint32), dapi=zero),
    )
    s = Session.open(write(tmp_path / "z.ome.zarr", [frame]))
    assert_same_frame(s.frame(0), frame)


def test_failed_append_can_be_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An append that fails after the arrays grew (disk full …) leaves a consistent session."""
    frames = [make_frame(i) for i in range(3)]
    real = liveaug.session._frame_line
    calls = iter([real, _fail, real, real])
    monkeypatch.setattr(liveaug.session, "_frame_line", lambda t, f: next(calls)(t, f))
    with SessionWriter(
        tmp_path / "r.ome.zarr",
        shape=(H, W),
        dtype="uint16",
        bit_depth=12,
        channel_names=CHANNELS,
        truth=True,
    ) as w:
        w.append(frames[0])
        with pytest.raises(OSError, match="disk full"):
            w.append(frames[1])
        assert w.n_frames == 1
        w.append(frames[1])
        w.append(frames[2])
    s = Session.open(tmp_path / "r.ome.zarr")
    assert s.n_frames == 3
    for t in range(3):
        assert_same_frame(s.frame(t), frames[t])
    pd.testing.assert_frame_equal(s.truth_cells(), truth_table(frames))
    log = tmp_path / "r.ome.zarr" / "liveaug" / "truth_cells.jsonl"
    pd.testing.assert_frame_equal(_read_truth_log(log, 3), truth_table(frames))


def _fail(t: int, f: Frame) -> str:
    raise OSError("disk full")


def test_a_failed_log_write_is_cut_off(tmp_path: Path) -> None:
    class HalfWrites:
        def __init__(self, f: io.FileIO) -> None:
            self.f = f

        def fileno(self) -> int:
            return self.f.fileno()

        def write(self, data: bytes) -> int:
            self.f.write(data[:5])
            raise OSError("disk full")

    path = tmp_path / "log.jsonl"
    with path.open("ab", buffering=0) as f:
        _write_line(f, '{"a":1}')
        with pytest.raises(OSError):
            _write_line(HalfWrites(f), '{"b":2}')
        _write_line(f, '{"c":3}')
    assert path.read_text() == '{"a":1}\n{"c":3}\n'


def test_empty_session_opens(tmp_path: Path) -> None:
    with SessionWriter(tmp_path / "e.ome.zarr", shape=(H, W), dtype="uint8", bit_depth=8):
        pass
    s = Session.open(tmp_path / "e.ome.zarr")
    assert s.n_frames == 0 and len(s.timestamps_ns) == 0 and s.frame_interval_s is None


def test_writer_rejects_frames_that_do_not_fit(tmp_path: Path) -> None:
    frame = make_frame(0)
    with SessionWriter(
        tmp_path / "a.ome.zarr",
        shape=(H, W),
        dtype="uint16",
        bit_depth=12,
        channel_names=CHANNELS,
        truth=True,
    ) as w:
        with pytest.raises(ValueError, match="channels"):
            w.append(make_frame(0, channels=("gfp",)))
        with pytest.raises(ValueError, match="no truth"):
            w.append(make_frame(0, truth=False))
        with pytest.raises(ValueError, match="brightfield is uint8"):
            w.append(make_frame(0, dtype="uint8", bit_depth=8))
        w.append(frame)
        assert w.n_frames == 1  # rejected frames left nothing behind
    with pytest.raises(RuntimeError, match="closed"):
        w.append(frame)
    with pytest.raises(ValueError, match="dtype"):
        SessionWriter(tmp_path / "b.ome.zarr", shape=(H, W), dtype="float32", bit_depth=16)


# -- other readers ------------------------------------------------------------------------------


def test_ome_zarr_reader_opens_it(tmp_path: Path) -> None:
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    frames = [make_frame(i) for i in range(3)]
    path = write(tmp_path / "run.ome.zarr", frames)
    nodes = {n.zarr.basename(): n for n in Reader(parse_url(str(path)))()}
    image = nodes[path.name]
    assert [a["name"] for a in image.metadata["axes"]] == ["t", "c", "y", "x"]
    assert image.metadata["coordinateTransformations"] == [
        [{"type": "scale", "scale": [0.02, 1.0, 0.65, 0.65]}]
    ]
    assert image.metadata["channel_names"] == ["brightfield", *CHANNELS, *TRUTH_CHANNELS]
    want = np.stack(
        [np.stack([f.image, *f.channels.values(), f.truth.dapi, f.truth.membrane]) for f in frames]
    )
    np.testing.assert_array_equal(np.asarray(image.data[0]), want)
    cells = nodes["cells"]
    np.testing.assert_array_equal(
        np.asarray(cells.data[0])[:, 0], np.stack([f.truth.cell_labels for f in frames])
    )
    assert cells.metadata["axes"] == image.metadata["axes"]


def test_metadata_is_valid_ngff_0_5(tmp_path: Path) -> None:
    from ome_zarr_models.v05 import Image, ImageLabel, Labels

    frames = [make_frame(i) for i in range(4)]
    path = write(tmp_path / "run.ome.zarr", frames)
    group = zarr.open_group(path, mode="r")
    image = Image.from_zarr(group)
    Labels.from_zarr(group["labels"])
    for name in ("cells", "nuclei"):
        label = ImageLabel.from_zarr(group[f"labels/{name}"])
        assert label.attributes.ome.image_label.source.image == "../../"
        assert group[f"labels/{name}/0"].dtype == np.uint32
    assert group["0"].metadata.dimension_names == ("t", "c", "y", "x")
    assert group["0"].chunks == (1, 1, H, W)

    omero = image.attributes.ome.omero  # transitional in 0.5: ome-zarr-models keeps a dict
    labels = [c["label"] for c in omero["channels"]]
    assert labels == ["brightfield", *CHANNELS, *TRUTH_CHANNELS]
    for c in omero["channels"]:
        assert set(c) >= {"label", "color", "window", "active"} and len(c["color"]) == 6
        w = c["window"]
        assert w["min"] == 0 and w["max"] == 4095 and 0 <= w["start"] < w["end"] <= 4095
    # windows come from percentiles of the data (uniform noise here), not the dtype range
    bf = omero["channels"][0]["window"]
    assert 0 < bf["start"] < 50 and 4000 < bf["end"] < 4095


# -- crash safety -------------------------------------------------------------------------------

CHILD = """
import os, signal, sys
sys.path.insert(0, {tests!r})
import numpy as np
import liveaug.session as S
from test_session import make_frame

N = {n}
mode = {mode!r}
die = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
if mode == "before_resize":  # frame N's chunks are on disk, the time axis not grown yet
    real_commit = S.SessionWriter._commit_shape
    def commit(self, n):
        if n == N + 1:
            die()
        real_commit(self, n)
    S.SessionWriter._commit_shape = commit
elif mode == "before_log":  # frame N is in the arrays, its log line not written
    real = S._frame_line
    S._frame_line = lambda t, f: die() if t == N else real(t, f)
elif mode == "torn_log":  # half of frame N's log line reaches the file
    real_write = S._write_line
    def torn(f, line):
        if line.startswith('{{"t":' + str(N) + ','):
            f.write(line[: len(line) // 2].encode()); die()
        real_write(f, line)
    S._write_line = torn
w = S.SessionWriter({path!r}, shape=({h}, {w}), dtype="uint16", bit_depth=12,
                    channel_names=("gfp", "mcherry"), truth=True, frame_interval_s=0.02)
for i in range(N + 3):
    if mode == "after" and i == N:
        die()
    w.append(make_frame(i))
"""


@pytest.mark.parametrize("mode", ["after", "before_resize", "before_log", "torn_log"])
def test_killed_writer_leaves_complete_frames(tmp_path: Path, mode: str) -> None:
    n = 3
    path = tmp_path / "crash.ome.zarr"
    code = CHILD.format(tests=str(Path(__file__).parent), n=n, mode=mode, path=str(path), h=H, w=W)
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True)
    assert proc.returncode == -9, proc.stderr.decode()

    s = Session.open(path)
    assert s.n_frames == n and not s.closed_cleanly
    for t in range(n):
        assert_same_frame(s.frame(t), make_frame(t))
    table = s.truth_cells()
    assert table is not None
    pd.testing.assert_frame_equal(table, truth_table([make_frame(t) for t in range(n)]))
    image = zarr.open_array(path / "0", mode="r")
    if mode == "before_resize":  # the frame in flight was written but never committed
        assert image.shape[0] == n and (path / "0" / "c" / str(n) / "0" / "0" / "0").is_file()
    if mode in ("before_log", "torn_log"):  # committed to the array, not to the log
        assert image.shape[0] == n + 1


# -- bad sessions ---------------------------------------------------------------------------------


def error_for(path: Path) -> str:
    with pytest.raises(SessionError) as info:
        s = Session.open(path)
        for t in range(s.n_frames):
            s.frame(t)
    assert isinstance(info.value, LiveaugError)
    msg = str(info.value)
    assert str(path) in msg and " — " in msg  # names the thing, then what to do
    return msg


@pytest.fixture
def session(tmp_path: Path) -> Path:
    return write(tmp_path / "good.ome.zarr", [make_frame(i) for i in range(3)])


def test_missing_file_and_plain_directory(tmp_path: Path) -> None:
    assert "does not exist" in error_for(tmp_path / "nope.ome.zarr")
    (tmp_path / "plain").mkdir()
    assert "no zarr.json" in error_for(tmp_path / "plain")
    (tmp_path / "file.ome.zarr").write_text("x")
    assert "is a file" in error_for(tmp_path / "file.ome.zarr")


def test_foreign_zarr_is_not_a_session(tmp_path: Path) -> None:
    zarr.create_group(tmp_path / "g.zarr", attributes={"ome": {"version": "0.5"}})
    msg = error_for(tmp_path / "g.zarr")
    assert "not a liveaug session (no liveaug metadata in zarr.json)" in msg
    assert "liveaug record" in msg


def test_garbage_root_metadata(session: Path) -> None:
    raw = (session / "zarr.json").read_bytes()
    (session / "zarr.json").write_bytes(raw[: len(raw) // 2])
    assert "zarr.json is corrupt" in error_for(session)


def test_missing_or_garbage_array(session: Path) -> None:
    (session / "0" / "zarr.json").write_text("{not json")
    assert "array 0 is unreadable" in error_for(session)
    shutil.rmtree(session / "labels" / "nuclei" / "0")
    assert "array" in error_for(session)
    shutil.rmtree(session / "0")
    assert "array 0 is missing" in error_for(session)


def test_truncated_and_missing_chunks_name_the_frame(session: Path) -> None:
    chunk = session / "0" / "c" / "1" / "2" / "0" / "0"
    chunk.write_bytes(chunk.read_bytes()[:100])
    s = Session.open(session)
    s.frame(0)
    s.frame(2)
    with pytest.raises(SessionError, match="frame 1 is unreadable"):
        s.frame(1)
    chunk.unlink()
    with pytest.raises(SessionError, match="frame 1 is incomplete"):
        s.frame(1)


def test_a_chunk_shorter_than_its_blosc_header_says_is_never_decompressed(
    session: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """c-blosc trusts the header's compressed size and reads past the end of a truncated buffer
    (a Dask worker died with signal 11 on one): the header is checked against the file first."""
    from zarr.codecs.blosc import BloscCodec

    chunk = session / "0" / "c" / "1" / "2" / "0" / "0"
    whole = len(chunk.read_bytes())
    chunk.write_bytes(chunk.read_bytes()[: whole // 2])
    decoded: list[int] = []
    original = BloscCodec._decode_single

    async def spy(self, chunk_bytes, chunk_spec):  # type: ignore[no-untyped-def]
        decoded.append(len(chunk_bytes.to_bytes()))
        return await original(self, chunk_bytes, chunk_spec)

    monkeypatch.setattr(BloscCodec, "_decode_single", spy)
    with pytest.raises(
        SessionError,
        match=rf"frame 1 is unreadable .*holds {whole // 2} of its "
        rf"{whole} bytes",
    ):
        Session.open(session).frame(1)
    assert whole // 2 not in decoded
    chunk.write_bytes(b"\x02\x01")  # shorter than a header
    with pytest.raises(SessionError, match="frame 1 is unreadable"):
        Session.open(session).frame(1)


def test_missing_or_corrupt_frame_log(session: Path) -> None:
    log = session / "liveaug" / "frames.jsonl"
    log.write_text("garbage\n" + log.read_text())
    assert "line 1 is not valid JSON" in error_for(session)
    log.unlink()
    assert "frame log" in error_for(session)


def test_root_metadata_that_is_not_an_object(session: Path) -> None:
    (session / "zarr.json").write_text("[1, 2]")
    msg = error_for(session)
    assert "zarr.json is corrupt" in msg and "not a JSON object" in msg


def test_root_metadata_missing_a_required_key(session: Path) -> None:
    meta = json.loads((session / "zarr.json").read_text())
    del meta["attributes"]["liveaug"]["bit_depth"]
    (session / "zarr.json").write_text(json.dumps(meta))
    msg = error_for(session)
    assert "zarr.json is incomplete" in msg and "bit_depth" in msg


def test_frame_log_line_that_is_not_an_object(session: Path) -> None:
    log = session / "liveaug" / "frames.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    log.write_text("".join([lines[0], "5\n", *lines[2:]]))
    msg = error_for(session)
    assert "frames.jsonl: line 2 is not a JSON object" in msg


def test_truth_log_line_without_columns(session: Path) -> None:
    (session / "liveaug" / "truth_cells.parquet").unlink()  # read the log instead
    log = session / "liveaug" / "truth_cells.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    log.write_text("".join(lines) + '{"frame": 3}\n')  # a frame never committed: skipped
    assert Session.open(session).frame(2).truth is not None
    rec = json.loads(lines[1])
    del rec["dtypes"]
    log.write_text("".join([lines[0], json.dumps(rec) + "\n", *lines[2:]]))
    msg = error_for(session)
    assert "truth_cells.jsonl: line 2 is not a truth record" in msg and "dtypes" in msg


# -- overwriting ----------------------------------------------------------------------------------


def test_refuses_to_overwrite(session: Path, tmp_path: Path) -> None:
    with pytest.raises(SessionError, match="already exists") as info:
        SessionWriter(session, shape=(H, W), dtype="uint8", bit_depth=8)
    assert "overwrite" in str(info.value)
    assert Session.open(session).n_frames == 3  # untouched

    with SessionWriter(session, shape=(H, W), dtype="uint8", bit_depth=8, overwrite=True) as w:
        w.append(make_frame(0, dtype="uint8", bit_depth=8, channels=(), truth=False))
    assert Session.open(session).n_frames == 1

    other = tmp_path / "precious"
    other.mkdir()
    (other / "thesis.txt").write_text("do not delete")
    with pytest.raises(SessionError, match="not a liveaug session, so it is not overwritten"):
        SessionWriter(other, shape=(H, W), dtype="uint8", bit_depth=8, overwrite=True)
    assert (other / "thesis.txt").is_file()


def test_session_metadata_is_under_liveaug_key(session: Path) -> None:
    attrs = json.loads((session / "zarr.json").read_text())["attributes"]
    la = attrs["liveaug"]
    assert la["software"]["name"] == "liveaug" and la["software"]["version"]
    assert la["metadata"]["camera"] == {"model": "fake"}
    assert la["closed"] is True and la["n_frames"] == 3 and la["clock"] == "device"
