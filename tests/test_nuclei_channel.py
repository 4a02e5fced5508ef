"""``--nuclei-channel``: a recorded nuclear stain segmented instead of the virtual DAPI."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from liveaug.analysis.analyzer import Analyzer
from liveaug.analysis.evaluate import match_instances
from liveaug.analysis.segmentation import upsample_labels
from liveaug.analysis.truthmaps import TruthPredictor
from liveaug.cli import main
from liveaug.errors import LiveaugError
from liveaug.session import Session, SessionWriter
from liveaug.sources.simulated import SimulatedMicroscope, SimulationConfig

CHANNEL = "hoechst"


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """A simulated session that records a Hoechst channel: the simulator's true DAPI stain
    (digitised with the camera's noise, as a real fluorescence channel is)."""
    path = tmp_path_factory.mktemp("nuc") / "hoechst.ome.zarr"
    cfg = SimulationConfig(height=192, width=192, seed=11).with_(biology__density=0.7)
    sim = SimulatedMicroscope(cfg)
    info = dataclasses.replace(sim.open(), channel_names=(CHANNEL,))
    # recorded at 30 fps: the replay window plays sessions at their recorded pace
    with SessionWriter.for_source(path, info, truth=True, frame_interval_s=1 / 30) as w:
        for _ in range(5):
            f = sim.read()
            assert f.truth is not None
            w.append(dataclasses.replace(f, channels={CHANNEL: f.truth.dapi}))
    return path


class _NoVirtualDapi:
    """Truth-derived maps with the virtual DAPI blanked: nuclei can only come from a channel."""

    def __init__(self, inner: TruthPredictor) -> None:
        self.inner = inner

    def predict(self, frame, roles):
        p = self.inner.predict(frame, roles)
        maps = {**p.maps, "dapi": np.zeros_like(p.maps["dapi"])}
        return dataclasses.replace(p, maps=maps)


def _f1(session_path, analyzer) -> float:
    """Cell F1 at IoU 0.5 over the session with blanked virtual DAPI."""
    s = Session.open(session_path)
    pred = _NoVirtualDapi(TruthPredictor.for_session(s.metadata))
    tp = n_pred = n_true = 0
    for i in range(s.n_frames):
        frame = s.frame(i)
        p = pred.predict(frame, analyzer.required_roles)
        labels = upsample_labels(analyzer.analyze(frame, p).labels, p.scale, frame.shape)
        pairs, a, b = match_instances(labels, frame.truth.cell_labels)
        tp, n_pred, n_true = tp + len(pairs), n_pred + a, n_true + b
    return 2 * tp / max(1, n_pred + n_true)


def test_the_channel_seeds_the_cells(session):
    with_channel = _f1(session, Analyzer(rules=[], nuclei_channel=CHANNEL))
    without = _f1(session, Analyzer(rules=[]))
    assert with_channel >= 0.85, with_channel
    assert without < 0.5 * with_channel  # blank virtual DAPI: the channel did the work


def test_analyzer_names_the_channel_and_the_real_ones():
    frame = SimulatedMicroscope(SimulationConfig(height=64, width=64, seed=1))
    frame.open()
    f = frame.read()
    pred = TruthPredictor().predict(f)
    with pytest.raises(LiveaugError, match=r"'sir-dna'.*brightfield only"):
        Analyzer(rules=[], nuclei_channel="sir-dna").analyze(f, pred)


def test_headless_replay_with_the_channel(session, tmp_path, capsys):
    csv = tmp_path / "o.csv"
    argv = ["replay", str(session), "--headless", "--maps", "truth", "--readouts", str(csv)]
    assert main([*argv, "--nuclei-channel", CHANNEL]) == 0
    df = pd.read_csv(csv)
    assert sorted(df["frame"].unique()) == list(range(5))
    assert {"hoechst_mean", "hoechst_integrated"} <= set(df.columns)


@pytest.mark.parametrize("command", ["replay-headless", "batch"])
def test_a_channel_the_session_lacks_is_one_line(session, tmp_path, capsys, command):
    if command == "batch":
        pytest.importorskip("distributed")
        argv = ["batch", str(session), "--out", str(tmp_path / "b"), "--maps", "truth"]
    else:
        argv = ["replay", str(session), "--headless", "--readouts", str(tmp_path / "o.csv")]
    assert main([*argv, "--nuclei-channel", "dapi"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "'dapi'" in err[0] and f"its channels are: {CHANNEL}" in err[0]


def test_batch_uses_the_channel(session, tmp_path):
    distributed = pytest.importorskip("distributed")
    from liveaug.batch import plan, run_batch

    tasks = plan(
        [session],
        tmp_path,
        chunk=10,
        warmup=2,
        maps="truth",
        models=(),
        rules=None,
        nuclei_channel=CHANNEL,
    )
    assert [t.nuclei_channel for t in tasks] == [CHANNEL]
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
    ) as c:
        s = run_batch(
            [session],
            tmp_path,
            scheduler=c.scheduler_address,
            chunk=10,
            warmup=2,
            maps="truth",
            nuclei_channel=CHANNEL,
            progress=False,
        )
    assert s.frames == 5
    rows = pd.read_parquet(tmp_path / "readouts")
    assert len(rows) and "hoechst_mean" in rows.columns


@pytest.mark.gl
@pytest.mark.timeout(180)
def test_replay_window_with_the_channel_and_without_it(qapp, session, tmp_path, capsys):
    from PyQt6.QtCore import QSettings

    QSettings.setPath(
        QSettings.Format.NativeFormat, QSettings.Scope.UserScope, str(tmp_path / "config")
    )
    argv = ["replay", str(session), "--maps", "truth", "--frames", "4"]
    assert main([*argv, "--nuclei-channel", CHANNEL]) == 0
    assert main([*argv, "--nuclei-channel", "SiR"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'SiR'" in err[0] and CHANNEL in err[0]


@pytest.mark.camera
@pytest.mark.timeout(180)
def test_view_on_a_camera_without_the_channel_is_one_line(qapp, capsys):
    from liveaug.model_zoo import find_models
    from liveaug.sources.camera import bundled_simulator_cti

    viky = bundled_simulator_cti()
    if viky is None or not find_models():
        pytest.skip("needs viky.cti and a shipped model")
    argv = ["view", "--cti", str(viky), "--no-env", "--device", "1", "--pixel-format", "Mono8"]
    assert main([*argv, "--frames", "3", "--nuclei-channel", "hoechst"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'hoechst'" in err[0] and "brightfield only" in err[0]
