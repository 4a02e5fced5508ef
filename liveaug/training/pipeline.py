"""After training: export, check, package, evaluate, quantise, and write the model card."""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from liveaug.inference import Predictor
from liveaug.model_eval import cell_means, measure, measure_domains, scored_cells
from liveaug.reliability import RELIABILITY_FILE
from liveaug.sources.simulated import SimulatedMicroscope
from liveaug.training.card import (
    FAMILIAR_CLEAN,
    FAMILIAR_DOMAINS,
    card_figures,
    model_card,
    trust_figures,
)
from liveaug.training.data import (
    BIN,
    INPUT_PIXEL_UM,
    eval_config,
    prepare,
    sample_config,
)
from liveaug.training.export import check_against_torch, export_onnx
from liveaug.training.model import UNet
from liveaug.training.package import write_model_folder
from liveaug.training.train import TrainConfig

TEST_TENSOR_SEED = 8999
#: Folder name of the default shipped model (others carry theirs in their name).
DEFAULT_NAME = "liveaug-bf4"


def test_image(size: int = 256) -> np.ndarray:
    """A raw brightfield crop from a held-out session, as the model's test input."""
    sim = SimulatedMicroscope(eval_config(TEST_TENSOR_SEED))
    sim.open()
    img = sim.read().image
    y0, x0 = (img.shape[0] - size) // 2, (img.shape[1] - size) // 2
    return img[y0 : y0 + size, x0 : x0 + size]


CALIB_SEED0 = 300_000


@dataclass(frozen=True)
class Calibration:
    """Logit offsets fitted after training, and the calibration cells' scores before / after."""

    phase_offsets: np.ndarray
    """Added to the phase logits, over :data:`~liveaug.frame.PHASE_CLASSES`."""
    apoptosis_offset: float
    """Added to the apoptosis logit."""
    stats: dict[str, float]


def calibrate(model: UNet, n_sessions: int = 8, n_frames: int = 3, threads: int = 2) -> Calibration:
    """Logit offsets for balanced per-cell phase calls and the best per-cell apoptosis F1.

    Fitted on fresh *training-distribution* sessions (seeds from 300000, never the evaluation
    seeds): the network's probabilities follow the class frequencies it was trained on, and the
    per-cell decisions (argmax over G1/S/G2/M; mean apoptosis probability > 0.5) need them
    re-weighted (logit adjustment). Phase: only S and G2 are shifted, background, G1 and M keep
    0, to maximise balanced accuracy; apoptosis: one offset, to maximise F1.
    """
    import torch

    from liveaug.preprocess import bin_labels

    torch.set_num_threads(threads)
    rng = np.random.default_rng(CALIB_SEED0)
    logp, truth, apo_cells = [], [], []
    for s in range(n_sessions):
        cfg = sample_config(rng, seed=CALIB_SEED0 + s)
        sim = SimulatedMicroscope(cfg)
        sim.open()
        for _ in range(n_frames):
            frame = sim.read()
            sample = prepare(frame, cfg)
            with torch.no_grad():  # raw logits: the offsets being fitted are not applied yet
                out = model.logits(torch.from_numpy(sample.x[None, None]))
            probs = torch.softmax(out["phase"], dim=1)[0].numpy()
            logit = out["apoptosis"][0, 0].numpy().astype(np.float64)
            t = frame.truth
            assert t is not None
            lab = bin_labels(t.cell_labels, BIN).astype(np.int64)
            ids, ok, area = scored_cells(lab, t.cells["cell_id"])
            apoptotic = t.cells["apoptotic"].astype(bool)
            means = np.stack([cell_means(lab, probs[c], area) for c in range(1, 5)])
            logp.append(np.log(means[:, ids[ok & ~apoptotic]] + 1e-6).T)
            truth.append(t.cells["phase"][ok & ~apoptotic].astype(int))
            apo_cells.append((lab, logit, area, ids[ok], apoptotic[ok]))
    lp, yt = np.concatenate(logp), np.concatenate(truth)

    def balanced(b: np.ndarray) -> float:
        yp = (lp + b).argmax(1)
        return float(np.mean([(yp[yt == c] == c).mean() for c in range(4) if (yt == c).any()]))

    def f1(b: float) -> float:
        tp = fp = fn = 0
        for lab, logit, area, cell_ids, is_apo in apo_cells:
            p = 1.0 / (1.0 + np.exp(-(logit + b)))
            called = cell_means(lab, p, area)[cell_ids] > 0.5
            tp += int((called & is_apo).sum())
            fp += int((called & ~is_apo).sum())
            fn += int((~called & is_apo).sum())
        return 2 * tp / max(1, 2 * tp + fp + fn)

    grid = np.round(np.arange(-0.5, 2.01, 0.1), 2)
    best = (balanced(np.zeros(4)), 0.0, 0.0)
    for bs in grid:
        for bg2 in grid:
            score = balanced(np.array([0.0, bs, bg2, 0.0]))
            if score > best[0] + 1e-9:
                best = (score, float(bs), float(bg2))
    apo_best = (f1(0.0), 0.0)
    for b in np.round(np.arange(-2.0, 2.01, 0.1), 2):
        score = f1(float(b))
        if score > apo_best[0] + 1e-9:
            apo_best = (score, float(b))
    return Calibration(
        phase_offsets=np.array([0.0, 0.0, best[1], best[2], 0.0], np.float32),
        apoptosis_offset=apo_best[1],
        stats={
            "before": balanced(np.zeros(4)),
            "after": best[0],
            "cells": int(yt.size),
            "apoptosis_f1_before": f1(0.0),
            "apoptosis_f1_after": apo_best[0],
            "apoptotic_cells": int(sum(int(c[4].sum()) for c in apo_cells)),
        },
    )


def quantize_int8(fp32: Path, out: Path, n_calib: int = 16) -> Path:
    """Static int8 quantisation (QDQ, per-channel weights) calibrated on training-like frames."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    rng = np.random.default_rng(123)
    xs = []
    for i in range(n_calib):
        cfg = sample_config(rng, seed=200_000 + i)
        sim = SimulatedMicroscope(cfg)
        sim.open()
        xs.append(prepare(sim.read(), cfg).x[None, None].astype(np.float32))

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(xs)

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self.it, None)
            return None if x is None else {"brightfield": x}

    pre = out.with_suffix(".pre.onnx")
    quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
    quantize_static(
        str(pre),
        str(out),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    pre.unlink()
    import onnx

    proto = onnx.load(str(out))
    proto.ir_version = min(proto.ir_version, 10)
    onnx.save(proto, str(out))
    return out


def speed(folder: Path, threads: int = 2, repeats: int = 30) -> dict[str, float]:
    """Median ms of all four predictions on a 512² frame, this machine."""
    from liveaug.timing import time_calls

    pred = Predictor([folder], threads=threads)
    sim = SimulatedMicroscope(eval_config(TEST_TENSOR_SEED))
    sim.open()
    frame = sim.read()
    return time_calls(lambda: pred.predict(frame), repeats=repeats, warmup=3)


def finish_model(
    model: UNet,
    cfg: TrainConfig,
    out: Path,
    *,
    work: Path,
    eval_sessions: int,
    eval_frames: int,
    train_minutes: float | None,
    command: str,
    recipe: str = "",
    int8: bool = True,
    domains: bool = True,
) -> dict[str, Any]:
    """Export, check, package, evaluate (fp32 and int8) and write the card; returns figures."""
    import torch

    cal = calibrate(model, threads=cfg.threads)
    offsets = cal.phase_offsets
    model.phase_bias.copy_(torch.from_numpy(offsets))
    model.apoptosis_bias.fill_(cal.apoptosis_offset)
    onnx_path = export_onnx(model, work / "weights.onnx")
    rng = np.random.default_rng(0)
    diffs = check_against_torch(model, onnx_path, rng.standard_normal((2, 1, 96, 160)), atol=1e-4)
    img = test_image()
    desc = (
        "Virtual DAPI and membrane stains, cell-cycle phase (G1/S/G2/M) and apoptosis "
        "probabilities from one brightfield frame; one shared U-Net backbone, four heads. "
        + (
            "Trained on simulated transmitted-light images of many microscopes (brightfield at "
            "either defocus, phase contrast, oblique illumination, quantitative phase; DIC kept "
            "out), never on real cells."
            if domains
            else "Trained on simulated brightfield only."
        )
    )
    extra = {
        "train_steps": cfg.steps,
        "phase_logit_offsets": [round(float(v), 3) for v in offsets],
        "apoptosis_logit_offset": round(cal.apoptosis_offset, 3),
    }
    name = "liveaug brightfield four-head U-Net" + (
        "" if out.name == DEFAULT_NAME else f" ({out.name})"
    )
    attach = _package_with_trust(
        out,
        onnx_path,
        img,
        work / "fp32",
        name=name,
        description=desc,
        extra=extra,
        threads=cfg.threads,
        quick=eval_sessions < 4,
        domains=domains,
    )
    acc = _measure_all(out, eval_sessions, eval_frames, cfg.threads)
    timing = {"fp32": speed(out, cfg.threads)}
    report: dict[str, Any] = {
        "accuracy": {"fp32": acc},
        "onnx_vs_torch_max_abs": diffs,
        "calibration": {
            "offsets": offsets.tolist(),
            "apoptosis_offset": cal.apoptosis_offset,
            **cal.stats,
        },
    }
    if int8:
        q_out = out.parent / f"{out.name}-int8"
        q = quantize_int8(onnx_path, work / "weights_int8.onnx")
        attach_int8 = _package_with_trust(
            q_out,
            q,
            img,
            work / "int8",
            name=name + " (int8)",
            description=desc + f" Static int8 quantisation (QDQ) of {out.name}.",
            extra=extra,
            threads=cfg.threads,
            quick=eval_sessions < 4,
            domains=domains,
        )
        report["accuracy"]["int8"] = _measure_all(q_out, eval_sessions, eval_frames, cfg.threads)
        timing["int8"] = speed(q_out, cfg.threads)
    report["speed_ms_512"] = timing
    meta = {
        "command": command,
        "recipe": recipe,
        "train_minutes": train_minutes,
        "train_config": {k: v for k, v in cfg.__dict__.items()},
        "eval": {"sessions": eval_sessions, "frames": eval_frames},
        "machine": _cpu_name(),
        "domains": domains,
        "date": time.strftime("%Y-%m-%d"),
    }
    report["meta"] = meta
    (out / "training_report.json").write_text(json.dumps(report, indent=1, default=float))
    variants = [("fp32", out, attach)]
    if int8:
        variants.append(("int8", out.parent / f"{out.name}-int8", attach_int8))
    for variant, folder, attachments in variants:
        card = model_card(report, variant)
        write_model_folder(
            folder,
            folder / "weights.onnx",
            img,
            name=name + ("" if variant == "fp32" else " (int8)"),
            description=desc
            + ("" if variant == "fp32" else f" Static int8 quantisation (QDQ) of {out.name}."),
            pixel_size_um=INPUT_PIXEL_UM,
            card=card,
            extra_config={
                **extra,
                "accuracy": card_figures(report["accuracy"][variant]),
                "reliability": trust_figures(
                    report["accuracy"][variant],
                    FAMILIAR_DOMAINS if domains else FAMILIAR_CLEAN,
                ),
            },
            attachments=attachments,
        )
    return report


def _package_with_trust(
    folder: Path,
    onnx_path: Path,
    img: np.ndarray,
    work: Path,
    *,
    name: str,
    description: str,
    extra: dict[str, Any],
    threads: int,
    quick: bool,
    domains: bool,
) -> tuple[Path, ...]:
    """Write the model folder, fit its reliability statistics through it (on frames drawn as its
    training frames were: ``domains`` when it trained on many microscopes), and write it again
    with them attached; returns the attachments."""
    from liveaug.training.trust import fit_reliability

    kw = {"name": name, "description": description, "pixel_size_um": INPUT_PIXEL_UM}
    write_model_folder(folder, onnx_path, img, card="# pending\n", extra_config=extra, **kw)
    sessions = 4 if quick else 200
    rel = fit_reliability(folder, n_sessions=sessions, threads=threads, domains=domains)
    work.mkdir(parents=True, exist_ok=True)
    path = rel.save(work / RELIABILITY_FILE)
    write_model_folder(
        folder,
        folder / "weights.onnx",
        img,
        card="# pending evaluation\n",
        extra_config=extra,
        attachments=(path,),
        **kw,
    )
    return (folder / RELIABILITY_FILE,)


def _measure_all(folder: Path, sessions: int, frames: int, threads: int) -> dict[str, Any]:
    """The card's figures: held-out clean and shifted sessions, then each contrast mode."""
    return {
        **measure([folder], sessions, frames, threads=threads),
        **measure_domains([folder], sessions, frames, threads=threads),
    }


def _cpu_name() -> str:
    """CPU model and core count, for the card's speed figures."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    except OSError:
        pass
    return platform.processor() or platform.machine()
