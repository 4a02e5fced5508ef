"""The main window: canvas, overlay and contrast controls, readouts, plots, HUD, replay controls.

The display never waits for inference: a timer pulls ``pipeline.latest_frame()`` at its own
rate and draws it; overlays are those of ``pipeline.latest_result()`` (the newest analysed frame),
and the HUD shows how far they lag. Pipeline signals arrive on worker threads; they only append
to bounded deques or are relayed through a queued Qt signal, so no GUI code runs off the main
thread.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from PyQt6.QtCore import QObject, QSettings, Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QAction, QColor, QKeySequence, QShortcut
from PyQt6.QtWidgets import (
    QCheckBox,
    QColorDialog,
    QComboBox,
    QDockWidget,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QPushButton,
    QSlider,
    QSplitter,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from liveaug.errors import LiveaugError
from liveaug.frame import PHASE_CLASSES, CellEvent, CellTable, Frame
from liveaug.pipeline import Pipeline, PipelineEvent, Result
from liveaug.reliability import trust_warning
from liveaug.sources.replay import ReplaySource
from liveaug.viewer.canvas import LiveCanvas
from liveaug.viewer.contrast import Contrast, histogram, saturated_fraction
from liveaug.viewer.gui_gc import collect_on_gui_thread
from liveaug.viewer.history import History
from liveaug.viewer.layers import PHASE_COLORS, OverlayLayer, default_layers
from liveaug.viewer.plots import HistogramPlot, LinePlot, PhaseStrip
from liveaug.viewer.recording import SwitchableRecorder
from liveaug.viewer.table import CellTableView

log = logging.getLogger(__name__)

#: Display timer period (ms): a little faster than any camera we show, draws coalesce.
DISPLAY_PERIOD_MS = 12
#: The readouts table, and the plots, each refresh at most this often (ms), in turns.
PANEL_PERIOD_MS = 500
#: Panels refresh in a tick at most this long after a frame went to the canvas (s) …
PANEL_SLACK_S = 0.02
#: … or at any tick once no frame came for this long (a paused or slow source).
PANEL_QUIET_S = 0.1
SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
#: Fraction of pixels at the camera's top value from which the HUD says "saturated".
SATURATED_SAY = 0.01
#: On a replay's last frame with longer than this (s) to wait for the first, Space replays.
END_WAIT_S = 0.5
#: A new overlay is drawn without waiting for a new frame once none came for this long (s).
OVERLAY_WAIT_S = 0.045


class _Relay(QObject):
    """Carries pipeline events from worker threads to the GUI thread (queued connection)."""

    pipeline_event = pyqtSignal(object)


class _Rate:
    """Events per second over the last few seconds, from perf_counter_ns stamps."""

    def __init__(self, window_s: float = 2.0) -> None:
        self.window_ns = int(window_s * 1e9)
        self.stamps: collections.deque[int] = collections.deque(maxlen=2048)

    def tick(self, t_ns: int | None = None) -> None:
        self.stamps.append(time.perf_counter_ns() if t_ns is None else t_ns)

    def rate(self) -> float:
        now = time.perf_counter_ns()
        recent = [t for t in list(self.stamps) if now - t <= self.window_ns]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / max((recent[-1] - recent[0]) / 1e9, 1e-9)


class ViewerWindow(QMainWindow):
    """The live viewer around one :class:`Pipeline` (started here if it is not yet).

    Parameters
    ----------
    pipeline : Pipeline
        Frames, predictions and analyses to show. Its recorder, if it is a
        :class:`SwitchableRecorder`, backs the Record button.
    make_pipeline : callable, optional
        Builds a pipeline for another source (``Open session…``); without it the button is off.
    settings : QSettings, optional
        Where choices are remembered (default: the user's liveaug settings).
    """

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        make_pipeline: Callable[[Any], Pipeline] | None = None,
        settings: QSettings | None = None,
        title: str = "liveaug",
    ) -> None:
        super().__init__()
        collect_on_gui_thread()
        self._closed = False
        self.setWindowTitle(title)
        self.settings = settings if settings is not None else QSettings("liveaug", "viewer")
        self.make_pipeline = make_pipeline
        self.pipeline = pipeline
        started_here = pipeline.info is None
        if started_here:
            pipeline.start()
        try:
            self._setup()
        except BaseException:
            self._closed = True
            if started_here:  # a window that failed to open leaves no threads behind
                pipeline.stop()
            raise

    def _setup(self) -> None:
        """Layers, canvas, panels and timers: whatever may fail once the pipeline runs."""
        pipeline = self.pipeline
        info = pipeline.info
        assert info is not None
        self.layers = default_layers(info.channel_names)
        self._load_layer_settings()
        self.contrast = Contrast()
        self._load_contrast_settings()
        self.sync = self.settings.value("view/sync", False, type=bool)
        self.history = History()
        self.selected: int | None = None
        self.canvas = LiveCanvas(self.layers, on_draw_ns=self._on_drawn)
        self._frame: Frame | None = None
        self._result: Result | None = None
        self._drawn_index: int | None = None
        self.drawn_frames = 0
        """New frames drawn since the window opened."""
        self._arrivals: dict[int, int] = {}
        self._arrival_order: collections.deque[int] = collections.deque(maxlen=512)
        self._acq_rate, self._ana_rate, self._disp_rate = _Rate(), _Rate(), _Rate()
        self._latency_ms: collections.deque[float] = collections.deque(maxlen=60)
        self._lag: tuple[int, float] = (0, 0.0)
        self._events: collections.deque[CellEvent] = collections.deque(maxlen=256)
        self._panel_due = 0.0
        self._contrast_due = 0.0
        self._saturated = 0.0  # fraction of the newest frame at the camera's top value
        self._last_frame_t = 0.0
        self._result_pending = False
        self._pending_events: list[CellEvent] = []
        self._panels_dirty: set[str] = set()  # "table", "plots": to refresh from self._result
        self._panel_turn = "table"
        self._message = ""
        self._message_until = 0.0
        self._relay = _Relay()
        self._relay.pipeline_event.connect(self._on_pipeline_event)

        self._build_ui()
        self._connect_pipeline(pipeline)
        self._apply_roles()
        for layer in self.layers:
            layer.events.connect(self._on_layer_changed)
        self.canvas.cell_clicked.connect(self.select_cell)
        self.canvas.hovered.connect(self._on_hover)

        self.display_timer = QTimer(self)
        self.display_timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.display_timer.timeout.connect(self.tick)
        self.display_timer.start(DISPLAY_PERIOD_MS)
        self.hud_timer = QTimer(self)
        self.hud_timer.timeout.connect(self._update_hud)
        self.hud_timer.start(500)
        geometry = self.settings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1400, 900)

    # -- layout --------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        self.setCentralWidget(self.canvas.native)
        self._build_toolbar()
        controls = QWidget()
        col = QVBoxLayout(controls)
        col.addWidget(self._build_overlay_box())
        col.addWidget(self._build_contrast_box())
        col.addStretch(1)
        self._dock("Display", "display-dock", controls, Qt.DockWidgetArea.RightDockWidgetArea)

        self.table = CellTableView()
        self.table.selectionModel().selectionChanged.connect(self._on_table_selection)
        self.phase_plot = LinePlot("cells per phase")
        self.dna_plot = HistogramPlot("DNA content (integrated DAPI)")
        self.cell_plot = PhaseStrip("selected cell", list(PHASE_COLORS.values()))
        plots = QWidget()
        grid = QGridLayout(plots)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.addWidget(self.phase_plot, 0, 0)
        grid.addWidget(self.dna_plot, 0, 1)
        grid.addWidget(self.cell_plot, 1, 0, 1, 2)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.table)
        split.addWidget(plots)
        split.setSizes([700, 600])
        self._dock("Cells", "cells-dock", split, Qt.DockWidgetArea.BottomDockWidgetArea)

        self.hud = QLabel()
        self.hud.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.pixel_label = QLabel()
        self.statusBar().addWidget(self.hud, 1)
        self.statusBar().addPermanentWidget(self.pixel_label)

        for layer in self.layers:
            self._shortcut(
                str(layer.key), lambda lay=layer: setattr(lay, "visible", not lay.visible)
            )
        self._shortcut("Space", self.toggle_live)
        self._shortcut("0", self.canvas.reset_view)

    def _dock(self, title: str, name: str, widget: QWidget, area: Qt.DockWidgetArea) -> None:
        """A fixed (not floatable, not closable) dock around ``widget``."""
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetFeature.NoDockWidgetFeatures)
        self.addDockWidget(area, dock)

    def _shortcut(self, key: str, slot: Callable[[], object]) -> None:
        # whole-window keys: they work whichever child (the GL canvas included) has focus
        sc = QShortcut(QKeySequence(key), self)
        sc.setContext(Qt.ShortcutContext.WindowShortcut)
        sc.activated.connect(slot)

    def _build_toolbar(self) -> None:
        bar = QToolBar("controls", self)
        bar.setObjectName("controls")
        bar.setMovable(False)
        self.addToolBar(bar)
        self.live_action = QAction("Pause", self)
        self.live_action.setToolTip("start/stop taking frames (Space)")
        self.live_action.triggered.connect(self.toggle_live)
        bar.addAction(self.live_action)
        self.record_action = QAction("Record", self)
        self.record_action.setCheckable(True)
        self.record_action.setToolTip("record every frame to a session while viewing")
        self.record_action.toggled.connect(self._on_record_toggled)
        self.record_action.setEnabled(isinstance(self.pipeline.recorder, SwitchableRecorder))
        bar.addAction(self.record_action)
        snap = QAction("Snapshot", self)
        snap.setToolTip("save the view with its overlays (PNG) and the cells (CSV)")
        snap.triggered.connect(lambda: self.snapshot())
        bar.addAction(snap)
        self.open_action = QAction("Open session…", self)
        self.open_action.triggered.connect(self._on_open)
        self.open_action.setEnabled(self.make_pipeline is not None)
        bar.addAction(self.open_action)
        bar.addSeparator()
        self.sync_box = QCheckBox("hold image to overlay")
        self.sync_box.setToolTip("show the analysed frame instead of the newest (no overlay lag)")
        self.sync_box.setChecked(self.sync)
        self.sync_box.toggled.connect(self._on_sync)
        bar.addWidget(self.sync_box)
        bar.addSeparator()
        bar.addWidget(QLabel(" replay "))
        self.seek = QSlider(Qt.Orientation.Horizontal)
        self.seek.setMinimumWidth(260)
        self.seek.sliderReleased.connect(lambda: self.seek_to(self.seek.value()))
        self.seek.valueChanged.connect(
            lambda v: None if self.seek.isSliderDown() else self.seek_to(v)
        )  # clicks on the track and arrow keys (the HUD's own updates block signals)
        bar.addWidget(self.seek)
        self.position_label = QLabel("")
        bar.addWidget(self.position_label)
        self.speed = QComboBox()
        for s in SPEEDS:
            self.speed.addItem(f"{s:g}×", s)
        self.speed.addItem("max", None)
        speed = self.settings.value("replay/speed", 1.0, type=float)
        self.speed.setCurrentIndex(SPEEDS.index(speed) if speed in SPEEDS else 2)
        self.speed.currentIndexChanged.connect(lambda _i: self._apply_speed())
        bar.addWidget(self.speed)

    def _build_overlay_box(self) -> QGroupBox:
        box = QGroupBox("Overlays (number keys toggle)")
        grid = QGridLayout(box)
        self.overlay_boxes: dict[str, QCheckBox] = {}
        self.opacity_sliders: dict[str, QSlider] = {}
        self.color_buttons: dict[str, QPushButton] = {}
        for row, layer in enumerate(self.layers):
            check = QCheckBox(f"[{layer.key}] {layer.label}")
            check.setChecked(layer.visible)
            check.toggled.connect(lambda on, lay=layer: setattr(lay, "visible", on))
            slider = QSlider(Qt.Orientation.Horizontal)
            slider.setRange(0, 100)
            slider.setValue(round(layer.opacity * 100))
            slider.setMaximumWidth(110)
            slider.setToolTip("opacity")
            slider.valueChanged.connect(lambda v, lay=layer: setattr(lay, "opacity", v / 100))
            button = QPushButton()
            button.setFixedSize(22, 18)
            button.setToolTip("colour")
            button.clicked.connect(lambda _c, lay=layer: self._pick_color(lay))
            if layer.kind == "outlines":
                button.setEnabled(False)
                button.setToolTip("coloured by phase: " + ", ".join(PHASE_CLASSES[1:]))
            self._paint_button(button, layer)
            grid.addWidget(check, row, 0)
            grid.addWidget(slider, row, 1)
            grid.addWidget(button, row, 2)
            self.overlay_boxes[layer.name] = check
            self.opacity_sliders[layer.name] = slider
            self.color_buttons[layer.name] = button
        legend = QLabel(
            " ".join(
                f'<span style="color:{_hex(c)}">■ {n}</span>'
                for n, c in PHASE_COLORS.items()
                if n != "background"
            )
        )
        grid.addWidget(legend, len(self.layers), 0, 1, 3)
        return box

    def _build_contrast_box(self) -> QGroupBox:
        box = QGroupBox("Brightfield contrast")
        form = QFormLayout(box)
        self.auto_box = QCheckBox("auto (percentiles, follows the image)")
        self.auto_box.setChecked(self.contrast.auto)
        self.auto_box.toggled.connect(self._on_auto)
        form.addRow(self.auto_box)
        top = float(2 ** (self.pipeline.info.bit_depth if self.pipeline.info else 16))
        self.lo_spin, self.hi_spin = QDoubleSpinBox(), QDoubleSpinBox()
        for spin, value in ((self.lo_spin, self.contrast.lo), (self.hi_spin, self.contrast.hi)):
            spin.setRange(-1e9, 1e9)
            spin.setDecimals(1)
            spin.setValue(value)
            spin.valueChanged.connect(self._on_manual_limits)
        row = QHBoxLayout()
        row.addWidget(self.lo_spin)
        row.addWidget(self.hi_spin)
        form.addRow("limits", row)
        self.gamma_spin = QDoubleSpinBox()
        self.gamma_spin.setRange(0.1, 5.0)
        self.gamma_spin.setSingleStep(0.1)
        self.gamma_spin.setValue(self.contrast.gamma)
        self.gamma_spin.valueChanged.connect(self._on_gamma)
        form.addRow("gamma", self.gamma_spin)
        self.hist_plot = HistogramPlot("histogram")
        self.hist_plot.log = True
        self.hist_plot.setMinimumHeight(90)
        self._hist_top = top
        form.addRow(self.hist_plot)
        self._on_auto(self.contrast.auto)
        return box

    # -- pipeline ------------------------------------------------------------------------------
    def _connect_pipeline(self, pipeline: Pipeline) -> None:
        pipeline.frame_acquired.connect(self._on_acquired)
        pipeline.result_ready.connect(self._on_result_ready)
        pipeline.event.connect(self._on_event_thread)
        if isinstance(pipeline.recorder, SwitchableRecorder) and pipeline.recorder.info is None:
            pipeline.recorder.info = pipeline.info
        replay = self.replay_source
        self.seek.setEnabled(replay is not None)
        self.speed.setEnabled(replay is not None)
        if replay is not None:
            self.seek.setRange(0, max(0, len(replay) - 1))
            self._apply_speed()

    def _disconnect_pipeline(self, pipeline: Pipeline) -> None:
        for sig, slot in (
            (pipeline.frame_acquired, self._on_acquired),
            (pipeline.result_ready, self._on_result_ready),
            (pipeline.event, self._on_event_thread),
        ):
            sig.disconnect(slot, missing_ok=True)

    @property
    def replay_source(self) -> ReplaySource | None:
        """The replayed session, when that is the source."""
        src = self.pipeline.source
        return src if isinstance(src, ReplaySource) else None

    def _on_acquired(self, frame: Frame) -> None:  # acquisition thread: bookkeeping only
        now = time.perf_counter_ns()
        self._acq_rate.tick(now)
        if len(self._arrival_order) == self._arrival_order.maxlen:
            self._arrivals.pop(self._arrival_order[0], None)
        self._arrival_order.append(frame.index)
        self._arrivals[frame.index] = now

    def _on_result_ready(self, result: Result) -> None:  # compute thread: bookkeeping only
        self._ana_rate.tick()
        events = getattr(result.analysis, "events", ())
        if events:
            self._events.extend(events)

    def _on_event_thread(self, ev: PipelineEvent) -> None:  # any thread: relay to the GUI
        self._relay.pipeline_event.emit(ev)

    def _apply_roles(self) -> None:
        roles = {r for lay in self.layers if lay.visible for r in lay.roles}
        # the viewer speaks for the display: the pipeline's catch-all default is dropped
        self.pipeline.request_roles(self.pipeline.DEFAULT_CONSUMER, ())
        self.pipeline.request_roles("viewer", roles)

    # -- display loop --------------------------------------------------------------------------
    def tick(self) -> None:
        """Take the newest frame and result, hand them to the canvas, ask for a redraw."""
        if self._closed:
            return
        result = self.pipeline.latest_result()
        frame = self.pipeline.latest_frame()
        if self.sync and result is not None:
            frame = result.frame
        new_frame = False
        now = time.monotonic()
        if frame is not None and frame is not self._frame:
            self._frame = frame
            self.canvas.set_frame(frame)
            if now >= self._contrast_due:  # limits follow at 10 Hz: calm, and cheap per frame
                self._contrast_due = now + 0.1
                lo, hi = self.contrast.update(frame.image)
                self._saturated = saturated_fraction(frame.image, frame.bit_depth)
                self.canvas.set_contrast((lo, hi), self.contrast.gamma)
            new_frame = True
            self._last_frame_t = now
        if result is not None and result is not self._result:
            self._result = result
            analysis = result.analysis
            if analysis is not None and getattr(analysis, "cells", None) is not None:
                self.history.add(result.frame.index, analysis.cells)
            self._panels_dirty = {"table", "plots"}
            self._result_pending = True
        while self._events:
            self._pending_events.append(self._events.popleft())
        # A new overlay waits for the next frame (it comes within a frame period when live) and
        # is handed over with it, so each frame is drawn once: a software rasteriser draws about
        # as many frames a second as it is asked to, and a second draw per frame halves the rate.
        overlay = self._result_pending or bool(self._pending_events)
        if overlay and (new_frame or now - self._last_frame_t > OVERLAY_WAIT_S):
            if self._result_pending:
                self._result_pending = False
                self.canvas.set_result(self._result)
            if self._pending_events:
                self.canvas.add_events(self._pending_events)
                self._pending_events = []
            self.canvas.update()
        elif new_frame:
            self.canvas.update()
        # Table and plots refresh in turns, each at most every PANEL_PERIOD_MS, and in a tick
        # just after a frame went to the canvas (or while no frames come): their work then falls
        # in the slack before the next frame instead of pushing a frame out.
        streaming = now - self._last_frame_t < PANEL_QUIET_S
        slack = not new_frame and now - self._last_frame_t < PANEL_SLACK_S
        dirty = self._panels_dirty
        if dirty and now >= self._panel_due and (slack or not streaming):
            self._panel_due = now + PANEL_PERIOD_MS / 2000
            part = self._panel_turn if self._panel_turn in dirty else next(iter(dirty))
            self._panel_turn = "plots" if part == "table" else "table"
            dirty.discard(part)
            self._update_panels(table=part == "table", plots=part == "plots")

    def _on_drawn(self, draw_ns: int) -> None:
        frame = self.canvas.frame
        now = time.perf_counter_ns()
        self.pipeline.report_timing("draw", draw_ns)
        if frame is None or frame.index == self._drawn_index:
            return
        self._drawn_index = frame.index
        self.drawn_frames += 1
        self._disp_rate.tick(now)
        arrived = self._arrivals.get(frame.index)
        if arrived is not None:
            self._latency_ms.append((now - arrived) / 1e6)
        result = self.canvas.result
        if result is not None:
            lag_ms = max(0.0, (arrived - result.received_ns) / 1e6) if arrived is not None else 0.0
            lag_frames = frame.index - result.frame.index
            if lag_frames < 0:  # a looping replay restarted its indices: count by time instead
                lag_frames = round(lag_ms * self._acq_rate.rate() / 1000)
            self._lag = (lag_frames, lag_ms)

    def displayed_fps(self) -> float:
        """New frames drawn per second (last 2 s)."""
        return self._disp_rate.rate()

    def _update_panels(self, *, table: bool = True, plots: bool = True) -> None:
        """Show the newest result's cells in the table and/or the plots."""
        result = self._result
        analysis = getattr(result, "analysis", None)
        cells = getattr(analysis, "cells", None)
        if cells is None:
            return
        if table:
            self.table.set_table(cells, self.selected)
        if not plots:
            return
        frames, counts = self.history.phase_counts()
        self.phase_plot.set_data(
            frames,
            [(counts[:, i], PHASE_COLORS[name]) for i, name in enumerate(PHASE_CLASSES) if i],
        )
        if len(cells) and "dapi_integrated" in cells.columns:
            dna = np.asarray(cells["dapi_integrated"], np.float64)
            top = float(np.percentile(dna, 99)) * 1.3 or 1.0
            counts_, _ = np.histogram(dna, bins=40, range=(0, top))
            self.dna_plot.set_data(counts_, note=f"  ({len(dna)} cells, 0…{top:.3g})")
        self._update_cell_plot()

    def _update_cell_plot(self) -> None:
        series = self.history.cells.get(self.selected) if self.selected is not None else None
        if series is None:
            self.cell_plot.set_data(np.zeros(0), [], note="  (click a cell)")
            return
        traces = [(np.asarray(series.dapi), (0.4, 0.6, 1.0))]
        spare = [(0.3, 1.0, 0.4), (1.0, 0.8, 0.2)]
        for (_name, values), color in zip(series.channels.items(), spare, strict=False):
            traces.append((np.asarray(values), color))
        names = ", ".join(["DAPI", *series.channels][: len(traces)])
        self.cell_plot.set_data(
            np.asarray(series.phase), traces, note=f"  #{self.selected}: phase strip, {names}"
        )

    def _update_hud(self) -> None:
        if self._closed:
            return
        stats = self.pipeline.stats()
        res = self._result
        pred = getattr(res, "prediction", None)
        parts = [
            f"acquired {self._acq_rate.rate():.1f} fps",
            f"analysed {self._ana_rate.rate():.1f} fps",
            f"displayed {self.displayed_fps():.1f} fps",
        ]
        if self._latency_ms:
            parts.append(f"latency {np.median(self._latency_ms):.0f} ms")
        lag_frames, lag_ms = self._lag
        parts.append(f"overlay lag {lag_frames} fr / {lag_ms:.0f} ms")
        parts.append(f"dropped {stats['dropped']}")
        if self.canvas.draw_ms:
            parts.append(f"draw {np.median(self.canvas.draw_ms[-30:]):.1f} ms")
        if pred is not None:
            models = sorted(set(pred.models.values()))
            parts.append(f"{pred.provider} · {', '.join(models)}")
            if pred.trust is not None:
                parts.append(f"reliability {pred.trust.frame:.2f}")
            warning = trust_warning(pred)
            if warning:
                parts.append(warning)
        rec = self.pipeline.recorder
        if isinstance(rec, SwitchableRecorder) and rec.recording:
            parts.append(f"● REC {rec.frames} → {rec.path.name if rec.path else ''}")
        if self._saturated >= SATURATED_SAY:
            parts.append(f"saturated {self._saturated:.0%}: lower exposure or gain")
        if self.pipeline.paused:
            parts.append("paused")
        if self._message and time.monotonic() < self._message_until:
            parts.append(self._message)
        self.hud.setText("  ·  ".join(parts))
        replay = self.replay_source
        if replay is not None and not self.seek.isSliderDown():
            shown = None if self._frame is None else replay.position_of(self._frame)
            pos = max(0, replay.position - 1) if shown is None else shown
            self.seek.blockSignals(True)
            self.seek.setValue(pos)
            self.seek.blockSignals(False)
            self.position_label.setText(f" {pos + 1}/{len(replay)} ")
        if self._frame is not None:
            counts = histogram(self._frame.image, self._hist_top, bins=96)
            lo, hi = self.contrast.lo, self.contrast.hi
            self.hist_plot.set_data(
                counts,
                [(lo / self._hist_top, (1, 0.8, 0.2)), (hi / self._hist_top, (1, 0.8, 0.2))],
            )
            if self.contrast.auto:
                for spin, v in ((self.lo_spin, lo), (self.hi_spin, hi)):
                    spin.blockSignals(True)
                    spin.setValue(v)
                    spin.blockSignals(False)

    def _on_pipeline_event(self, ev: PipelineEvent) -> None:
        text = "end of stream" if ev.kind == "end" else f"{ev.stage} {ev.kind}: {ev.message}"
        self.show_message(text)

    def show_message(self, text: str, seconds: float = 6.0) -> None:
        """A short note in the HUD."""
        self._message = text
        self._message_until = time.monotonic() + seconds
        self._update_hud()

    # -- selection -----------------------------------------------------------------------------
    def select_cell(self, cell_id: int | None) -> None:
        """Select a cell everywhere: outline highlight, table row, time series."""
        self.selected = cell_id
        self.canvas.select(cell_id)
        self.table.selectionModel().blockSignals(True)
        try:
            self.table.select_cell(cell_id)
        finally:
            self.table.selectionModel().blockSignals(False)
        self.table.viewport().update()
        self._update_cell_plot()

    def _on_table_selection(self, *_: object) -> None:
        cell_id = self.table.selected_cell()
        if cell_id != self.selected:
            self.selected = cell_id
            self.canvas.select(cell_id)
            self._update_cell_plot()

    def _on_hover(self, where: tuple[int, int, Any] | None) -> None:
        if where is None:
            self.pixel_label.setText("")
            return
        x, y, v = where
        cell = self.canvas.cell_at(x + 0.5, y + 0.5)
        self.pixel_label.setText(f"x {x}  y {y}  value {v}" + (f"  cell {cell}" if cell else ""))

    # -- controls ------------------------------------------------------------------------------
    def toggle_live(self) -> None:
        """Pause or resume taking frames; at a replay's end (its last frame shown, the first
        one due later), play it again from the start at once instead."""
        replay = self.replay_source
        if (
            replay is not None
            and self._frame is not None
            and replay.position == 0  # the next frame is the first one again
            and replay.position_of(self._frame) == len(replay) - 1
            and (self.pipeline.paused or replay.seconds_to_next() > END_WAIT_S)
        ):
            replay.seek(0)  # due at once
            self.pipeline.resume()
            self.live_action.setText("Pause")
            self._update_hud()
            return
        if self.pipeline.paused:
            self.pipeline.resume()
            self.live_action.setText("Pause")
        else:
            self.pipeline.pause()
            self.live_action.setText("Live")
        self._update_hud()

    def _on_sync(self, on: bool) -> None:
        self.sync = on
        self.settings.setValue("view/sync", on)

    def _on_auto(self, on: bool) -> None:
        self.contrast.auto = on
        self.lo_spin.setEnabled(not on)
        self.hi_spin.setEnabled(not on)
        self.settings.setValue("contrast/auto", on)

    def _on_manual_limits(self, *_: object) -> None:
        if self.contrast.auto:
            return
        self.contrast.lo, self.contrast.hi = self.lo_spin.value(), self.hi_spin.value()
        self.settings.setValue("contrast/lo", self.contrast.lo)
        self.settings.setValue("contrast/hi", self.contrast.hi)
        self.canvas.set_contrast((self.contrast.lo, self.contrast.hi), self.contrast.gamma)
        self.canvas.update()

    def _on_gamma(self, value: float) -> None:
        self.contrast.gamma = value
        self.settings.setValue("contrast/gamma", value)
        self.canvas.set_contrast((self.contrast.lo, self.contrast.hi), value)
        self.canvas.update()

    def _on_layer_changed(self, info: Any) -> None:
        for layer in self.layers:
            check = self.overlay_boxes[layer.name]
            if check.isChecked() != layer.visible:
                check.blockSignals(True)
                check.setChecked(layer.visible)
                check.blockSignals(False)
            self._paint_button(self.color_buttons[layer.name], layer)
        self._save_layer_settings()
        self._apply_roles()
        self.canvas.update()

    def _pick_color(self, layer: OverlayLayer) -> None:
        color = QColorDialog.getColor(QColor(_hex(layer.color)), self, f"colour of {layer.label}")
        if color.isValid():
            layer.color = (color.redF(), color.greenF(), color.blueF())

    @staticmethod
    def _paint_button(button: QPushButton, layer: OverlayLayer) -> None:
        button.setStyleSheet(f"background-color: {_hex(layer.color)}; border: 1px solid #888;")

    def _apply_speed(self) -> None:
        replay = self.replay_source
        speed = self.speed.currentData()
        self.settings.setValue("replay/speed", speed if speed is not None else 0.0)
        if replay is None:
            return
        replay.speed = speed
        try:
            replay.seek(replay.position)  # re-anchor the pace at the new speed
        except Exception as exc:  # at the very end of a non-looping replay
            log.debug("re-anchoring replay failed: %s", exc)

    def seek_to(self, position: int) -> None:
        """Make session frame ``position`` the next one replayed."""
        replay = self.replay_source
        if replay is not None:
            replay.seek(int(position))
            self.history.clear()

    def start_recording(self, path: str | Path | None = None) -> Path:
        """Record every frame from now on into a new session (default: a timestamped folder)."""
        rec = self.pipeline.recorder
        if not isinstance(rec, SwitchableRecorder):
            raise RuntimeError("this pipeline was built without a switchable recorder")
        if path is None:
            folder = Path(self.settings.value("record/dir", str(Path.home() / "liveaug")))
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{datetime.now():%Y%m%d-%H%M%S}.ome.zarr"
        rec.start(path)
        self.record_action.blockSignals(True)
        self.record_action.setChecked(True)
        self.record_action.blockSignals(False)
        self.show_message(f"recording to {path}")
        return Path(path)

    def stop_recording(self) -> Path | None:
        """Stop recording; the session is complete on disk when this returns."""
        rec = self.pipeline.recorder
        done = self.pipeline.counts["acquired"]  # frames acquired before the click are kept
        path = rec.stop(through=done) if isinstance(rec, SwitchableRecorder) else None
        self.record_action.blockSignals(True)
        self.record_action.setChecked(False)
        self.record_action.blockSignals(False)
        if path is not None:
            self.show_message(f"recorded {rec.frames} frames to {path}")  # type: ignore[union-attr]
        return path

    def _on_record_toggled(self, on: bool) -> None:
        try:
            if on:
                self.start_recording()
            else:
                self.stop_recording()
        except Exception as exc:
            self.show_message(f"recording failed: {exc}")
            self.record_action.blockSignals(True)
            self.record_action.setChecked(False)
            self.record_action.blockSignals(False)

    def snapshot(self, folder: str | Path | None = None) -> tuple[Path, Path | None]:
        """Save the canvas with its overlays (PNG) and the shown cells (CSV); returns paths."""
        import cv2

        if folder is None:
            folder = Path(self.settings.value("snapshot/dir", str(Path.home() / "liveaug")))
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        index = self._frame.index if self._frame is not None else 0
        stem = f"snapshot-{datetime.now():%Y%m%d-%H%M%S}-frame{index}"
        rgba = self.canvas.render()
        png = folder / f"{stem}.png"
        cv2.imwrite(str(png), cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
        csv = None
        cells: CellTable | None = getattr(getattr(self._result, "analysis", None), "cells", None)
        if cells is not None and len(cells):
            csv = folder / f"{stem}.csv"
            cells.to_pandas().to_csv(csv, index=False)
        self.show_message(f"snapshot {png.name}" + (f" + {csv.name}" if csv else ""))
        return png, csv

    def _on_open(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open a recorded session (.ome.zarr)")
        if path:
            try:
                self.open_session(path)
            except LiveaugError as exc:  # a bad session or model: say so, keep what runs
                self.show_message(str(exc), seconds=15)

    def open_session(self, path: str | Path) -> None:
        """Replay a recorded session in this window (the current source is stopped)."""
        if self.make_pipeline is None:
            raise RuntimeError("this window cannot open sessions")
        source = ReplaySource(path, speed=self.speed.currentData(), loop=True)
        new = self.make_pipeline(source)
        new.start()  # may raise (a bad session): the running source is still untouched
        old = self.pipeline
        self._disconnect_pipeline(old)
        old.stop(timeout_s=1.0)
        self.pipeline = new
        self._connect_pipeline(new)
        self._apply_roles()
        self.history.clear()
        self._result = None
        self._frame = None
        self.live_action.setText("Pause")
        self.record_action.setEnabled(isinstance(new.recorder, SwitchableRecorder))
        self.setWindowTitle(f"liveaug — {Path(path).name}")

    # -- settings ------------------------------------------------------------------------------
    def _load_layer_settings(self) -> None:
        s = self.settings
        for layer in self.layers:
            key = f"layers/{layer.name}"
            layer.visible = s.value(f"{key}/visible", layer.visible, type=bool)
            layer.opacity = s.value(f"{key}/opacity", layer.opacity, type=float)
            color = s.value(f"{key}/color", None)
            if color:
                c = QColor(str(color))
                if c.isValid():
                    layer.color = (c.redF(), c.greenF(), c.blueF())

    def _save_layer_settings(self) -> None:
        for layer in self.layers:
            key = f"layers/{layer.name}"
            self.settings.setValue(f"{key}/visible", layer.visible)
            self.settings.setValue(f"{key}/opacity", layer.opacity)
            self.settings.setValue(f"{key}/color", _hex(layer.color))

    def _load_contrast_settings(self) -> None:
        s, c = self.settings, self.contrast
        c.auto = s.value("contrast/auto", c.auto, type=bool)
        c.lo = s.value("contrast/lo", c.lo, type=float)
        c.hi = s.value("contrast/hi", c.hi, type=float)
        c.gamma = s.value("contrast/gamma", c.gamma, type=float)

    # -- shutdown ------------------------------------------------------------------------------
    def closeEvent(self, event: Any) -> None:
        """Stop the display, every pipeline thread and the source (camera released)."""
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self, timeout_s: float = 1.0) -> bool:
        """Idempotent close: timers off, settings saved, pipeline stopped; True if in time."""
        if self._closed:
            return True
        self._closed = True
        self.display_timer.stop()
        self.hud_timer.stop()
        self._disconnect_pipeline(self.pipeline)
        self.settings.setValue("window/geometry", self.saveGeometry())
        self._save_layer_settings()
        self.settings.sync()
        ok = self.pipeline.stop(timeout_s=timeout_s)
        if not ok:
            log.warning("some pipeline threads did not stop within %.1f s", timeout_s)
        return ok


def _hex(rgb: tuple[float, float, float]) -> str:
    return QColor.fromRgbF(*(float(v) for v in rgb)).name()
