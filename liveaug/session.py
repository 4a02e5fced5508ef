"""Recorded sessions: OME-Zarr (NGFF 0.5 on zarr v3) written one frame at a time, crash-safely.

Written on zarr-python directly rather than ome-writers 0.3.2: its zarr backend resizes the array
*before* writing a frame (a kill in between leaves a zero-filled frame that counts as recorded),
holds per-frame metadata in memory until close (lost on a crash) and has no NGFF label images.

On-disk layout of ``run.ome.zarr/``::

    zarr.json                    group: attributes "ome" (multiscales, omero) and "liveaug"
    0/                           image (t, c, y, x), chunks (1, 1, H, W): brightfield, then the
                                 fluorescence channels, then truth_dapi, truth_membrane
    labels/cells/0/              uint32 (t, 1, y, x) cell instance labels      (truth only)
    labels/nuclei/0/             uint32 (t, 1, y, x) nucleus instance labels   (truth only)
    liveaug/frames.jsonl         one line per complete frame: index, timestamp, clock, meta …
    liveaug/truth_cells.jsonl    one line per frame: that frame's truth-table columns
    liveaug/frames.parquet       written on close: per-frame metadata as a table
    liveaug/truth_cells.parquet  written on close: all truth rows with a ``frame`` column

Crash safety rests on zarr's ``LocalStore``, which writes every file to a temporary name and
renames it into place (``zarr/storage/_local.py: _atomic_write``), so a chunk or ``zarr.json`` is
either absent or complete. Each append writes the frame's chunks, then grows the time axis (a
rename of the array's ``zarr.json``), then appends and flushes its log lines; the reader counts a
frame only when the arrays and ``frames.jsonl`` both hold it. A killed writer loses at most the
frame in flight. Nothing is fsync'd: this survives a killed process, not a power cut.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd
import zarr
from zarr.codecs import BloscCodec
from zarr.storage import LocalStore

from liveaug import __version__
from liveaug.errors import SessionError
from liveaug.frame import Frame, Truth
from liveaug.sources.base import SourceInfo

__all__ = ["FORMAT_VERSION", "TRUTH_CHANNELS", "Session", "SessionError", "SessionWriter"]

log = logging.getLogger(__name__)

#: Version of the liveaug layout inside the OME-Zarr (bumped on incompatible change).
FORMAT_VERSION = 1
#: Image channels holding the simulator's digitised ground-truth stains, after the real ones.
TRUTH_CHANNELS: tuple[str, ...] = ("truth_dapi", "truth_membrane")
#: Label images (``labels/<name>``) and the Truth field each is taken from.
LABELS: dict[str, str] = {"cells": "cell_labels", "nuclei": "nucleus_labels"}
BRIGHTFIELD = "brightfield"

_SIDECAR = "liveaug"
_FRAMES_LOG = "frames.jsonl"
_TRUTH_LOG = "truth_cells.jsonl"
_FRAMES_PARQUET = "frames.parquet"
_TRUTH_PARQUET = "truth_cells.parquet"
_RECORD_HINT = "record one with `liveaug record` or `liveaug simulate`"
#: Larger than any session: the in-memory shape of the view that writes chunks past the end.
_WRITE_VIEW_FRAMES = 2**31
#: Frames sampled for contrast windows: every one of the first few, then every Nth.
_WINDOW_EARLY, _WINDOW_EVERY = 16, 50
#: Frame counts after which the contrast windows are rewritten while recording.
_WINDOW_UPDATES = frozenset({1, 4, _WINDOW_EARLY})
_WINDOW_PERCENTILES = (0.1, 99.9)
_COLORS = {
    "brightfield": "FFFFFF",
    "dapi": "0000FF",
    "hoechst": "0000FF",
    "membrane": "FF00FF",
    "gfp": "00FF00",
    "fitc": "00FF00",
    "green": "00FF00",
    "mcherry": "FF0000",
    "rfp": "FF0000",
    "tritc": "FF0000",
    "red": "FF0000",
    "cy5": "FF00FF",
}
_SPARE_COLORS = ("00FFFF", "FFFF00", "FF8000", "8000FF")


# -- writer -------------------------------------------------------------------------------------


class SessionWriter:
    """Append frames to a new session on disk, each safe from a killed process once appended.

    Call ``append`` from one thread at a time (the recorder's); a failed append (disk full …) may
    be retried with the same frame.

    Parameters
    ----------
    path : str or Path
        Directory to create, conventionally ``*.ome.zarr``.
    shape : (int, int)
        Height and width of every frame.
    dtype : str or dtype
        Camera dtype, ``uint8`` or ``uint16``; fluorescence and truth channels share it.
    bit_depth : int
        Significant bits per pixel (12 for Mono12 data held in uint16).
    pixel_size_um, frame_interval_s : float, optional
        Physical scale of the y/x and t axes. Unknown pixel size is taken from the first frame
        that carries one; unknown interval is measured from the timestamps on close.
    channel_names : sequence of str
        Real fluorescence channels every frame carries in ``Frame.channels``, in storage order.
    truth : bool
        Store each frame's :class:`~liveaug.frame.Truth` (truth stains, labels, cell table);
        with False any truth on the frames is not recorded.
    metadata : mapping, optional
        Session-level JSON-able settings (``source``, ``camera``, ``simulator`` …), stored under
        the group's ``liveaug`` attribute and returned by :attr:`Session.metadata`.
    overwrite : bool
        Replace an existing liveaug session at ``path`` (anything else there is never deleted).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        shape: tuple[int, int],
        dtype: str | np.dtype[Any] | type,
        bit_depth: int,
        pixel_size_um: float | None = None,
        channel_names: Sequence[str] = (),
        truth: bool = False,
        frame_interval_s: float | None = None,
        metadata: Mapping[str, Any] | None = None,
        overwrite: bool = False,
    ) -> None:
        self.path = Path(path)
        self.shape = (int(shape[0]), int(shape[1]))
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.dtype(np.uint8), np.dtype(np.uint16)):
            raise ValueError(f"session dtype must be uint8 or uint16, not {self.dtype}")
        if not 1 <= bit_depth <= self.dtype.itemsize * 8:
            raise ValueError(f"bit_depth {bit_depth} does not fit {self.dtype}")
        self.bit_depth = int(bit_depth)
        self.channel_names = tuple(channel_names)
        names = (BRIGHTFIELD, *self.channel_names, *(TRUTH_CHANNELS if truth else ()))
        if len(set(names)) != len(names):
            raise ValueError(f"channel names must be unique and not reserved: {names}")
        self.image_channels: tuple[str, ...] = names
        self.truth = bool(truth)
        self.pixel_size_um = _positive_or_none(pixel_size_um, "pixel_size_um")
        self.frame_interval_s = _positive_or_none(frame_interval_s, "frame_interval_s")
        self.metadata = json.loads(_dumps(dict(metadata or {})))
        self.n_frames = 0
        self._created = datetime.now(UTC).isoformat(timespec="seconds")
        self._closed = False
        self._first_ts: int | None = None
        self._last_ts: int | None = None
        self._clock: str | None = None
        self._lows: list[list[float]] = [[] for _ in names]
        self._highs: list[list[float]] = [[] for _ in names]

        _prepare_path(self.path, overwrite)
        self._create()

    @classmethod
    def for_source(
        cls,
        path: str | os.PathLike[str],
        info: SourceInfo,
        *,
        truth: bool | None = None,
        frame_interval_s: float | None = None,
        metadata: Mapping[str, Any] | None = None,
        overwrite: bool = False,
    ) -> SessionWriter:
        """A writer laid out for what an opened source delivers (shape, bits, channels, truth).

        ``metadata`` is stored beside the source's name and its own settings (camera, simulator).
        """
        if frame_interval_s is None and info.frame_rate_hz:
            frame_interval_s = 1.0 / info.frame_rate_hz
        return cls(
            path,
            shape=info.shape,
            dtype=info.dtype,
            bit_depth=info.bit_depth,
            pixel_size_um=info.pixel_size_um,
            channel_names=info.channel_names,
            truth=info.has_truth if truth is None else truth,
            frame_interval_s=frame_interval_s,
            metadata={"source": info.name, **info.settings, **(metadata or {})},
            overwrite=overwrite,
        )

    # -- creation ---------------------------------------------------------------------------

    def _create(self) -> None:
        """Lay out the group, the arrays and the empty logs (all with zero frames)."""
        h, w = self.shape
        self._store = LocalStore(self.path)
        self._group = zarr.create_group(self._store, zarr_format=3, attributes=self._attrs())
        nc = len(self.image_channels)
        self._image, self._image_w = _create_growing(self._group, "0", nc, h, w, self.dtype)
        self._labels: dict[str, tuple[zarr.Array, zarr.Array]] = {}
        if self.truth:
            labels = self._group.create_group(
                "labels", attributes={"ome": {"version": "0.5", "labels": list(LABELS)}}
            )
            for name in LABELS:
                sub = labels.create_group(name, attributes=self._label_attrs(name))
                self._labels[name] = _create_growing(sub, "0", 1, h, w, np.dtype(np.uint32))
        sidecar = self.path / _SIDECAR
        sidecar.mkdir()
        self._frames_log = (sidecar / _FRAMES_LOG).open("ab", buffering=0)
        self._truth_log = (sidecar / _TRUTH_LOG).open("ab", buffering=0) if self.truth else None

    def _scale(self) -> list[float]:
        return [
            self.frame_interval_s or 1.0,
            1.0,
            self.pixel_size_um or 1.0,
            self.pixel_size_um or 1.0,
        ]

    def _multiscales(self, name: str) -> list[dict[str, Any]]:
        space: dict[str, Any] = {"type": "space"}
        if self.pixel_size_um:
            space["unit"] = "micrometer"
        time: dict[str, Any] = {"name": "t", "type": "time"}
        if self.frame_interval_s:
            time["unit"] = "second"
        axes = [
            time,
            {"name": "c", "type": "channel"},
            {"name": "y", **space},
            {"name": "x", **space},
        ]
        transform = [{"type": "scale", "scale": self._scale()}]
        return [
            {
                "name": name,
                "axes": axes,
                "datasets": [{"path": "0", "coordinateTransformations": transform}],
            }
        ]

    def _omero(self) -> dict[str, Any]:
        top = (1 << self.bit_depth) - 1
        channels = []
        spare = iter(_SPARE_COLORS * len(self.image_channels))
        for c, name in enumerate(self.image_channels):
            lows, highs = self._lows[c], self._highs[c]
            start = float(np.median(lows)) if lows else 0.0
            end = float(np.median(highs)) if highs else float(top)
            if end <= start:
                end = start + 1.0
            channels.append(
                {
                    "label": name,
                    "color": _color(name) or next(spare),
                    "window": {"min": 0.0, "max": float(top), "start": start, "end": end},
                    "active": True,
                    "coefficient": 1.0,
                    "family": "linear",
                    "inverted": False,
                }
            )
        return {"channels": channels, "rdefs": {"defaultT": 0, "defaultZ": 0, "model": "color"}}

    def _attrs(self) -> dict[str, Any]:
        ome = {
            "version": "0.5",
            "multiscales": self._multiscales(self.path.name),
            "omero": self._omero(),
        }
        liveaug = {
            "format_version": FORMAT_VERSION,
            "software": {"name": "liveaug", "version": __version__},
            "created": self._created,
            "shape": list(self.shape),
            "dtype": self.dtype.name,
            "bit_depth": self.bit_depth,
            "pixel_size_um": self.pixel_size_um,
            "frame_interval_s": self.frame_interval_s,
            "image_channels": list(self.image_channels),
            "channel_names": list(self.channel_names),
            "truth": self.truth,
            "labels": list(LABELS) if self.truth else [],
            "closed": False,
            "metadata": self.metadata,
        }
        return {"ome": ome, "liveaug": liveaug}

    def _label_attrs(self, name: str) -> dict[str, Any]:
        return {
            "ome": {
                "version": "0.5",
                "multiscales": self._multiscales(name),
                "image-label": {"source": {"image": "../../"}},
            }
        }

    def _write_attrs(self, **extra: Any) -> None:
        """Rewrite the group (and label) metadata: scales, contrast windows, close status."""
        attrs = self._attrs()
        attrs["liveaug"].update(extra)
        self._group.update_attributes(attrs)
        for name in self._labels:
            self._group[f"labels/{name}"].update_attributes(self._label_attrs(name))

    # -- appending --------------------------------------------------------------------------

    def append(self, frame: Frame) -> None:
        """Write one frame: chunks, then the grown time axis, then the frame's log lines."""
        if self._closed:
            raise RuntimeError(f"{self.path}: session writer is closed")
        planes = self._planes(frame)
        t = self.n_frames
        self._write_chunks(t, planes, frame.truth)
        self._commit_shape(t + 1)
        if self._truth_log is not None and frame.truth is not None:
            _write_line(self._truth_log, _truth_line(t, frame.truth.cells))
        _write_line(self._frames_log, _frame_line(t, frame))
        self.n_frames = t + 1
        self._after_append(frame, planes)

    def _planes(self, frame: Frame) -> np.ndarray:
        """Validate a frame against the session layout; return its (C, H, W) image planes."""
        planes = [frame.image]
        if set(frame.channels) != set(self.channel_names):
            raise ValueError(
                f"frame {frame.index} carries channels {sorted(frame.channels)}, "
                f"the session records {list(self.channel_names)}"
            )
        planes += [frame.channels[name] for name in self.channel_names]
        if self.truth:
            if frame.truth is None:
                raise ValueError(f"frame {frame.index} has no truth; the session records truth")
            if "frame" in frame.truth.cells:
                raise ValueError("truth cell column 'frame' is reserved for the session")
            lengths = {len(col) for col in frame.truth.cells.values()}
            if len(lengths) > 1:
                raise ValueError(f"truth cell columns differ in length: {sorted(lengths)}")
            planes += [frame.truth.dapi, frame.truth.membrane]
            for field in LABELS.values():
                _check_plane(getattr(frame.truth, field), self.shape, np.dtype(np.uint32), field)
        for name, plane in zip(self.image_channels, planes, strict=True):
            _check_plane(plane, self.shape, self.dtype, name)
        return np.stack(planes)

    def _write_chunks(self, t: int, planes: np.ndarray, truth: Truth | None) -> None:
        """Write frame ``t``'s chunk files past the committed end of every array."""
        self._image_w[t] = planes
        if self.truth and truth is not None:
            for name, field in LABELS.items():
                self._labels[name][1][t, 0] = getattr(truth, field)

    def _commit_shape(self, n: int) -> None:
        """Grow the time axis of every array to ``n`` (one atomic ``zarr.json`` rename each)."""
        h, w = self.shape
        self._image.resize((n, len(self.image_channels), h, w))
        for array, _ in self._labels.values():
            array.resize((n, 1, h, w))

    def _after_append(self, frame: Frame, planes: np.ndarray) -> None:
        """Bookkeeping that is not needed to read the frame back: windows, scale, timestamps."""
        if self._first_ts is None:
            self._first_ts, self._clock = frame.timestamp_ns, frame.clock
        self._last_ts = frame.timestamp_ns
        n = self.n_frames
        if n <= _WINDOW_EARLY or n % _WINDOW_EVERY == 0:
            sample = planes[:, ::4, ::4].reshape(len(planes), -1)
            lo, hi = np.percentile(sample, _WINDOW_PERCENTILES, axis=1)
            for c in range(len(planes)):
                self._lows[c].append(float(lo[c]))
                self._highs[c].append(float(hi[c]))
        adopt_px = self.pixel_size_um is None and frame.pixel_size_um
        if adopt_px:
            self.pixel_size_um = float(frame.pixel_size_um)  # type: ignore[arg-type]
        if n in _WINDOW_UPDATES or adopt_px:
            self._write_attrs()

    # -- closing ----------------------------------------------------------------------------

    def close(self) -> None:
        """Finish the session: final contrast windows and scale, Parquet tables, closed flag."""
        if self._closed:
            return
        self._closed = True
        self._frames_log.close()
        if self._truth_log is not None:
            self._truth_log.close()
        sidecar = self.path / _SIDECAR
        records = _read_log(sidecar / _FRAMES_LOG, self.n_frames)
        if self.frame_interval_s is None:
            self.frame_interval_s = _median_interval_s(
                np.array([r["timestamp_ns"] for r in records], dtype=np.int64)
            )
        _write_parquet(_frames_table(records), sidecar / _FRAMES_PARQUET)
        if self.truth:
            _write_parquet(
                _read_truth_log(sidecar / _TRUTH_LOG, self.n_frames), sidecar / _TRUTH_PARQUET
            )
        self._write_attrs(
            closed=True,
            n_frames=self.n_frames,
            clock=self._clock,
            first_timestamp_ns=self._first_ts,
            last_timestamp_ns=self._last_ts,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SessionWriter({str(self.path)!r}, n_frames={self.n_frames})"


# -- reader -------------------------------------------------------------------------------------


class Session:
    """A recorded session opened for reading (use :meth:`Session.open`).

    After a crash it holds the frames that were complete in both the arrays and the frame log.

    Attributes
    ----------
    path : Path
    n_frames : int
    shape : (int, int)
        Frame height and width.
    dtype : numpy.dtype
    bit_depth : int
    pixel_size_um, frame_interval_s : float or None
        Physical scale; an interval not given at recording is measured from the timestamps.
    channel_names : tuple of str
        Real fluorescence channels (``Frame.channels``), in storage order.
    image_channels : tuple of str
        Every channel of image array ``0``, in order.
    has_truth : bool
    metadata : dict
        Session-level settings given to the writer (source, camera, simulator …).
    closed_cleanly : bool
        False when the writer never reached ``close()`` (killed, crashed).
    """

    def __init__(
        self,
        path: Path,
        attrs: dict[str, Any],
        image: zarr.Array,
        labels: dict[str, zarr.Array],
        records: list[dict[str, Any]],
    ) -> None:
        la = attrs["liveaug"]
        self.path = path
        self.shape = (int(la["shape"][0]), int(la["shape"][1]))
        self.dtype = np.dtype(la["dtype"])
        self.bit_depth = int(la["bit_depth"])
        self.pixel_size_um: float | None = la.get("pixel_size_um")
        self.channel_names: tuple[str, ...] = tuple(la.get("channel_names", ()))
        self.image_channels: tuple[str, ...] = tuple(la["image_channels"])
        self.has_truth = bool(la.get("truth", False))
        self.metadata: dict[str, Any] = la.get("metadata", {})
        self.closed_cleanly = bool(la.get("closed", False))
        self._attrs = attrs
        self._image = image
        self._labels = labels
        self._records = records
        self.n_frames = len(records)
        self.timestamps_ns = np.array([r["timestamp_ns"] for r in records], dtype=np.int64)
        self.frame_interval_s: float | None = la.get("frame_interval_s") or _median_interval_s(
            self.timestamps_ns
        )
        self._truth: pd.DataFrame | None = None
        self._truth_bounds: np.ndarray | None = None

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Session:
        """Open a session; a missing, foreign or corrupt one raises a :class:`SessionError`."""
        path = Path(path)
        attrs = _read_group_attrs(path)
        la = attrs["liveaug"]
        try:
            version = int(la.get("format_version", 0))
            n_channels = len(la["image_channels"])
            shape, dtype, has_truth = tuple(la["shape"]), np.dtype(la["dtype"]), la["truth"]
            int(la["bit_depth"])  # read by __init__
        except (KeyError, TypeError, ValueError) as exc:
            raise SessionError(
                f"{path}: the liveaug metadata in zarr.json is incomplete ({exc!r})",
                "the session is corrupt; record it again",
            ) from None
        if version > FORMAT_VERSION:
            raise SessionError(
                f"{path} was written by a newer liveaug (session format {version})",
                "upgrade liveaug to read it",
            )
        store = LocalStore(path, read_only=True)
        image = _open_array(store, path, "0", (n_channels, *shape), dtype)
        labels = {}
        if has_truth:
            for name in LABELS:
                labels[name] = _open_array(
                    store, path, f"labels/{name}/0", (1, *shape), np.dtype(np.uint32)
                )
        n_arrays = min([image.shape[0], *(a.shape[0] for a in labels.values())])
        log_path = path / _SIDECAR / _FRAMES_LOG
        if not log_path.is_file():
            raise SessionError(
                f"{path}: the frame log {_SIDECAR}/{_FRAMES_LOG} is missing",
                "the session is incomplete; copy it again or record it again",
            )
        records = _read_log(log_path, n_arrays)
        return cls(path, attrs, image, labels, records)

    def __len__(self) -> int:
        return self.n_frames

    def __iter__(self) -> Iterator[Frame]:
        return (self.frame(i) for i in range(self.n_frames))

    def __repr__(self) -> str:
        return (
            f"Session({str(self.path)!r}, n_frames={self.n_frames}, shape={self.shape}, "
            f"dtype={self.dtype.name}, channels={list(self.image_channels)})"
        )

    def frame(self, i: int) -> Frame:
        """Frame ``i`` (0-based position in the session) as it was recorded, truth included."""
        if not 0 <= i < self.n_frames:
            raise IndexError(f"frame {i} out of range for a session of {self.n_frames} frames")
        planes = self._read(self._image, "0", i, len(self.image_channels))
        named = dict(zip(self.image_channels, planes, strict=True))
        rec = self._records[i]
        truth = None
        if self.has_truth:
            cells_l, nuc_l = (
                self._read(self._labels[name], f"labels/{name}/0", i, 1)[0] for name in LABELS
            )
            truth = Truth(
                dapi=named[TRUTH_CHANNELS[0]],
                membrane=named[TRUTH_CHANNELS[1]],
                cell_labels=cells_l,
                nucleus_labels=nuc_l,
                cells=self._truth_rows(i),
            )
        return Frame(
            image=named[BRIGHTFIELD],
            index=int(rec["index"]),
            timestamp_ns=int(rec["timestamp_ns"]),
            clock=rec.get("clock", "host"),
            pixel_format=rec.get("pixel_format", ""),
            bit_depth=int(rec.get("bit_depth", self.bit_depth)),
            pixel_size_um=rec.get("pixel_size_um", self.pixel_size_um),
            channels={name: named[name] for name in self.channel_names},
            meta=dict(rec.get("meta", {})),
            truth=truth,
        )

    def frame_table(self) -> pd.DataFrame:
        """Per-frame metadata (index, timestamp_ns, clock, …, ``meta.*``), one row per frame."""
        return _frames_table(self._records)

    def require_truth(self) -> None:
        """Raise a one-line error unless the session carries ground truth (to score against)."""
        if not self.has_truth:
            raise SessionError(
                f"{self.path} has no ground truth",
                "evaluate on a session made by `liveaug simulate`",
            )

    def truth_cells(self) -> pd.DataFrame | None:
        """Every frame's truth rows with a ``frame`` column, or None for a session without truth."""
        if not self.has_truth:
            return None
        if self._truth is None:
            parquet = self.path / _SIDECAR / _TRUTH_PARQUET
            if self.closed_cleanly and parquet.is_file():
                try:
                    table = pd.read_parquet(parquet)
                except Exception as exc:
                    raise SessionError(
                        f"{parquet} is unreadable ({type(exc).__name__}: {exc})",
                        f"delete it to fall back to {_TRUTH_LOG}",
                    ) from None
            else:
                table = _read_truth_log(self.path / _SIDECAR / _TRUTH_LOG, self.n_frames)
            table = table[table["frame"] < self.n_frames].reset_index(drop=True)
            frames = table["frame"].to_numpy()
            self._truth_bounds = np.searchsorted(frames, np.arange(self.n_frames + 1))
            self._truth = table
        return self._truth

    def _truth_rows(self, i: int) -> dict[str, np.ndarray]:
        table = self.truth_cells()
        assert table is not None and self._truth_bounds is not None
        lo, hi = self._truth_bounds[i], self._truth_bounds[i + 1]
        return {c: table[c].to_numpy()[lo:hi] for c in table.columns if c != "frame"}

    def _read(self, array: zarr.Array, key: str, t: int, n_channels: int) -> np.ndarray:
        """Frame ``t`` of one array as (C, H, W); a missing or damaged chunk names the frame."""
        for c in range(n_channels):
            chunk = self.path / key / "c" / str(t) / str(c) / "0" / "0"
            if not chunk.is_file():
                raise SessionError(
                    f"{self.path}: frame {t} is incomplete (chunk {chunk.relative_to(self.path)} "
                    "is missing)",
                    "the session was damaged after recording; copy it again or re-record",
                )
            damage = _blosc_damage(chunk)
            if damage:
                raise SessionError(
                    f"{self.path}: frame {t} is unreadable (chunk "
                    f"{chunk.relative_to(self.path)} {damage})",
                    "a chunk file is truncated or corrupt; copy the session again or re-record",
                )
        try:
            return np.asarray(array[t])
        except Exception as exc:
            raise SessionError(
                f"{self.path}: frame {t} is unreadable (array {key}: {type(exc).__name__}: {exc})",
                "a chunk file is truncated or corrupt; copy the session again or re-record",
            ) from None


# -- helpers ------------------------------------------------------------------------------------
_BLOSC_HEADER = 16


def _blosc_damage(chunk: Path) -> str | None:
    """What is wrong with a Blosc chunk file's size, or None; checked before decompressing
    because c-blosc trusts the header's compressed size and reads past the end of a shorter
    buffer (a segmentation fault, not an error, when that memory is unmapped)."""
    try:
        with chunk.open("rb") as f:
            header = f.read(_BLOSC_HEADER)
            size = os.fstat(f.fileno()).st_size
    except OSError as exc:
        return f"cannot be read: {exc.strerror}"
    if len(header) < _BLOSC_HEADER:
        return f"holds {size} bytes, less than a Blosc header"
    cbytes = int.from_bytes(header[12:16], "little")
    if cbytes != size:
        return f"holds {size} of its {cbytes} bytes"
    return None


def _positive_or_none(value: float | None, name: str) -> float | None:
    if value is None:
        return None
    value = float(value)
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a positive number, not {value}")
    return value


def _color(name: str) -> str | None:
    low = name.lower()
    for key, color in _COLORS.items():
        if key in low:
            return color
    return None


def _jsonable(obj: Any) -> Any:
    """``json.dumps`` fallback: numpy scalars and arrays as Python values, anything else as str.

    A setting that is not JSON never stops a recording; it is stored as its ``str()``.
    """
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, default=_jsonable, separators=(",", ":"))


def _check_plane(
    plane: np.ndarray, shape: tuple[int, int], dtype: np.dtype[Any], name: str
) -> None:
    if plane.shape != shape or plane.dtype != dtype:
        raise ValueError(
            f"{name} is {plane.dtype}{list(plane.shape)}, the session records {dtype}{list(shape)}"
        )


def _prepare_path(path: Path, overwrite: bool) -> None:
    """Refuse an existing path, or with ``overwrite`` delete it if it is a liveaug session."""
    if not (path.exists() or path.is_symlink()):
        path.parent.mkdir(parents=True, exist_ok=True)
        return
    if not overwrite:
        raise SessionError(
            f"{path} already exists", "choose another path, or overwrite it (--overwrite)"
        )
    if path.is_dir() and any(path.iterdir()):
        try:
            _read_group_attrs(path)
        except SessionError:
            raise SessionError(
                f"{path} exists and is not a liveaug session, so it is not overwritten",
                "choose another path, or delete it yourself",
            ) from None
        shutil.rmtree(path)
    elif path.is_dir():
        path.rmdir()
    else:
        raise SessionError(
            f"{path} exists and is a file, not a session, so it is not overwritten",
            "choose another path, or delete it yourself",
        )


def _create_growing(
    group: zarr.Group, name: str, n_channels: int, h: int, w: int, dtype: np.dtype[Any]
) -> tuple[zarr.Array, zarr.Array]:
    """Create a (0, C, H, W) array; return it and an unsaved view that can write past its end.

    The view shares the array's store and metadata except for a huge time extent that is never
    written to disk: chunk keys depend only on chunk coordinates, so writing frame ``t`` through
    the view puts complete chunk files in place before the real array is resized to include them.
    """
    shuffle = "bitshuffle" if dtype.itemsize == 2 else "shuffle"
    array = group.create_array(
        name,
        shape=(0, n_channels, h, w),
        chunks=(1, 1, h, w),
        dtype=dtype,
        fill_value=0,
        compressors=BloscCodec(cname="lz4", clevel=5, shuffle=shuffle),
        chunk_key_encoding={"name": "default", "separator": "/"},
        dimension_names=("t", "c", "y", "x"),
        config={"write_empty_chunks": True},
    )
    meta = array.metadata.update_shape((_WRITE_VIEW_FRAMES, n_channels, h, w))
    view = zarr.Array(zarr.AsyncArray(meta, array.store_path, array.async_array.config))
    return array, view


def _write_line(f: Any, line: str) -> None:
    """Append one whole line to an unbuffered log; a failed write is cut back off the file.

    After a failure (disk full …) the log still ends in a complete line, so a retried append
    neither glues onto a fragment nor leaves one in the middle of the log.
    """
    data = (line + "\n").encode()
    start = os.fstat(f.fileno()).st_size
    try:
        done = 0
        while done < len(data):
            done += f.write(data[done:])
    except BaseException:
        os.ftruncate(f.fileno(), start)
        raise


def _frame_line(t: int, frame: Frame) -> str:
    return _dumps(
        {
            "t": t,
            "index": int(frame.index),
            "timestamp_ns": int(frame.timestamp_ns),
            "clock": frame.clock,
            "pixel_format": frame.pixel_format,
            "bit_depth": int(frame.bit_depth),
            "pixel_size_um": frame.pixel_size_um,
            "meta": frame.meta,
        }
    )


def _truth_line(t: int, cells: Mapping[str, np.ndarray]) -> str:
    arrays = {name: np.asarray(col) for name, col in cells.items()}
    return _dumps(
        {
            "frame": t,
            "dtypes": {name: a.dtype.str for name, a in arrays.items()},
            "columns": {name: a.tolist() for name, a in arrays.items()},
        }
    )


def _read_lines(path: Path, limit: int | None) -> list[dict[str, Any]]:
    """The first ``limit`` (or all) complete JSON lines of an append-only log.

    A line's newline is the last byte written, so a crash can only leave an unterminated tail,
    which is ignored; a terminated line that is not a JSON object is corruption.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SessionError(f"{path} is unreadable ({exc.strerror})", "check permissions") from None
    out = []
    for n, line in enumerate(data.split(b"\n")[:-1][:limit]):
        try:
            rec = json.loads(line)
        except ValueError:
            raise SessionError(
                f"{path}: line {n + 1} is not valid JSON", "the session is corrupt; re-record it"
            ) from None
        if not isinstance(rec, dict):
            raise SessionError(
                f"{path}: line {n + 1} is not a JSON object", "the session is corrupt; re-record it"
            )
        out.append(rec)
    return out


def _read_log(path: Path, n_arrays: int) -> list[dict[str, Any]]:
    """The frame records that are complete in the log and in the arrays (``n_arrays`` frames)."""
    records = _read_lines(path, n_arrays)
    for t, rec in enumerate(records):
        if rec.get("t") != t or "timestamp_ns" not in rec or "index" not in rec:
            raise SessionError(
                f"{path}: line {t + 1} does not describe frame {t}",
                "the session is corrupt; re-record it",
            )
    return records


def _read_truth_log(path: Path, n_frames: int) -> pd.DataFrame:
    """Truth rows of the first ``n_frames`` frames from the JSON-lines log, dtypes restored.

    A frame whose append was retried after a failure has two lines; the later one counts.
    """
    by_frame: dict[int, dict[str, np.ndarray]] = {}
    for n, rec in enumerate(_read_lines(path, None)):
        try:
            if rec["frame"] >= n_frames:
                continue
            cols = {
                name: np.asarray(values, dtype=np.dtype(rec["dtypes"][name]))
                for name, values in rec["columns"].items()
            }
            rows = len(next(iter(cols.values()))) if cols else 0
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SessionError(
                f"{path}: line {n + 1} is not a truth record ({exc!r})",
                "the session is corrupt; re-record it",
            ) from None
        by_frame[rec["frame"]] = {"frame": np.full(rows, rec["frame"], dtype=np.int64), **cols}
    per_frame = [by_frame[t] for t in sorted(by_frame)]
    if not per_frame:
        return pd.DataFrame({"frame": np.zeros(0, np.int64)})
    names = list(per_frame[0])
    if all(list(cols) == names for cols in per_frame):  # the usual case: one schema throughout
        return pd.DataFrame({name: np.concatenate([c[name] for c in per_frame]) for name in names})
    return pd.concat([pd.DataFrame(c) for c in per_frame], ignore_index=True)


def _frames_table(records: list[dict[str, Any]]) -> pd.DataFrame:
    if not records:
        return pd.DataFrame(
            {
                "t": np.zeros(0, np.int64),
                "index": np.zeros(0, np.int64),
                "timestamp_ns": np.zeros(0, np.int64),
            }
        )
    return pd.json_normalize(records, sep=".")


def _write_parquet(table: pd.DataFrame, path: Path) -> None:
    """Write a Parquet export atomically; a table Arrow cannot type is logged, not fatal."""
    tmp = path.with_name(path.name + ".partial")
    try:
        table.to_parquet(tmp, index=False)
    except Exception as exc:  # mixed-type meta values: the JSON log still has everything
        log.warning("%s not written (%s: %s); the .jsonl log holds the data", path, type(exc), exc)
        tmp.unlink(missing_ok=True)
        return
    os.replace(tmp, path)


def _median_interval_s(timestamps_ns: np.ndarray) -> float | None:
    steps = np.diff(timestamps_ns)
    steps = steps[steps > 0]
    return float(np.median(steps)) / 1e9 if len(steps) else None


def _read_group_attrs(path: Path) -> dict[str, Any]:
    """The root ``zarr.json`` attributes of a liveaug session, or a SessionError saying why not."""
    if not path.exists():
        raise SessionError(f"{path} does not exist", f"check the path, or {_RECORD_HINT}")
    if not path.is_dir():
        raise SessionError(
            f"{path} is a file, not a session (an OME-Zarr directory)",
            f"give the .ome.zarr directory, or {_RECORD_HINT}",
        )
    meta_path = path / "zarr.json"
    if not meta_path.is_file():
        hint = " (it is zarr v2)" if (path / ".zgroup").exists() else ""
        raise SessionError(
            f"{path} is not an OME-Zarr v3 directory{hint}: no zarr.json",
            f"give a session directory, or {_RECORD_HINT}",
        )
    try:
        meta = json.loads(meta_path.read_bytes())
    except (OSError, ValueError) as exc:
        raise SessionError(
            f"{meta_path} is corrupt ({type(exc).__name__}: {exc})",
            "the session's metadata was damaged; restore it from a copy or re-record",
        ) from None
    if not isinstance(meta, dict):
        raise SessionError(
            f"{meta_path} is corrupt (not a JSON object)",
            "the session's metadata was damaged; restore it from a copy or re-record",
        )
    attrs = meta.get("attributes")
    if meta.get("node_type") != "group" or not isinstance(attrs, dict):
        raise SessionError(
            f"{path} is not a liveaug session (zarr.json is not a group with attributes)",
            _RECORD_HINT,
        )
    if not isinstance(attrs.get("liveaug"), dict):
        raise SessionError(
            f"{path} is not a liveaug session (no liveaug metadata in zarr.json)", _RECORD_HINT
        )
    return attrs


def _open_array(
    store: LocalStore, path: Path, key: str, frame_shape: tuple[int, ...], dtype: np.dtype[Any]
) -> zarr.Array:
    """Open one array read-only and check it has the layout the metadata promises."""
    try:
        array = zarr.open_array(store, path=key, mode="r", zarr_format=3)
    except Exception as exc:
        what = "missing" if not (path / key / "zarr.json").is_file() else "unreadable"
        detail = "" if what == "missing" else f" ({type(exc).__name__}: {exc})"
        raise SessionError(
            f"{path}: array {key} is {what}{detail}",
            "the session is incomplete or corrupt; copy it again or re-record",
        ) from None
    if tuple(array.shape[1:]) != frame_shape or array.dtype != dtype:
        raise SessionError(
            f"{path}: array {key} is {array.dtype}{list(array.shape)}, "
            f"the session metadata says {dtype}[t, {', '.join(map(str, frame_shape))}]",
            "the session is corrupt; re-record it",
        )
    return array
