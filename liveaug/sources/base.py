"""The one protocol every frame source satisfies: simulator, replayed session, GenICam camera.

A source is opened, read frame by frame from one acquisition thread, and closed. ``read`` blocks
until the next frame is due (a live source paces itself) and raises :class:`EndOfStream` when a
finite source is exhausted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from liveaug.frame import Frame


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """What a source delivers, known once it is open (shapes, units, nominal rate)."""

    name: str
    shape: tuple[int, int]
    dtype: str
    bit_depth: int
    pixel_size_um: float | None = None
    frame_rate_hz: float | None = None
    channel_names: tuple[str, ...] = ()
    has_truth: bool = False
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def frame_bytes(self) -> int:
        """About the memory one frame holds: brightfield, real channels and (simulator) truth
        planes (float32) — what bounds a queue of frames in bytes."""
        h, w = self.shape
        planes = 1 + len(self.channel_names) + (4 if self.has_truth else 0)
        itemsize = np.dtype(self.dtype).itemsize
        return max(1, h * w * planes * max(itemsize, 4 if self.has_truth else 1))


@runtime_checkable
class Source(Protocol):
    """A stream of :class:`~liveaug.frame.Frame` objects."""

    def open(self) -> SourceInfo:
        """Acquire the resource (device, file) and return what it will deliver."""
        ...

    def read(self, timeout_s: float | None = None) -> Frame:
        """Return the next frame, blocking until it is due.

        Raises ``TimeoutError`` (or a subclass) when no frame arrives within ``timeout_s``,
        ``EndOfStream`` when a finite source is exhausted or was closed meanwhile.
        """
        ...

    def close(self) -> None:
        """Release the resource; safe to call twice."""
        ...
