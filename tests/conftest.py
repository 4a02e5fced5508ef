"""Session-wide test hooks."""

from __future__ import annotations

import gc
import sys


def pytest_sessionfinish(session, exitstatus):
    """Tear Qt and GL objects down in order while the interpreter is whole.

    Left to interpreter shutdown, widgets, GL contexts and the QApplication are destroyed in
    whatever order the garbage collector picks; a crash there would fail a run whose tests all
    passed (one did: a window kept alive by a reference cycle with its own timer, now fixed in
    ``liveaug.viewer.app.show``).
    """
    qtwidgets = sys.modules.get("PyQt6.QtWidgets")
    app = qtwidgets.QApplication.instance() if qtwidgets is not None else None
    if app is None:
        return
    for widget in app.topLevelWidgets():
        widget.close()
        widget.deleteLater()
    app.processEvents()
    gc.collect()
    app.processEvents()
