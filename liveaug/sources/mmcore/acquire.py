"""Acquisition actions on a running Micro-Manager MDA: ``image_cell`` and ``rate``.

An event rule asks (:meth:`ActionRunner.request`); the runner refuses what it must (stale
trigger, cell outside the field, another burst still running, the rule's rate limit), logs what
it would do with ``dry_run``, and otherwise turns the request into ``useq.MDAEvent``\\s inserted
into the running queue-driven MDA (:class:`~liveaug.sources.mmcore.schedule.EventQueue`), at most
``max_running`` bursts at once and never two for one cell:

- ``image_cell`` centres the cell with the pixel→stage calibration, takes a burst of
  ``frames`` time points ``interval_s`` apart (brightfield and each of ``channels`` at each),
  and the plan resumes after it, back at its own positions;
- ``rate`` makes the plan's time-lapse fast (``fast_interval_s``) while the event lasts —
  ``hold_s`` past the last observation of a fired cell still in its state — then sparse again.

Every request becomes an :class:`ActionRecord` (what, for which cell and event, why not), and
each burst is written as a small liveaug session (``action_0001_cell12_rule.ome.zarr``: burst
frames with their channels, stage positions and the trigger in its metadata) by a writer thread,
so the MDA thread never waits for a disk.
"""

from __future__ import annotations

import atexit
import json
import logging
import queue
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import useq

from liveaug.analysis.actions import AcquireOptions, stage_target
from liveaug.errors import one_line
from liveaug.frame import CellEvent, Frame

log = logging.getLogger(__name__)

#: Action writers still running (and their queues); at exit they write what they hold.
_writers: dict[threading.Thread, queue.Queue[Any]] = {}


@atexit.register
def _finish_writes() -> None:
    """At exit, let unclosed runners' writer threads write what they hold, then end."""
    for t, q in list(_writers.items()):
        q.put(None)
        t.join(30.0)


@dataclass
class ActionRecord:
    """One requested action, what became of it, and what it acquired."""

    id: int
    kind: str
    rule: str
    cell_id: int
    event_frame: int
    x_px: float
    y_px: float
    trigger_ns: int
    """Host ``perf_counter_ns`` at which the triggering frame was acquired."""
    trigger_s: float = 0.0
    """The triggering frame's timestamp, s (experiment time on a simulated dish)."""
    requested_ns: int = 0
    """Host ``perf_counter_ns`` at which the rule asked (trigger → request: the analysis)."""
    status: str = "queued"
    """running → done / incomplete; or dry_run, skipped: <why>, fast."""
    target_um: tuple[float, float] | None = None
    channels: tuple[str, ...] = ()
    """Presets of each burst time point, in order; the last is ``main``."""
    main: str | None = None
    """The burst's main plane (the plan's channel, e.g. brightfield; else the first of
    ``channels``): the image plane of its session, the others its ``channels``."""
    expected: int = 0
    acquired: int = 0
    started_ns: int | None = None
    """When the MDA took the action's first event (request → here: waiting for the event
    the MDA was running)."""
    first_frame_ns: int | None = None
    last_frame_ns: int | None = None
    stage_errors: int = 0
    session: str | None = None
    frames: list[Frame] = field(default_factory=list, repr=False)

    @property
    def latency_ms(self) -> float | None:
        """Triggering frame acquired → the action's first frame acquired, ms."""
        if self.first_frame_ns is None or not self.trigger_ns:
            return None
        return (self.first_frame_ns - self.trigger_ns) / 1e6

    def as_dict(self) -> dict[str, Any]:
        """JSON-able summary (no pixels)."""
        d = asdict(self)
        d.pop("frames")
        d["latency_ms"] = self.latency_ms
        return d


class ActionRunner:
    """Carries out acquisition actions through an :class:`~liveaug.sources.mmcore.MMSource`.

    Parameters
    ----------
    source : MMSource
        Open (its MDA running); actions are inserted into ``source.events``.
    record_dir : path, optional
        Where each burst is written as a session (and ``actions.jsonl`` logs every request);
        None keeps the frames of the latest ``keep`` bursts in memory (``ActionRecord.frames``).
    max_running : int
        Bursts that may run at once (a second one takes its frames in the gaps of the first,
        each at its own cadence); a request beyond that is refused, so actions never stack up.
    """

    def __init__(
        self,
        source: Any,
        *,
        record_dir: str | Path | None = None,
        max_running: int = 2,
        keep: int = 64,
    ) -> None:
        self.source = source
        self.record_dir = Path(record_dir) if record_dir is not None else None
        self.records: list[ActionRecord] = []
        self._by_id: dict[int, ActionRecord] = {}
        self.max_running = max_running
        self.keep = keep
        self._kept: list[ActionRecord] = []  # bursts whose frames are in memory
        self._fast_rules: set[str] = set()  # rules whose rate action made the plan fast
        self._pending: list[ActionRecord] = []  # bursts not finished yet
        self._last_start: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self._writes: queue.Queue[tuple[str, Any] | None] = queue.Queue()
        self._writer: threading.Thread | None = None

    # -- requests (the analysis thread) -------------------------------------------------------
    def request(
        self, kind: str, options: AcquireOptions, event: CellEvent, frame: Frame
    ) -> ActionRecord:
        """Plan one action for ``event`` seen on ``frame``; returns its record (never raises
        for a refusal: the record says why)."""
        with self._lock:
            rec = ActionRecord(
                id=len(self.records) + 1,
                kind=kind,
                rule=event.rule,
                cell_id=event.cell_id,
                event_frame=event.frame_index,
                x_px=event.x,
                y_px=event.y,
                trigger_ns=int(frame.meta.get("acquired_ns") or 0),
                trigger_s=frame.timestamp_ns / 1e9,
                requested_ns=time.perf_counter_ns(),
            )
            self.records.append(rec)
            self._by_id[rec.id] = rec
            why = self._refusal(kind, options, rec, frame)
            if why:
                rec.status = f"skipped: {why}"
                log.info("action %s for cell %d skipped: %s", kind, rec.cell_id, why)
            elif kind == "rate":
                self._rate(options, rec)
            elif kind == "image_cell":
                self._image_cell(options, rec, frame)
            else:
                rec.status = f"skipped: unknown action {kind!r}"
            self._log_record(rec)
            return rec

    def _refusal(
        self, kind: str, options: AcquireOptions, rec: ActionRecord, frame: Frame
    ) -> str | None:
        """Why this request must not run (None: it may)."""
        events = getattr(self.source, "events", None)
        if events is None or events.stopped:
            return "the acquisition is not running"
        age_s = (time.perf_counter_ns() - rec.trigger_ns) / 1e9 if rec.trigger_ns else 0.0
        if age_s > options.max_age_s:
            return f"trigger is {age_s:.1f} s old (max_age_s {options.max_age_s:g})"
        now = time.monotonic()
        last = self._last_start.get((kind, rec.rule))
        if last is not None and now - last < options.min_gap_s:
            return f"rate limit ({options.min_gap_s:g} s between {kind} actions of this rule)"
        if kind != "image_cell":
            return None
        presets = self.source.channel_presets()
        plan_channel = self.source.plan.channel
        wanted = (*options.channels, *([plan_channel] if plan_channel else []))
        missing = [c for c in wanted if c not in presets]
        if not wanted:
            return "no channels to image (give acquire: channels)"
        if missing:
            return f"no channel preset {missing[0]!r} (presets: {sorted(presets)})"
        h, w = frame.shape
        if not (0 <= rec.x_px < w and 0 <= rec.y_px < h):
            return f"cell {rec.cell_id} has left the field"
        if frame.meta.get("stage_x_um") is None or not frame.pixel_size_um:
            return "the frame has no stage position or pixel size"
        for p in self._pending:
            if p.cell_id == rec.cell_id and p.rule == rec.rule:
                return f"cell {rec.cell_id} is being imaged already (action {p.id})"
        if len(self._pending) >= self.max_running:
            ids = ", ".join(str(p.id) for p in self._pending)
            return f"{len(self._pending)} bursts are still running (actions {ids})"
        return None

    def _rate(self, options: AcquireOptions, rec: ActionRecord) -> None:
        """Fast time-lapse for ``hold_s`` (extended by every trigger)."""
        self._last_start[("rate", rec.rule)] = time.monotonic()
        if options.dry_run:
            rec.status = "dry_run"
            log.info(
                "dry run: would image every %g s for %g s (cell %d, %s)",
                options.fast_interval_s,
                options.hold_s,
                rec.cell_id,
                rec.rule,
            )
            return
        self.source.events.hold_interval(options.fast_interval_s, options.hold_s)
        self._fast_rules.add(rec.rule)
        rec.status = "fast"

    def sustain(self, kind: str, options: AcquireOptions, rule: str) -> None:
        """While a cell ``rule`` fired for stays in its state, ``rate`` holds the fast interval
        (no new record: the trigger's stands for the episode; a refused trigger sustains
        nothing)."""
        events = getattr(self.source, "events", None)
        if kind != "rate" or options.dry_run or events is None or events.stopped:
            return
        if rule in self._fast_rules:
            events.hold_interval(options.fast_interval_s, options.hold_s)

    def _image_cell(self, options: AcquireOptions, rec: ActionRecord, frame: Frame) -> None:
        """Centre the cell, burst in its channels, let the plan resume."""
        stage = (float(frame.meta["stage_x_um"]), float(frame.meta["stage_y_um"]))
        assert frame.pixel_size_um is not None
        rec.target_um = stage_target(
            stage,
            (rec.x_px, rec.y_px),
            frame.shape,
            frame.pixel_size_um,
            frame.meta.get("pixel_affine"),
        )
        # the fluorescence first (what the event is about), the plan's channel after it
        main = self.source.plan.channel
        fluo = tuple(c for c in options.channels if c != main)
        rec.channels = (*fluo, main) if main else fluo
        rec.main = main or fluo[0]
        rec.expected = options.frames * len(rec.channels)
        self._last_start[("image_cell", rec.rule)] = time.monotonic()
        x, y = rec.target_um
        if options.dry_run:
            rec.status = "dry_run"
            log.info(
                "dry run: would centre cell %d at stage (%.1f, %.1f) µm and take %d × %s",
                rec.cell_id,
                x,
                y,
                options.frames,
                "+".join(rec.channels),
            )
            return
        group = self.source.core.getChannelGroup() or None
        plan_exposure = self.source.plan.exposure_ms
        events = []
        for k in range(options.frames):
            for ci, ch in enumerate(rec.channels):
                channel: dict[str, Any] = {"config": ch}
                if group:
                    channel["group"] = group
                events.append(
                    useq.MDAEvent(
                        index={"a": rec.id, "t": k, "c": ci},
                        x_pos=x,
                        y_pos=y,
                        channel=channel,
                        exposure=plan_exposure if ch == main else options.exposure_ms,
                        metadata={
                            "liveaug_action": rec.id,
                            "rule": rec.rule,
                            "cell_id": rec.cell_id,
                            "event_frame": rec.event_frame,
                            "burst_frame": k,
                        },
                    )
                )
        rec.status = "running"
        self._pending.append(rec)
        offsets = [k * options.interval_s for k in range(options.frames) for _ in rec.channels]
        self.source.events.insert(events, offsets_s=offsets)

    # -- frames (the MDA thread) ----------------------------------------------------------------
    def on_frame(self, frame: Frame, event: Any) -> None:
        """A burst frame arrived: count it, keep it, finish the action on its last frame."""
        rec = self._by_id.get(int(event.metadata.get("liveaug_action", -1)))
        if rec is None:
            return
        with self._lock:
            if rec.first_frame_ns is None:
                rec.started_ns = self.source.events.handed_ns.get(rec.id)
                rec.first_frame_ns = int(frame.meta.get("acquired_ns") or time.perf_counter_ns())
            rec.last_frame_ns = int(frame.meta.get("acquired_ns") or time.perf_counter_ns())
            rec.acquired += 1
            rec.stage_errors += "stage_error" in frame.meta
            rec.frames.append(frame)
            if rec.acquired >= rec.expected:
                self._finish(rec, "done")

    def on_plan_frame(self) -> None:
        """The plan moved on: a burst that lost frames (a device failed) is over."""
        with self._lock:
            if self._pending and self.source.events.pending() == 0:
                for rec in list(self._pending):
                    self._finish(rec, "incomplete")

    def _finish(self, rec: ActionRecord, status: str) -> None:
        """Close an action: status, free the slot, write its burst and record."""
        rec.status = status if not rec.stage_errors else f"{status} (stage errors)"
        if rec in self._pending:
            self._pending.remove(rec)
        self._log_record(rec)
        if self.record_dir is not None and rec.frames:
            self._submit("session", rec)
        elif rec.frames:  # memory only: the latest bursts keep their frames
            if not self._kept:
                log.info("action bursts are kept in memory only; give a folder to record them")
            self._kept.append(rec)
            while len(self._kept) > self.keep:
                self._kept.pop(0).frames = []

    # -- recording (a writer thread) ------------------------------------------------------------
    def _log_record(self, rec: ActionRecord) -> None:
        """Queue one line of ``actions.jsonl`` for the record (when recording)."""
        if self.record_dir is not None:
            self._submit("line", rec.as_dict())

    def _submit(self, kind: str, item: Any) -> None:
        """Hand a write to the writer thread (started on first use)."""
        if self._writer is None:  # a daemon: an unclosed runner must not hang the exit
            self._writer = threading.Thread(
                target=self._write_loop, name="liveaug-actions", daemon=True
            )
            _writers[self._writer] = self._writes
            self._writer.start()
        self._writes.put((kind, item))

    def _write_loop(self) -> None:
        """The writer thread: log lines and burst sessions, in order, until ``close``."""
        assert self.record_dir is not None
        self.record_dir.mkdir(parents=True, exist_ok=True)
        while (job := self._writes.get()) is not None:
            kind, item = job
            try:
                if kind == "line":
                    with open(self.record_dir / "actions.jsonl", "a") as f:
                        f.write(json.dumps(item, default=str) + "\n")
                else:
                    self._write_session(item)
            except Exception as exc:  # report; the next action may still be written
                log.warning("recording an action failed: %s", one_line(exc))

    def _write_session(self, rec: ActionRecord) -> None:
        """The burst as a liveaug session: the main plane + the other channels per time point."""
        from liveaug.session import SessionWriter

        assert self.record_dir is not None
        by_t: dict[int, dict[str, Frame]] = {}
        for f in rec.frames:
            by_t.setdefault(int(f.meta.get("burst_frame", 0)), {})[str(f.meta["channel"])] = f
        extra = tuple(c for c in rec.channels if c != rec.main)
        first = rec.frames[0]
        path = self.record_dir / f"action_{rec.id:04d}_cell{rec.cell_id}_{rec.rule}.ome.zarr"
        with SessionWriter(
            path,
            shape=first.shape,
            dtype=first.image.dtype,
            bit_depth=first.bit_depth,
            pixel_size_um=first.pixel_size_um,
            channel_names=extra,
            metadata={"source": "liveaug action", "action": rec.as_dict()},
        ) as writer:
            for k in sorted(by_t):
                planes = by_t[k]
                if not all(c in planes for c in rec.channels):
                    continue  # a time point a device failed on
                bf = planes[str(rec.main)]
                meta = {**bf.meta, "channels": {c: planes[c].meta for c in extra}}
                writer.append(
                    Frame(
                        image=bf.image,
                        index=k,
                        timestamp_ns=bf.timestamp_ns,
                        clock=bf.clock,
                        pixel_format=bf.pixel_format,
                        bit_depth=bf.bit_depth,
                        pixel_size_um=bf.pixel_size_um,
                        channels={c: planes[c].image for c in extra},
                        meta=meta,
                    )
                )
        rec.session = str(path)
        rec.frames = []  # on disk now

    def close(self, timeout_s: float = 10.0) -> None:
        """End bursts the acquisition left unfinished (what they took is kept), write what is
        pending and stop the writer thread."""
        with self._lock:
            for rec in list(self._pending):
                self._finish(rec, "incomplete")
        if self._writer is not None:
            self._writes.put(None)
            self._writer.join(timeout_s)
            if not self._writer.is_alive():
                _writers.pop(self._writer, None)
            self._writer = None

    def summary(self) -> dict[str, int]:
        """How many requests ended in each status."""
        out: dict[str, int] = {}
        for r in self.records:
            key = r.status.split(":")[0]
            out[key] = out.get(key, 0) + 1
        return out
