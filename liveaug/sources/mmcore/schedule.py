"""The event queue a running pymmcore-plus MDA consumes: the imaging plan, and actions cut in.

pymmcore-plus runs an *iterator* of ``useq.MDAEvent`` as it comes (its docs' queue-driven
acquisition, ``iter(queue.get, None)``). :class:`EventQueue` is that iterator: it yields the
plan's events when they are due (a time-lapse over stage positions, sparse or — while a ``rate``
action holds — fast) and, ahead of them, the events actions insert (an ``image_cell`` burst).
While a burst is pending the plan waits, so the burst runs whole and the plan resumes after it.
:meth:`EventQueue.stop` ends the iteration, which ends the MDA cleanly at the next event.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import useq


@dataclass(frozen=True)
class Plan:
    """A time-lapse: every ``interval_s`` image each position in one channel (and optionally
    a few more).

    ``positions`` are stage (x, y) µm; None images wherever the stage is. ``rounds`` None runs
    until stopped. ``interval_s`` 0 images as fast as the hardware allows. ``extra_channels``
    are (preset, exposure ms or None) taken after the main channel at each position — e.g. a
    low-light reporter sentinel beside brightfield; the source delivers them in the main
    channel's :class:`~liveaug.frame.Frame` as ``channels``.
    """

    positions: Sequence[tuple[float, float] | None] = (None,)
    interval_s: float = 1.0
    channel: str | None = None
    channel_group: str | None = None
    exposure_ms: float | None = None
    rounds: int | None = None
    extra_channels: tuple[tuple[str, float | None], ...] = ()

    @property
    def events_per_position(self) -> int:
        """MDA events at each position of a round (main channel + extras)."""
        return 1 + len(self.extra_channels)

    def event(self, t: int, p: int, c: int = 0) -> useq.MDAEvent:
        """The plan's event for round ``t`` at position ``p``, channel ``c`` (0 = main)."""
        pos = self.positions[p]
        kw: dict[str, Any] = {}
        if pos is not None:
            kw["x_pos"], kw["y_pos"] = float(pos[0]), float(pos[1])
        name, exposure = (self.channel, self.exposure_ms) if c == 0 else self.extra_channels[c - 1]
        if name is not None:
            ch: dict[str, Any] = {"config": name}
            if self.channel_group:
                ch["group"] = self.channel_group
            kw["channel"] = ch
        index = {"t": t, "p": p, "c": c} if self.extra_channels else {"t": t, "p": p}
        return useq.MDAEvent(
            index=index,
            exposure=exposure,
            metadata={"liveaug": "plan", "round": t, "position": p},
            **kw,
        )


class EventQueue:
    """An iterator of ``MDAEvent`` for a running MDA: the plan, with actions inserted first.

    Parameters
    ----------
    plan : Plan
    clock : callable
        Seconds, monotonic (the wall clock; tests and benches may pass their own).
    """

    def __init__(self, plan: Plan, *, clock: Any = time.monotonic) -> None:
        self.plan = plan
        self.clock = clock
        self._cond = threading.Condition()
        self._urgent: list[tuple[float, int, useq.MDAEvent]] = []
        self._seq = itertools.count()
        self._stopped = False
        self._round = 0
        self._pos = 0
        self._chan = 0
        self._round_due = clock()
        self._last_round_start = self._round_due
        self._fast: tuple[float, float] | None = None  # (interval_s, until)
        self.yielded = 0
        self.handed_ns: dict[Any, int] = {}
        """``perf_counter_ns`` at which each action's first event went to the MDA (by the
        ``liveaug_action`` id in its metadata)."""

    # -- control (any thread) -----------------------------------------------------------------
    def insert(
        self, events: Sequence[useq.MDAEvent], *, offsets_s: Sequence[float] | None = None
    ) -> None:
        """Queue ``events`` ahead of the plan, each no earlier than now + its offset (s)."""
        now = self.clock()
        offsets = list(offsets_s) if offsets_s is not None else [0.0] * len(events)
        with self._cond:
            for off, ev in zip(offsets, events, strict=True):
                heapq.heappush(self._urgent, (now + off, next(self._seq), ev))
            self._cond.notify_all()

    def pending(self) -> int:
        """Inserted events not yet handed to the MDA."""
        with self._cond:
            return len(self._urgent)

    def hold_interval(self, interval_s: float, seconds: float) -> None:
        """Image at ``interval_s`` instead of the plan's for the next ``seconds`` (extends)."""
        with self._cond:
            until = self.clock() + seconds
            if self._fast is not None:
                until = max(until, self._fast[1])
            self._fast = (float(interval_s), until)
            # a round already waiting on the sparse interval comes forward
            self._round_due = min(self._round_due, self._last_round_start + interval_s)
            self._cond.notify_all()

    def fast_until(self) -> float | None:
        """Clock time the fast interval lasts until (None: sparse)."""
        with self._cond:
            return self._fast[1] if self._fast is not None else None

    def interval_s(self) -> float:
        """The interval in force now (fast while a ``rate`` action holds)."""
        with self._cond:
            return self._interval_now()

    def stop(self) -> None:
        """End the iteration: the MDA finishes after the event it is running."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    @property
    def stopped(self) -> bool:
        """Whether :meth:`stop` was called or a finite plan is done."""
        return self._stopped

    # -- the iterator (the MDA thread) --------------------------------------------------------
    def _interval_now(self) -> float:
        """The fast interval while a hold lasts, else the plan's (lock held)."""
        if self._fast is not None and self.clock() < self._fast[1]:
            return self._fast[0]
        self._fast = None
        return self.plan.interval_s

    def __iter__(self) -> EventQueue:
        """The queue is its own iterator (one MDA consumes it)."""
        return self

    def __next__(self) -> useq.MDAEvent:
        """The next event: an inserted one when due, else the plan's when due; waits."""
        with self._cond:
            while True:
                if self._stopped:
                    raise StopIteration
                now = self.clock()
                if self._urgent:
                    due, _, ev = self._urgent[0]
                    if due <= now:
                        heapq.heappop(self._urgent)
                        self.yielded += 1
                        key = ev.metadata.get("liveaug_action")
                        if key is not None:
                            self.handed_ns.setdefault(key, time.perf_counter_ns())
                        return ev
                    self._cond.wait(min(due - now, 0.5))
                    continue
                if self.plan.rounds is not None and self._round >= self.plan.rounds:
                    self._stopped = True
                    raise StopIteration
                if self._round_due <= now:
                    return self._next_plan_event(now)
                self._cond.wait(min(self._round_due - now, 0.5))

    def _next_plan_event(self, now: float) -> useq.MDAEvent:
        """Hand out the plan's next event and move the plan on."""
        if self._pos == 0 and self._chan == 0:
            self._last_round_start = max(self._round_due, now - 1.0)
        ev = self.plan.event(self._round, self._pos, self._chan)
        self._chan += 1
        if self._chan < self.plan.events_per_position:
            self.yielded += 1
            return ev
        self._chan = 0
        self._pos += 1
        if self._pos >= len(self.plan.positions):
            self._pos = 0
            self._round += 1
            self._round_due = self._last_round_start + self._interval_now()
        self.yielded += 1
        return ev
