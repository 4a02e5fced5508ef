"""Start the viewer: one QApplication, vispy on PyQt6, a window around a pipeline.

:func:`show` runs a window around any pipeline; :func:`live_pipeline` builds the standard one
(source → predictor → analyzer, with a switchable recorder); :func:`run_viewer` is the
interactive ``liveaug replay SESSION``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from liveaug.errors import LiveaugError, one_line
from liveaug.pipeline import Pipeline

log = logging.getLogger(__name__)


def qt_app() -> Any:
    """The QApplication (created once), with vispy bound to PyQt6."""
    if (
        sys.platform.startswith("linux")
        and not os.environ.get("DISPLAY")
        and not os.environ.get("WAYLAND_DISPLAY")
        and not os.environ.get("QT_QPA_PLATFORM")
    ):
        raise LiveaugError(
            "no screen to open the viewer on (DISPLAY is not set)",
            "run it under `xvfb-run -a`, or use `liveaug replay SESSION --headless`",
        )
    from PyQt6.QtWidgets import QApplication
    from vispy import app as vispy_app

    qapp = QApplication.instance() or QApplication(["liveaug"])
    vispy_app.use_app("pyqt6")
    if sys.excepthook is sys.__excepthook__:  # not when a test harness or IDE has its own
        sys.excepthook = report_unhandled
    return qapp


def report_unhandled(exc_type: type[BaseException], exc: BaseException, tb: Any) -> None:
    """A bug in a button or timer handler: log it with its traceback and say so in the window.

    Without a hook, PyQt6 aborts the process on an exception in a slot, which would skip
    closing the recording and releasing the camera; the viewer keeps running instead.
    """
    log.error("unexpected error in the viewer", exc_info=(exc_type, exc, tb))
    from PyQt6.QtWidgets import QApplication

    app = QApplication.instance()
    line = one_line(exc)
    if line != exc_type.__name__:
        line = f"{exc_type.__name__}: {line}"
    for widget in app.topLevelWidgets() if app is not None else ():
        if widget.isVisible() and hasattr(widget, "show_message"):
            widget.show_message(f"unexpected error (details in the log): {line}", seconds=15)


#: Niceness of the viewer's compute thread: the display never waits for the analysis, which
#: drops frames by design; recording and acquisition keep the process' priority.
COMPUTE_NICE = 10


def live_pipeline(
    source: Any,
    *,
    maps: str = "model",
    models: list[str] | None = None,
    rules: str | Path | None = None,
    snapshot_dir: str | Path | None = None,
    metadata: dict[str, Any] | None = None,
    max_analysis_hz: float | None = 10.0,
    views: int = 1,
    nuclei_channel: str | None = None,
) -> Pipeline:
    """``source`` → predictor (models, or ``maps="truth"`` for simulated frames) → analyzer.

    Analyses are capped at ``max_analysis_hz`` (None: as fast as the compute allows) so that
    on a small CPU the display and acquisition keep a share of the cores; ``views`` is the
    models' test-time augmentation (each view one more pass per analysed frame);
    ``nuclei_channel`` a recorded nuclear stain segmented instead of the virtual DAPI.

    The recorder is a :class:`~liveaug.viewer.recording.SwitchableRecorder`, idle until the
    Record button. ``metadata`` is the session's (truth maps read the simulated camera from it).
    """
    from liveaug.analysis.analyzer import Analyzer
    from liveaug.analysis.batch import make_predictor
    from liveaug.viewer.recording import SwitchableRecorder

    # on a CPU, leave a core to acquisition and display: they must never wait for models
    threads = max(1, (os.cpu_count() or 2) - 1)
    predictor = make_predictor(maps, models=models, metadata=metadata, threads=threads, views=views)
    # the viewer keeps its own bounded history (viewer.history); no 2000-frame tables here
    analyzer = Analyzer(
        rules=rules, snapshot_dir=snapshot_dir, keep_history=False, nuclei_channel=nuclei_channel
    )
    analyzer.source = source
    return Pipeline(
        source,
        predictor=predictor,
        analyzer=analyzer,
        recorder=SwitchableRecorder(),
        max_analysis_hz=max_analysis_hz or None,
        compute_nice=COMPUTE_NICE,
    )


def replay_factory(
    *,
    maps: str,
    models: list[str] | None,
    rules: str | Path | None,
    views: int = 1,
    nuclei_channel: str | None = None,
) -> Callable[[Any], Pipeline]:
    """What ``Open session…`` uses: a replay source → a fresh live pipeline."""
    from liveaug.session import Session

    def make(source: Any) -> Pipeline:
        metadata = Session.open(source.path).metadata
        return live_pipeline(
            source,
            maps=maps,
            models=models,
            rules=rules,
            metadata=metadata,
            views=views,
            nuclei_channel=nuclei_channel,
        )

    return make


def show(
    pipeline: Pipeline,
    *,
    make_pipeline: Callable[[Any], Pipeline] | None = None,
    title: str = "liveaug",
    frames: int | None = None,
) -> int:
    """Show a window around ``pipeline`` until it is closed; returns an exit status.

    ``frames``: close by itself once that many new frames were drawn (scripted runs, tests).
    Closing stops every pipeline thread and releases the source.
    """
    qapp = qt_app()
    from PyQt6.QtCore import QTimer

    from liveaug.viewer.window import ViewerWindow

    window = ViewerWindow(pipeline, make_pipeline=make_pipeline, title=title)
    window.show()
    timer = QTimer(window)
    if frames is not None:

        def close_when_done() -> None:
            if window.drawn_frames >= frames:
                timer.stop()
                window.close()

        timer.timeout.connect(close_when_done)
        timer.start(50)
    try:
        qapp.exec()
    finally:
        timer.stop()
        window.shutdown()
    log.info("displayed %d frames; last HUD: %s", window.drawn_frames, window.hud.text())
    # Delete the window (and its timer) with the next event-loop pass. Left to the garbage
    # collector, the window <-> timer slot cycle lived on, its timer still firing into later
    # event loops until a collection freed the window under it: a crash (seen in the tests).
    window.deleteLater()
    return 0


def run_viewer(args: argparse.Namespace) -> int:
    """Interactive ``liveaug replay SESSION``: the session at its recorded pace, looping."""
    from liveaug.analysis.analyzer import require_channel
    from liveaug.session import Session
    from liveaug.sources.replay import ReplaySource

    qt_app()  # no screen: one line now, before models load
    session = Session.open(args.session)  # a bad session fails here, in one line
    nuclei_channel = getattr(args, "nuclei_channel", None)
    require_channel(nuclei_channel, session.channel_names, str(args.session))
    source = ReplaySource(
        args.session, speed=1.0, loop=True, pixel_size_um=getattr(args, "pixel_size", None)
    )
    models = getattr(args, "model", None)
    rules = getattr(args, "rules", None)
    maps = getattr(args, "maps", "model")
    views = getattr(args, "views", 1)
    pipeline = live_pipeline(
        source,
        maps=maps,
        models=models,
        rules=rules,
        snapshot_dir=getattr(args, "snapshots", None),
        metadata=session.metadata,
        views=views,
        nuclei_channel=nuclei_channel,
    )
    return show(
        pipeline,
        make_pipeline=replay_factory(
            maps=maps, models=models, rules=rules, views=views, nuclei_channel=nuclei_channel
        ),
        title=f"liveaug — {Path(args.session).name}",
        frames=getattr(args, "frames", None),
    )
