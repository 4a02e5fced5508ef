"""``liveaug view --mm-config`` and ``liveaug demo --mm`` from the command line."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from liveaug.cli import main


def test_view_with_a_missing_config_is_one_line_exit_2(tmp_path, capsys):
    assert main(["view", "--mm-config", str(tmp_path / "scope.cfg")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0] and "Traceback" not in err[0]


def test_view_with_an_invalid_config_is_one_line_exit_2(tmp_path):
    cfg = tmp_path / "scope.cfg"
    cfg.write_text("this is not a Micro-Manager config\n")
    out = subprocess.run(
        [sys.executable, "-m", "liveaug.cli", "view", "--mm-config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot be loaded" in lines[0], out.stderr


def test_rules_file_naming_an_unknown_action_is_one_line(tmp_path, capsys):
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - {name: a, column: p_apoptosis, above: 0.5, actions: [zap]}\n")
    from liveaug.analysis.events import load_rules
    from liveaug.errors import LiveaugError

    with pytest.raises(LiveaugError, match="unknown actions") as e:
        load_rules(rules)
    assert "\n" not in str(e.value)


@pytest.mark.gl
@pytest.mark.timeout(180)
def test_demo_mm_runs_the_dish_through_pymmcore_plus_into_the_window(qapp):
    args = ["demo", "--mm", "--mm-fields", "2", "2", "--size", "96", "96", "--maps", "truth"]
    assert main([*args, "--frames", "10"]) == 0
    assert not [t for t in threading.enumerate() if t.name.startswith("liveaug-") and t.is_alive()]
    assert not [w for w in qapp.topLevelWidgets() if w.isVisible()]


@pytest.mark.gl
@pytest.mark.timeout(180)
def test_demo_mm_with_a_rule_naming_an_unknown_action_is_one_line(qapp, tmp_path, capsys):
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - {name: a, column: area_px, above: 1, actions: [image_cel]}\n")
    args = ["demo", "--mm", "--mm-fields", "1", "1", "--size", "96", "96", "--maps", "truth"]
    assert main([*args, "--rules", str(rules), "--frames", "3"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "unknown actions ['image_cel']" in err[0]


@pytest.mark.gl
@pytest.mark.timeout(180)
def test_view_mm_config_runs_a_micro_manager_microscope_into_the_window(qapp):
    from pathlib import Path

    import liveaug.sources.mmcore as mm

    cfg = Path(mm.__file__).with_name("simulated.cfg")
    assert main(["view", "--mm-config", str(cfg), "--mm-interval", "0.05", "--frames", "4"]) == 0
    assert not [t for t in threading.enumerate() if t.name.startswith("liveaug-") and t.is_alive()]
