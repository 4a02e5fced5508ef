"""The core must run on a cluster node without a display: no Qt, no vispy on the headless path."""

from __future__ import annotations

import subprocess
import sys

GUI_MODULES = ("PyQt6", "vispy", "PyQt5", "PySide6")


def _loaded_after(code: str) -> set[str]:
    probe = (
        f"{code}\nimport sys\nprint('LOADED:', *(m for m in {GUI_MODULES!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    last = [line for line in out.stdout.splitlines() if line.startswith("LOADED:")][-1]
    return set(last.split()[1:])


def test_import_liveaug_pulls_in_no_gui():
    assert _loaded_after("import liveaug, liveaug.frame, liveaug.errors") == set()


def test_headless_path_pulls_in_no_gui(tmp_path):
    code = (
        "import liveaug.sources.simulated, liveaug.session, liveaug.sources.replay\n"
        "from liveaug.cli import main\n"
        f"assert main(['simulate', r'{tmp_path / 's.ome.zarr'}', '--frames', '2', "
        "'--size', '64', '64']) == 0\n"
    )
    assert _loaded_after(code) == set()
