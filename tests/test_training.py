"""Training smoke test: simulate a few frames, train a few steps, export, check, package."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from liveaug.inference import Predictor, check_model  # noqa: E402
from liveaug.model_zoo import load_model  # noqa: E402
from liveaug.training.data import (  # noqa: E402
    IGNORE,
    TRAIN_SEED0,
    build_cache,
    eval_config,
    load_cache,
)
from liveaug.training.export import check_against_torch, export_onnx  # noqa: E402
from liveaug.training.package import write_model_folder  # noqa: E402
from liveaug.training.train import (  # noqa: E402
    Batches,
    TrainConfig,
    load_checkpoint,
    losses,
    save_checkpoint,
    train,
)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    path = tmp_path_factory.mktemp("train") / "cache.npz"
    build_cache(path, 2, 1, size=128, workers=1)
    return load_cache(path)


def test_cache_layout(cache):
    # the input at frame sampling, the targets at the models' output sampling (binned 2 × 2)
    assert cache["x"].shape == (2, 128, 128)
    assert cache["dapi"].shape == cache["phase"].shape == (2, 64, 64)
    assert abs(float(cache["x"][0].astype(np.float32).mean())) < 1e-2
    assert set(np.unique(cache["phase"])) <= {0, 1, 2, 3, 4, IGNORE}
    assert set(np.unique(cache["apoptosis"])) <= {0, 1}


def test_eval_seeds_never_overlap_training():
    with pytest.raises(ValueError):
        eval_config(TRAIN_SEED0)


def test_pooled_dapi_loss_counts_only_when_weighted(cache):
    from liveaug.training.model import UNet

    model = UNet((4, 8, 8, 8, 8)).eval()
    batch = Batches(cache, 64, 2, seed=0)()
    phase_w = torch.ones(5)
    plain = TrainConfig()
    assert "dapi_pool" not in losses(model, batch, plain, phase_w)
    weights = {**plain.loss_weights, "dapi_pool": 1.0}
    with torch.no_grad():
        parts = losses(model, batch, TrainConfig(loss_weights=weights), phase_w)
        pred = model.logits(batch["x"])["dapi"]
    # the mean squared difference of the two maps' 8 × 8 block means, by hand
    blocks = (pred - batch["dapi"]).numpy()[:, 0].reshape(2, 8, 8, 8, 8).mean(axis=(2, 4))
    assert float(parts["dapi_pool"]) == pytest.approx(float((blocks**2).mean()), rel=1e-4)
    assert float(parts["dapi_pool"]) < float(parts["dapi"])  # a block mean errs less than pixels


def test_widen_keeps_the_function_and_lets_the_new_channels_learn(cache, tmp_path):
    from liveaug.training.model import UNet, widen

    torch.manual_seed(0)
    small = UNet((4, 8, 8, 8, 8))
    with torch.no_grad():  # non-trivial BN statistics, so the copy has to carry them
        small.train()(torch.randn(2, 1, 64, 64))
    small.eval()
    wide = widen(small, (6, 8, 12, 8, 16)).eval()
    x = torch.randn(1, 1, 64, 96)
    with torch.no_grad():
        for a, b in zip(small(x)[:4], wide(x)[:4], strict=True):  # the maps (features widen)
            assert torch.allclose(a, b, atol=1e-6)
    with pytest.raises(ValueError, match="cannot widen"):
        widen(small, (2, 8, 8, 8, 8))
    # a training stage that starts from a narrower checkpoint widens it, and uses the new channels
    ckpt = save_checkpoint(small, TrainConfig(widths=(4, 8, 8, 8, 8)), tmp_path / "small.pt")
    cfg = TrainConfig(
        steps=2, batch=2, crop=64, threads=1, widths=(6, 8, 12, 8, 16), init=str(ckpt)
    )
    trained = train(cache, cfg, log=lambda s: None)
    assert trained.widths == (6, 8, 12, 8, 16)
    reads_new = trained.head_dapi.weight.detach()[:, 4:]  # DAPI head, weights on the new channels
    assert float(reads_new.abs().sum()) > 0  # started at zero, moved by training


def test_train_export_check_package(cache, tmp_path):
    cfg = TrainConfig(steps=3, batch=2, crop=64, threads=1, widths=(4, 8, 8, 8, 8))
    model = train(cache, cfg, log=lambda s: None)
    ckpt = save_checkpoint(model, cfg, tmp_path / "model.pt")
    model2, cfg2 = load_checkpoint(ckpt)
    assert cfg2 == cfg
    onnx_path = export_onnx(model2, tmp_path / "m.onnx")
    import onnx

    proto = onnx.load(str(onnx_path))
    assert proto.ir_version == 10
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    x = np.random.default_rng(0).standard_normal((1, 1, 96, 128)).astype(np.float32)
    diffs = check_against_torch(model2, onnx_path, x)
    assert max(diffs.values()) < 1e-4
    img = np.random.default_rng(1).uniform(500, 1500, (64, 96)).astype(np.float32)
    folder = write_model_folder(
        tmp_path / "pkg",
        onnx_path,
        img,
        name="smoke test model",
        description="tiny model from the training smoke test",
        pixel_size_um=0.65,
        card="# smoke\n",
    )
    spec = load_model(folder)
    assert spec.output_scale == 0.5  # from the rdf's axis scales (1.3 out / 0.65 in)
    check_model(spec)
    pred = Predictor([folder], threads=1).predict(np.full((128, 128), 1000, np.uint16))
    assert pred.maps["phase"].shape == (5, 64, 64)


def test_train_command_end_to_end(tmp_path, capsys):
    from liveaug.cli import main
    from liveaug.commands.train import LATER_STAGES

    out = tmp_path / "models" / "tiny"
    argv = ["train", "--out", str(out), "--cache", str(tmp_path / "c.npz")]
    argv += ["--domains", "--domain-cache", str(tmp_path / "d.npz"), "--domain-sessions", "1"]
    argv += ["--sessions", "1", "--frames", "1", "--steps", "2"]
    for stage in LATER_STAGES:
        argv += [f"--{stage.name}-steps", "1"]
    argv += ["--batch", "2", "--crop", "64", "--threads", "1"]
    argv += ["--eval-sessions", "1", "--eval-frames", "1"]
    assert main(argv) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    for folder in (out, out.parent / "tiny-int8"):
        spec = load_model(folder)
        check_model(spec)
        card = (folder / "README.md").read_text()
        assert "Simulated brightfield only" in card and "| phase_balanced_accuracy |" in card
    last = len(LATER_STAGES) + 1  # every stage of the recipe ran, each from the one before
    assert (tmp_path / "work-tiny" / f"stage{last}.pt").is_file()
    report = json.loads((out / "training_report.json").read_text())
    assert f"stage {last}: 1 steps from stage {last - 1}" in report["meta"]["recipe"]


def test_stages_widen_once_and_never_narrow(tmp_path):
    import argparse

    from liveaug.commands.train import LATER_STAGES, _recipe, add_arguments, stage_configs
    from liveaug.training.model import UNet

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    recipe = stage_configs(parser.parse_args([]), tmp_path)
    widened = next(st.widths for st in LATER_STAGES if st.widths)
    assert recipe[0].widths == TrainConfig.widths and recipe[-1].widths == widened
    assert recipe[-1].init == str(tmp_path / f"stage{len(recipe) - 1}.pt")
    # fine-tuning a wider checkpoint (the shipped model.pt, or wider still) keeps its widths
    wider = tuple(w + 8 for w in widened)
    ckpt = save_checkpoint(UNet(wider), TrainConfig(widths=wider), tmp_path / "wide.pt")
    tuned = stage_configs(parser.parse_args(["--init", str(ckpt)]), tmp_path)
    assert {c.widths for c in tuned} == {wider}
    # the card's recipe says what ran: the widening where it happens, none when there is none
    assert f"stage {len(recipe)}: " in _recipe(recipe)
    assert f"widened to {widened}" in _recipe(recipe) and "widened" not in _recipe(tuned)


def test_a_shipped_onnx_model_reads_back_into_the_network_it_came_from(cache, tmp_path):
    from liveaug.training.model import UNet
    from liveaug.training.onnx_import import unet_from_onnx

    torch.manual_seed(1)
    net = UNet((4, 8, 8, 8, 12))
    with torch.no_grad():  # non-trivial BatchNorm statistics, which export folds away
        net.train()(torch.randn(4, 1, 64, 64) * 3 + 1)
        net.phase_bias.copy_(torch.tensor([0.0, 0.1, 0.2, 0.3, 0.0]))
    path = export_onnx(net.eval(), tmp_path / "m.onnx")
    frames = cache["x"][:, None, :64, :64].astype(np.float32)
    back = unet_from_onnx(path, phase_offsets=[0.0, 0.1, 0.2, 0.3, 0.0], frames=frames)
    assert back.widths == (4, 8, 8, 8, 12)
    x = np.random.default_rng(0).standard_normal((1, 1, 64, 96))
    assert max(check_against_torch(back, path, x, atol=1e-4).values()) < 1e-4
    # BatchNorm now holds the folded layers' own statistics: training mode starts where eval is
    with torch.no_grad():
        train_out = back.train().logits(torch.from_numpy(frames))["dapi"]
        eval_out = back.eval().logits(torch.from_numpy(frames))["dapi"]
    assert float((train_out - eval_out).abs().max()) < 1e-3
    import onnx

    proto = onnx.load(str(export_onnx(UNet((4, 8, 8, 8, 8)), tmp_path / "x.onnx")))
    del proto.graph.node[3:]
    onnx.save(proto, str(tmp_path / "not.onnx"))
    with pytest.raises(ValueError, match="not a liveaug U-Net"):
        unet_from_onnx(tmp_path / "not.onnx")


def test_interrupted_training_resumes_to_the_same_weights(cache, tmp_path):
    cfg = TrainConfig(steps=4, batch=2, crop=64, threads=1, widths=(4, 8, 8, 8, 8))
    whole = train(cache, cfg, log=lambda s: None)
    state = tmp_path / "resume.pt"
    steps = 0

    def stop_after_two() -> None:
        nonlocal steps
        steps += 1
        if steps == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # saved after every step (every_s=0), then stopped
        train(cache, cfg, log=lambda s: None, on_step=stop_after_two, resume=state, every_s=0)
    logs: list[str] = []
    resumed = train(cache, cfg, log=logs.append, resume=state, every_s=0)
    assert any("resumed at step" in s for s in logs)
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-6)
    with pytest.raises(ValueError, match="another training configuration"):
        train(
            cache,
            TrainConfig(steps=5, batch=2, crop=64, threads=1, widths=(4, 8, 8, 8, 8)),
            log=lambda s: None,
            resume=state,
        )
