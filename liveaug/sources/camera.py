"""A GenICam camera as a :class:`~liveaug.sources.base.Source`, through harvesters.

``CameraSource(device, cti=[...], settings=CameraSettings(...))`` opens one camera, configures it
through its node map (:mod:`liveaug.sources.camera_settings`), and ``read()`` returns one
:class:`~liveaug.frame.Frame` per delivered buffer. Device discovery lives in
:mod:`liveaug.sources.gentl`, pixel decoding in :mod:`liveaug.sources.pixels`; the names a caller
needs are re-exported here.

Buffers: each buffer is copied into the Frame's own array and queued back to the producer before
``read`` returns (copy inside the fetch), so the producer never runs out because the pipeline is
slow. ``read`` returns buffers oldest first (what a recorder needs: nothing is skipped), or with
``latest=True`` drains what is waiting and returns only the newest (what a live view needs),
counting the skipped ones. Gaps in the device's frame ids count frames that never reached the host.

Waiting: genicam's event wait holds the GIL for its whole timeout (measured: a Python thread
beside a 1 s wait ran at <1 % of its speed), so the source polls the stream's "awaiting delivery"
counter with ``time.sleep`` in between (``poll_s``, 0.5 ms by default) and only fetches once a
buffer is there; the pipeline's other threads keep the interpreter.

Faults: a fetch that times out (``fetch_timeout_s``) or a device that stops answering becomes a
:class:`FaultEvent` on the ``fault`` signal (psygnal; no Qt). The source then reconnects with
exponential backoff (:class:`Reconnect`), re-applies the settings, and ``read`` carries on; the
frame index keeps counting up so a recorder appends seamlessly. When every attempt fails ``read``
raises :class:`SourceError` and the caller closes its recording cleanly.

Timestamps: the buffer's device timestamp when the producer has one (``Frame.clock == "device"``),
the host's monotonic clock right after the fetch otherwise (``"host"``); ``meta`` always carries
``host_timestamp_ns`` too.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from psygnal import Signal

from liveaug.errors import EndOfStream, SourceError
from liveaug.frame import Frame
from liveaug.sources import pixels
from liveaug.sources.base import SourceInfo
from liveaug.sources.camera_settings import (
    CameraSettings,
    SettingsReport,
    apply_settings,
    offered_settings,
    read_settings,
)
from liveaug.sources.gentl import (
    ENV_VAR,
    HUB,
    DeviceEntry,
    bundled_simulator_cti,
    find_producers,
    list_devices,
)

__all__ = [
    "ENV_VAR",
    "AcquisitionStats",
    "CameraSettings",
    "CameraSource",
    "CameraTimeout",
    "DeviceEntry",
    "FaultEvent",
    "Reconnect",
    "SettingsReport",
    "bundled_simulator_cti",
    "describe_device",
    "find_producers",
    "list_devices",
]

_LOG = logging.getLogger(__name__)

#: Settings that fix the image geometry; restored on reconnect even when the user set none.
_SHAPE_KEYS = ("pixel_format", "binning_x", "binning_y", "width", "height", "offset_x", "offset_y")

#: Default buffer pool: this many seconds of frames, MIN_BUFFERS..MAX_BUFFERS, BUFFER_BYTES at most.
BUFFER_RESERVE_S = 0.25
MIN_BUFFERS, MAX_BUFFERS = 8, 64
BUFFER_BYTES = 256 << 20

#: Counters a producer may offer on its stream node map (SFNC / vendor names).
_STREAM_NODES = (
    "StreamDeliveredFrameCount",
    "StreamLostFrameCount",
    "StreamDroppedFrameCount",
    "StreamIncompleteFrameCount",
    "StreamBufferUnderrunCount",
    "StreamFailedBufferCount",
)


class _GeometryChanged(SourceError):
    """The camera reconnected with another image size or dtype: the stream cannot go on."""


class CameraTimeout(SourceError, TimeoutError):
    """``read(timeout_s)`` saw no frame within the caller's timeout (not a fault by itself)."""


@dataclass(frozen=True, slots=True)
class Reconnect:
    """Backoff when the camera is lost: ``attempts`` tries, waiting ``first_delay_s`` before the
    first and multiplying by ``factor`` up to ``max_delay_s``. ``attempts=0`` never reconnects."""

    attempts: int = 5
    first_delay_s: float = 0.25
    factor: float = 2.0
    max_delay_s: float = 4.0

    def delays(self) -> Iterator[float]:
        """The wait before each attempt, in seconds."""
        delay = self.first_delay_s
        for _ in range(self.attempts):
            yield min(delay, self.max_delay_s)
            delay *= self.factor


FaultKind = Literal["timeout", "lost", "reconnecting", "reconnected", "gave_up"]


@dataclass(frozen=True, slots=True)
class FaultEvent:
    """Something went wrong (or right again) with the camera while streaming.

    ``kind``: ``timeout`` (no frame within ``fetch_timeout_s``), ``lost`` (the device stopped
    answering), ``reconnecting`` (attempt ``attempt`` starts after ``delay_s``), ``reconnected``,
    ``gave_up`` (all attempts failed; ``read`` raises next). ``frames`` is how many frames the
    source had delivered by then; ``message`` is one line for the viewer's status bar.
    """

    kind: FaultKind
    message: str
    camera: str
    frames: int
    attempt: int = 0
    delay_s: float = 0.0
    time_ns: int = field(default_factory=time.monotonic_ns)


@dataclass(frozen=True, slots=True)
class AcquisitionStats:
    """Frame accounting since ``open()``.

    ``delivered``: frames ``read`` returned. ``skipped``: older frames dropped by ``latest=True``
    because a newer one was waiting. ``gaps``: frame ids the device numbered but the host never got
    (no free buffer, or lost in transport). ``incomplete``: buffers the producer marked
    incomplete. ``buffers_held``: buffers fetched and not yet given back to the producer (0
    between reads: nothing leaks). ``stream``: the producer's own counters for the current
    connection, when it offers them (GenTL ``num_delivered``/``num_underrun``, SFNC
    ``Stream…Count`` nodes).
    """

    delivered: int = 0
    skipped: int = 0
    gaps: int = 0
    incomplete: int = 0
    timeouts: int = 0
    reconnects: int = 0
    buffers_held: int = 0
    stream: dict[str, int] = field(default_factory=dict)

    @property
    def host_dropped(self) -> int:
        """Frames the camera made that the pipeline did not see: skipped + gaps."""
        return self.skipped + self.gaps


class CameraSource:
    """One GenICam camera, opened exclusively; satisfies :class:`~liveaug.sources.base.Source`.

    Parameters
    ----------
    device : str, int or None
        Which camera: list index (int), serial, id or model (text; ``serial:``/``id:``/``model:``/
        ``index:`` prefixes force one), or None when there is only one.
    cti : paths
        GenTL producers (files or folders) in addition to those in ``GENICAM_GENTL64_PATH``.
    settings : CameraSettings
        Values to apply on open (and again after a reconnect).
    strict : bool
        A setting the camera does not offer is an error (True) or skipped and reported (False).
    latest : bool
        ``read`` returns the newest waiting frame and counts the older ones as skipped.
    fetch_timeout_s : float or None
        How long without a frame is a fault; None: 1 s + 3 frame periods + the exposure.
    num_buffers : int or None
        Buffers announced to the producer; None: enough for ``BUFFER_RESERVE_S`` of frames (8 to
        64, at most ``BUFFER_BYTES`` in all). They absorb stalls of the reading thread (the GIL
        held by other Python threads) without dropping frames.
    reconnect : Reconnect
        Backoff policy after a fault.
    pixel_size_um : float or None
        Sample-plane pixel size (sensor pitch x binning / magnification), copied into frames.
    poll_s : float
        Sleep between checks for a delivered buffer (see the module docstring).

    Signals
    -------
    fault : Signal(FaultEvent)
        Emitted from the reading thread on timeouts, loss, reconnection attempts and their outcome.
    """

    fault = Signal(FaultEvent)

    def __init__(
        self,
        device: str | int | None = None,
        *,
        cti: Iterable[str | os.PathLike[str]] = (),
        use_env: bool = True,
        settings: CameraSettings | None = None,
        strict: bool = True,
        latest: bool = False,
        fetch_timeout_s: float | None = None,
        num_buffers: int | None = None,
        reconnect: Reconnect | None = None,
        pixel_size_um: float | None = None,
        poll_s: float = 0.0005,
    ) -> None:
        self.device = device
        self.cti = [os.fspath(p) for p in cti]
        self.use_env = use_env
        self.settings = settings or CameraSettings()
        self.strict = strict
        self.latest = latest
        self.fetch_timeout_s = fetch_timeout_s
        self.num_buffers = num_buffers
        self.reconnect = reconnect or Reconnect()
        self.pixel_size_um = pixel_size_um
        self.poll_s = poll_s
        self.entry: DeviceEntry | None = None
        self.report = SettingsReport()
        self._files: list[Any] = []
        self._acquirer: Any = None
        self._stream: Any = None
        self._info: SourceInfo | None = None
        self._snapshot: dict[str, Any] = {}
        self._lock = threading.RLock()
        self._closing = threading.Event()
        self._opened = False
        self._gone = False  # every reconnection failed: read ends the stream
        self._streaming = False
        self._last_frame_at = 0.0  # monotonic time of the last frame (or of the stream start)
        self._counts = dict.fromkeys(
            ("delivered", "skipped", "gaps", "incomplete", "timeouts", "reconnects"), 0
        )
        self._index_next = 0  # Frame.index keeps counting up across reconnects
        self._held = 0  # buffers fetched and not yet given back
        self._fetch_timeout = 1.0
        self._frame_meta: dict[str, Any] = {}
        self._format = pixels.lookup("Mono8")
        self._reset_connection_state()

    # ------------------------------------------------------------------ Source protocol

    def open(self) -> SourceInfo:
        """Find the producers, open and configure the camera, start streaming."""
        with self._lock:
            info = self.configure()
            if not self._streaming:
                self._start()
            return info

    def configure(self) -> SourceInfo:
        """Open and configure the camera without streaming yet, so a recorder can create its
        session first (frames would otherwise pile up in the producer meanwhile); ``open`` then
        starts the stream."""
        with self._lock:
            if self._opened:
                assert self._info is not None
                return self._info
            # A fresh stream: counters, frame index and the expected geometry start over.
            self._closing.clear()
            self._gone = False
            self._info = None
            self._counts = dict.fromkeys(self._counts, 0)
            self._index_next = 0
            self._held = 0
            self._files = find_producers(self.cti, use_env=self.use_env)
            self._connect(self.device, self.settings, start=False)
            self._opened = True
            assert self._info is not None
            return self._info

    def read(self, timeout_s: float | None = None) -> Frame:
        """The next frame (oldest first, or the newest with ``latest``); blocks until one arrives.

        ``fetch_timeout_s`` without a frame is a fault (whatever the ``timeout_s`` of each call):
        faults are reported on ``fault`` and recovered from by reconnecting. Raises
        :class:`CameraTimeout` (a ``TimeoutError``) when ``timeout_s`` passes without a frame,
        ``SourceError`` once when the camera is gone for good (``EndOfStream`` after that), and
        ``EndOfStream`` when the source is closed meanwhile.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._lock:
            if self._gone:
                raise EndOfStream
            if not self._opened:
                raise SourceError("camera is not open", "call open() before read()")
            while True:
                if self._closing.is_set():
                    raise EndOfStream
                if self._acquirer is None:
                    self._recover()
                    continue
                if not self._streaming:
                    self._start()
                now = time.monotonic()
                fault_at = self._last_frame_at + self._fetch_timeout
                wait = fault_at - now if deadline is None else min(deadline, fault_at) - now
                try:
                    raw = self._wait_buffer(max(0.0, wait))
                    if raw is not None:
                        frame = self._to_frame(raw)
                        self._last_frame_at = time.monotonic()
                        return frame
                except SourceError:
                    raise
                except Exception as exc:  # a lost device raises GenTL/GenApi errors from anywhere
                    self._lost(exc)
                    continue
                if self._closing.is_set():
                    raise EndOfStream
                if time.monotonic() >= fault_at:
                    self._timed_out()
                    continue
                raise CameraTimeout(
                    f"no frame from {self.name} within {timeout_s:g} s",
                    "check the trigger mode and exposure, or read with a longer timeout",
                )

    def close(self) -> None:
        """Stop streaming and release the camera (safe twice, and from another thread: a ``read``
        in progress returns ``EndOfStream`` within ``poll_s``)."""
        self._closing.set()
        with self._lock:
            self._disconnect()
            self._opened = False

    def __enter__(self) -> CameraSource:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ information

    @property
    def name(self) -> str:
        """``vendor model #serial`` once open, else what was asked for."""
        return self.entry.label if self.entry else f"camera {self.device!r}"

    @property
    def info(self) -> SourceInfo | None:
        """What :meth:`open` returned (None before)."""
        return self._info

    @property
    def acquirer(self) -> Any:
        """harvesters' ImageAcquirer of the current connection (None while disconnected), for
        features liveaug does not wrap; do not stop or destroy it behind the source's back."""
        return self._acquirer

    @property
    def node_map(self) -> Any:
        """The camera's GenICam node map (harvesters/genicam) of the current connection."""
        return None if self._acquirer is None else self._acquirer.remote_device.node_map

    def offered(self) -> dict[str, dict[str, Any] | None]:
        """What the camera offers for each setting (range, increment, choices), None if absent."""
        if self.node_map is None:
            raise SourceError("camera is not open", "call open() first")
        return offered_settings(self.node_map)

    def stats(self) -> AcquisitionStats:
        """Frame accounting so far, with the producer's own stream counters when it offers them."""
        return AcquisitionStats(
            **self._counts, buffers_held=self._held, stream=self._stream_counters()
        )

    # ------------------------------------------------------------------ connection

    def _reset_connection_state(self) -> None:
        self._last_id: int | None = None
        self._id_base: int | None = None  # device frame id of Frame.index 0 on this connection
        self._device_clock: bool | None = None
        self._tick_ns = 0.0
        self._countable: bool | None = None  # producer reports buffers awaiting delivery

    def _start(self) -> None:
        try:
            self._acquirer.start()
        except Exception as exc:  # the camera refused to stream (busy, bandwidth)
            self._disconnect()
            reason = str(exc).split("(Message from the source:")[0].strip()
            raise SourceError(
                f"{self.name} did not start streaming: {reason or exc.__class__.__name__}",
                "close other programs using the camera and try again",
            ) from None
        self._streaming = True
        self._last_frame_at = time.monotonic()

    def _connect(
        self, selector: str | int | None, settings: CameraSettings, *, start: bool = True
    ) -> None:
        acquirer, entry = HUB.create(self._files, selector)
        try:
            node_map = acquirer.remote_device.node_map
            report = apply_settings(node_map, settings, camera=entry.label, strict=self.strict)
            snapshot = read_settings(node_map)
            fmt = snapshot.get("pixel_format")
            if fmt is None:
                raise SourceError(
                    f"{entry.label} has no PixelFormat node", "this camera is not a GenICam imager"
                )
            pf = pixels.lookup(fmt)
            handling = getattr(acquirer.data_streams[0].node_map, "StreamBufferHandlingMode", None)
            if handling is not None and "OldestFirst" in handling.symbolics:
                handling.value = "OldestFirst"  # in order, nothing overwritten: recorders see all
            acquirer.num_buffers = max(
                self._buffer_count(acquirer, snapshot.get("frame_rate_hz")),
                acquirer.min_num_buffers,
            )
            if start:
                acquirer.start()
        except BaseException:
            HUB.release(acquirer)
            raise
        self._acquirer, self.entry = acquirer, entry
        self._streaming = start
        self._last_frame_at = time.monotonic()
        self._stream = acquirer.data_streams[0].module
        self.report, self._snapshot = report, snapshot
        rate = snapshot.get("frame_rate_hz")
        exposure_s = snapshot.get("exposure_us", 0.0) / 1e6
        self._fetch_timeout = self.fetch_timeout_s or 1.0 + exposure_s + (3 / rate if rate else 1.0)
        self._frame_meta = {
            k: snapshot[k] for k in ("exposure_us", "gain_db", "frame_rate_hz") if k in snapshot
        }
        self._format = pf
        self._reset_connection_state()
        camera = {
            "vendor": entry.vendor,
            "model": entry.model,
            "serial": entry.serial,
            "id": entry.id,
            "producer": entry.producer,
            **snapshot,
        }
        if report.unsupported:
            camera["unsupported"] = list(report.unsupported)
        if report.adjusted:
            camera["adjusted"] = {k: [a, b] for k, (a, b) in report.adjusted.items()}
        shape = (int(snapshot.get("height", 0)), int(snapshot.get("width", 0)))
        if self._info is not None and (shape, pf.dtype.name) != (
            self._info.shape,
            self._info.dtype,
        ):
            self._disconnect()
            raise _GeometryChanged(
                f"{entry.label} came back with {shape[1]}x{shape[0]} {pf.name} "
                f"instead of {self._info.shape[1]}x{self._info.shape[0]} {self._info.dtype}",
                "frames read so far are kept; start a new recording",
            )
        self._info = SourceInfo(
            name=entry.label,
            shape=shape,
            dtype=pf.dtype.name,
            bit_depth=pf.bit_depth,
            pixel_size_um=self.pixel_size_um,
            frame_rate_hz=rate,
            settings={"camera": camera},
        )

    def _buffer_count(self, acquirer: Any, rate: float | None) -> int:
        """``num_buffers``, or enough for ``BUFFER_RESERVE_S`` of frames within ``BUFFER_BYTES``."""
        if self.num_buffers:
            return self.num_buffers
        want = math.ceil(BUFFER_RESERVE_S * rate) if rate else MIN_BUFFERS
        node_map = acquirer.remote_device.node_map
        payload = _optional(getattr(node_map, "PayloadSize", None), "value", 0) or 0
        fit = BUFFER_BYTES // payload if payload else MAX_BUFFERS
        return int(max(MIN_BUFFERS, min(want, MAX_BUFFERS, fit)))

    def _disconnect(self) -> None:
        acquirer, self._acquirer, self._stream = self._acquirer, None, None
        self._streaming = False
        if acquirer is not None:
            HUB.release(acquirer)

    def _emit(self, kind: FaultKind, message: str, **extra: Any) -> None:
        event = FaultEvent(kind, message, self.name, self._counts["delivered"], **extra)
        _LOG.info("%s", message)
        self.fault.emit(event)

    def _lost(self, exc: BaseException) -> None:
        reason = str(exc).split("(Message from the source:")[0].strip() or exc.__class__.__name__
        self._disconnect()
        self._held = 0  # the producer reclaims every buffer when the stream is torn down
        self._emit("lost", f"{self.name} stopped answering ({reason})")

    def _timed_out(self) -> None:
        self._counts["timeouts"] += 1
        self._disconnect()
        self._emit("timeout", f"no frame from {self.name} for {self._fetch_timeout:.1f} s")

    def _recover(self) -> None:
        """Reconnect with backoff, restoring the image geometry and the user's settings."""
        entry = self.entry
        selector = f"serial:{entry.serial}" if entry and entry.serial else self.device
        if entry and not entry.serial and entry.id:
            selector = f"id:{entry.id}"
        keep = {k: v for k, v in self._snapshot.items() if k in _SHAPE_KEYS}
        settings = CameraSettings(**keep).merged(self.settings)
        last: BaseException | None = None
        for attempt, delay in enumerate(self.reconnect.delays(), 1):
            self._emit(
                "reconnecting",
                f"reconnecting to {self.name} (attempt {attempt}/{self.reconnect.attempts}) "
                f"in {delay:.2f} s",
                attempt=attempt,
                delay_s=delay,
            )
            if self._closing.wait(delay):
                raise EndOfStream
            try:
                self._connect(selector, settings)
            except _GeometryChanged:
                self._gone = True
                raise
            except Exception as exc:  # not found, busy, GenTL errors while the device is away
                last = exc
                continue
            self._counts["reconnects"] += 1
            self._emit("reconnected", f"{self.name} is back", attempt=attempt)
            return
        message = f"{self.name} is gone: {self.reconnect.attempts} reconnection attempts failed"
        self._emit("gave_up", message)
        self._gone = True
        detail = f" (last: {str(last).split(' — ')[0]})" if last else ""
        raise SourceError(
            message + detail,
            "check the camera's cable and power; frames read so far are kept",
        )

    # ------------------------------------------------------------------ frames

    def _wait_buffer(self, timeout: float) -> Any:
        """A filled raw GenTL buffer, or None when ``timeout`` passes (or the source closes)."""
        end = time.monotonic() + timeout
        stream, acquirer = self._stream, self._acquirer
        if self._countable is None:
            self._countable = _optional(stream, "num_awaiting_delivery", None) is not None
        while True:
            if not self._countable:
                # The producer keeps no delivery count: harvesters' own wait, which holds the GIL
                # for at most one 1 ms event wait at a time.
                slice_s = min(0.05, max(0.001, end - time.monotonic()))
                raw = acquirer.try_fetch(timeout=slice_s, is_raw=True)
                if raw is not None:
                    self._held += 1
                    break
            elif stream.num_awaiting_delivery > 0:
                raw = acquirer.try_fetch(timeout=0.05, is_raw=True)
                if raw is not None:
                    self._held += 1
                    break
                self._counts["incomplete"] += 1  # harvesters re-queued an incomplete buffer
            if time.monotonic() >= end or self._closing.is_set():
                return None
            if self._countable:
                time.sleep(self.poll_s)
        if self.latest and self._countable:
            while stream.num_awaiting_delivery > 0:
                newer = acquirer.try_fetch(timeout=0.05, is_raw=True)
                if newer is None:
                    break
                self._held += 1
                self._count_id(raw)
                self._requeue(raw)
                self._counts["skipped"] += 1
                raw = newer
        return raw

    def _count_id(self, raw: Any) -> int | None:
        """Track the device frame id; a jump forward counts the frames in between as gaps."""
        try:
            frame_id = int(raw.frame_id)
        except Exception:  # producers without frame ids: index by arrival
            return None
        last = self._last_id
        if self._id_base is None or last is None or frame_id <= last:
            # First frame of this connection, or the id wrapped / restarted: re-anchor so that
            # this frame gets the next index.
            self._id_base = frame_id - self._index_next
        elif frame_id > last + 1:
            self._counts["gaps"] += frame_id - last - 1
        self._last_id = frame_id
        return frame_id

    def _to_frame(self, raw: Any) -> Frame:
        host_ns = time.monotonic_ns()
        try:
            frame_id = self._count_id(raw)
            if frame_id is not None and self._id_base is not None:
                index = frame_id - self._id_base
            else:
                index = self._index_next
            fmt = self._buffer_format(raw)
            width, height = raw.width, raw.height
            image = pixels.to_image(
                raw.raw_buffer,
                fmt,
                width,
                height,
                offset=_optional(raw, "image_offset", 0),
                padding_x=_optional(raw, "padding_x", 0),
            )
            stamp, clock = self._timestamp(raw, host_ns)
        finally:
            self._requeue(raw)
        self._index_next = index + 1
        self._counts["delivered"] += 1
        meta = dict(self._frame_meta, frame_id=frame_id, host_timestamp_ns=host_ns)
        if self._counts["reconnects"]:
            meta["connection"] = self._counts["reconnects"]
        return Frame(
            image=image,
            index=index,
            timestamp_ns=stamp,
            clock=clock,
            pixel_format=fmt.name,
            bit_depth=fmt.bit_depth,
            pixel_size_um=self.pixel_size_um,
            meta=meta,
        )

    def _requeue(self, raw: Any) -> None:
        """Give a buffer back to the producer (at once: the Frame holds a copy)."""
        raw.parent.queue_buffer(raw)
        self._held -= 1

    def _buffer_format(self, raw: Any) -> pixels.PixelFormat:
        try:
            code = int(raw.pixel_format)
        except Exception:  # producer does not say per buffer: the node map's format holds
            return self._format
        if code == self._format.code:
            return self._format
        known = pixels.BY_CODE.get(code)
        if known is not None:
            return known
        from harvesters.util.pfnc import dict_by_ints

        return pixels.lookup(dict_by_ints.get(code, code))

    def _timestamp(self, raw: Any, host_ns: int) -> tuple[int, Literal["device", "host"]]:
        if self._device_clock is None:
            self._device_clock = self._probe_clock(raw)
        if self._device_clock:
            try:
                if not self._tick_ns:
                    return int(raw.timestamp_ns), "device"
                return int(raw.timestamp * self._tick_ns), "device"
            except Exception:  # stopped providing it: fall back for good
                self._device_clock = False
        return host_ns, "host"

    def _probe_clock(self, raw: Any) -> bool:
        try:
            _ = raw.timestamp_ns
            self._tick_ns = 0  # nanoseconds as given
            return True
        except Exception:  # optional in GenTL
            pass
        try:
            _ = raw.timestamp
            freq = self._acquirer.device.module.timestamp_frequency
            self._tick_ns = 1e9 / float(freq)
            return freq > 0
        except Exception:  # no device clock: host monotonic time it is
            return False

    def _stream_counters(self) -> dict[str, int]:
        out: dict[str, int] = {}
        stream, acquirer = self._stream, self._acquirer
        if stream is None:
            return out
        for name in ("num_delivered", "num_underrun", "num_announced", "num_queued"):
            value = _optional(stream, name, None)
            if value is not None:
                out[name] = int(value)
        try:
            node_map = acquirer.data_streams[0].node_map
        except Exception:  # no stream node map: the GenTL counters are all there is
            return out
        for name in _STREAM_NODES:
            node = getattr(node_map, name, None) if node_map is not None else None
            if node is not None:
                try:
                    out[name] = int(node.value)
                except Exception:  # listed but not readable now
                    pass
        return out


def _optional(obj: Any, name: str, default: Any) -> Any:
    """An optional GenTL info field (producers raise NotAvailable for those they lack)."""
    try:
        return getattr(obj, name)
    except Exception:
        return default


def describe_device(
    device: str | int | None,
    cti: Iterable[str | os.PathLike[str]] = (),
    *,
    use_env: bool = True,
) -> tuple[DeviceEntry, dict[str, dict[str, Any] | None]]:
    """Open a camera briefly (no streaming) and say what it offers for each setting."""
    files = find_producers(cti, use_env=use_env)
    acquirer, entry = HUB.create(files, device)
    try:
        return entry, offered_settings(acquirer.remote_device.node_map)
    finally:
        HUB.release(acquirer)
