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
    with pytest.raises(SystemExit) as e:  # argparse refuses it: usage and one error line
        main(["simulate", str(out), "--frames", "0"])
    assert e.value.code == 2 and "--frames: 0 is not a whole number ≥ 1" in capsys.readouterr().err


def test_debug_shows_the_traceback_instead(tmp_path):
    from liveaug.errors import LiveaugError

    out = tmp_path / "sim.ome.zarr"
    out.mkdir()
    (out / "zarr.json").write_text("{}")
    with pytest.raises(LiveaugError, match="exists"):
        main(["--debug", "simulate", str(out), "--frames", "1", "--size", "64", "64"])


def test_simulated_frames_carry_their_experiment_time(tmp_path, capsys):
    """A 180-s time-lapse: the session's timestamps and the readouts' timestamp_s are the
    simulated acquisition times (0, 180, 360 … s), not the 30 frames/s the simulator renders at."""
    import pandas as pd

    out = tmp_path / "tl.ome.zarr"
    argv = ["simulate", str(out), "--frames", "4", "--size", "96", "96", "--interval", "180"]
    assert main(argv) == 0
    s = Session.open(out)
    np.testing.assert_array_equal(np.diff(s.timestamps_ns), [180_000_000_000] * 3)
    assert s.frame_table()["meta.sim_time_s"].tolist() == [0.0, 180.0, 360.0, 540.0]
    csv = tmp_path / "o.csv"
    argv = ["replay", str(out), "--headless", "--maps", "truth", "--readouts", str(csv)]
    assert main(argv) == 0
    df = pd.read_csv(csv)
    assert sorted(df["timestamp_s"].unique()) == [0.0, 180.0, 360.0, 540.0]
    # the live simulator (the demo) renders at its display rate; readouts use experiment time
    from liveaug.analysis.analyzer import Analyzer
    from liveaug.analysis.truthmaps import TruthPredictor

    cfg = SimulationConfig(height=96, width=96, seed=1, truth=True)
    sim = SimulatedMicroscope(cfg, fps=30.0)
    sim.open()
    predictor = TruthPredictor.for_session({"simulation": cfg.to_dict()})
    analyzer = Analyzer(rules=[])
    for _ in range(3):
        frame = sim.read()
        cells = analyzer.analyze(frame, predictor.predict(frame)).cells
    assert frame.timestamp_ns == round(2 * 1e9 / 30)
    assert set(cells["timestamp_s"]) == {2 * cfg.biology.frame_interval_s}
