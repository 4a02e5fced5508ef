"""Batch re-analysis on a local Dask cluster: equal to a sequential replay, resumable, robust."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pandas as pd
import pyarrow.parquet as pq
import pytest

from liveaug.batch import _predictor, plan, run_batch
from liveaug.cli import main

distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    path = tmp_path_factory.mktemp("batch") / "dish1.ome.zarr"
    argv = [
        "simulate",
        str(path),
        "--frames",
        "36",
        "--size",
        "160",
        "160",
        "--seed",
        "8",
        "--interval",
        "900",
    ]  # fast biology: divisions inside 36 frames
    assert main(argv) == 0
    return path


@pytest.fixture(scope="module", params=["model", "truth"])
def maps(request):
    """The shipped models, and truth-derived maps (many cells: a hard stitching case)."""
    return request.param


@pytest.fixture(scope="module")
def sequential(session, maps, tmp_path_factory):
    out = tmp_path_factory.mktemp("seq") / "seq.parquet"
    argv = ["replay", str(session), "--headless", "--parquet", str(out), "--maps", maps]
    assert main(argv) == 0
    return pd.read_parquet(out)


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=40
    ) as c:
        yield c


def _batch(session, out, cluster, maps, chunk):
    return run_batch(
        [session],
        out,
        scheduler=cluster.scheduler_address,
        chunk=chunk,
        warmup=4,
        maps=maps,
        progress=False,
    )


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    cols = [c for c in a.columns if c != "liveaug_version"]
    a = a[cols].sort_values(["frame", "cell_id"]).reset_index(drop=True)
    b = b[cols].sort_values(["frame", "cell_id"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_dtype=False)


def test_batch_equals_sequential_replay_and_loads_models_once_per_worker(
    session, maps, sequential, cluster, tmp_path
):
    s = _batch(session, tmp_path, cluster, maps, chunk=9)
    got = pd.read_parquet(tmp_path / "readouts" / "session=dish1" / "cells.parquet")
    meta = pq.read_schema(tmp_path / "readouts" / "session=dish1" / "cells.parquet").metadata
    assert json.loads(meta[b"liveaug"])["views"] == 1
    written = json.loads((tmp_path / "summary.json").read_text())
    assert (written["maps"], written["views"]) == (maps, 1)
    assert len(sequential) > 100 and sequential["cell_id"].nunique() > 5
    assert (sequential["parent_id"] > 0).any()  # divisions happened: lineage is stitched too
    _same(sequential, got)  # ids stitched across range boundaries match one sequential run
    assert s.ranges == 4 and s.frames == 36 and s.skipped == 0
    assert s.model_loads <= s.workers  # once per worker, not per task
    # a rerun skips every range and gives the same table
    again = _batch(session, tmp_path, cluster, maps, chunk=9)
    assert again.skipped == 4 and again.frames == 0
    _same(got, pd.read_parquet(tmp_path / "readouts" / "session=dish1" / "cells.parquet"))


def test_killed_worker_is_retried_without_lost_or_duplicated_rows(
    session, maps, sequential, cluster, tmp_path
):
    if maps != "truth":
        pytest.skip("one killed-worker run is enough")
    client = distributed.Client(cluster.scheduler_address)
    parts = tmp_path / "_ranges" / "dish1"
    killed = []

    def kill_one_when_work_started():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not list(parts.glob("*.parquet")):
            time.sleep(0.02)
        pids = client.run(os.getpid)  # worker address -> process id
        victim = sorted(pids)[0]
        os.kill(pids[victim], signal.SIGKILL)  # the nanny restarts it; Dask retries its task
        killed.append(victim)

    t = threading.Thread(target=kill_one_when_work_started)
    t.start()
    s = _batch(session, tmp_path, cluster, maps, chunk=6)
    t.join()
    client.close()
    assert killed
    got = pd.read_parquet(tmp_path / "readouts" / "session=dish1" / "cells.parquet")
    _same(sequential, got)
    assert s.ranges == 6


def test_views_reach_the_workers_predictor(session, tmp_path):
    tasks = plan(
        [session], tmp_path, chunk=18, warmup=4, maps="model", models=(), rules=None, views=4
    )
    assert [t.views for t in tasks] == [4, 4]
    predictor, loaded = _predictor(tasks[0], {})
    assert loaded and predictor.views == 4


def _damaged(session, tmp_path, frame):
    """A copy of ``session`` with frame ``frame``'s brightfield chunk cut short."""
    import shutil

    broken = tmp_path / "dish2.ome.zarr"
    shutil.copytree(session, broken)
    chunk = broken / "0" / "c" / str(frame) / "0" / "0" / "0"
    chunk.write_bytes(chunk.read_bytes()[:50])
    return broken


def test_a_damaged_chunk_keeps_the_frames_before_it_like_replay(session, tmp_path):
    broken = _damaged(session, tmp_path, 20)
    out = tmp_path / "out"
    argv = ["batch", str(broken), "--out", str(out), "--workers", "1", "--chunk", "8"]
    r = subprocess.run(
        [sys.executable, "-m", "liveaug.cli", *argv, "--maps", "truth", "--warmup", "4"],
        capture_output=True,
        text=True,
        timeout=200,
    )
    assert r.returncode == 2, r.stderr
    err = [line for line in r.stderr.splitlines() if line.strip() and line[:6] != "batch:"]
    assert "Traceback" not in r.stderr and "Compute Failed" not in r.stderr, r.stderr
    assert len(err) == 1 and "frame 20 is unreadable" in err[0], r.stderr
    assert "stopped after 20 of 36 frames" in err[0]
    rows = pd.read_parquet(out / "readouts" / "session=dish2" / "cells.parquet")
    assert sorted(rows["frame"].unique()) == list(range(20))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["sessions"]["dish2"]["frames"] == 20
    assert "frame 20" in summary["sessions"]["dish2"]["incomplete"]
    # the partial range is not taken for a finished one: a repaired session is analysed whole
    shutil_copy = (session / "0" / "c" / "20" / "0" / "0" / "0").read_bytes()
    (broken / "0" / "c" / "20" / "0" / "0" / "0").write_bytes(shutil_copy)
    r = subprocess.run(
        [sys.executable, "-m", "liveaug.cli", *argv, "--maps", "truth", "--warmup", "4"],
        capture_output=True,
        text=True,
        timeout=200,
    )
    assert r.returncode == 0, r.stderr
    rows = pd.read_parquet(out / "readouts" / "session=dish2" / "cells.parquet")
    assert sorted(rows["frame"].unique()) == list(range(36))


def test_batch_without_dask_names_the_extra(session, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)  # what an install without it gives
    assert main(["batch", str(session), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "pip install 'liveaug[batch]'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
    assert main(["bench", "--only", "batch"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'liveaug[batch]'" in err and len(err.strip().splitlines()) == 1


def test_bad_rules_are_named_before_any_worker_starts(session, tmp_path, capfd):
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - {name: dying, column: p_apoptossis, above: 0.8}\n")
    argv = ["batch", str(session), "--out", str(tmp_path / "o"), "--rules", str(rules)]
    assert main(argv) == 2
    err = capfd.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "'p_apoptossis'" in err and "p_apoptosis" in err
    assert not (tmp_path / "o").exists()
