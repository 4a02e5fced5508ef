"""Command-line grammar: counts and sizes that make no sense are refused before anything runs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from liveaug.cli import main


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (
            ["replay", "s.ome.zarr", "--headless", "--readouts", "o.csv", "--frames", "-3"],
            "--frames",
        ),
        (["demo", "--frames", "-5"], "--frames"),
        (["demo", "--fps", "0"], "--fps"),
        (["demo", "--size", "0", "512"], "--size"),
        (["simulate", "o.ome.zarr", "--frames", "0"], "--frames"),
        (["record", "--device", "x", "--frames", "-1", "o.ome.zarr"], "--frames"),
        (["record", "--device", "x", "--duration", "-2", "o.ome.zarr"], "--duration"),
        (["batch", "s.ome.zarr", "--out", "o", "--workers", "0"], "--workers"),
        (["batch", "s.ome.zarr", "--out", "o", "--warmup", "-1"], "--warmup"),
        (["bench", "--frames", "-1"], "--frames"),
        (["analysis", "eval", "s.ome.zarr", "--frames", "-1"], "--frames"),
        (["models", "eval", "s.ome.zarr", "--frames", "-1"], "--frames"),
    ],
)
def test_negative_or_zero_counts_are_refused(argv, option, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}" in err and ("≥ 1" in err or "> 0" in err or "≥ 0" in err)
    assert not list(tmp_path.iterdir())  # nothing written


def test_replay_with_negative_frames_writes_no_csv(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "liveaug.cli",
            "replay",
            "s.ome.zarr",
            "--headless",
            "--readouts",
            "o.csv",
            "--frames",
            "-3",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "--frames: -3 is not a whole number ≥ 1" in r.stderr
    assert not (tmp_path / "o.csv").exists()
