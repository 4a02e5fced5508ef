"""Frames from a Micro-Manager microscope through pymmcore-plus, as a liveaug Source.

:class:`MMSource` runs pymmcore-plus' own MDA engine on a queue-driven sequence
(:class:`~liveaug.sources.mmcore.schedule.EventQueue`) in the core's MDA thread and hands every
plan frame to :meth:`MMSource.read` as a :class:`~liveaug.frame.Frame` carrying the pixel size
(from the core's pixel-size configuration), the stage position the frame was taken at, the
channel and the exposure. Frames that actions acquire (``image_cell`` bursts) do not enter the
brightfield stream: they go to the :class:`~liveaug.sources.mmcore.acquire.ActionRunner`, which
records them linked to their cell and event. Any Micro-Manager configuration works
(:meth:`MMSource.from_config`); :func:`simulated_source` uses liveaug's simulated dish.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from psygnal import Signal

from liveaug.errors import EndOfStream, SourceError, one_line
from liveaug.frame import Frame
from liveaug.sources.base import SourceInfo
from liveaug.sources.mmcore.schedule import EventQueue, Plan

log = logging.getLogger(__name__)

#: Plan frames waiting for ``read`` at most (beyond that the oldest is dropped and counted).
FRAME_QUEUE = 256
#: Distance between the commanded and the reported stage position that counts as a failed move.
STAGE_TOLERANCE_UM = 0.5


@dataclass(frozen=True, slots=True)
class MMFault:
    """A device problem during acquisition (the pipeline relays it to subscribers)."""

    kind: str
    message: str


class MMSource:
    """A pymmcore-plus core as a :class:`~liveaug.sources.base.Source`.

    Parameters
    ----------
    core : CMMCorePlus
        A configured core (devices loaded, camera and stage set).
    plan : Plan
        What to image until stopped: positions, interval, channel, exposure.
    dish : SimulatedDish, optional
        The simulated dish behind the core's devices: frames then carry its ground truth and
        its experiment time.
    name : str
        How the source names itself.
    action_dir : path, optional
        Where actions record their bursts (one session each) and ``actions.jsonl``.
    queue_frames : int
        Plan frames that may wait for ``read``; beyond that the oldest is dropped and counted.
    """

    fault = Signal(object)
    """Emits an :class:`MMFault` when a device fails during acquisition (MDA thread)."""

    def __init__(
        self,
        core: Any,
        *,
        plan: Plan | None = None,
        dish: Any = None,
        name: str = "Micro-Manager",
        action_dir: str | Path | None = None,
        queue_frames: int = FRAME_QUEUE,
    ) -> None:
        self.core = core
        self.action_dir = action_dir
        self.plan = plan or Plan(channel_group=core.getChannelGroup() or None)
        self.dish = dish
        self.name = name
        self.events: EventQueue | None = None
        self.actions: Any = None
        """An :class:`~liveaug.sources.mmcore.acquire.ActionRunner` acting through this source."""
        self._frames: queue.Queue[Frame | None] = queue.Queue(maxsize=queue_frames)
        self._partial: Frame | None = None  # main-channel frame waiting for its extras
        self._thread: threading.Thread | None = None
        self._index = 0
        self._done = threading.Event()
        self.counts = {
            "frames": 0,
            "action_frames": 0,
            "stage_errors": 0,
            "dropped": 0,
            "incomplete": 0,
        }
        self.info: SourceInfo | None = None

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_config(cls, path: str | Path, *, plan: Plan | None = None) -> MMSource:
        """Load a Micro-Manager configuration file into a new core (one clear line if not)."""
        from liveaug.sources.mmcore.devices import new_core

        p = Path(path)
        if not p.is_file():
            raise SourceError(
                f"Micro-Manager config {p} does not exist",
                "pass the .cfg file saved by Micro-Manager's hardware configuration wizard",
            )
        core = new_core()
        try:
            core.loadSystemConfiguration(str(p))
        except Exception as exc:
            raise SourceError(
                f"Micro-Manager config {p} cannot be loaded ({one_line(exc)})",
                "check the file in Micro-Manager; C++ device adapters need `mmcore install`",
            ) from None
        if not core.getCameraDevice():
            raise SourceError(f"Micro-Manager config {p} sets no camera", "add a Core,Camera line")
        return cls(core, plan=plan, name=f"Micro-Manager ({p.name})")

    # -- Source protocol ----------------------------------------------------------------------
    def open(self) -> SourceInfo:
        """Start the queue-driven MDA on the core; returns what frames will look like."""
        if self._thread is not None:
            assert self.info is not None
            return self.info
        core = self.core
        if None in self.plan.positions and core.getXYStageDevice():
            here = tuple(core.getXYPosition())  # "where the stage is", so actions return here
            positions = [p if p is not None else here for p in self.plan.positions]
            self.plan = dataclasses.replace(self.plan, positions=positions)
        if not self.plan.positions or self.plan.interval_s < 0:
            raise SourceError(
                f"{self.name}: a plan needs at least one position and an interval ≥ 0",
                "give positions (or None: where the stage is) and interval_s",
            )
        names = [self.plan.channel, *(n for n, _ in self.plan.extra_channels)]
        unknown = [n for n in names if n is not None and n not in self.channel_presets()]
        if unknown:
            raise SourceError(
                f"{self.name}: no channel preset {unknown[0]!r} in group "
                f"{self.plan.channel_group or core.getChannelGroup()!r}",
                f"use one of {sorted(self.channel_presets())}",
            )
        if self.plan.exposure_ms is None:  # the plan's own, so it returns to it after actions
            self.plan = dataclasses.replace(self.plan, exposure_ms=float(core.getExposure()))
        bits = _bit_depth(core)
        dtype = "uint8" if core.getBytesPerPixel() == 1 else "uint16"
        px = float(core.getPixelSizeUm()) or None
        self.info = SourceInfo(
            name=self.name,
            shape=(int(core.getImageHeight()), int(core.getImageWidth())),
            dtype=dtype,
            bit_depth=bits,
            pixel_size_um=px,
            frame_rate_hz=1.0 / self.plan.interval_s if self.plan.interval_s > 0 else None,
            channel_names=tuple(name for name, _ in self.plan.extra_channels),
            has_truth=self.dish is not None,
            settings={
                "micro_manager": {
                    "camera": core.getCameraDevice(),
                    "xy_stage": core.getXYStageDevice(),
                    "channel_group": core.getChannelGroup(),
                    "pixel_affine": list(core.getPixelSizeAffine()),
                    "positions": [list(p) if p else None for p in self.plan.positions],
                    "interval_s": self.plan.interval_s,
                    "channel": self.plan.channel,
                }
            },
        )
        self.events = EventQueue(self.plan)
        self._done.clear()
        core.mda.events.frameReady.connect(self._on_frame)
        core.mda.events.sequenceFinished.connect(self._on_finished)
        self._thread = core.run_mda(self.events)
        return self.info

    def read(self, timeout_s: float | None = None) -> Frame:
        """The next plan frame; ``TimeoutError`` when none came in time, ``EndOfStream`` after
        the acquisition ended."""
        if self._thread is None and not self._done.is_set():
            self.open()
        try:  # after the end only what is left (the end marker may not have fit)
            done = self._done.is_set()
            frame = self._frames.get_nowait() if done else self._frames.get(timeout=timeout_s)
        except queue.Empty:
            if self._done.is_set():
                raise EndOfStream from None
            raise TimeoutError(f"no frame from {self.name} within {timeout_s} s") from None
        if frame is None:
            self._frames.put(None)  # keep saying so
            raise EndOfStream
        return frame

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the MDA after its current event, wait for its thread, disconnect; safe twice."""
        thread, self._thread = self._thread, None
        if self.events is not None:
            self.events.stop()
        if thread is None:
            self._finish()
            return
        thread.join(min(2.0, timeout_s))  # the queue ends after the running event
        if thread.is_alive():  # an event that hangs (a device): ask the runner to cancel
            self.core.mda.cancel()
            thread.join(timeout_s)
        if thread.is_alive():
            log.warning("the MDA thread did not end within %.0f s", timeout_s)
        self.core.mda.events.frameReady.disconnect(self._on_frame)
        self.core.mda.events.sequenceFinished.disconnect(self._on_finished)
        if self.actions is not None:
            self.actions.close()
        self._finish()

    def channel_presets(self) -> set[str]:
        """The presets of the plan's channel group (the core's channel group by default)."""
        group = self.plan.channel_group or self.core.getChannelGroup()
        if not group or not self.core.isGroupDefined(group):
            return set()
        return set(self.core.getAvailableConfigs(group))

    # -- actions (called by the rule engine) ---------------------------------------------------
    def request_action(self, kind: str, options: Any, event: Any, frame: Frame) -> Any:
        """Hand a rule's acquisition action to the action runner (see ``acquire``)."""
        if self.actions is None:
            from liveaug.sources.mmcore.acquire import ActionRunner

            self.actions = ActionRunner(self, record_dir=self.action_dir)
        return self.actions.request(kind, options, event, frame)

    def sustain_action(self, kind: str, options: Any, rule: str) -> None:
        """A cell ``rule`` fired for is still in its state: ``rate`` stays fast ``hold_s``
        from now."""
        if self.actions is not None:
            self.actions.sustain(kind, options, rule)

    # -- the MDA thread ------------------------------------------------------------------------
    def _on_frame(self, img: np.ndarray, event: Any, meta: Any) -> None:
        """Turn one MDA frame into a Frame: plan frames to ``read``, action frames recorded."""
        is_action = "liveaug_action" in event.metadata
        index = self.counts["action_frames"] if is_action else self._index
        frame = self.to_frame(img, event, meta, index)
        if is_action:
            self.counts["action_frames"] += 1
            if self.actions is not None:
                self.actions.on_frame(frame, event)
            return
        c = int(event.index.get("c", 0))
        if self.plan.extra_channels:  # gather the extras into the main channel's frame
            if c == 0:
                if self._partial is not None:  # its extras never came (a device failed)
                    self.counts["incomplete"] += 1
                    log.warning("frame %d lost a channel; not delivered", self._partial.index)
                self._partial = frame
            elif self._partial is None:  # its main channel never came
                self.counts["incomplete"] += 1
                return
            else:
                name = self.plan.extra_channels[c - 1][0]
                channels = {**self._partial.channels, name: img}
                meta = {**self._partial.meta, "acquired_ns": frame.meta["acquired_ns"]}
                meta.setdefault("channel_exposures_ms", {})[name] = frame.meta["exposure_ms"]
                self._partial = dataclasses.replace(self._partial, channels=channels, meta=meta)
            if c < len(self.plan.extra_channels):
                return
            frame, self._partial = self._partial, None
        self.counts["frames"] += 1
        self._index += 1
        if self.actions is not None:
            self.actions.on_plan_frame()
        while True:  # the instrument never waits for a reader: when nobody reads (paused),
            try:  # the oldest frame waiting makes room, counted
                self._frames.put_nowait(frame)
                return
            except queue.Full:
                try:
                    self._frames.get_nowait()
                    self.counts["dropped"] += 1
                except queue.Empty:
                    pass

    def to_frame(self, img: np.ndarray, event: Any, meta: Any, index: int) -> Frame:
        """Frame ``index`` from the MDA's image, event and frame metadata (plan frames and each
        action's frames are numbered apart: the tracker sees the plan without gaps)."""
        pos = meta.get("position") or {}
        x, y = pos.get("x"), pos.get("y")
        ch = event.channel.config if event.channel is not None else None
        info: dict[str, Any] = {
            "stage_x_um": x,
            "stage_y_um": y,
            "channel": ch,
            "exposure_ms": meta.get("exposure_ms"),
            "mda_index": dict(event.index),
            "runner_time_ms": round(float(meta.get("runner_time_ms", 0.0)), 3),
            "acquired_ns": time.perf_counter_ns(),
            "pixel_affine": list(self.info.settings["micro_manager"]["pixel_affine"])
            if self.info
            else None,
        }
        info.update({k: v for k, v in event.metadata.items() if isinstance(v, str | int | float)})
        if event.x_pos is not None and x is not None and y is not None:
            miss = np.hypot(event.x_pos - x, (event.y_pos or y) - y)
            if miss > STAGE_TOLERANCE_UM:
                info["stage_error"] = f"stage at ({x:.1f}, {y:.1f}), not the commanded " + (
                    f"({event.x_pos:.1f}, {event.y_pos:.1f}) µm"
                )
                self.counts["stage_errors"] += 1
                self.fault.emit(MMFault("stage", info["stage_error"]))
        truth = None
        timestamp_ns = time.monotonic_ns()
        clock = "host"
        if self.dish is not None and self.dish.last is not None:
            snap = self.dish.last
            truth = snap.truth
            info["sim_time_s"] = snap.time_s
            timestamp_ns, clock = round(snap.time_s * 1e9), "device"
        bits = self.info.bit_depth if self.info else 16
        return Frame(
            image=img,
            index=index,
            timestamp_ns=timestamp_ns,
            clock=clock,
            pixel_format="Mono8" if img.dtype == np.uint8 else f"Mono{bits}",
            bit_depth=bits,
            pixel_size_um=float(meta.get("pixel_size_um") or 0) or None,
            meta=info,
            truth=truth,
        )

    def _on_finished(self, *_: Any) -> None:
        """The MDA ended (plan done, stopped or failed): readers get EndOfStream."""
        self._finish()

    def _finish(self) -> None:
        """Mark the stream ended, once; the sentinel wakes a blocked ``read``."""
        if not self._done.is_set():
            self._done.set()
            try:
                self._frames.put_nowait(None)
            except queue.Full:
                pass


def _bit_depth(core: Any) -> int:
    """Significant bits per pixel: the camera's ``PixelFormat`` (Mono12 …) when it has one,
    else what the core says (the buffer's width for Python cameras)."""
    cam = core.getCameraDevice()
    try:
        value = core.getProperty(cam, "PixelFormat")
        fmt = str(getattr(value, "value", value))
    except Exception:
        fmt = ""
    digits = "".join(ch for ch in fmt if ch.isdigit())
    if fmt.startswith("Mono") and digits:
        return int(digits)
    return int(core.getImageBitDepth())


def simulated_source(
    dish: Any = None,
    *,
    plan: Plan | None = None,
    core: Any = None,
    action_dir: str | Path | None = None,
) -> MMSource:
    """An MMSource on liveaug's simulated dish through Python devices (no Micro-Manager)."""
    from liveaug.sources.mmcore.devices import CHANNEL_GROUP, simulated_core
    from liveaug.sources.mmcore.dish import SimulatedDish

    dish = dish or SimulatedDish()
    core = simulated_core(dish, core)
    plan = plan or Plan(
        positions=[(0.0, 0.0)], interval_s=0.0, channel="brightfield", channel_group=CHANNEL_GROUP
    )
    name = "simulated microscope (Micro-Manager devices)"
    return MMSource(core, plan=plan, dish=dish, name=name, action_dir=action_dir)
