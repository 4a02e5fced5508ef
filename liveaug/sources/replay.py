"""Replay a recorded session as a live :class:`~liveaug.sources.base.Source`, at its recorded pace.

A replayed frame is the recorded frame: its ``index``, ``timestamp_ns`` and ``clock`` are the
recorded ones (so timestamps repeat when looping and do not match the host clock at replay time;
measure replay latency with your own clock, not against ``Frame.timestamp_ns``). Pacing follows the
recorded timestamps, anchored to ``time.monotonic`` so sleep jitter never accumulates; a step that
is not positive (clock reset, missing device timestamps) falls back to the session's frame interval.
Waiting is an ``Event.wait`` that ``close()`` and ``seek()`` interrupt, never a busy loop.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from liveaug.errors import EndOfStream, SourceError
from liveaug.frame import Frame
from liveaug.session import Session
from liveaug.sources.base import SourceInfo

__all__ = ["ReplaySource"]

#: A reader this late (s) is re-anchored instead of being served a burst of overdue frames.
MAX_LAG_S = 0.25
#: Frames further apart than this (s, median) make a time-lapse, which ``pace="auto"`` plays as
#: a film at :data:`TIMELAPSE_FPS` × speed (180 s apart would show one frame every 3 minutes).
TIMELAPSE_STEP_S = 1.0
TIMELAPSE_FPS = 30.0


class ReplaySource:
    """Frames of a recorded session, delivered at the recorded pace (or faster, or at once).

    Parameters
    ----------
    path : str or Path
        The session directory (``*.ome.zarr``).
    speed : float or None
        Playback rate relative to the recording: 1.0 recorded pace, 2.0 twice as fast, None as
        fast as ``read`` is called.
    loop : bool
        Start again at frame 0 after the last one instead of raising ``EndOfStream``.
    start : int
        Position (0-based, in the session) of the first frame delivered.
    pixel_size_um : float or None
        Sample-plane pixel size given to every frame, overriding the recorded one (a camera
        that gave none); None keeps what was recorded.
    pace : "auto" or "recorded"
        ``recorded``: frames are due at their recorded timestamps ÷ speed. ``auto`` (default):
        the same, except for a time-lapse (frames more than :data:`TIMELAPSE_STEP_S` apart),
        which plays at :data:`TIMELAPSE_FPS` × speed; the frames keep their recorded times.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        speed: float | None = 1.0,
        loop: bool = False,
        start: int = 0,
        pixel_size_um: float | None = None,
        pace: str = "auto",
    ) -> None:
        if pace not in ("auto", "recorded"):
            raise SourceError(f"replay pace {pace!r} is unknown", "use 'auto' or 'recorded'")
        if speed is not None and not speed > 0:
            raise SourceError(f"replay speed must be positive, not {speed}", "use e.g. 1.0 or 2.0")
        self.path = Path(path)
        self.speed = speed
        self.loop = loop
        self._start = int(start)
        self.pixel_size_um = pixel_size_um
        self.pace = pace
        self.timelapse = False
        """True when ``pace="auto"`` plays a time-lapse at TIMELAPSE_FPS (set by ``open``)."""
        self._positions: dict[tuple[int, int], int] = {}
        self._waiting_until: float | None = None
        self._session: Session | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()  # set by seek() and close() to interrupt a waiting read
        self._closed = False
        self._pos = 0
        self._generation = 0  # bumped by seek(): a read waiting on a stale frame starts over
        self._anchor: tuple[float, float] | None = None  # (monotonic s, schedule offset s)
        self._offsets = np.zeros(0)
        self._period_s = 0.0

    # -- Source protocol ----------------------------------------------------------------------

    def open(self) -> SourceInfo:
        """Open the session (a bad one raises ``SessionError``) and describe what it delivers."""
        session = Session.open(self.path)
        if session.n_frames == 0:
            raise SourceError(f"{self.path} holds no complete frames", "nothing to replay")
        self._period_s = session.frame_interval_s or 0.0
        self._offsets = _schedule(session.timestamps_ns, self._period_s)
        steps = np.diff(self._offsets)
        if len(steps):  # the step the recording actually has (wrapping waits one)
            self._period_s = float(np.median(steps))
        self.timelapse = self.pace == "auto" and self._period_s > TIMELAPSE_STEP_S
        if self.timelapse:
            self._period_s = 1.0 / TIMELAPSE_FPS
            self._offsets = np.arange(session.n_frames) * self._period_s
        keys = zip(session.frame_table()["index"], session.timestamps_ns, strict=True)
        self._positions = {(int(i), int(t)): p for p, (i, t) in enumerate(keys)}
        with self._lock:
            self._session = session
            self._closed = False
            self._seek_locked(self._start)
        rate = None
        if self.speed is not None and self._period_s > 0:
            rate = self.speed / self._period_s
        return SourceInfo(
            name=f"replay:{self.path.name}",
            shape=session.shape,
            dtype=session.dtype.name,
            bit_depth=session.bit_depth,
            pixel_size_um=self.pixel_size_um or session.pixel_size_um,
            frame_rate_hz=rate,
            channel_names=session.channel_names,
            has_truth=session.has_truth,
            settings={
                **session.metadata,
                "replay": {"path": str(self.path), "speed": self.speed, "loop": self.loop},
            },
        )

    def read(self, timeout_s: float | None = None) -> Frame:
        """The next frame, once it is due; ``TimeoutError`` if not due within ``timeout_s``.

        Raises ``EndOfStream`` after the last frame (unless looping) or once closed.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            with self._lock:
                session = self._require_open()
                self._wake.clear()
                generation = self._generation
                if self._pos >= session.n_frames:
                    if not self.loop:
                        raise EndOfStream(
                            f"{self.path}: end of session ({session.n_frames} frames)"
                        )
                    self._loop_locked()
                pos = self._pos
                due = self._due_locked(pos)
            frame = session.frame(pos)  # the disk read overlaps the wait
            self._waiting_until = due
            try:
                while (delay := due - time.monotonic()) > 0:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        raise TimeoutError(f"{self.path}: no frame due within {timeout_s} s")
                    if self._wake.wait(delay if left is None else min(delay, left)):
                        break  # seek() or close()
            finally:
                self._waiting_until = None
            with self._lock:
                self._require_open()
                if self._generation != generation:  # seek() while waiting: start over
                    continue
                self._pos = pos + 1
            if self.pixel_size_um:
                frame = replace(frame, pixel_size_um=self.pixel_size_um)
            return frame

    def close(self) -> None:
        """Release the session and wake a waiting ``read`` (which then raises EndOfStream)."""
        with self._lock:
            self._closed = True
            self._session = None
        self._wake.set()

    # -- replay controls ------------------------------------------------------------------------

    def seek(self, position: int) -> None:
        """Make frame ``position`` (0-based in the session) the next one; it is due at once."""
        with self._lock:
            self._require_open()
            self._seek_locked(position)
        self._wake.set()

    @property
    def position(self) -> int:
        """Session position of the next frame ``read`` will return."""
        return self._pos

    def seconds_to_next(self) -> float:
        """How much longer a waiting ``read`` waits for its frame (0 when none is waiting)."""
        until = self._waiting_until
        return 0.0 if until is None else max(0.0, until - time.monotonic())

    def position_of(self, frame: Frame) -> int | None:
        """Session position (0-based) of a frame this replay delivered, None if not one of its.

        The viewer labels the frame it shows with this: the next position runs ahead of the
        picture (a read waiting at the end of a loop already points at frame 0).
        """
        return self._positions.get((int(frame.index), int(frame.timestamp_ns)))

    def __len__(self) -> int:
        """Number of frames in the session (0 before ``open``)."""
        return 0 if self._session is None else self._session.n_frames

    # -- internals --------------------------------------------------------------------------

    def _require_open(self) -> Session:
        if self._session is None:
            if self._closed:
                raise EndOfStream(f"{self.path}: replay closed")
            raise RuntimeError("ReplaySource.read/seek before open()")
        return self._session

    def _seek_locked(self, position: int) -> None:
        n = self._session.n_frames if self._session is not None else 0
        if not 0 <= position < n:
            raise SourceError(
                f"{self.path}: no frame at position {position}",
                f"the session has frames 0 … {n - 1}",
            )
        self._pos = position
        self._anchor = None
        self._generation += 1

    def _loop_locked(self) -> None:
        """Wrap to frame 0, due one frame period after the last frame."""
        last = self._offsets[-1]
        if self._anchor is not None:
            mono0, off0 = self._anchor
            self._anchor = (mono0 + (last - off0 + self._period_s) / self._speed, 0.0)
        self._pos = 0

    @property
    def _speed(self) -> float:
        return self.speed or 1.0

    def _due_locked(self, pos: int) -> float:
        """Monotonic time at which frame ``pos`` is due (now for speed None or a fresh anchor)."""
        now = time.monotonic()
        if self.speed is None:
            return now
        offset = float(self._offsets[pos])
        if self._anchor is None:
            self._anchor = (now, offset)
            return now
        mono0, off0 = self._anchor
        due = mono0 + (offset - off0) / self.speed
        if now - due > MAX_LAG_S:  # the reader fell far behind: re-anchor, no burst
            self._anchor = (now, offset)
            return now
        return due


def _schedule(timestamps_ns: np.ndarray, period_s: float) -> np.ndarray:
    """Seconds from the first frame at which each frame is due, from the recorded timestamps.

    A step that is not positive (clock reset, missing timestamps) counts as one ``period_s``.
    """
    steps = np.diff(timestamps_ns.astype(np.int64)).astype(np.float64) / 1e9
    steps[~(steps > 0)] = period_s
    return np.concatenate([[0.0], np.cumsum(steps)])
