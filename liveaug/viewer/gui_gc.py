"""Python's cyclic garbage collector, run on the GUI thread only once a viewer window is up.

Qt widgets and GL contexts must be destroyed on the thread that owns them. A window, canvas
or plot caught in a reference cycle is freed by the cyclic collector, and CPython runs that in
whichever thread happens to allocate when a threshold trips: with pipeline threads busy, that is
usually a worker, and destroying a QOpenGLWidget there segfaults (it did, once in a CI run).
So from the first window on, automatic collection is off and a GUI-thread timer collects instead,
generation by generation with CPython's own thresholds, which keeps each pass as short as the
automatic ones.
"""

from __future__ import annotations

import gc

from PyQt6.QtCore import QCoreApplication, QObject, QTimer

#: How often the GUI thread looks at the collector's counts (ms).
CHECK_PERIOD_MS = 100


class GuiThreadCollector(QObject):
    """Collects garbage on the thread it lives on (the GUI thread), never on a worker."""

    def __init__(self, parent: QObject, period_ms: int = CHECK_PERIOD_MS) -> None:
        super().__init__(parent)
        self.thresholds = gc.get_threshold()
        self.collections = [0, 0, 0]
        """Passes run here, per generation (for tests and curiosity)."""
        self.timer = QTimer(self)
        self.timer.setInterval(period_ms)
        self.timer.timeout.connect(self.check)

    def start(self) -> None:
        """Take collection over from CPython (idempotent)."""
        gc.disable()
        self.timer.start()

    def check(self) -> None:
        """Collect the oldest generation whose count passed its threshold, as CPython would."""
        counts = gc.get_count()
        for gen in (2, 1, 0):
            if counts[gen] > self.thresholds[gen]:
                gc.collect(gen)
                self.collections[gen] += 1
                return

    def stop(self) -> None:
        """Hand collection back to CPython (after one full pass here)."""
        self.timer.stop()
        gc.collect()
        gc.enable()


def collect_on_gui_thread() -> GuiThreadCollector:
    """The QApplication's collector (made once), running; returns it."""
    app = QCoreApplication.instance()
    if app is None:
        raise RuntimeError("create the QApplication first")
    collector = app.findChild(GuiThreadCollector)
    if collector is None:
        collector = GuiThreadCollector(app)
        app.aboutToQuit.connect(collector.stop)
    collector.start()  # again after an event loop quit: the next window is as exposed
    return collector
