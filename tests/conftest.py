"""Session-wide test hooks."""

from __future__ import annotations

import gc
import sys

import pytest


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


@pytest.fixture(autouse=True)
def _collect_qt_garbage_on_this_thread(request):
    """After a GL test, free its widgets here: a cycle left for later may be collected by a
    pipeline thread of the next test, and Qt objects destroyed off the GUI thread crash."""
    yield
    if request.node.get_closest_marker("gl") is not None:
        gc.collect()
