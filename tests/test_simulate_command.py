"""`liveaug simulate` end to end: the session it writes replays the simulator bit-exactly."""

from __future__ import annotations

import numpy as np
import pytest

from liveaug.cli import main
from liveaug.session import Session
from liveaug.sources.replay import ReplaySource
from liveaug.sources.simulated import TRUTH_COLUMNS, SimulatedMicroscope, SimulationConfig


def test_simulate_writes_a_session_that_replays_the_simulator(tmp_path, capsys):
    out = tmp_path / "sim.ome.zarr"
    argv = [
        "simulate",
        str(out),
        "--frames",
        "4",
        "--size",
        "96",
        "128",
        "--seed",
        "7",
        "--density",
        "0.8",
        "--reporter",
        "--bit-depth",
        "16",
    ]
    assert main(argv) == 0
    s = Session.open(out)
    assert (s.n_frames, s.shape, s.bit_depth) == (4, (96, 128), 16)
    assert s.channel_names == ("reporter",) and s.has_truth
    assert s.pixel_size_um == pytest.approx(0.65)
    cfg = SimulationConfig(height=96, width=128, seed=7).with_(
        biology__density=0.8, biology__reporter=True, camera__bit_depth=16
    )
    assert s.metadata["simulation"] == cfg.to_dict()
    sim = SimulatedMicroscope(cfg)
    sim.open()
    src = ReplaySource(out, speed=None)
    src.open()
    for _ in range(4):
        want, got = sim.read(), src.read()
        np.testing.assert_array_equal(got.image, want.image)
        np.testing.assert_array_equal(got.channels["reporter"], want.channels["reporter"])
        np.testing.assert_array_equal(got.truth.dapi, want.truth.dapi)
        np.testing.assert_array_equal(got.truth.cell_labels, want.truth.cell_labels)
        for col in TRUTH_COLUMNS:
            np.testing.assert_array_equal(got.truth.cells[col], want.truth.cells[col])
    src.close()
    table = s.truth_cells()
    assert set(TRUTH_COLUMNS) <= set(table.columns) and table["frame"].max() == 3


def test_simulate_refuses_to_overwrite_and_says_how(tmp_path, capsys):
    out = tmp_path / "sim.ome.zarr"
    assert main(["simulate", str(out), "--frames", "1", "--size", "64", "64"]) == 0
    capsys.readouterr()
    assert main(["simulate", str(out), "--frames", "1", "--size", "64", "64"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "overwrite" in err[0]
    assert main(["simulate", str(out), "--frames", "0"]) == 2


def test_debug_shows_the_traceback_instead(tmp_path):
    from liveaug.errors import LiveaugError

    out = tmp_path / "sim.ome.zarr"
    out.mkdir()
    (out / "zarr.json").write_text("{}")
    with pytest.raises(LiveaugError, match="exists"):
        main(["--debug", "simulate", str(out), "--frames", "1", "--size", "64", "64"])
