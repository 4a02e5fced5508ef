"""Train the four-headed U-Net on cached simulated frames (CPU, a fixed number of steps).

Losses: mean squared error for the two virtual stains (optionally also for the DAPI maps averaged
over nucleus-sized squares, ``dapi_pool``), class-weighted cross-entropy for phase
(apoptotic cells ignored: their phase is frozen and invisible), weighted binary cross-entropy for
apoptosis. Crops are flipped and rotated by multiples of 90° (the optics are isotropic).
Same cache, same seed, same thread count → same weights.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from liveaug.training.data import IGNORE
from liveaug.training.model import UNet, widen
from liveaug.views import turn


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines the weights (stored next to them)."""

    steps: int = 3000
    batch: int = 12
    crop: int = 128
    lr: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0
    threads: int = 2
    widths: tuple[int, ...] = (16, 32, 48, 64, 96)
    phase_weights: tuple[float, ...] = (0.5, 1.0, 1.2, 2.0, 4.0)
    apoptosis_pos_weight: float = 4.0
    loss_weights: dict[str, float] = field(
        default_factory=lambda: {"dapi": 10.0, "membrane": 3.0, "phase": 1.0, "apoptosis": 1.0}
    )
    init: str = ""
    """Checkpoint to start from (a second, fine-tuning stage); empty = from scratch."""
    schedule_steps: int = 0
    """Length of the warm-up + cosine schedule when it differs from ``steps`` (a stage cut short
    at ``steps`` of a longer schedule); 0 = ``steps``."""
    dapi_pool_px: int = 8
    """Side of the squares (output pixels, ≈ 10 µm: a nucleus) the ``dapi_pool`` loss compares
    the DAPI maps averaged over; it only counts when ``loss_weights`` gives it a weight."""


class Batches:
    """Random crops with flips and 90° rotations from the cached arrays.

    ``crop`` is in target (output) pixels; the input crop covers the same field at the input's
    finer sampling (``x`` is ``f`` times the targets' size, f = 2 for the shipped models).
    """

    def __init__(self, data: dict[str, np.ndarray], crop: int, batch: int, seed: int) -> None:
        self.data = data
        self.crop, self.batch = crop, batch
        self.rng = np.random.default_rng(seed)
        self.n, self.h, self.w = data["dapi"].shape
        self.f = data["x"].shape[-1] // self.w

    def __call__(self) -> dict[str, torch.Tensor]:
        """One batch as float32 / int64 tensors."""
        c, f, rng = self.crop, self.f, self.rng
        out: dict[str, list[np.ndarray]] = {
            k: [] for k in ("x", "dapi", "membrane", "phase", "apo")
        }
        for i in rng.integers(0, self.n, self.batch):
            y0 = int(rng.integers(0, self.h - c + 1))
            x0 = int(rng.integers(0, self.w - c + 1))
            k, flip = int(rng.integers(0, 4)), bool(rng.integers(0, 2))
            x = self.data["x"][i, f * y0 : f * (y0 + c), f * x0 : f * (x0 + c)]
            out["x"].append(turn(x, k, flip))
            for key, src in (
                ("dapi", "dapi"),
                ("membrane", "membrane"),
                ("phase", "phase"),
                ("apo", "apoptosis"),
            ):
                out[key].append(turn(self.data[src][i, y0 : y0 + c, x0 : x0 + c], k, flip))
        f32 = {k: torch.from_numpy(np.stack(out[k]).astype(np.float32)[:, None]) for k in out}
        f32["phase"] = torch.from_numpy(np.stack(out["phase"]).astype(np.int64))
        return f32


def losses(
    model: UNet, batch: dict[str, torch.Tensor], cfg: TrainConfig, phase_w: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Per-task losses for one batch."""
    out = model.logits(batch["x"])
    parts = {
        "dapi": F.mse_loss(out["dapi"], batch["dapi"]),
        "membrane": F.mse_loss(out["membrane"], batch["membrane"]),
        "phase": F.cross_entropy(out["phase"], batch["phase"], weight=phase_w, ignore_index=IGNORE),
        "apoptosis": F.binary_cross_entropy_with_logits(
            out["apoptosis"],
            batch["apo"],
            pos_weight=torch.tensor(cfg.apoptosis_pos_weight),
        ),
    }
    if "dapi_pool" in cfg.loss_weights:
        # Most of the per-pixel DAPI error is fine detail (chromatin texture, nuclear edges) that
        # averages out within a nucleus; what is left is the DNA content a cell's integrated
        # DAPI is read from, and weighting it on its own makes it count for more.
        k = cfg.dapi_pool_px
        pooled = F.avg_pool2d(out["dapi"], k), F.avg_pool2d(batch["dapi"], k)
        parts["dapi_pool"] = F.mse_loss(*pooled)
    return parts


def train(
    data: dict[str, np.ndarray],
    cfg: TrainConfig,
    *,
    log: Callable[[str], None] = print,
    on_step: Callable[[], None] | None = None,
    resume: Path | None = None,
    every_s: float = 300.0,
) -> UNet:
    """Train for ``cfg.steps`` steps, from scratch or from ``cfg.init`` (widened to
    ``cfg.widths`` when those are larger); returns the model in eval mode.

    With ``resume``, the whole training state (weights, optimiser, schedule, batch generator)
    is saved there every ``every_s`` seconds, and a run that finds it goes on from it: a long
    training killed or interrupted loses at most those seconds.
    """
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    if cfg.init:  # go on from a checkpoint, widened when this stage's widths are larger
        start, _ = load_checkpoint(Path(cfg.init))
        model = widen(start, cfg.widths)
    else:
        model = UNet(cfg.widths)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    length = cfg.schedule_steps or cfg.steps
    warm = max(1, length // 20)

    def lr_at(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, length - warm)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    batches = Batches(data, cfg.crop, cfg.batch, cfg.seed)
    phase_w = torch.tensor(cfg.phase_weights, dtype=torch.float32)
    running: dict[str, float] = {}
    first = 0
    if resume is not None and resume.exists():
        state = torch.load(resume, map_location="cpu", weights_only=False)
        if state["config"] != asdict(cfg):
            raise ValueError(f"{resume} was saved by another training configuration")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        batches.rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        first, running = int(state["step"]), dict(state["running"])
        log(f"resumed at step {first} from {resume}")
    t0 = last_save = time.monotonic()
    model.train()
    for step in range(first, cfg.steps):
        parts = losses(model, batches(), cfg, phase_w)
        total = sum(cfg.loss_weights[k] * v for k, v in parts.items())
        opt.zero_grad(set_to_none=True)
        total.backward()  # type: ignore[union-attr]
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        sched.step()
        for k, v in parts.items():
            lv = float(v.detach())
            running[k] = 0.98 * running.get(k, lv) + 0.02 * lv
        if on_step is not None:
            on_step()
        if (step + 1) % 100 == 0 or step + 1 == cfg.steps:
            parts_s = " ".join(f"{k}={v:.4f}" for k, v in running.items())
            log(f"step {step + 1}/{cfg.steps} {parts_s} ({time.monotonic() - t0:.0f} s)")
        if resume is not None and time.monotonic() - last_save >= every_s:
            last_save = time.monotonic()
            tmp = resume.with_suffix(".tmp")
            torch.save(
                {
                    "config": asdict(cfg),
                    "model": model.state_dict(),
                    "opt": opt.state_dict(),
                    "sched": sched.state_dict(),
                    "rng": batches.rng.bit_generator.state,
                    "torch_rng": torch.get_rng_state(),
                    "step": step + 1,
                    "running": running,
                },
                tmp,
            )
            tmp.replace(resume)  # a kill while writing leaves the previous state whole
    return model.eval()


def save_checkpoint(model: UNet, cfg: TrainConfig, path: Path) -> Path:
    """State dict plus the config that made it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": model.state_dict(), "config": asdict(cfg)}, path)
    return path


def load_checkpoint(path: Path) -> tuple[UNet, TrainConfig]:
    """Inverse of :func:`save_checkpoint`."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    raw = dict(ckpt["config"])
    raw["widths"] = tuple(raw["widths"])
    raw["phase_weights"] = tuple(raw["phase_weights"])
    raw = {k: v for k, v in raw.items() if k in TrainConfig.__dataclass_fields__}
    cfg = TrainConfig(**raw)
    model = UNet(cfg.widths)
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), cfg
