"""Headless end to end: replay a simulated session through the analysis and write the tables."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from liveaug.cli import main
from liveaug.session import SessionWriter
from liveaug.sources.simulated import SimulatedMicroscope, SimulationConfig

REQUIRED = (
    "frame timestamp_s cell_id parent_id x y area_px area_um2 dapi_mean dapi_integrated "
    "membrane_mean phase phase_confidence p_apoptosis reporter_mean reporter_integrated "
    "reporter_nc_ratio model"
).split()


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    path = tmp_path_factory.mktemp("s") / "sim.ome.zarr"
    cfg = SimulationConfig(height=192, width=192, seed=4).with_(biology__reporter=True)
    sim = SimulatedMicroscope(cfg)
    info = sim.open()
    with SessionWriter.for_source(path, info, truth=True, frame_interval_s=180.0) as w:
        for _ in range(6):
            w.append(sim.read())
    return path


def test_replay_headless_writes_every_frame_with_units(session, tmp_path, capsys):
    csv, par, ev = tmp_path / "o.csv", tmp_path / "o.parquet", tmp_path / "e.jsonl"
    rc = main(
        [
            "replay",
            str(session),
            "--headless",
            "--maps",
            "truth",
            "--readouts",
            str(csv),
            "--parquet",
            str(par),
            "--events",
            str(ev),
            "--snapshots",
            str(tmp_path / "snaps"),
        ]
    )
    assert rc == 0 and "analysed 6 frames" in capsys.readouterr().out
    df = pd.read_csv(csv)
    assert set(REQUIRED) <= set(df.columns)
    assert sorted(df["frame"].unique()) == list(range(6))
    assert (df["model"] == "truth").all() and (df["liveaug_version"] != "").all()
    meta = json.loads((tmp_path / "o.csv-metadata.json").read_text())
    units = {c["name"]: c["unit"] for c in meta["tableSchema"]["columns"]}
    assert units["area_um2"] == "µm²" and units["reporter_mean"] == "ADU"
    assert meta["liveaug"]["models"] == ["truth"]
    t = pq.read_table(par)
    assert t.schema.field("area_um2").metadata[b"unit"] == "µm²".encode()
    assert json.loads(t.schema.metadata[b"liveaug"])["frames"] == 6
    assert json.loads(t.schema.metadata[b"liveaug"])["views"] == 1
    np.testing.assert_allclose(t.to_pandas()["dapi_integrated"], df["dapi_integrated"], rtol=1e-5)
    assert ev.exists()


def test_replay_puts_snapshots_beside_its_outputs(session, tmp_path):
    csv = tmp_path / "run.csv"
    rules = tmp_path / "r.yaml"
    rules.write_text(
        "rules:\n  - {name: any, column: area_px, above: 0, entry: false, actions: [snapshot]}\n"
    )
    args = ["replay", str(session), "--headless", "--maps", "truth", "--readouts", str(csv)]
    assert main([*args, "--rules", str(rules), "--frames", "1"]) == 0
    assert any((tmp_path / "run_snapshots").glob("frame*_any.npz"))


def test_replay_views_average_the_models_over_mirrored_copies(session, tmp_path):
    tables = {}
    for views in ("1", "2"):
        csv = tmp_path / f"v{views}.csv"
        argv = ["replay", str(session), "--headless", "--frames", "2", "--readouts", str(csv)]
        assert main([*argv, "--views", views]) == 0
        tables[views] = pd.read_csv(csv)
    assert len(tables["1"]) > 0 and len(tables["2"]) > 0
    assert tables["2"]["model"].str.endswith(" (2 views)").all()
    assert not tables["1"]["model"].str.contains("views").any()
    # the same cells, measured on different (averaged) maps
    assert not np.allclose(tables["1"]["dapi_mean"].sum(), tables["2"]["dapi_mean"].sum())


def test_replay_needs_an_output_and_truth_maps_need_truth(session, capsys):
    assert main(["replay", str(session), "--headless"]) == 2
    assert "--readouts" in capsys.readouterr().err


def test_analysis_eval_prints_the_figures(session, tmp_path, capsys):
    out = tmp_path / "f.json"
    assert main(["analysis", "eval", str(session), "--maps", "truth", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    for name in (
        "segmentation_f1",
        "nuclei_count_error",
        "dapi_integrated_r",
        "tracking_link_recovery",
        "divisions_found",
        "translocations_caught",
    ):
        assert name in text
    figures = json.loads(out.read_text())
    assert figures["segmentation_f1"] > 0.85 and figures["frames"] == 6


def test_headless_replay_imports_no_gui(session, tmp_path):
    code = (
        "import sys\nfrom liveaug.cli import main\n"
        f"main(['replay', {str(session)!r}, '--headless', '--maps', 'truth', "
        f"'--readouts', {str(tmp_path / 'x.csv')!r}, '--frames', '2'])\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('PyQt6', 'vispy', 'PySide6')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_analyzer_runs_in_the_live_pipeline():
    from liveaug.analysis import Analyzer
    from liveaug.analysis.truthmaps import TruthPredictor
    from liveaug.frame import Analysis
    from liveaug.pipeline import Pipeline

    cfg = SimulationConfig(height=128, width=128, seed=2)
    results = []
    pipe = Pipeline(
        SimulatedMicroscope(cfg, fps=20.0), predictor=TruthPredictor(), analyzer=Analyzer(rules=[])
    )
    pipe.result_ready.connect(results.append)
    with pipe:
        deadline = time.monotonic() + 10
        while len(results) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
    assert len(results) >= 3 and pipe.counts["errors"] == 0
    a = results[-1].analysis
    assert isinstance(a, Analysis) and len(a.cells) > 0
    assert set(np.unique(a.labels)) - {0} == set(a.cells["cell_id"].tolist())
    assert any(k.startswith("analyze:segment") for k in results[-1].timings_ms)


def test_bench_section_times_every_stage():
    from liveaug.bench.analysis import analysis_benchmarks

    out = analysis_benchmarks(size=128, frames=2)
    total = out["128x128 truth maps total"]
    assert total["median_ms"] > 0 and total["cells"] > 0
    assert {"128x128 truth maps segment", "128x128 truth maps tracking"} <= set(out)


def test_a_corrupt_frame_mid_session_keeps_the_tables_of_the_frames_before(
    session, tmp_path, capsys
):
    import shutil

    broken = tmp_path / "broken.ome.zarr"
    shutil.copytree(session, broken)
    chunk = broken / "0" / "c" / "3" / "0" / "0" / "0"  # frame 3, brightfield
    chunk.write_bytes(chunk.read_bytes()[:50])
    csv, par = tmp_path / "o.csv", tmp_path / "o.parquet"
    args = ["replay", str(broken), "--headless", "--maps", "truth"]
    assert main([*args, "--readouts", str(csv), "--parquet", str(par)]) == 2
    err = capsys.readouterr().err
    assert "frame 3" in err and "stopped after 3 of 6 frames" in err
    assert sorted(pd.read_csv(csv)["frame"].unique()) == [0, 1, 2]
    assert (tmp_path / "o.csv-metadata.json").exists()
    assert json.loads(pq.read_table(par).schema.metadata[b"liveaug"])["frames"] == 3
    # an output folder that does not exist is named before anything runs
    assert main([*args, "--readouts", str(tmp_path / "nowhere" / "o.csv")]) == 2
    assert "nowhere does not exist" in capsys.readouterr().err


def test_ctrl_c_keeps_what_was_analysed_and_says_how_much(tmp_path):
    import signal

    path = tmp_path / "long.ome.zarr"
    argv = [sys.executable, "-m", "liveaug.cli"]
    sim = [*argv, "simulate", str(path), "--frames", "240", "--size", "128", "128", "--seed", "2"]
    subprocess.run(sim, check=True, capture_output=True, timeout=600)
    csv, par = tmp_path / "o.csv", tmp_path / "o.parquet"
    proc = subprocess.Popen(
        [
            *argv,
            "replay",
            str(path),
            "--headless",
            "--maps",
            "truth",
            "--readouts",
            str(csv),
            "--parquet",
            str(par),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (csv.exists() and csv.stat().st_size > 2000):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("liveaug replay: interrupted; kept ") and "of 240 frames" in last, err
    kept = int(last.split("kept ")[1].split(" ")[0])
    assert 0 < kept < 240
    assert sorted(pd.read_csv(csv)["frame"].unique()) == list(range(kept))
    meta = json.loads((tmp_path / "o.csv-metadata.json").read_text())
    assert meta["liveaug"]["frames"] == kept and meta["liveaug"]["incomplete"] == "interrupted"
    table = pq.read_table(par)
    assert json.loads(table.schema.metadata[b"liveaug"])["frames"] == kept
    assert sorted(set(table.column("frame").to_pylist())) == list(range(kept))


@pytest.fixture(scope="module")
def unscaled(tmp_path_factory):
    """A session whose camera gave no pixel size (frames and session-level both None)."""
    from dataclasses import replace

    path = tmp_path_factory.mktemp("u") / "unscaled.ome.zarr"
    sim = SimulatedMicroscope(SimulationConfig(height=128, width=128, seed=5))
    info = replace(sim.open(), pixel_size_um=None)
    with SessionWriter.for_source(path, info, truth=True, frame_interval_s=180.0) as w:
        for _ in range(3):
            w.append(replace(sim.read(), pixel_size_um=None))
    return path


def test_no_pixel_size_is_said_once_and_pixel_size_sets_it(unscaled, tmp_path):
    csv = tmp_path / "o.csv"
    argv = [sys.executable, "-m", "liveaug.cli", "replay", str(unscaled), "--headless"]
    argv += ["--maps", "truth", "--readouts", str(csv)]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    said = [line for line in r.stderr.splitlines() if "pixel size" in line]
    assert len(said) == 1 and "area_um2" in said[0] and "--pixel-size UM" in said[0], r.stderr
    assert said[0].startswith("WARNING"), said  # its own line, not glued to the progress bar
    df = pd.read_csv(csv)
    assert len(df) and df["area_um2"].isna().all()
    r = subprocess.run([*argv, "--pixel-size", "0.5"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "pixel size" not in r.stderr, r.stderr
    df = pd.read_csv(csv)
    np.testing.assert_allclose(df["area_um2"], df["area_px"] * 0.25, rtol=1e-5)


def test_events_go_to_their_file_and_the_terminal_only_with_verbose(session, tmp_path):
    rules = tmp_path / "r.yaml"
    rules.write_text("rules:\n  - {name: any, column: area_px, above: 0, entry: false}\n")
    ev = tmp_path / "e.jsonl"
    argv = [sys.executable, "-m", "liveaug.cli", "replay", str(session), "--headless"]
    argv += ["--maps", "truth", "--rules", str(rules), "--events", str(ev)]
    quiet = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert quiet.returncode == 0, quiet.stderr
    fired = len(ev.read_text().splitlines())
    assert fired > 5
    assert "event any" not in quiet.stderr and "INFO" not in quiet.stderr, quiet.stderr
    assert f"{fired} events" in quiet.stdout  # the summary
    loud = subprocess.run([*argv, "--verbose"], capture_output=True, text=True, timeout=120)
    assert loud.returncode == 0 and loud.stderr.count("event any") == fired
