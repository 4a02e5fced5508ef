"""``liveaug record``: every frame from a GenICam camera into a session, with its settings.

The camera is read on its own thread and frames reach the writer through a queue, so a slow disk
write never holds a camera buffer (the producer keeps its buffers free and drops nothing while the
queue has room, up to ``max_queue_bytes``). A camera fault is printed as it happens; the source
reconnects and the recording carries on with the next frame index. If the camera never comes back,
or on Ctrl+C, every frame already acquired is written and the session is closed cleanly.
"""

from __future__ import annotations

import argparse
import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from liveaug.commands.argtypes import positive_float, positive_int
from liveaug.commands.camera_args import add_camera_arguments, camera_from_args
from liveaug.errors import EndOfStream, LiveaugError, SourceError
from liveaug.frame import Frame
from liveaug.pipeline import RECORD_BACKLOG_BYTES
from liveaug.progress import progress

HELP = (
    "Record a session (OME-Zarr) from a GenICam camera: every frame, with the camera settings "
    "and per-frame metadata (frame id, timestamps)."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Camera options, how much to record, where."""
    p.add_argument("out", type=Path, metavar="OUT.ome.zarr", help="session folder to create")
    length = p.add_mutually_exclusive_group(required=True)
    length.add_argument("--frames", type=positive_int, metavar="N", help="record N frames")
    length.add_argument("--duration", type=positive_float, metavar="S", help="record for S seconds")
    add_camera_arguments(p)
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it is a session")
    p.add_argument(
        "--save-settings",
        type=Path,
        metavar="FILE",
        help="write the settings the camera ran with to FILE (YAML/JSON) after recording",
    )


@dataclass(slots=True)
class RecordResult:
    """How a recording ended: frames written, wall time, why it stopped, acquisition stats."""

    path: Path
    frames: int
    elapsed_s: float
    stopped: str  # "done", "interrupted", or the camera error's message
    stats: Any = None
    faults: list[str] = field(default_factory=list)

    @property
    def fps(self) -> float:
        """Average frames per second written."""
        return self.frames / self.elapsed_s if self.elapsed_s > 0 else 0.0


_DONE = object()


def record_session(
    source: Any,
    path: str | Path,
    *,
    frames: int | None = None,
    duration_s: float | None = None,
    overwrite: bool = False,
    on_open: Callable[[Any], None] | None = None,
    on_frame: Callable[[Frame], None] | None = None,
    on_fault: Callable[[Any], None] | None = None,
    max_queue_bytes: int = RECORD_BACKLOG_BYTES,
) -> RecordResult:
    """Open ``source`` (a CameraSource), record ``frames`` frames or ``duration_s`` seconds into a
    new session at ``path``, close both.

    The session is created between ``configure`` and ``open`` (start of streaming), so no frame
    waits in the producer meanwhile and the writer starts without a backlog. ``on_open(source)``
    runs once both are ready; ``on_frame`` sees each frame after it is written; ``on_fault`` each
    :class:`FaultEvent` (from the camera thread).
    """
    from liveaug.session import SessionWriter

    if (frames is None) == (duration_s is None):
        raise ValueError("give exactly one of frames and duration_s")
    if (frames is not None and frames < 1) or (duration_s is not None and duration_s <= 0):
        raise SourceError("nothing to record", "give --frames ≥ 1 or --duration > 0")
    faults: list[str] = []

    def fault(event: Any) -> None:
        faults.append(event.message)
        if on_fault is not None:
            on_fault(event)

    source.fault.connect(fault)
    stop = threading.Event()
    frames_q: queue.Queue[Any] | None = None
    reader: threading.Thread | None = None
    writer: Any = None
    written, stopped = 0, "done"
    first_ns: int | None = None
    last_ns: int | None = None
    try:
        info = source.configure()
        writer = SessionWriter.for_source(path, info, overwrite=overwrite)
        frames_q = queue.Queue(maxsize=max(4, max_queue_bytes // info.frame_bytes))
        reader = threading.Thread(
            target=_read_frames,
            args=(source, frames_q, stop, frames, duration_s),
            name="liveaug-record-camera",
            daemon=True,
        )
        if on_open is not None:
            on_open(source)
        source.open()
        reader.start()
        while True:
            item = frames_q.get()
            if item is _DONE:
                break
            if isinstance(item, BaseException):
                stopped = "done" if isinstance(item, EndOfStream) else str(item)
                break
            try:
                writer.append(item)
            except (OSError, ValueError) as exc:  # disk full; a frame unlike the first ones
                raise LiveaugError(
                    f"{path}: writing frame {written} failed ({exc}); the {written} frames"
                    " before it are kept",
                    "free disk space, and keep the camera's format fixed while recording",
                ) from None
            written += 1
            first_ns = item.timestamp_ns if first_ns is None else first_ns
            last_ns = item.timestamp_ns
            if on_frame is not None:
                on_frame(item)
    except KeyboardInterrupt:
        if writer is None:
            raise
        stopped = "interrupted"
        stop.set()
        source.close()  # a read in progress returns at once
        if reader is not None:
            reader.join()
        while frames_q is not None and not frames_q.empty():  # frames acquired are kept
            item = frames_q.get_nowait()
            if item is _DONE or isinstance(item, BaseException):
                break
            writer.append(item)
            written += 1
    finally:
        stop.set()
        stats = source.stats()
        source.close()
        if reader is not None:
            reader.join(timeout=5)
        source.fault.disconnect(fault)
        if writer is not None:
            _close(writer, pending=sys.exc_info()[1])
    # Frame timestamps, not wall time: frames queued while the session was created count at the
    # time they were taken.
    span = (last_ns - first_ns) / 1e9 if first_ns is not None and last_ns is not None else 0.0
    elapsed = span * written / (written - 1) if written > 1 else span
    return RecordResult(Path(path), written, elapsed, stopped, stats, faults)


def _close(writer: Any, pending: BaseException | None) -> None:
    """Close the session; a failure to close is reported unless an error is already on its way
    (that one names the cause, and the frames on disk stay readable either way)."""
    try:
        writer.close()
    except OSError as exc:
        if pending is None:
            raise LiveaugError(
                f"{writer.path}: closing the session failed ({exc})",
                "free disk space; the frames written so far are readable",
            ) from None


def _read_frames(
    source: Any,
    out: queue.Queue[Any],
    stop: threading.Event,
    frames: int | None,
    duration_s: float | None,
) -> None:
    """The camera thread: read until done, hand every frame on; errors travel as items."""
    count, end = 0, None
    try:
        while not stop.is_set():
            frame = source.read()
            if end is None and duration_s is not None:
                end = time.monotonic() + duration_s
            while not stop.is_set():
                try:
                    out.put(frame, timeout=0.1)
                    break
                except queue.Full:
                    continue
            count += 1
            if frames is not None and count >= frames:
                break
            if end is not None and time.monotonic() >= end:
                break
        out.put(_DONE)
    except BaseException as exc:  # SourceError (camera gone), EndOfStream (closed), anything
        out.put(exc)


def run(args: argparse.Namespace) -> int:
    """Record; print one line per camera fault and a summary at the end."""
    # A 1 ms GIL switch interval (default 5 ms) lets the camera thread re-queue buffers promptly
    # while the writer runs Python code: with 5 ms a busy writer thread made viky drop frames.
    switch = sys.getswitchinterval()
    sys.setswitchinterval(min(switch, 0.001))
    try:
        return _record(args)
    finally:
        sys.setswitchinterval(switch)


def _record(args: argparse.Namespace) -> int:
    source = camera_from_args(args)
    bars: list[Any] = []

    def opened(src: Any) -> None:
        for key in src.report.unsupported:
            print(f"liveaug record: {src.name} does not offer {key}; skipped", file=sys.stderr)
        bars.append(progress(args.frames, "recording"))

    def say(event: Any) -> None:
        line = f"liveaug record: {event.message}"
        if bars:
            bars[0].write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr)

    try:
        result = record_session(
            source,
            args.out,
            frames=args.frames,
            duration_s=args.duration,
            overwrite=args.overwrite,
            on_open=opened,
            on_frame=lambda _: bars[0].update(1),
            on_fault=say,
        )
    finally:
        for bar in bars:
            bar.close()
    if args.save_settings and source.info is not None:
        from liveaug.sources.camera_settings import CameraSettings

        CameraSettings.from_dict(source.info.settings["camera"]).save(args.save_settings)
    stats = result.stats
    dropped = f"{stats.gaps} frame-id gaps" if stats is not None else "unknown drops"
    underrun = (stats.stream or {}).get("num_underrun") if stats is not None else None
    if underrun:
        dropped += f", {underrun} producer underruns"
    summary = (
        f"{result.frames} frames in {result.elapsed_s:.1f} s ({result.fps:.1f} fps), {dropped}, "
        f"{stats.reconnects if stats else 0} reconnects -> {result.path}"
    )
    if result.stopped == "interrupted":
        print(f"liveaug record: interrupted; kept {summary}", file=sys.stderr)
        return 130
    if result.stopped != "done":
        raise LiveaugError(
            f"recording stopped: {result.stopped.split(' — ')[0]}",
            f"kept {summary}",
        )
    print(f"recorded {summary}", file=sys.stderr)
    return 0
