"""The real-time engine: acquisition → recording → prediction → analysis → subscribers.

Threads (see ARCHITECTURE.md):

- one **acquisition** thread reads the source as fast as it delivers; every frame goes to the
  recorder queue (bounded, never dropped: a recorder that falls a whole queue behind makes
  acquisition wait) and into two newest-wins slots, one the display pulls from and one the compute
  worker takes from;
- one **recorder** thread appends frames to the session;
- one **compute** worker always takes the *newest* frame (older ones are dropped and counted),
  runs the predictor for the roles someone asked for and the analyzer, and hands a
  :class:`Result` to subscribers, newest-wins.

Nothing here imports Qt: subscribers connect to psygnal signals (emitted from worker threads; a GUI
relays them to its main thread), or poll :meth:`Pipeline.latest_frame` / :meth:`latest_result`.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from psygnal import Signal

from liveaug.errors import EndOfStream, LiveaugError, one_line
from liveaug.frame import ROLES, Frame, Prediction
from liveaug.mailbox import Latest
from liveaug.sources.base import Source, SourceInfo
from liveaug.timing import RollingTimings

log = logging.getLogger(__name__)

#: Most memory the recorder's backlog may hold (frames already acquired, not yet on disk).
RECORD_BACKLOG_BYTES = 1 << 30
#: Longest the interpreter waits at exit for a recorder's backlog (s).
EXIT_DRAIN_S = 120.0
#: Recorder threads still writing their backlog after :meth:`Pipeline.stop` returned.
_draining: set[threading.Thread] = set()


@atexit.register
def _finish_recordings() -> None:
    """At interpreter exit, let recorders write what they hold: recorded frames are not lost."""
    for t in list(_draining):
        if t.is_alive():
            log.warning("waiting for the recorder to write its last frames")
            t.join(EXIT_DRAIN_S)
            if t.is_alive():  # a hung disk must not hang the exit forever
                log.error(
                    "the recorder did not finish within %.0f s; its backlog is lost", EXIT_DRAIN_S
                )


class Predictor(Protocol):
    """Turns a frame into prediction maps for the requested roles only."""

    def predict(self, frame: Frame, roles: Collection[str]) -> Prediction:
        """Run the models that fill ``roles`` (a subset of :data:`~liveaug.frame.ROLES`)."""
        ...


class Analyzer(Protocol):
    """Turns a frame and its prediction into cells, readouts and events."""

    required_roles: frozenset[str]
    """Roles the analyzer needs predicted whatever the display shows."""

    def analyze(self, frame: Frame, prediction: Prediction) -> Any:
        """Segment, measure, track; returns an object with ``timings_ms`` (dict) if it can."""
        ...

    # optional: ``check_source(info)`` raises a LiveaugError when the opened source cannot feed
    # it (a nuclear stain channel it does not record); the pipeline then closes the source


class Recorder(Protocol):
    """Anything with ``append(frame)`` and ``close()``, such as a ``SessionWriter``."""

    def append(self, frame: Frame) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Result:
    """One analysed frame, handed to subscribers."""

    frame: Frame
    received_ns: int
    """Host ``perf_counter_ns`` when the frame arrived from the source."""
    prediction: Prediction | None
    analysis: Any
    timings_ms: dict[str, float]
    latency_ms: float
    """Arrival of the frame → result ready (host clock)."""
    dropped: int
    """Frames the compute worker skipped so far (it always takes the newest)."""


@dataclass(frozen=True, slots=True)
class PipelineEvent:
    """Something subscribers should show: a stage error, a source fault, the end of a stream."""

    kind: str
    """``error`` (a stage failed on one frame), ``fault`` (the source failed), ``end``."""
    stage: str
    message: str
    frame_index: int | None = None
    time_s: float = field(default_factory=time.monotonic)


@dataclass(frozen=True, slots=True)
class _Arrival:
    frame: Frame
    received_ns: int
    seq: int


class Pipeline:
    """Moves frames from a source through recording, prediction and analysis.

    Parameters
    ----------
    source : Source
        Opened by :meth:`start`, closed by :meth:`stop`.
    predictor, analyzer : optional
        The compute stages; with neither, the pipeline only acquires (and records).
    recorder : optional
        Gets every frame, in order, on its own thread; closed by :meth:`stop`.
    record_queue : int
        Frames the recorder may fall behind before acquisition waits for it.
    roles : iterable of str
        What to predict for the :data:`DEFAULT_CONSUMER` until someone says otherwise.
    max_analysis_hz : float, optional
        Start at most this many analyses per second (the frames in between are dropped and
        counted). On a small CPU this leaves the display and acquisition a share of the cores;
        None analyses as fast as the compute allows.
    compute_nice : int
        Niceness added to the compute thread's (Linux; 0 = as the process). A live display
        passes a positive value: the GUI and the GL rasteriser then win the cores whenever both
        want one, and the analysis, which drops frames by design, takes what is left.
    """

    DEFAULT_CONSUMER = "default"
    """Consumer name under which the constructor's ``roles`` are requested."""

    frame_acquired = Signal(object)
    """Emits each :class:`~liveaug.frame.Frame` as it arrives (acquisition thread)."""
    result_ready = Signal(object)
    """Emits each :class:`Result` (compute thread)."""
    event = Signal(object)
    """Emits :class:`PipelineEvent` for errors, source faults and end of stream."""

    def __init__(
        self,
        source: Source,
        *,
        predictor: Predictor | None = None,
        analyzer: Analyzer | None = None,
        recorder: Recorder | None = None,
        record_queue: int = 256,
        stats_window: int = 300,
        roles: Iterable[str] = ROLES,
        max_analysis_hz: float | None = None,
        compute_nice: int = 0,
    ) -> None:
        self.source = source
        self.predictor = predictor
        self.analyzer = analyzer
        self.recorder = recorder
        self.info: SourceInfo | None = None
        self.timings = RollingTimings(stats_window)
        self._display = Latest[Frame]()
        self._work = Latest[_Arrival]()
        self._results = Latest[Result]()
        self.record_queue = record_queue
        self._record_q: queue.Queue[Frame | None] = queue.Queue(maxsize=record_queue)
        self._wanted: dict[str, frozenset[str]] = {}
        self._lock = threading.Lock()
        self.request_roles(self.DEFAULT_CONSUMER, roles)
        self.max_analysis_hz = max_analysis_hz
        self.compute_nice = compute_nice
        self._stop = threading.Event()
        self._running = threading.Event()  # cleared = paused
        self._source_done = threading.Event()
        self._done_seq = 0  # arrival number of the last frame the compute worker finished
        self._threads: list[threading.Thread] = []
        self._failed_signals: set[str] = set()
        self.counts = {
            "acquired": 0,
            "analysed": 0,
            "recorded": 0,
            "errors": 0,
            "subscriber_errors": 0,
            "timeouts": 0,
            "record_backlog_max": 0,
        }

    # -- what to compute --------------------------------------------------------------------------
    def request_roles(self, consumer: str, roles: Iterable[str]) -> None:
        """Declare which roles ``consumer`` (an overlay, a rule, a table) needs; union runs.

        A consumer that decides everything itself (the viewer) clears
        :data:`DEFAULT_CONSUMER`'s request first.
        """
        roles = frozenset(roles)
        unknown = roles - set(ROLES)
        if unknown:
            raise LiveaugError(
                f"unknown prediction roles {sorted(unknown)}", f"choose from {', '.join(ROLES)}"
            )
        with self._lock:
            self._wanted[consumer] = roles

    @property
    def roles(self) -> frozenset[str]:
        """Roles the predictor runs now: what consumers asked for plus what analysis needs."""
        with self._lock:
            wanted = frozenset().union(*self._wanted.values())
        if self.analyzer is not None:
            wanted |= self.analyzer.required_roles
        return wanted

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> SourceInfo:
        """Open the source and start the threads; returns what the source delivers."""
        if self._threads:
            raise RuntimeError("pipeline already started")
        self.info = self.source.open()
        check = getattr(self.analyzer, "check_source", None)
        if check is not None:  # e.g. a --nuclei-channel the source does not record
            try:
                check(self.info)
            except BaseException:
                self.source.close()
                self.info = None
                raise
        if self.recorder is not None:  # bounded in frames and in bytes (2048² × 16 bit: 128)
            size = max(8, min(self.record_queue, RECORD_BACKLOG_BYTES // self.info.frame_bytes))
            self._record_q = queue.Queue(maxsize=size)
        fault = getattr(self.source, "fault", None)  # e.g. CameraSource.fault (psygnal)
        if fault is not None and hasattr(fault, "connect"):
            fault.connect(self._on_source_fault)
        self._stop.clear()
        self._running.set()
        targets = [("acquire", self._acquire_loop), ("compute", self._compute_loop)]
        if self.recorder is not None:
            targets.append(("record", self._record_loop))
        for name, target in targets:
            t = threading.Thread(target=target, name=f"liveaug-{name}", daemon=True)
            self._threads.append(t)
            t.start()
        return self.info

    def pause(self) -> None:
        """Stop taking frames from the source (threads stay, the device stays open)."""
        self._running.clear()

    def resume(self) -> None:
        """Continue after :meth:`pause`."""
        self._running.set()

    @property
    def paused(self) -> bool:
        """True between :meth:`pause` and :meth:`resume`."""
        return not self._running.is_set()

    def stop(self, timeout_s: float = 1.0) -> bool:
        """Stop every thread, close the source and the recorder; True if all ended in time.

        The recorder first writes what is still queued (frames already acquired are not lost):
        a backlog it cannot write within the timeout is written after this returns, and the
        interpreter waits for it at exit.
        """
        self._stop.set()
        self._running.set()  # wake a paused acquisition loop so it can see the stop
        self._work.close()
        try:
            self.source.close()  # wakes a source blocked in read()
        except Exception as exc:  # closing must never raise into the GUI
            log.warning("closing %s failed: %s", self.source, exc)
        deadline = time.monotonic() + timeout_s
        ok = True
        for t in self._threads:
            if t.name == "liveaug-record":
                continue
            t.join(max(0.0, deadline - time.monotonic()))
            ok &= not t.is_alive()
        for t in self._threads:
            if t.name == "liveaug-record":
                self._record_q.put(None)
                t.join(max(0.5, deadline - time.monotonic()))
                if t.is_alive():  # still writing its backlog: it finishes, even at exit
                    _draining.difference_update([d for d in _draining if not d.is_alive()])
                    _draining.add(t)
                    ok = False
        self._threads.clear()
        fault = getattr(self.source, "fault", None)
        if fault is not None and hasattr(fault, "disconnect"):
            fault.disconnect(self._on_source_fault, missing_ok=True)
        return ok

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until a finite source ends and its last frame is processed (or timeout)."""
        if not self._source_done.wait(timeout_s):
            return False
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while self._done_seq < self.counts["acquired"]:
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def __enter__(self) -> Pipeline:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what subscribers read ------------------------------------------------------------------
    def latest_frame(self) -> Frame | None:
        """The newest acquired frame (the display draws it at its own rate)."""
        return self._display.peek()

    def latest_result(self) -> Result | None:
        """The newest analysed result."""
        return self._results.peek()

    def report_timing(self, stage: str, duration_ns: int) -> None:
        """Let a consumer (the viewer's draw) add its stage to the statistics."""
        self.timings.add(stage, duration_ns)

    def stats(self) -> dict[str, Any]:
        """Counters and per-stage median/p95 over the rolling window."""
        return {
            **self.counts,
            "dropped": self._work.dropped,
            "record_backlog": self._record_q.qsize(),
            "roles": sorted(self.roles),
            "stages": self.timings.summary(),
        }

    # -- threads --------------------------------------------------------------------------------
    def _acquire_loop(self) -> None:
        fails = 0
        while not self._stop.is_set():
            self._running.wait()
            if self._stop.is_set():
                break
            t0 = time.perf_counter_ns()
            try:
                frame = self.source.read(timeout_s=0.25)
            except TimeoutError:
                self.counts["timeouts"] += 1
                continue
            except EndOfStream:
                break
            except Exception as exc:  # a source fault must not kill the thread
                if self._stop.is_set():
                    break
                fails += 1
                self._emit_event("fault", "acquire", one_line(exc))
                time.sleep(min(1.0, 0.05 * 2 ** min(fails, 5)))
                continue
            fails = 0
            received = time.perf_counter_ns()
            self.timings.add("acquire", received - t0)
            self.counts["acquired"] += 1
            if self.recorder is not None:
                self._record_q.put(frame)  # blocks only if the recorder is a queue behind
                self.counts["record_backlog_max"] = max(
                    self.counts["record_backlog_max"], self._record_q.qsize()
                )
            self._display.put(frame)
            self._work.put(_Arrival(frame, received, self.counts["acquired"]))
            self._publish(self.frame_acquired, frame)
        self._source_done.set()
        if not self._stop.is_set():
            self._emit_event("end", "acquire", "end of stream")

    def _record_loop(self) -> None:
        assert self.recorder is not None
        while True:
            frame = self._record_q.get()
            if frame is None:
                break
            t0 = time.perf_counter_ns()
            try:
                self.recorder.append(frame)
                self.counts["recorded"] += 1
            except Exception as exc:  # report, keep what was written
                self._emit_event("error", "record", one_line(exc), frame.index)
            self.timings.add("record", time.perf_counter_ns() - t0)
        try:
            self.recorder.close()
        except Exception as exc:
            self._emit_event("error", "record", one_line(exc))

    def _compute_loop(self) -> None:
        if self.compute_nice:
            _renice_this_thread(self.compute_nice)
        next_start = 0.0
        while not self._stop.is_set():
            if self.max_analysis_hz:  # rate cap: wait, then take the newest frame
                wait = next_start - time.monotonic()
                if wait > 0 and self._stop.wait(wait):
                    break
            arrival = self._work.get(timeout=0.1)
            if arrival is None:
                if self._work.closed:
                    break
                continue
            if self.max_analysis_hz:
                next_start = time.monotonic() + 1.0 / self.max_analysis_hz
            try:
                self._compute(arrival)
            finally:
                self._done_seq = arrival.seq

    def _compute(self, arrival: _Arrival) -> None:
        frame = arrival.frame
        timings: dict[str, float] = {}
        prediction = analysis = None
        roles = self.roles
        if self.predictor is not None and roles:
            t0 = time.perf_counter_ns()
            try:
                prediction = self.predictor.predict(frame, roles)
            except Exception as exc:  # one bad frame must not stop the run
                self._emit_event("error", "predict", one_line(exc), frame.index)
                return
            timings["predict"] = (time.perf_counter_ns() - t0) / 1e6
            for name, ms in prediction.timings_ms.items():
                timings[f"predict:{name}"] = ms
        if self.analyzer is not None and prediction is not None:
            t0 = time.perf_counter_ns()
            try:
                analysis = self.analyzer.analyze(frame, prediction)
            except Exception as exc:
                self._emit_event("error", "analyze", one_line(exc), frame.index)
                return
            timings["analyze"] = (time.perf_counter_ns() - t0) / 1e6
            for name, ms in getattr(analysis, "timings_ms", {}).items():
                timings[f"analyze:{name}"] = ms
        done = time.perf_counter_ns()
        result = Result(
            frame=frame,
            received_ns=arrival.received_ns,
            prediction=prediction,
            analysis=analysis,
            timings_ms=timings,
            latency_ms=(done - arrival.received_ns) / 1e6,
            dropped=self._work.dropped,
        )
        for stage, ms in timings.items():
            self.timings.add(stage, int(ms * 1e6))
        self.timings.add("latency", done - arrival.received_ns)
        self.counts["analysed"] += 1
        self._results.put(result)
        t0 = time.perf_counter_ns()
        self._publish(self.result_ready, result)
        self.timings.add("handoff", time.perf_counter_ns() - t0)

    def _on_source_fault(self, fault: Any) -> None:
        """Relay a source's own fault report (timeout, lost, reconnecting …) to subscribers."""
        kind = getattr(fault, "kind", "fault")
        self._emit_event("fault", f"acquire:{kind}", getattr(fault, "message", str(fault)))

    def _emit_event(self, kind: str, stage: str, message: str, index: int | None = None) -> None:
        if kind == "error":
            self.counts["errors"] += 1
        level = logging.INFO if kind == "end" else logging.WARNING
        log.log(level, "%s in %s: %s", kind, stage, message)
        self._publish(self.event, PipelineEvent(kind, stage, message, index))

    def _publish(self, signal: Any, value: Any) -> None:
        """Hand ``value`` to subscribers; one that raises is logged (first time per signal at
        WARNING) and counted, and never takes the pipeline thread down with it."""
        try:
            signal.emit(value)
        except Exception as exc:
            self.counts["subscriber_errors"] += 1
            first = signal.name not in self._failed_signals
            self._failed_signals.add(signal.name)
            log.log(
                logging.WARNING if first else logging.DEBUG,
                "a subscriber of %s failed: %s",
                signal.name,
                one_line(exc.__cause__ or exc),
            )


def _renice_this_thread(nice: int) -> None:
    """Raise the calling thread's niceness by ``nice`` (Linux threads have their own)."""
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    except (AttributeError, OSError) as exc:  # not Linux, or not permitted: keep going
        log.debug("could not renice the compute thread: %s", exc)
