"""Start the viewer: one QApplication, vispy on PyQt6, a window around a pipeline."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from liveaug.pipeline import Pipeline

log = logging.getLogger(__name__)


def qt_app() -> Any:
    """The QApplication (created once), with vispy bound to PyQt6."""
    from PyQt6.QtWidgets import QApplication
    from vispy import app as vispy_app

    qapp = QApplication.instance() or QApplication(["liveaug"])
    vispy_app.use_app("pyqt6")
    return qapp


def run_viewer(
    pipeline: Pipeline,
    *,
    make_pipeline: Callable[[Any], Pipeline] | None = None,
    title: str = "liveaug",
    frames: int | None = None,
) -> int:
    """Show a window around ``pipeline`` until it is closed; returns an exit status.

    ``frames``: close by itself after that many frames were displayed (for scripted runs).
    """
    qapp = qt_app()
    from PyQt6.QtCore import QTimer

    from liveaug.viewer.window import ViewerWindow

    window = ViewerWindow(pipeline, make_pipeline=make_pipeline, title=title)
    window.show()
    if frames is not None:
        timer = QTimer(window)

        def check() -> None:
            if window._disp_rate.stamps and len(window._disp_rate.stamps) >= frames:
                window.close()

        timer.timeout.connect(check)
        timer.start(50)
    try:
        qapp.exec()
    finally:
        window.shutdown()
    return 0
