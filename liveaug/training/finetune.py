"""Fine-tune a liveaug model on a user's paired brightfield + fluorescence sessions.

Steps (``liveaug finetune``): read and register the pairs (:mod:`liveaug.training.paired`),
read the parent model's ONNX back into its U-Net, put the user's stains into the parent's
units, fit the named heads with the backbone frozen, train the whole network at a low rate with
early stopping on held-out frames, and write a bioimage.io model folder whose rdf records its
lineage (parent, data, figures) and whose reliability statistics are fitted on the user's frames.

The heads are 1 × 1 convolutions on the last decoder level, so with the backbone frozen their
best weights under the squared error are a linear least-squares fit on that level's features:
solved exactly in one pass instead of by hundreds of gradient steps. BatchNorm keeps the
statistics it was given (the user's frames, :func:`unet_from_onnx`) throughout: a batch of a
few crops is too small to estimate them.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from liveaug.errors import LiveaugError
from liveaug.model_eval import pearson
from liveaug.model_zoo import ModelSpec, load_model
from liveaug.training.finetune_card import WEIGHTS
from liveaug.training.model import UNet
from liveaug.training.paired import (
    BIN,
    common_inputs,
    load_session,
    normalise,
    normalised_inputs,
    split_holdout,
    stacked_raw,
)

#: Fewer paired frames than this give reliability statistics that flag even new frames of the
#: same microscope (measured: 5 frames → another culture scored 0.0; 10 → 0.60; 20 → 0.56–0.86).
FEW_FRAMES = 10
#: Loss weight per stain (as in training: DAPI counts most); the card reads the same.
LOSS_WEIGHTS = WEIGHTS


@dataclass(frozen=True)
class FinetuneConfig:
    """What determines the fine-tuned weights (stored in the lineage)."""

    minutes: float = 10.0
    """Wall-clock budget of the whole command; training stops early to leave room to write."""
    holdout: float = 0.2
    steps: int | None = None
    """A fixed number of whole-network steps instead of the time budget (tests)."""
    batch: int = 6
    crop: int = 96
    """Training crop, model output pixels (the input crop is twice as large)."""
    lr: float = 5e-4
    """Peak learning rate of the whole-network stage (the parent trained at 3e-3)."""
    eval_every: int = 50
    patience: int = 8
    """Held-out checks without improvement before stopping (counted in the second half of the
    schedule, once the rate has come down)."""
    threads: int = 2
    seed: int = 0
    turns: bool = False
    """Train on turned and mirrored crops too (:class:`Crops`)."""


@dataclass
class Result:
    """What a fine-tuning run made and measured."""

    folder: Path
    figures: dict[str, dict[str, float]]
    lineage: dict[str, Any]
    minutes: float


def device() -> torch.device:
    """CUDA when present, the CPU otherwise."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def hardware(dev: torch.device) -> str:
    """The machine in words, for the model card."""
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {torch.get_num_threads()} threads"


def load_parent(path: Path | None, frames: np.ndarray) -> tuple[ModelSpec, UNet]:
    """The parent model folder and its U-Net (BatchNorm statistics from ``frames``);
    a folder that is not a liveaug U-Net is one :class:`LiveaugError`."""
    from liveaug.model_zoo import default_model, resolve
    from liveaug.training.onnx_import import unet_from_onnx

    spec = load_model(resolve(path) if path is not None else default_model())
    missing = [r for r in ("dapi", "membrane") if r not in spec.roles]
    if missing:
        raise LiveaugError(
            f"{spec.folder} is not a liveaug model (no {' or '.join(missing)} output)",
            "pass a liveaug model folder to --init (see `liveaug models list`)",
        )
    conf = (spec.rdf.get("config") or {}).get("liveaug") or {}
    try:
        net = unet_from_onnx(
            spec.weights,
            phase_offsets=conf.get("phase_logit_offsets"),
            apoptosis_offset=float(conf.get("apoptosis_logit_offset", 0.0)),
            frames=frames,
        )
    except ValueError as exc:
        raise LiveaugError(
            f"{spec.folder} is not a liveaug U-Net: {exc}", "pass a liveaug model folder"
        ) from None
    return spec, net


@torch.no_grad()
def predict(net: UNet, x: np.ndarray, dev: torch.device, roles: Sequence[str]) -> dict[str, Any]:
    """The stains ``net`` predicts for inputs ``x`` ``(N, H, W)``, frame by frame."""
    net.eval()
    out: dict[str, list[np.ndarray]] = {r: [] for r in roles}
    for xi in x:
        res = net.logits(torch.from_numpy(xi[None, None]).to(dev))
        for r in roles:
            out[r].append(res[r][0, 0].float().cpu().numpy())
    return {r: np.stack(v) for r, v in out.items()}


def scores(pred: dict[str, np.ndarray], target: dict[str, np.ndarray]) -> dict[str, float]:
    """Mean per-frame Pearson r and mean squared error per stain."""
    out = {}
    for r, t in target.items():
        out[f"{r}_r"] = round(
            float(np.mean([pearson(p, q) for p, q in zip(pred[r], t, strict=True)])), 4
        )
        out[f"{r}_mse"] = round(float(np.mean((pred[r] - t) ** 2)), 5)
    return out


def loss_of(s: dict[str, float], roles: Sequence[str]) -> float:
    """The held-out criterion early stopping watches: the weighted squared errors."""
    return sum(LOSS_WEIGHTS[r] * s[f"{r}_mse"] for r in roles)


@torch.no_grad()
def fit_heads(net: UNet, x: np.ndarray, target: dict[str, np.ndarray], dev: torch.device) -> None:
    """Least-squares weights of the named 1 × 1 heads on the frozen last decoder level."""
    net.eval()
    heads = {"dapi": net.head_dapi, "membrane": net.head_membrane}
    gram, rhs = None, {r: 0.0 for r in target}
    for i, xi in enumerate(x):
        f = net._decoded(torch.from_numpy(xi[None, None]).to(dev))[-1][0]
        c = f.shape[0]
        a = torch.cat([f.reshape(c, -1), torch.ones(1, f[0].numel(), device=dev)]).double()
        gram = a @ a.T if gram is None else gram + a @ a.T
        for r, t in target.items():
            rhs[r] = rhs[r] + a @ torch.from_numpy(t[i]).to(dev).double().reshape(-1)
    assert gram is not None
    ridge = 1e-6 * torch.trace(gram) / gram.shape[0]
    eye = torch.eye(gram.shape[0], device=dev, dtype=gram.dtype)
    for r in target:
        w = torch.linalg.solve(gram + ridge * eye, rhs[r])
        heads[r].weight.copy_(w[:-1].view_as(heads[r].weight).float())
        heads[r].bias.copy_(w[-1:].float())


class Crops:
    """Random crops of the training frames (input ``f`` = 2 × the targets' size), as tensors.

    By default the crops keep the microscope's orientation: DIC shear, oblique light and a
    camera's mounting make a user's images anisotropic, and a turned crop would show a
    microscope the user does not have. ``turns`` adds the 90° turns and flips of training
    (for isotropic optics, brightfield or phase contrast).
    """

    def __init__(self, x: np.ndarray, target: dict[str, np.ndarray], cfg: FinetuneConfig) -> None:
        self.x, self.target = x, target
        self.n, self.h, self.w = next(iter(target.values())).shape
        self.crop = min(cfg.crop, self.h, self.w)
        self.batch, self.turns = cfg.batch, cfg.turns
        self.rng = np.random.default_rng(cfg.seed)

    def __call__(self) -> dict[str, torch.Tensor]:
        """One batch: ``x`` ``(B, 1, 2c, 2c)`` and each target ``(B, 1, c, c)``."""
        from liveaug.views import turn

        c, rng = self.crop, self.rng
        xs: list[np.ndarray] = []
        ts: dict[str, list[np.ndarray]] = {r: [] for r in self.target}
        for i in rng.integers(0, self.n, self.batch):
            y0, x0 = int(rng.integers(0, self.h - c + 1)), int(rng.integers(0, self.w - c + 1))
            k, flip = (
                (int(rng.integers(0, 4)), bool(rng.integers(0, 2))) if self.turns else (0, False)
            )
            xs.append(
                turn(self.x[i, BIN * y0 : BIN * (y0 + c), BIN * x0 : BIN * (x0 + c)], k, flip)
            )
            for r, t in self.target.items():
                ts[r].append(turn(t[i, y0 : y0 + c, x0 : x0 + c], k, flip))
        out = {"x": torch.from_numpy(np.stack(xs).astype(np.float32)[:, None])}
        for r, v in ts.items():
            out[r] = torch.from_numpy(np.stack(v).astype(np.float32)[:, None])
        return out


def rate(progress: float) -> float:
    """Fraction of the peak learning rate at ``progress`` (0 → 1 through the steps or the time
    budget): a linear warm-up over the first 5 % (the refitted heads are not thrown about),
    then a cosine to zero."""
    warm = 0.05
    if progress < warm:
        return max(progress, 0.002) / warm
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (progress - warm) / (1 - warm))))


def train_network(
    net: UNet,
    train: tuple[np.ndarray, dict[str, np.ndarray]],
    held: tuple[np.ndarray, dict[str, np.ndarray]],
    cfg: FinetuneConfig,
    dev: torch.device,
    *,
    until: float,
    log: Callable[[str], None],
    bar: Any = None,
) -> tuple[UNet, list[dict[str, float]]]:
    """Whole-network fine-tuning at a low rate; returns the best network on the held-out
    frames and the held-out history. Stops at ``cfg.steps``, at time ``until`` (monotonic),
    or after ``cfg.patience`` checks without improvement."""
    roles = list(train[1])
    batches = Crops(train[0], train[1], cfg)
    net.train()
    for m in net.modules():  # BatchNorm keeps its statistics (see the module docstring)
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eval()
    params = [p for n, p in net.named_parameters() if "phase" not in n and "apoptosis" not in n]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=1e-4)
    best = scores(predict(net, held[0], dev, roles), held[1])
    best_loss, best_state = loss_of(best, roles), copy.deepcopy(net.state_dict())
    history = [{"step": 0, **best}]
    t0, step, stale = time.monotonic(), 0, 0
    planned = cfg.steps
    while True:
        now = time.monotonic()
        if (planned is not None and step >= planned) or now >= until:
            break
        # the schedule follows the steps when they are fixed, the clock otherwise (a machine
        # whose speed changes under other work still ends the cosine at the budget)
        progress = step / planned if planned else (now - t0) / max(until - t0, 1e-9)
        if planned is None and bar is not None and step and step % 10 == 0:
            bar.total = int(step / max(progress, 1e-9))  # the ETA: steps at this pace
            bar.refresh()
        for g in opt.param_groups:
            g["lr"] = cfg.lr * rate(progress)
        net.train()
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.eval()
        b = batches()
        out = net.logits(b["x"].to(dev))
        loss = sum(LOSS_WEIGHTS[r] * F.mse_loss(out[r], b[r].to(dev)) for r in roles)
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[union-attr]
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        step += 1
        if bar is not None:
            bar.update()
        if step % cfg.eval_every == 0 or step == planned:
            s = scores(predict(net, held[0], dev, roles), held[1])
            history.append({"step": step, **s})
            if loss_of(s, roles) < best_loss:
                best_loss, best_state, stale = loss_of(s, roles), copy.deepcopy(net.state_dict()), 0
            elif progress >= 0.5:  # at a high rate the held-out loss wanders; it counts later
                stale += 1
            log(f"step {step}: held-out " + " ".join(f"{k} {v:g}" for k, v in s.items()))
            if stale >= cfg.patience:
                log(f"stopped early at step {step}: no better on the held-out frames")
                break
    net.load_state_dict(best_state)
    return net.eval(), history


def finetune(
    sessions: Sequence[Path],
    targets: dict[str, str],
    out: Path,
    *,
    init: Path | None = None,
    cfg: FinetuneConfig | None = None,
    command: str = "",
    log: Callable[[str], None] = print,
    progress_bar: Callable[[int | None], Any] | None = None,
) -> Result:
    """Fine-tune the parent model (``init``, default the shipped one) on the ``targets`` (role →
    channel) of ``sessions`` and write the model folder ``out`` (complete, or not at all).
    ``progress_bar(total_steps)`` makes the training's progress bar (a context manager)."""
    cfg = cfg or FinetuneConfig()
    t_start = time.monotonic()
    until = t_start + 60.0 * cfg.minutes
    if out.exists():
        raise LiveaugError(f"{out} exists", "pass a new --out folder (or remove that one)")
    if not out.parent.is_dir():
        raise LiveaugError(f"{out.parent} is not a folder", "create it first")
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    dev = device()
    from liveaug.model_zoo import default_model, resolve

    spec = load_model(resolve(init) if init is not None else default_model())
    pairs = [load_session(Path(p), targets, spec.pixel_size_um) for p in sessions]
    for p in pairs:
        log(
            f"{p.path}: {len(p.x)} frames; "
            + ", ".join(
                f"{targets[r]} offset (dy, dx) = {o[0]:+.1f}, {o[1]:+.1f} px"
                for r, o in p.offsets.items()
            )
        )
    held = np.concatenate(split_holdout([len(p.x) for p in pairs], cfg.holdout))
    if held.size < FEW_FRAMES:
        log(
            f"note: {held.size} paired frames; reliability statistics from fewer than "
            f"{FEW_FRAMES} are tight, so new frames of this microscope may be flagged too"
        )
    raw_x, where = common_inputs(pairs)
    x = normalised_inputs(raw_x)
    shape = (x.shape[1] // BIN, x.shape[2] // BIN)
    raw = {r: stacked_raw(pairs, r, shape) for r in targets}
    spec, net = load_parent(init, x[~held][:4, None])
    net.to(dev)
    roles = list(targets)
    parent_pred = predict(net, x, dev, roles)
    target = normalise(pairs, raw, where, ~held, lambda r: parent_pred[r])
    held_t = {r: target[r][held] for r in roles}
    figures = {"parent": scores({r: parent_pred[r][held] for r in roles}, held_t)}
    log("parent on the held-out frames: " + json.dumps(figures["parent"]))
    parent_state = copy.deepcopy(net.state_dict())
    fit_heads(net, x[~held], {r: target[r][~held] for r in roles}, dev)
    figures["heads"] = scores(predict(net, x[held], dev, roles), held_t)
    log("heads fitted (backbone frozen): " + json.dumps(figures["heads"]))
    if loss_of(figures["heads"], roles) > loss_of(figures["parent"], roles):
        net.load_state_dict(parent_state)  # the parent's heads were better: start from them
    reserve = min(max(30.0, 0.1 * 60.0 * cfg.minutes), 0.5 * 60.0 * cfg.minutes)
    with progress_bar(cfg.steps) if progress_bar else contextlib.nullcontext() as bar:
        net, history = train_network(
            net,
            (x[~held], {r: target[r][~held] for r in roles}),
            (x[held], held_t),
            cfg,
            dev,
            until=until - reserve,
            log=bar.write if bar is not None else log,
            bar=bar,
        )
    figures["fine_tuned"] = scores(predict(net, x[held], dev, roles), held_t)
    log("fine-tuned on the held-out frames: " + json.dumps(figures["fine_tuned"]))
    data = [
        {
            "path": p.path,
            "session_id": p.session_id,
            "frames": p.frames,
            "held_out": [i for (s, i), h in zip(where, held, strict=True) if s == k and h],
            "pixel_size_um": p.pixel_size_um,
            "offsets_px": {targets[r]: list(o) for r, o in p.offsets.items()},
            "offsets_measured_px": {targets[r]: list(o) for r, o in p.measured.items()},
            "units": {targets[r]: [float(f"{v:.6g}") for v in u] for r, u in p.units.items()},
        }
        for k, p in enumerate(pairs)
    ]
    lineage: dict[str, Any] = {
        "parent": {"name": spec.name, "sha256": spec.sha256, "folder": str(spec.folder)},
        "targets": {r: targets[r] for r in roles},
        "data": data,
        "figures": {"held_out_frames": int(held.sum()), **figures},
        "history": history,
        "config": asdict(cfg),
        "hardware": hardware(dev),
        "device": dev.type,
        "date": time.strftime("%Y-%m-%d"),
        "command": command,
    }
    folder = _package(net.cpu(), spec, raw_x, target, held, lineage, out, t_start, cfg, log)
    minutes = (time.monotonic() - t_start) / 60.0
    return Result(folder, figures, lineage, minutes)


def _package(
    net: UNet,
    parent: ModelSpec,
    raw_x: np.ndarray,
    target: dict[str, np.ndarray],
    held: np.ndarray,
    lineage: dict[str, Any],
    out: Path,
    t_start: float,
    cfg: FinetuneConfig,
    log: Callable[[str], None],
) -> Path:
    """Export, write the folder in a temporary place beside ``out``, fit its reliability
    statistics on the user's frames, write it again with them and the card, rename to ``out``."""
    from liveaug.reliability import RELIABILITY_FILE
    from liveaug.training.export import check_against_torch, export_onnx
    from liveaug.training.finetune_card import card, cells_of
    from liveaug.training.package import write_model_folder
    from liveaug.training.trust import fit_reliability

    conf = (parent.rdf.get("config") or {}).get("liveaug") or {}
    extra = {k: conf[k] for k in ("phase_logit_offsets", "apoptosis_logit_offset") if k in conf}
    px = float(parent.pixel_size_um or 0.65)
    first = int(np.flatnonzero(held)[0])
    side = min(256, raw_x.shape[1] // 32 * 32, raw_x.shape[2] // 32 * 32)
    test = raw_x[first, :side, :side]
    name = out.name  # a fine-tuned model is named after its folder; the rdf names its parent
    desc = (
        f"{parent.name} fine-tuned on the user's paired brightfield and fluorescence frames "
        f"({', '.join(d['path'] for d in lineage['data'])}); see the lineage in the rdf."
    )
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        onnx_path = export_onnx(net, tmp / "work" / "weights.onnx")
        rng = np.random.default_rng(0)
        check_against_torch(net, onnx_path, rng.standard_normal((1, 1, 96, 128)), atol=1e-3)
        model = tmp / "model"
        kw = {"name": name, "description": desc, "pixel_size_um": px}
        write_model_folder(model, onnx_path, test, card="# pending\n", extra_config=extra, **kw)
        log("fitting the reliability statistics on the sessions' own frames")
        maps = dict(target)
        if "membrane" not in maps:  # cells need a membrane map: the new model's own
            x = normalised_inputs(raw_x)
            maps["membrane"] = predict(net, x, torch.device("cpu"), ["membrane"])["membrane"]
        frames = cells_of(raw_x, maps, px)
        rel = fit_reliability(
            model, frames=frames, n_frames=1, pixels_per_frame=2000, threads=cfg.threads
        )
        rel_path = rel.save(tmp / "work" / RELIABILITY_FILE)
        lineage["minutes"] = round((time.monotonic() - t_start) / 60.0, 2)
        write_model_folder(
            model,
            model / "weights.onnx",
            test,
            card=card(parent, lineage),
            extra_config={**extra, "lineage": lineage},
            attachments=(rel_path,),
            **kw,
        )
        os.replace(model, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
