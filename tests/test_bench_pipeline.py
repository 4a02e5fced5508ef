"""`liveaug bench`'s pipeline section on each kind of source: it runs, counts and compares."""

from __future__ import annotations

import json

import pytest
from test_pipeline import BlurPredictor

from liveaug.bench.pipeline import pipeline_benchmarks, replay_source, simulator_source
from liveaug.sources.camera import CameraSettings, CameraSource, bundled_simulator_cti

VIKY = bundled_simulator_cti()


def _check(res: dict, shape: str) -> None:
    assert res["size"] == shape
    piped, naive = res["pipeline"], res["naive"]
    assert piped["acquired"] > 0 and piped["record_drops"] == 0  # every frame recorded
    assert 0 < piped["analysed_fps"] <= piped["acquired_fps"] * 1.1
    assert piped["displayed_fps"] > 0 and naive["displayed_fps"] > 0
    assert {"acquire", "record", "predict", "latency"} <= set(piped["stages"])
    assert set(res["targets"]) == {
        "analysed_fps / (0.9 min(1/compute, source))",
        "displayed_fps (>= 29)",
        "displayed vs naive (>= 3)",
        "latency_p95 / (1.2 compute + frame) (<= 1)",
        "record drops (== 0)",
    }
    json.dumps(res)  # what --json writes


def test_pipeline_bench_on_a_replayed_session(tmp_path):
    res = pipeline_benchmarks(
        BlurPredictor(), make_source=replay_source(tmp_path, 64), seconds=1.0, workdir=tmp_path
    )
    _check(res, "64x64")
    assert 25 <= res["pipeline"]["acquired_fps"] <= 35  # replayed at its recorded 30 fps


def test_pipeline_bench_on_the_live_simulator(tmp_path):
    res = pipeline_benchmarks(
        BlurPredictor(), make_source=simulator_source(64), seconds=1.0, workdir=tmp_path
    )
    _check(res, "64x64")
    assert "simulated microscope" in res["source"]


@pytest.mark.camera
@pytest.mark.skipif(VIKY is None, reason="the genicam wheel ships no viky.cti here")
def test_pipeline_bench_on_a_genicam_camera(tmp_path):
    settings = CameraSettings(pixel_format="Mono8", width=160, height=120, frame_rate_hz=30.0)
    res = pipeline_benchmarks(
        BlurPredictor(),
        make_source=lambda: CameraSource("1", cti=[VIKY], use_env=False, settings=settings),
        seconds=1.0,
        workdir=tmp_path,
    )
    _check(res, "160x120")
