"""`liveaug finetune`: paired sessions → a fine-tuned model folder with its lineage; bad input is
one line (exit 2) and leaves nothing in --out. Registration and units without torch."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from model_support import SHIPPED, copy_shipped, edit_rdf

from liveaug.cli import main
from liveaug.commands.simulate import STAIN_CHANNELS, _shifted
from liveaug.errors import LiveaugError
from liveaug.frame import Frame
from liveaug.model_zoo import load_model, sha256_of
from liveaug.session import Session, SessionWriter
from liveaug.sources.simulated import SimulatedMicroscope, SimulationConfig
from liveaug.training.paired import (
    check_frame,
    estimate_offset,
    fit_units,
    local_contrast,
    shift_back,
    split_holdout,
)

TARGETS = ["--target", "dapi=hoechst", "--target", "membrane=membrane"]
QUICK = ["--steps", "2", "--threads", "1", "--crop", "32", "--batch", "2"]


def _simulate(path, frames=6, extra=()):
    """A small DIC session with the true stains as real channels, moved by (2, -1) px."""
    argv = ["simulate", str(path), "--frames", str(frames), "--size", "160", "160"]
    argv += ["--seed", "5", "--contrast", "dic", "--defocus", "0.5", "--interval", "1200"]
    assert main([*argv, *extra]) == 0
    return path


@pytest.fixture(scope="module")
def paired(tmp_path_factory):
    path = tmp_path_factory.mktemp("paired") / "dic.ome.zarr"
    return _simulate(path, extra=("--stain-channels", "--stain-shift", "2", "-1"))


def _nothing_left(parent, out):
    """Neither the output folder nor a temporary one beside it."""
    assert not out.exists()
    assert not [p for p in parent.iterdir() if p.name.startswith(f".{out.name}.")]


def test_simulate_records_the_true_stains_as_real_channels(paired):
    s = Session.open(paired)
    assert s.channel_names == STAIN_CHANNELS and s.has_truth
    f = s.frame(1)
    np.testing.assert_array_equal(f.channels["hoechst"], _shifted(f.truth.dapi, 2, -1))
    np.testing.assert_array_equal(f.channels["membrane"], _shifted(f.truth.membrane, 2, -1))
    # moved content: the pixel at (y, x) of the truth is at (y + 2, x - 1) in the channel
    assert f.channels["hoechst"][50, 50] == f.truth.dapi[48, 51]


def test_estimate_offset_finds_a_known_misregistration():
    cfg = SimulationConfig(height=256, width=256, seed=1).with_(biology__frame_interval_s=1200.0)
    sim = SimulatedMicroscope(cfg)
    sim.open()
    frames = [sim.read() for _ in range(4)]
    contrast = [local_contrast(f.image) for f in frames]
    # cell borders match brightfield's edges closely; nuclei alone less so (measured)
    for role, tolerance in (("membrane", 1.0), ("dapi", 2.5)):
        for shift in ((5, -3), (-2, 4)):
            stains = [_shifted(getattr(f.truth, role), *shift).astype(np.float32) for f in frames]
            dy, dx = estimate_offset(contrast, [s - np.median(s) for s in stains])
            error = np.hypot(dy - shift[0], dx - shift[1])
            assert error <= tolerance, (role, shift, dy, dx)


def test_shift_back_undoes_a_shift_to_a_fraction_of_a_pixel():
    y, x = np.mgrid[0:64, 0:64].astype(np.float32)
    ramp = 3 * y + 5 * x  # bilinear interpolation is exact on a plane
    moved = ramp - 3 * 2.5 - 5 * (-1.25)  # the ramp moved by (2.5, -1.25) pixels
    back = shift_back(moved, 2.5, -1.25)
    np.testing.assert_allclose(back[4:-4, 4:-4], ramp[4:-4, 4:-4], atol=1e-3)
    np.testing.assert_array_equal(
        shift_back(_shifted(ramp, 3, -2), 3, -2)[3:-3, 3:-3], ramp[3:-3, 3:-3]
    )


def test_fit_units_recovers_a_linear_camera():
    rng = np.random.default_rng(0)
    pred = [np.clip(rng.normal(0, 1, (64, 64)), 0, None).astype(np.float32) for _ in range(3)]
    pred = [np.kron(p[::8, ::8], np.ones((8, 8), np.float32)) for p in pred]  # nucleus-sized
    raw = [p / 0.02 + 100.0 + rng.normal(0, 0.5, p.shape) for p in pred]  # 50 ADU / unit
    noisy = [p + rng.normal(0, 0.05, p.shape) for p in pred]
    scale, offset = fit_units(raw, noisy)
    assert scale == pytest.approx(0.02, rel=0.03) and offset == pytest.approx(-2.0, abs=0.1)
    with pytest.raises(LiveaugError, match="does not rise"):
        fit_units(raw, [-p for p in noisy])


def test_channel_checks_name_the_problem():
    img = np.zeros((64, 64), np.uint16)
    frame = Frame(img, 0, 0, channels={"gfp": img, "hoechst": np.zeros((32, 64), np.uint16)})
    with pytest.raises(LiveaugError, match=r"no channel 'dapi'.*gfp, hoechst"):
        check_frame(frame, {"dapi": "dapi"}, "s.ome.zarr frame 0")
    with pytest.raises(LiveaugError, match=r"'hoechst' is \(32, 64\), brightfield is \(64, 64\)"):
        check_frame(frame, {"dapi": "hoechst"}, "s.ome.zarr frame 0")
    masks = split_holdout([5, 1], 0.2)
    assert masks[0].tolist() == [False] * 4 + [True] and masks[1].tolist() == [False]
    with pytest.raises(LiveaugError, match="cannot be split"):
        split_holdout([1], 0.2)
    with pytest.raises(LiveaugError, match="not a fraction"):
        split_holdout([10], 1.5)


def test_finetune_end_to_end_writes_a_model_with_its_lineage(paired, tmp_path, capsys):
    pytest.importorskip("torch")
    out = tmp_path / "dic-ft"
    assert main(["finetune", str(paired), "--out", str(out), *TARGETS, *QUICK]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["dic-ft"]  # no temporary folder left
    spec = load_model(out)
    lin = spec.rdf["config"]["liveaug"]["lineage"]
    parent = load_model(SHIPPED)
    assert lin["parent"]["sha256"] == parent.sha256 == sha256_of(parent.weights)
    (data,) = lin["data"]
    assert data["frames"] == list(range(6)) and data["held_out"] == [4, 5]
    dy, dx = data["offsets_px"]["hoechst"]
    assert abs(dy - 2) <= 1.5 and abs(dx + 1) <= 1.5
    fig = lin["figures"]
    assert fig["held_out_frames"] == 2
    for name in ("parent", "heads", "fine_tuned"):
        assert -1 <= fig[name]["dapi_r"] <= 1 and -1 <= fig[name]["membrane_r"] <= 1
    # early stopping keeps what is best on the held-out frames: never worse than the start
    crit = {
        k: 10 * v["dapi_mse"] + 3 * v["membrane_mse"]
        for k, v in fig.items()
        if k != "held_out_frames"
    }
    assert crit["fine_tuned"] <= min(crit["parent"], crit["heads"]) + 1e-6
    assert (out / "reliability.npz").is_file() and spec.reliability is not None
    assert "fine-tuned" in (out / "README.md").read_text().lower()
    # every liveaug command loads it: predict a frame of the session through it
    from liveaug.inference import Predictor

    p = Predictor([out], threads=1).predict(Session.open(paired).frame(0))
    assert p.maps["dapi"].shape == (80, 80) and p.trust is not None
    capsys.readouterr()
    assert main(["models", "info", str(out)]) == 0
    info = capsys.readouterr().out
    assert f"→ {spec.short_id}" in info and parent.short_id in info and "6 paired frames" in info


def test_finetune_of_a_finetuned_model_shows_the_chain(paired, tmp_path, capsys):
    pytest.importorskip("torch")
    first, second = tmp_path / "a", tmp_path / "b"
    assert main(["finetune", str(paired), "--out", str(first), *TARGETS, *QUICK]) == 0
    argv = ["finetune", str(paired), "--out", str(second), *TARGETS]
    assert main([*argv, "--init", str(first), *QUICK]) == 0
    a, b = load_model(first), load_model(second)
    assert b.rdf["config"]["liveaug"]["lineage"]["parent"]["sha256"] == a.sha256
    # the parent read back from its ONNX scores on the same held-out frames what it wrote
    fa = a.rdf["config"]["liveaug"]["lineage"]["figures"]["fine_tuned"]
    fb = b.rdf["config"]["liveaug"]["lineage"]["figures"]["parent"]
    assert fb["dapi_r"] == pytest.approx(fa["dapi_r"], abs=2e-3)
    assert fb["membrane_r"] == pytest.approx(fa["membrane_r"], abs=2e-3)
    capsys.readouterr()
    assert main(["models", "info", str(second)]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "lineage" in ln]
    assert len(lines) == 2 and a.short_id in lines[0] and a.short_id in lines[1]
    assert load_model(SHIPPED).short_id in lines[1]


def _fails(argv, capsys, *needles):
    """Runs ``liveaug finetune``: exit 2, one line on stderr holding every needle."""
    capsys.readouterr()
    assert main(["finetune", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in err, (n, err)


def test_bad_input_is_one_line_and_writes_nothing(paired, tmp_path, capsys):
    pytest.importorskip("torch")
    out = tmp_path / "out"
    plain = tmp_path / "plain.ome.zarr"
    _simulate(plain, frames=2, extra=("--reporter",))
    _fails(
        [str(plain), "--out", str(out), "--target", "dapi=hoechst"], capsys, "'hoechst'", "reporter"
    )
    _nothing_left(tmp_path, out)
    one = _simulate(tmp_path / "one.ome.zarr", frames=1, extra=("--stain-channels",))
    _fails([str(one), "--out", str(out), *TARGETS, *QUICK], capsys, "1 paired frame(s)")
    _nothing_left(tmp_path, out)
    # an all-dark DAPI camera
    dark = tmp_path / "dark.ome.zarr"
    s = Session.open(paired)
    with SessionWriter(
        dark,
        shape=s.shape,
        dtype=s.dtype,
        bit_depth=s.bit_depth,
        pixel_size_um=s.pixel_size_um,
        channel_names=("hoechst",),
    ) as w:
        for i in range(4):
            f = s.frame(i)
            w.append(Frame(f.image, i, i, channels={"hoechst": np.full_like(f.image, 100)}))
    _fails([str(dark), "--out", str(out), "--target", "dapi=hoechst", *QUICK], capsys, "dark")
    _nothing_left(tmp_path, out)
    # a model folder that is not liveaug's: its ONNX is some other network
    import torch

    foreign = copy_shipped(tmp_path / "foreign")

    class Other(torch.nn.Module):
        def forward(self, x):
            y = torch.nn.functional.avg_pool2d(x, 2)
            return y, y, y.repeat(1, 5, 1, 1), y, torch.nn.functional.avg_pool2d(x, 8)

    from liveaug.training.export import export_onnx

    export_onnx(Other(), foreign / "weights.onnx")  # same inputs and outputs, other network
    edit_rdf(
        foreign, lambda r: r["weights"]["onnx"].update(sha256=sha256_of(foreign / "weights.onnx"))
    )
    argv = [str(paired), "--out", str(out), *TARGETS, "--init", str(foreign), *QUICK]
    _fails(argv, capsys, "not a liveaug U-Net")
    _nothing_left(tmp_path, out)
    # an existing --out is not overwritten
    out.mkdir()
    _fails([str(paired), "--out", str(out), *TARGETS, *QUICK], capsys, "exists")
    assert not any(out.iterdir())


def test_finetune_without_torch_names_the_extra(paired, tmp_path, capsys):
    if importlib.util.find_spec("torch") is not None:
        pytest.skip("torch is installed; CI without the train extra runs this")
    out = tmp_path / "o"
    _fails([str(paired), "--out", str(out), *TARGETS], capsys, "pip install 'liveaug[train]'")
    _nothing_left(tmp_path, out)
