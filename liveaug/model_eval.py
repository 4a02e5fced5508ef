"""Accuracy of the predictors against simulator truth: the figures in the model card.

Per image: Pearson r of the virtual DAPI and membrane against the true (noisy, digitised)
stains, at model resolution (truth binned like the input) and at frame resolution (prediction
upsampled bilinearly, as the viewer shows it). Per cell (cells touching the frame border are
left out; apoptotic cells are left out of the phase figures, their phase being frozen): the
mean probability inside the true cell mask, argmax over G1/S/G2/M for phase, > 0.5 for
apoptosis. No torch: ``liveaug models eval`` runs wherever onnxruntime does.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from liveaug.frame import Frame, Prediction
from liveaug.preprocess import bin_image

#: Acceptance figures from the issue (higher is better for all).
TARGETS: dict[str, float] = {
    "dapi_r": 0.90,
    "membrane_r": 0.85,
    "phase_balanced_accuracy": 0.80,
    "mitosis_recall": 0.90,
    "apoptosis_f1": 0.90,
}
PHASE_NAMES = ("G1", "S", "G2", "M")
#: Held-out seeds (training uses ≥ 100000): in-distribution and shifted evaluation sessions.
EVAL_SEED0 = 9000
SHIFTED_SEED0 = 9500
#: Held-out seeds of the per-contrast-mode sessions (20 per mode).
DOMAIN_SEED0 = 9600


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two images (NaN when either is constant)."""
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    a = a - a.mean()
    b = b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else float("nan")


def upsample(m: np.ndarray, shape: tuple[int, int], scale: float) -> np.ndarray:
    """A model-resolution map (h, w) or (C, h, w) back onto the frame grid (bilinear)."""
    if scale == 1.0 and m.shape[-2:] == shape:
        return m
    k = round(1.0 / scale)
    h, w = m.shape[-2] * k, m.shape[-1] * k

    def one(p: np.ndarray) -> np.ndarray:
        big = cv2.resize(p, (w, h), interpolation=cv2.INTER_LINEAR)
        out = np.empty(shape, np.float32)
        hh, ww = min(h, shape[0]), min(w, shape[1])
        out[:hh, :ww] = big[:hh, :ww]
        if hh < shape[0]:
            out[hh:, :] = out[hh - 1 : hh, :]
        if ww < shape[1]:
            out[:, ww:] = out[:, ww - 1 : ww]
        return out

    if m.ndim == 3:
        return np.stack([one(c) for c in m])
    return one(m)


def scored_cells(
    labels: np.ndarray, cell_ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The truth cells per-cell figures score: ``(ids, ok, area)`` with ``ok`` false for cells
    touching the image border or absent from ``labels``; ``area`` is pixels per label id."""
    n = int(labels.max()) + 1
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    ids = np.asarray(cell_ids).astype(np.int64)
    area = np.bincount(labels.ravel(), minlength=n)
    ok = (ids < n) & ~np.isin(ids, border) & (area[np.minimum(ids, n - 1)] > 0)
    return ids, ok, area


def cell_means(labels: np.ndarray, values: np.ndarray, area: np.ndarray) -> np.ndarray:
    """Mean of ``values`` inside each label (index = label id; ``area`` = pixels per label)."""
    w = np.asarray(values, np.float64).ravel()
    return np.bincount(labels.ravel(), weights=w, minlength=area.size) / np.maximum(area, 1)


@dataclass
class Accumulator:
    """Per-image correlations and per-cell calls gathered over frames."""

    dapi_r: list[float] = field(default_factory=list)
    membrane_r: list[float] = field(default_factory=list)
    dapi_r_full: list[float] = field(default_factory=list)
    membrane_r_full: list[float] = field(default_factory=list)
    phase_true: list[int] = field(default_factory=list)
    phase_pred: list[int] = field(default_factory=list)
    apo_true: list[bool] = field(default_factory=list)
    apo_pred: list[bool] = field(default_factory=list)
    frame_reliability: list[float] = field(default_factory=list)
    flagged: list[bool] = field(default_factory=list)
    cell_reliability: list[float] = field(default_factory=list)
    cell_dapi_error: list[float] = field(default_factory=list)

    def add(self, frame: Frame, pred: Prediction) -> None:
        """Score one frame (needs ``frame.truth``)."""
        t = frame.truth
        if t is None:
            raise ValueError(f"frame {frame.index} has no truth to compare against")
        k = round(1.0 / pred.scale)
        if pred.trust is not None:
            self._add_trust(frame, pred, k)
        shape = frame.shape
        for role, acc, acc_full, truth in (
            ("dapi", self.dapi_r, self.dapi_r_full, t.dapi),
            ("membrane", self.membrane_r, self.membrane_r_full, t.membrane),
        ):
            if role in pred.maps:
                m = pred.maps[role]
                tb = bin_image(truth, k)
                acc.append(pearson(m[: tb.shape[0], : tb.shape[1]], tb))
                acc_full.append(pearson(upsample(m, shape, pred.scale), truth))
        labels = t.cell_labels.astype(np.int64)
        cells = t.cells
        ids, ok, area = scored_cells(labels, cells["cell_id"])
        if "phase" in pred.maps:
            probs = upsample(pred.maps["phase"], shape, pred.scale)
            means = np.stack([cell_means(labels, probs[c], area) for c in range(1, 5)])  # G1..M
            sel = ok & ~cells["apoptotic"].astype(bool)
            self.phase_true += cells["phase"][sel].astype(int).tolist()
            self.phase_pred += means[:, ids[sel]].argmax(0).tolist()
        if "apoptosis" in pred.maps:
            pa = cell_means(labels, upsample(pred.maps["apoptosis"], shape, pred.scale), area)
            self.apo_true += cells["apoptotic"][ok].astype(bool).tolist()
            self.apo_pred += (pa[ids[ok]] > 0.5).tolist()

    def _add_trust(self, frame: Frame, pred: Prediction, k: int) -> None:
        """The frame's reliability; each cell's, beside its virtual-DAPI error."""
        from liveaug.preprocess import bin_labels
        from liveaug.reliability import cell_reliability

        trust, t = pred.trust, frame.truth
        assert trust is not None and t is not None
        self.frame_reliability.append(trust.frame)
        self.flagged.append(trust.flagged)
        if "dapi" not in pred.maps:
            return
        m = pred.maps["dapi"]
        tb = bin_image(t.dapi, k)[: m.shape[0], : m.shape[1]]
        # the truth on the prediction's own scale (least squares), so the error is the shape's
        fit = np.polyfit(tb.ravel(), m[: tb.shape[0], : tb.shape[1]].ravel(), 1)
        err = np.abs(m[: tb.shape[0], : tb.shape[1]] - np.polyval(fit, tb)) / max(
            float(np.percentile(m, 99.5)), 1e-6
        )
        lab = bin_labels(t.cell_labels, k)[: tb.shape[0], : tb.shape[1]].astype(np.int64)
        ids, ok, area = scored_cells(lab, t.cells["cell_id"])
        rel = cell_reliability(trust, lab)
        errs = cell_means(lab, err, area)
        for cid in ids[ok]:
            if 0 < cid <= len(rel):
                self.cell_reliability.append(float(rel[cid - 1]))
                self.cell_dapi_error.append(float(errs[cid]))

    def summary(self) -> dict[str, Any]:
        """The card's figures, plus counts and the per-phase recalls behind them."""
        out: dict[str, Any] = {}
        if self.frame_reliability:
            out["frame_reliability"] = [round(v, 4) for v in self.frame_reliability]
            out["flagged_fraction"] = float(np.mean(self.flagged))
        if len(self.cell_reliability) > 2:
            from scipy.stats import spearmanr

            rho = spearmanr(self.cell_reliability, self.cell_dapi_error).statistic
            out["reliability_error_spearman"] = float(rho)
        for key in ("dapi_r", "membrane_r", "dapi_r_full", "membrane_r_full"):
            v = getattr(self, key)
            if v:
                out[key] = float(np.nanmean(v))
                out[key + "_min"] = float(np.nanmin(v))
        if self.phase_true:
            yt, yp = np.array(self.phase_true), np.array(self.phase_pred)
            recalls = {}
            for c, name in enumerate(PHASE_NAMES):
                sel = yt == c
                if sel.any():
                    recalls[name] = float((yp[sel] == c).mean())
            out["phase_balanced_accuracy"] = float(np.mean(list(recalls.values())))
            out["mitosis_recall"] = recalls.get("M", float("nan"))
            out["phase_recall"] = recalls
            out["phase_cells"] = {n: int((yt == c).sum()) for c, n in enumerate(PHASE_NAMES)}
            out["phase_confusion"] = [
                [int(((yt == a) & (yp == b)).sum()) for b in range(4)] for a in range(4)
            ]
        if self.apo_true:
            yt, yp = np.array(self.apo_true), np.array(self.apo_pred)
            tp = int((yt & yp).sum())
            fp, fn = int((~yt & yp).sum()), int((yt & ~yp).sum())
            out["apoptosis_f1"] = 2 * tp / max(1, 2 * tp + fp + fn)
            out["apoptosis_precision"] = tp / max(1, tp + fp)
            out["apoptosis_recall"] = tp / max(1, tp + fn)
            out["apoptotic_cells"] = int(yt.sum())
            out["cells"] = int(yt.size)
        out["pass"] = {k: bool(out.get(k, float("nan")) >= v) for k, v in TARGETS.items()}
        return out


def evaluate(frames: Iterable[Frame], predictor: Any, *, on_frame: Any = None) -> dict[str, Any]:
    """Run ``predictor`` (a :class:`~liveaug.inference.Predictor`) over frames and score them."""
    acc = Accumulator()
    for f in frames:
        acc.add(f, predictor.predict(f))
        if callable(on_frame):
            on_frame()
    return acc.summary()


def format_summary(s: dict[str, Any]) -> str:
    """A few human lines: each figure with its target and pass/fail."""
    lines = []
    for key, target in TARGETS.items():
        v = s.get(key)
        if v is None:
            continue
        mark = "ok" if s["pass"][key] else "BELOW TARGET"
        lines.append(f"  {key:<26} {v:6.3f}  (target ≥ {target:.2f})  {mark}")
    for key in ("dapi_r_full", "membrane_r_full"):
        if key in s:
            lines.append(f"  {key:<26} {s[key]:6.3f}  (at frame resolution, upsampled)")
    if "phase_recall" in s:
        rec = ", ".join(f"{k} {v:.2f}" for k, v in s["phase_recall"].items())
        lines.append(f"  phase recall per class: {rec}; cells {s['phase_cells']}")
    if "apoptosis_f1" in s:
        lines.append(
            f"  apoptosis precision {s['apoptosis_precision']:.2f} recall "
            f"{s['apoptosis_recall']:.2f} ({s['apoptotic_cells']} of {s['cells']} cells apoptotic)"
        )
    return "\n".join(lines)


def eval_frames(
    n_sessions: int, n_frames: int, *, shifted: bool = False, contrast: str | None = None
) -> Iterator[Frame]:
    """Frames of the held-out simulated sessions of the model card: the clean microscope's
    defaults, the shifted setting, or randomly drawn microscopes of one ``contrast`` mode."""
    from liveaug.sources.simulated import SimulatedMicroscope
    from liveaug.sources.simulated.config import CONTRAST_MODES
    from liveaug.training.data import domain_eval_config, eval_config  # no torch

    base = SHIFTED_SEED0 if shifted else EVAL_SEED0
    for i in range(n_sessions):
        if contrast is not None:
            seed = DOMAIN_SEED0 + 20 * CONTRAST_MODES.index(contrast) + i
            cfg = domain_eval_config(seed, contrast)
        else:
            cfg = eval_config(base + i, shifted=shifted)
        sim = SimulatedMicroscope(cfg)
        sim.open()
        for _ in range(n_frames):
            yield sim.read()


def measure(
    folders: list[Path] | None,
    n_sessions: int,
    n_frames: int,
    threads: int = 2,
    views: int = 1,
) -> dict[str, Any]:
    """The model card's figures for model ``folders`` (None: shipped), in distribution and
    shifted, on the same held-out sessions ``liveaug train`` scores (``views``: the
    predictor's test-time augmentation; the card's figures use 1)."""
    from liveaug.inference import Predictor

    pred = Predictor(folders, threads=threads, views=views)
    return {
        "in_distribution": evaluate(eval_frames(n_sessions, n_frames, shifted=False), pred),
        "shifted": evaluate(eval_frames(n_sessions, n_frames, shifted=True), pred),
    }


def measure_domains(
    folders: list[Path] | None,
    n_sessions: int,
    n_frames: int,
    threads: int = 2,
    views: int = 1,
) -> dict[str, Any]:
    """The card's figures per contrast mode (randomly drawn microscopes at the models' sampling;
    the mode kept out of training included), on held-out seeds from :data:`DOMAIN_SEED0`."""
    from liveaug.inference import Predictor
    from liveaug.sources.simulated.config import CONTRAST_MODES

    pred = Predictor(folders, threads=threads, views=views)
    return {
        mode: evaluate(eval_frames(n_sessions, n_frames, contrast=mode), pred)
        for mode in CONTRAST_MODES
    }


def auroc(negatives: Iterable[float], positives: Iterable[float]) -> float:
    """Probability that a positive scores above a negative (ties count half)."""
    neg, pos = np.asarray(list(negatives), float), np.asarray(list(positives), float)
    if not len(neg) or not len(pos):
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(neg) * len(pos)))
