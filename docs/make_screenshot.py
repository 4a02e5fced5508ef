"""Make docs/screenshot.png: the live viewer on the simulated microscope, from a real window.

Run (a screen, or Xvfb on a headless machine)::

    xvfb-run -a -s "-screen 0 1280x1024x24" .venv/bin/python docs/make_screenshot.py [MAPS]

What ``liveaug demo`` shows: a 512² simulated culture at 30 frames/s through the predictor and
the per-cell analysis; ``MAPS`` is ``auto`` (the shipped model when installed), ``model`` or
``truth`` (the simulator's truth maps; the status bar names the provider either way). The
script plays ~15 s so the plots have a history, selects the largest cell (its row, fill and time
series) and the ids, then grabs the whole window.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

OUT = Path(__file__).with_name("screenshot.png")


def main(maps: str = "auto", seconds: float = 15.0) -> None:
    from PyQt6.QtCore import QSettings

    from liveaug.commands.demo import choose_maps
    from liveaug.sources.simulated import SimulatedMicroscope, SimulationConfig
    from liveaug.viewer.app import live_pipeline, qt_app
    from liveaug.viewer.window import ViewerWindow

    qapp = qt_app()
    maps = choose_maps(maps, None)
    config = SimulationConfig(height=512, width=512, seed=7, truth=(maps == "truth"))
    source = SimulatedMicroscope(config.with_(biology__density=0.7), fps=30.0)
    pipeline = live_pipeline(source, maps=maps, metadata={"simulation": config.to_dict()})
    with tempfile.TemporaryDirectory() as tmp:  # the user's own settings stay untouched
        settings = QSettings(str(Path(tmp) / "viewer.ini"), QSettings.Format.IniFormat)
        window = ViewerWindow(pipeline, settings=settings, title="liveaug demo")
        window.layers[4].visible = True  # cell ids
        window.resize(1280, 900)
        window.show()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            qapp.processEvents()
            time.sleep(0.002)
        cells = window._result.analysis.cells if window._result is not None else None
        if cells is not None and len(cells):
            window.select_cell(int(cells["cell_id"][int(np.argmax(cells["area_px"]))]))
        for _ in range(40):  # let the selection and the panels draw
            window.tick()
            window._update_hud()
            qapp.processEvents()
            time.sleep(0.01)
        window._update_panels()
        qapp.processEvents()
        window.grab().save(str(OUT))
        window.close()
    print(f"wrote {OUT} ({maps} maps)")


if __name__ == "__main__":
    main(*sys.argv[1:2])
