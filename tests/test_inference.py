"""The inference engine: providers, pre/post-processing, role selection, tiling, bad models."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from model_support import SHIPPED, copy_shipped, edit_rdf

from liveaug.cli import main
from liveaug.frame import ROLES, Prediction
from liveaug.inference import Predictor, check_model
from liveaug.model_eval import Accumulator, pearson
from liveaug.model_zoo import ModelError, load_model, sha256_of
from liveaug.preprocess import bin_image, pad_to_multiple, zero_mean_unit_variance
from liveaug.providers import probe_providers
from liveaug.sources.simulated import SimulatedMicroscope, SimulationConfig
from liveaug.views import VIEW_COUNTS, VIEWS, turn, turn_back


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor([SHIPPED], threads=1)


@pytest.fixture(scope="module")
def frame():
    sim = SimulatedMicroscope(SimulationConfig(height=256, width=256, seed=42))
    sim.open()
    return sim.read()


def test_provider_probe_is_quiet_and_one_line():
    code = (
        "from liveaug.inference import Predictor\n"
        "from liveaug.providers import probe_providers\n"
        "print(probe_providers().line())\n"
        "Predictor(threads=1)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stderr == ""
    line = out.stdout.strip()
    assert "\n" not in line and line.startswith("onnxruntime ")
    assert "CPU" in line
    report = probe_providers()
    assert report.usable[-1] == "CPUExecutionProvider"
    for prov in ("TensorrtExecutionProvider", "CUDAExecutionProvider"):
        assert prov in report.usable or prov in report.reasons


def test_predict_all_roles_at_half_resolution(predictor, frame):
    pred = predictor.predict(frame)
    assert isinstance(pred, Prediction)
    assert set(pred.maps) == set(ROLES)
    assert pred.scale == 0.5
    assert pred.maps["dapi"].shape == (128, 128)
    assert pred.maps["phase"].shape == (5, 128, 128)
    np.testing.assert_allclose(pred.maps["phase"].sum(0), 1.0, atol=1e-4)
    assert 0 <= pred.maps["apoptosis"].min() and pred.maps["apoptosis"].max() <= 1
    assert pred.models["dapi"].startswith(load_model(SHIPPED).name)
    assert pred.provider == "CPU"


def test_only_wanted_roles_are_computed(predictor, frame):
    pred = predictor.predict(frame, ["phase"])
    assert set(pred.maps) == {"phase"}
    assert predictor.predict(frame, []).maps == {}


def test_odd_sizes_are_padded_and_cropped(predictor):
    img = np.random.default_rng(0).integers(200, 3000, (301, 203)).astype(np.uint16)
    pred = predictor.predict(img)
    assert pred.maps["membrane"].shape == (151, 102)


def test_full_resolution_tiles_match_one_pass_when_tile_covers_frame(frame):
    one = Predictor([SHIPPED], resolution="full", tile=512, threads=1).predict(frame, ["dapi"])
    tiled = Predictor([SHIPPED], resolution="full", tile=160, overlap=48, threads=1).predict(
        frame, ["dapi"]
    )
    assert one.scale == tiled.scale == 0.5
    half = (frame.shape[0] // 2, frame.shape[1] // 2)
    assert one.maps["dapi"].shape == tiled.maps["dapi"].shape == half
    # tiles see less context at their seams, but overlap keeps them close to the one-pass map
    assert pearson(one.maps["dapi"], tiled.maps["dapi"]) > 0.97


def test_views_average_mirrored_and_turned_copies_put_back_in_place(predictor, frame):
    one = predictor.predict(frame)
    mirror = predictor.predict(replace(frame, image=np.ascontiguousarray(frame.image[:, ::-1])))
    two = Predictor([SHIPPED], threads=1, views=2).predict(frame)
    assert two.scale == one.scale and set(two.maps) == set(one.maps)
    for role in ROLES:
        want = (one.maps[role] + mirror.maps[role][..., ::-1]) / 2
        np.testing.assert_allclose(two.maps[role], want, rtol=1e-5, atol=1e-6)
    assert not np.allclose(two.maps["dapi"], one.maps["dapi"], atol=1e-4)  # the views differ


def test_each_view_turned_back_is_the_image_again():
    a = np.arange(3 * 5 * 7, dtype=np.float32).reshape(3, 5, 7)
    seen = set()
    for k, flip in VIEWS:
        t = turn(a, k, flip)
        seen.add(t.tobytes())
        np.testing.assert_array_equal(turn_back(t, k, flip), a)
    assert len(seen) == len(VIEWS) == VIEW_COUNTS[-1]  # eight different copies


def test_views_of_an_odd_width_land_on_the_frames_own_output_pixels(predictor):
    x = np.random.default_rng(2).standard_normal((301, 203)).astype(np.float32)
    two = Predictor([SHIPPED], threads=1, views=2)
    m = two.models[0]
    outs = [m.spec.roles["dapi"]]
    got = two._run_views(m, x, outs)[outs[0]]
    # the mirror of the frame padded to whole output pixels, not of the odd frame itself
    even = pad_to_multiple(x, 2)[0]
    a = predictor._run(m, even, outs)[outs[0]]
    b = predictor._run(m, np.ascontiguousarray(even[:, ::-1]), outs)[outs[0]][..., ::-1]
    assert got.shape == (151, 102)
    np.testing.assert_allclose(got, ((a + b) / 2)[:151, :102], rtol=1e-5, atol=1e-5)


def test_eight_views_keep_odd_rectangular_frames_in_place():
    img = np.random.default_rng(1).integers(200, 3000, (301, 203)).astype(np.uint16)
    eight = Predictor([SHIPPED], threads=1, views=8)
    pred = eight.predict(img)
    assert pred.maps["membrane"].shape == (151, 102) and pred.maps["phase"].shape == (5, 151, 102)
    np.testing.assert_allclose(pred.maps["phase"].sum(0), 1.0, atol=1e-4)
    # a frame that is its own mirror image gives maps that are too
    sym = np.concatenate([img[:, :96], img[:, :96][:, ::-1]], 1)
    m = eight.predict(sym, ["dapi"]).maps["dapi"]
    np.testing.assert_allclose(m, m[:, ::-1], rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="views"):
        Predictor([SHIPPED], threads=1, views=3)


def test_preprocessing_helpers():
    x = np.arange(36, dtype=np.float32).reshape(6, 6)
    b = bin_image(x, 2)
    assert b.shape == (3, 3) and b[0, 0] == np.mean([0, 1, 6, 7])
    z = zero_mean_unit_variance(x)
    assert abs(z.mean()) < 1e-6 and abs(z.std() - 1) < 1e-5
    p, (h, w) = pad_to_multiple(np.zeros((2, 5, 7)), 4)
    assert p.shape == (2, 8, 8) and (h, w) == (5, 7)


def test_shipped_model_reproduces_its_test_output():
    diffs = check_model(load_model(SHIPPED))
    assert set(diffs) == {*ROLES, "features"}  # every output reproduces, the features too


def test_accumulator_scores_a_perfect_prediction(frame):
    t = frame.truth
    lab = t.cell_labels
    phase = np.zeros((5, *lab.shape), np.float32)
    lut = np.zeros(lab.max() + 1, np.int64)
    lut[t.cells["cell_id"]] = t.cells["phase"] + 1
    cls = lut[lab]
    for c in range(5):
        phase[c] = cls == c
    apo_lut = np.zeros(lab.max() + 1, np.float32)
    apo_lut[t.cells["cell_id"]] = t.cells["apoptotic"]
    maps = {
        "dapi": t.dapi.astype(np.float32),
        "membrane": t.membrane.astype(np.float32),
        "phase": phase,
        "apoptosis": apo_lut[lab],
    }
    acc = Accumulator()
    acc.add(frame, Prediction(frame.index, maps, 1.0, {}, "CPU"))
    s = acc.summary()
    assert s["dapi_r"] == pytest.approx(1.0)
    assert s["phase_balanced_accuracy"] == pytest.approx(1.0)


# -- bad model files: one clear ModelError naming the file and the problem ---------------------


@pytest.fixture
def broken(tmp_path) -> Path:
    return copy_shipped(tmp_path / "model")


def test_missing_rdf(broken):
    (broken / "rdf.yaml").unlink()
    with pytest.raises(ModelError, match=r"no rdf\.yaml"):
        load_model(broken)


def test_bare_onnx_file_needs_its_rdf(broken):
    with pytest.raises(ModelError, match="bare ONNX file"):
        load_model(broken / "weights.onnx")


def test_not_onnx(broken):
    (broken / "weights.onnx").write_text("this is not a model")

    def fix_sha(rdf):
        rdf["weights"]["onnx"]["sha256"] = sha256_of(broken / "weights.onnx")

    edit_rdf(broken, fix_sha)
    with pytest.raises(ModelError, match=r"weights\.onnx: onnxruntime cannot load it"):
        Predictor([broken])


def test_sha_mismatch(broken):
    with (broken / "weights.onnx").open("ab") as f:
        f.write(b"\0")
    with pytest.raises(ModelError, match="sha256 does not match"):
        load_model(broken)


def test_wrong_rank(broken):
    def drop_batch(rdf):
        rdf["inputs"][0]["axes"] = rdf["inputs"][0]["axes"][1:]

    edit_rdf(broken, drop_batch)
    with pytest.raises(ModelError, match="rank 4"):
        Predictor([broken])


def test_wrong_channels(broken):
    def two_channels(rdf):
        rdf["inputs"][0]["axes"][1]["channel_names"] = ["bf", "phase"]

    edit_rdf(broken, two_channels)
    with pytest.raises(ModelError, match="2 channels"):
        load_model(broken)


def test_unknown_role(broken):
    edit_rdf(broken, lambda rdf: rdf["config"]["liveaug"]["roles"].update(nuclei="dapi"))
    with pytest.raises(ModelError, match="unknown role 'nuclei'"):
        load_model(broken)


def test_test_output_mismatch(broken):
    np.save(broken / "test_output_dapi.npy", np.load(broken / "test_output_dapi.npy") + 1)

    def fix_sha(rdf):
        for o in rdf["outputs"]:
            o["test_tensor"]["sha256"] = sha256_of(broken / o["test_tensor"]["source"])

    edit_rdf(broken, fix_sha)
    with pytest.raises(ModelError, match="output dapi differs"):
        check_model(load_model(broken))


@pytest.mark.parametrize("axis", [2, 3], ids=["y", "x"])
def test_fixed_size_input_is_refused_at_load(broken, axis):
    edit_rdf(broken, lambda rdf: rdf["inputs"][0]["axes"][axis].update(size=256))
    match = r"rdf\.yaml: input axis [yx] has a fixed size 256; .*not supported.* dynamic height"
    with pytest.raises(ModelError, match=match):
        load_model(broken)
    with pytest.raises(ModelError, match=match):
        Predictor([broken], threads=1)


def test_onnxruntime_run_failure_is_one_model_error(broken):
    # the graph needs multiples of 32; an rdf claiming 8 lets a 48×48 input reach onnxruntime
    def step_8(rdf):
        for a in rdf["inputs"][0]["axes"][2:]:
            a["size"] = {"min": 8, "step": 8}

    edit_rdf(broken, step_8)
    pred = Predictor([broken], threads=1)
    with pytest.raises(
        ModelError,
        match=r"weights\.onnx: onnxruntime failed to run it on a "
        r"1×1×48×48 input",
    ) as info:
        pred.predict(np.ones((48, 48), np.float32))
    assert info.value.fix and "rdf.yaml" in info.value.fix


def test_outputs_at_different_scales_are_refused_at_load(broken):
    # one Prediction carries one scale; a model whose role outputs disagree cannot be shown
    edit_rdf(broken, lambda rdf: rdf["outputs"][1]["axes"][2].update(scale=2.6))
    with pytest.raises(ModelError, match=r"rdf\.yaml: outputs come at different scales"):
        load_model(broken)


def test_tiles_must_land_on_whole_output_pixels(frame):
    # the shipped model answers at half its input sampling: an odd tile core would split pixels
    pred = Predictor([SHIPPED], resolution="full", tile=161, overlap=48, threads=1)
    with pytest.raises(ValueError, match="must be multiples of 2"):
        pred.predict(frame, ["dapi"])


def test_user_model_without_liveaug_block_loads_by_output_ids(broken):
    edit_rdf(broken, lambda rdf: rdf.pop("config"))
    spec = load_model(broken)
    assert set(spec.roles) == set(ROLES)


# -- command line -----------------------------------------------------------------------------


def test_models_cli(capsys, broken):
    assert main(["models", "list"]) == 0
    assert "liveaug-bf4" in capsys.readouterr().out
    assert main(["models", "info", "liveaug-bf4"]) == 0
    assert "role phase" in capsys.readouterr().out
    assert main(["models", "check", str(SHIPPED)]) == 0
    assert "test outputs reproduced" in capsys.readouterr().out
    (broken / "rdf.yaml").unlink()
    assert main(["models", "check", str(broken)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no rdf.yaml" in err


def test_models_eval_on_a_session(tmp_path, capsys):
    session = tmp_path / "s.ome.zarr"
    assert main(["simulate", str(session), "--frames", "2", "--size", "256", "256"]) == 0
    out_json = tmp_path / "fig.json"
    assert main(["models", "eval", str(session), "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "phase_balanced_accuracy" in out and "dapi_r" in out
    assert out_json.is_file()
    two = tmp_path / "two.json"
    assert main(["models", "eval", str(session), "--views", "2", "--json", str(two)]) == 0
    assert json.loads(two.read_text())["dapi_r"] != json.loads(out_json.read_text())["dapi_r"]
    with pytest.raises(SystemExit):
        main(["models", "eval", str(session), "--views", "3"])


def test_models_eval_on_the_model_cards_held_out_sessions(tmp_path, capsys):
    out_json = tmp_path / "card.json"
    assert main(["models", "eval", "--held-out", "1", "1", "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "held-out in distribution (1 sessions x 1 frames)" in out and "held-out shifted" in out
    figures = json.loads(out_json.read_text())
    assert 0.5 < figures["in_distribution"]["dapi_r"] <= 1.0 and "shifted" in figures
    assert main(["models", "eval"]) == 2
    assert "--held-out" in capsys.readouterr().err


def test_models_check_says_when_there_is_nothing_to_compare(tmp_path, capsys):
    folder = copy_shipped(tmp_path / "bare")
    edit_rdf(folder, lambda rdf: [out.pop("test_tensor", None) for out in rdf["outputs"]])
    assert main(["models", "check", str(folder)]) == 0
    assert "declares no test outputs" in capsys.readouterr().out
