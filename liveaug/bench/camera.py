"""What the camera path costs on this machine: buffer -> Frame, and viky's sustained rate.

Two kinds of figure:

- ``buffer->Frame``: :meth:`CameraSource._to_frame` (pixel decoding into a fresh array, frame-id
  accounting, timestamp, Frame and metadata) on synthetic buffers of real formats and sizes. The
  buffers rotate through more memory than the CPU caches hold, as a camera's DMA writes leave
  them, so the decode reads from RAM. A stand-in object carries the few fields a GenTL buffer
  has; no producer is involved, so these are liveaug's own costs.
- ``viky``: the bundled simulator at its maximum frame rate, read by an otherwise idle process:
  the delivered rate, frame-id gaps (host-side drops), and the in-situ buffer->Frame time, with
  the producer's own re-queue cost reported separately (viky renders the next image in it).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from liveaug.sources import pixels
from liveaug.sources.camera import CameraSettings, CameraSource, bundled_simulator_cti
from liveaug.timing import summarize_ms

#: (pixel format, width, height) of the conversion cases.
CASES: tuple[tuple[str, int, int], ...] = (
    ("Mono8", 800, 800),
    ("RGBa8", 800, 800),
    ("Mono12p", 2048, 2048),
    ("Mono12Packed", 2048, 2048),
    ("Mono16", 2048, 2048),
    ("BayerRG8", 2048, 2048),
)
_ROTATE_BYTES = 64 << 20  # more than any L3 the buffers could hide in


class _Delivered:
    """The fields of a filled GenTL buffer that CameraSource reads, and a no-op re-queue."""

    def __init__(self, data: bytes, code: int, width: int, height: int) -> None:
        self.raw_buffer = data
        self.pixel_format = code
        self.width = width
        self.height = height
        self.frame_id = 0
        self.image_offset = 0
        self.padding_x = 0
        self.parent = self

    def queue_buffer(self, _buffer: object) -> None:
        """The producer would take the buffer back here."""


def conversion_ms(fmt: str, width: int, height: int, frames: int = 60) -> dict[str, float]:
    """Median/p95 ms of buffer -> Frame for one format and size (see the module docstring)."""
    spec = pixels.lookup(fmt)
    size = pixels.nbytes(spec, width, height)
    count = max(2, min(16, _ROTATE_BYTES // size))
    rng = np.random.default_rng(0)
    buffers = [
        _Delivered(rng.integers(0, 256, size, dtype=np.uint8).tobytes(), spec.code, width, height)
        for _ in range(count)
    ]
    source = CameraSource()
    source._format = spec
    samples = []
    for i in range(frames + 3):
        buf = buffers[i % count]
        buf.frame_id = i + 1
        source._held += 1
        t0 = time.perf_counter_ns()
        source._to_frame(buf)
        if i >= 3:
            samples.append(time.perf_counter_ns() - t0)
    stats = summarize_ms(samples)
    out_mb = width * height * spec.dtype.itemsize / 1e6
    stats["in_MB"] = size / 1e6
    stats["out_MB"] = out_mb
    return stats


def viky_sustained(seconds: float = 5.0, width: int = 800, height: int = 800) -> dict[str, Any]:
    """viky at its maximum frame rate, Mono8, read as fast as it delivers by an idle process."""
    cti = bundled_simulator_cti()
    if cti is None:
        return {"skipped": "no viky.cti in the genicam package"}
    probe = CameraSource(0, cti=[cti], use_env=False)
    probe.configure()
    top = float(probe.offered()["frame_rate_hz"]["max"])  # type: ignore[index]
    probe.close()
    settings = CameraSettings(pixel_format="Mono8", width=width, height=height, frame_rate_hz=top)
    source = CameraSource(0, cti=[cti], use_env=False, settings=settings)
    convert: list[int] = []
    requeue: list[int] = []
    to_frame, give_back = source._to_frame, source._requeue

    def timed_to_frame(raw: Any) -> Any:
        t0 = time.perf_counter_ns()
        frame = to_frame(raw)
        convert.append(time.perf_counter_ns() - t0)
        return frame

    def timed_requeue(raw: Any) -> None:
        t0 = time.perf_counter_ns()
        give_back(raw)
        requeue.append(time.perf_counter_ns() - t0)

    source._to_frame = timed_to_frame  # type: ignore[method-assign]
    source._requeue = timed_requeue  # type: ignore[method-assign]
    with source:
        for _ in range(20):  # warm up
            source.read(timeout_s=5)
        warm = source.stats()
        convert.clear()
        requeue.clear()
        first = source.read(timeout_s=5)
        end = time.monotonic() + seconds
        n = 1
        while time.monotonic() < end:
            last = source.read(timeout_s=5)
            n += 1
        stats = source.stats()
    span_s = (last.timestamp_ns - first.timestamp_ns) / 1e9
    both = np.array(convert, dtype=np.float64)
    back = np.array(requeue, dtype=np.float64)
    n_back = min(both.size, back.size)
    return {
        "set_fps": top,
        "measured_fps": (n - 1) / span_s if span_s > 0 else 0.0,
        "frames": n,
        "host_dropped": stats.host_dropped - warm.host_dropped,
        "gaps": stats.gaps - warm.gaps,
        "stream_underrun": stats.stream.get("num_underrun", -1),
        "buffers": stats.stream.get("num_announced", -1),
        "to_frame_median_ms": float(np.median(both[:n_back] - back[:n_back]) / 1e6),
        "to_frame_p95_ms": float(np.percentile(both[:n_back] - back[:n_back], 95) / 1e6),
        "viky_requeue_median_ms": float(np.median(back) / 1e6),
    }


def camera_benchmarks(frames: int = 60, viky_seconds: float = 5.0) -> dict[str, Any]:
    """Every camera figure, keyed by case (what ``liveaug bench`` prints)."""
    out: dict[str, Any] = {}
    for fmt, width, height in CASES:
        out[f"buffer->Frame {width}x{height} {fmt}"] = conversion_ms(fmt, width, height, frames)
    out["viky max rate 800x800 Mono8"] = viky_sustained(viky_seconds)
    return out
