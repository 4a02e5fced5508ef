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
from liveaug.model_eval import TARGETS, cell_means, measure, scored_cells
from liveaug.sources.simulated import SimulatedMicroscope
from liveaug.training.data import (
    BIN,
    INPUT_PIXEL_UM,
    SHIFTED,
    TRAIN_RANGES,
    eval_config,
    prepare,
    sample_config,
)
from liveaug.training.export import check_against_torch, export_onnx
from liveaug.training.model import STRIDE, UNet
from liveaug.training.package import write_model_folder
from liveaug.training.train import TrainConfig

TEST_TENSOR_SEED = 8999


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
        "Trained on simulated brightfield only."
    )
    extra = {
        "train_steps": cfg.steps,
        "phase_logit_offsets": [round(float(v), 3) for v in offsets],
        "apoptosis_logit_offset": round(cal.apoptosis_offset, 3),
    }
    name = "liveaug brightfield four-head U-Net"
    write_model_folder(
        out,
        onnx_path,
        img,
        name=name,
        description=desc,
        pixel_size_um=INPUT_PIXEL_UM,
        card="# pending evaluation\n",
        extra_config=extra,
    )
    acc = measure([out], eval_sessions, eval_frames, threads=cfg.threads)
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
        write_model_folder(
            q_out,
            q,
            img,
            name=name + " (int8)",
            description=desc + " Static int8 quantisation (QDQ) of liveaug-bf4.",
            pixel_size_um=INPUT_PIXEL_UM,
            card="# pending evaluation\n",
            extra_config=extra,
        )
        report["accuracy"]["int8"] = measure([q_out], eval_sessions, eval_frames, cfg.threads)
        timing["int8"] = speed(q_out, cfg.threads)
    report["speed_ms_512"] = timing
    meta = {
        "command": command,
        "recipe": recipe,
        "train_minutes": train_minutes,
        "train_config": {k: v for k, v in cfg.__dict__.items()},
        "eval": {"sessions": eval_sessions, "frames": eval_frames},
        "machine": _cpu_name(),
        "date": time.strftime("%Y-%m-%d"),
    }
    report["meta"] = meta
    (out / "training_report.json").write_text(json.dumps(report, indent=1, default=float))
    variants = [("fp32", out)] + ([("int8", out.parent / f"{out.name}-int8")] if int8 else [])
    for variant, folder in variants:
        card = model_card(report, variant)
        write_model_folder(
            folder,
            folder / "weights.onnx",
            img,
            name=name + ("" if variant == "fp32" else " (int8)"),
            description=desc
            + ("" if variant == "fp32" else " Static int8 quantisation (QDQ) of liveaug-bf4."),
            pixel_size_um=INPUT_PIXEL_UM,
            card=card,
            extra_config={**extra, "accuracy": _card_figures(report["accuracy"][variant])},
        )
    return report


def _cpu_name() -> str:
    """CPU model and core count, for the card's speed figures."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _card_figures(acc: dict[str, Any]) -> dict[str, dict[str, float]]:
    keys = (*TARGETS, "dapi_r_full", "membrane_r_full")
    return {
        setting: {k: round(float(v[k]), 4) for k in keys if k in v} for setting, v in acc.items()
    }


def _fmt(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def model_card(report: dict[str, Any], variant: str) -> str:
    """The README.md model card: data, accuracy, speed, limits, how to reproduce."""
    acc = report["accuracy"][variant]
    ind, sh = acc["in_distribution"], acc["shifted"]
    meta = report["meta"]
    rows = []
    for key, target in TARGETS.items():
        rows.append(
            f"| {key} | ≥ {target:.2f} | {_fmt(ind.get(key))} "
            f"{'✓' if ind['pass'][key] else '✗'} | {_fmt(sh.get(key))} "
            f"{'✓' if sh['pass'][key] else '✗'} |"
        )
    for key in ("dapi_r_full", "membrane_r_full"):
        rows.append(
            f"| {key} (frame resolution) | – | {_fmt(ind.get(key))} | {_fmt(sh.get(key))} |"
        )
    ranges = "\n".join(f"| {k} | {lo:g} – {hi:g} |" for k, (lo, hi) in TRAIN_RANGES.items())
    sp = report["speed_ms_512"]
    speed_lines = "\n".join(
        f"- {k}: median {v['median_ms']:.1f} ms, p95 {v['p95_ms']:.1f} ms" for k, v in sp.items()
    )
    minutes = meta["train_minutes"]
    rec = ind.get("phase_recall", {})
    rec_s = sh.get("phase_recall", {})
    weights_note = (
        "Weights quantised to int8 (static, QDQ, per-channel) with onnxruntime."
        if variant == "int8"
        else "float32 ONNX, opset 17, IR 10."
    )
    n_eval, f_eval = meta["eval"]["sessions"], meta["eval"]["frames"]
    cal = report.get("calibration", {})
    offs = cal.get("offsets", [0.0] * 5)
    offsets_note = (
        f"S {offs[2] + 0.0:+.1f}, G2 {offs[3] + 0.0:+.1f}; balanced accuracy on the "
        "calibration cells "
        f"{cal.get('before', float('nan')):.3f} → {cal.get('after', float('nan')):.3f}"
    )
    apo_note = (
        f"{cal.get('apoptosis_offset', 0.0) + 0.0:+.1f}; per-cell F1 on the calibration cells "
        f"{cal.get('apoptosis_f1_before', float('nan')):.3f} → "
        f"{cal.get('apoptosis_f1_after', float('nan')):.3f}"
    )
    dz_shift, ph_shift = SHIFTED["optics__defocus_um"], SHIFTED["camera__photons"]
    return f"""# liveaug brightfield four-head U-Net{" (int8)" if variant == "int8" else ""}

From one brightfield frame this model predicts what would otherwise need dyes and reporters:

| output (role) | shape | meaning |
| --- | --- | --- |
| `dapi` | (N, 1, H/2, W/2) | virtual DAPI: background-subtracted photons / G1 nucleus peak |
| `membrane` | (N, 1, H/2, W/2) | virtual membrane stain |
| `phase` | (N, 5, H/2, W/2) | per-pixel probabilities of background, G1, S, G2, M (softmax) |
| `apoptosis` | (N, 1, H/2, W/2) | per-pixel probability of belonging to an apoptotic cell |

Input: one brightfield channel (camera counts as float32) at **0.65 µm/px**, the simulator's
sampling, unbinned (liveaug bins finer frames towards it from the frame's pixel size); height
and width multiples of {STRIDE} (≥ 64). Outputs come at half the input's sampling (1.3 µm/px),
as the rdf's axis scales declare. Preprocessing: zero-mean, unit-variance over the whole image.
Architecture: a stride-2 stem (4 × 4 convolution) that keeps the fine brightfield detail 2 × 2
binning would average away, then a U-Net, five levels (16× downsampling), widths
{tuple(meta["train_config"]["widths"])}, one shared backbone; stains from the finest decoder
level (1.3 µm/px), phase and apoptosis from the next one (2.6 µm/px, upsampled). {weights_note}
Phase logits carry fixed per-class offsets ({offsets_note}) and the apoptosis logit one offset
({apo_note}), fitted after training on fresh training-distribution sessions (seeds 300000+,
never the evaluation seeds) so that per-cell calls are balanced across G1/S/G2/M instead of
following the training class frequencies, and apoptosis calls (mean probability inside the
cell > 0.5) balance precision and recall for the best F1.

## Training data

**Simulated brightfield only** (liveaug's physics-based simulated microscope): 500 sessions × 6
frames, 512 × 512 px, each session with its own settings drawn from:

| setting | range |
| --- | --- |
{ranges}
| bit depth | 8, 12, 16 |

Seeds ≥ 100000 are training sessions; every figure below is measured on held-out seeds
(9000+ in distribution, 9500+ shifted) that training never saw.

## Validation

{n_eval} held-out sessions × {f_eval} frames per setting, 512 × 512 px.
*In distribution*: simulator defaults (defocus 3 µm, 3000 photons, 12 bit). *Shifted*: defocus
{dz_shift:g} µm (twice the trained maximum), {ph_shift:g} photons
(a quarter of the least light trained on). Pearson r per image at model resolution (truth
binned to the outputs' 1.3 µm/px), and at frame resolution (prediction upsampled). Per-cell
figures use the mean probability inside the true cell mask; cells touching the border are left
out, apoptotic cells are left out of phase.

| figure | target | in distribution | shifted |
| --- | --- | --- | --- |
{chr(10).join(rows)}

Phase recall per class, in distribution: {", ".join(f"{k} {v:.2f}" for k, v in rec.items())};
shifted: {", ".join(f"{k} {v:.2f}" for k, v in rec_s.items())}.
Cells scored (in distribution): {ind.get("phase_cells")}, apoptotic
{ind.get("apoptotic_cells")} of {ind.get("cells")}.

## Speed

All four outputs for one 512 × 512 frame (outputs 256²), onnxruntime CPU provider, 2 threads,
on the training machine ({meta["machine"]}), preprocessing included:

{speed_lines}

One backbone serves all four outputs: onnxruntime runs the whole graph whichever outputs are
fetched, so switching overlays off saves nothing measurable (`liveaug bench` lists the cost per
output). Four separate networks of this size, one per role, measured 44 ms for all four on the
same machine (shared: 17 ms; both measured with the earlier binned-input version of this
backbone), which is why the backbone is shared.

## Limits

- **Not validated on real cells.** Trained and tested on simulated brightfield only; real optics,
  cell lines and culture conditions will differ. Fine-tune on your own paired brightfield /
  fluorescence data before trusting the outputs (`liveaug.training` is the recipe).
- Outside the trained settings (see the shifted column) accuracy drops.
- Run it at its sampling (0.65 µm/px in; liveaug bins finer frames towards it). Frames much
  coarser than that are outside its training.
- Virtual stains are blurrier than the true stains (the outputs are at 1.3 µm/px) and
  under-shoot the brightest nuclei (condensed mitotic and apoptotic chromatin).
- Phase is inferred from nuclear dry mass and cell size; cells at the G1/S and S/G2 boundaries
  are inherently ambiguous.

## Reproduce

```bash
pip install 'liveaug[train]'
{meta["command"]}
```

{meta.get("recipe") or ""}
Training took {f"{minutes:.0f} min" if minutes else "(not recorded)"} on 2 threads of the shared
2-core CPU (batch {meta["train_config"]["batch"]}, {meta["train_config"]["crop"]}² crops), plus
about 5 min to simulate the cache and under a minute to export, calibrate, quantise and evaluate.
ONNX vs PyTorch max abs difference:
{", ".join(f"{k} {v:.1e}" for k, v in report["onnx_vs_torch_max_abs"].items())}.
"""
