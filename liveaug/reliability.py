"""How far a frame, and each cell in it, is from what the model was trained on: a score in [0, 1].

The model's ``features`` output (what the network sees at each place) is projected on the leading
principal axes of the same features on its training frames (whitened). A frame is described by
each axis' mean and spread over the frame, a cell by each axis' mean inside it; the score is the
Mahalanobis distance of that description from the training frames' (cells'). Chosen by
measurement (docs/models.md): per-place distances averaged over a frame hardly told other
microscopes from the training ones, because most of any frame is background that looks alike
everywhere, while the frame description did. A score becomes a *reliability* through training
frames the statistics never saw: the fraction of them that scored worse. So 0.5 is a typical
training frame, and a threshold of 0.01 flags 1 % of frames like the training ones.

Frames that carry no image at all (blank, flat, saturated) are caught before the model:
:func:`input_problem` names them and their reliability is 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from liveaug.frame import Prediction, Trust

#: Name of the statistics file inside a model folder (an rdf attachment).
RELIABILITY_FILE = "reliability.npz"
#: Default warning threshold: frames (cells) below it are flagged as unlike the training data.
DEFAULT_THRESHOLD = 0.01
#: Fractions of an image at the lowest or the highest level that make it unusable.
DARK_FRACTION, SATURATED_FRACTION = 0.5, 0.5


def input_problem(image: np.ndarray, bit_depth: int | None = None) -> str | None:
    """Why a frame carries no usable image ("blank", "flat", "saturated"), or None.

    Flat: the brightest and the darkest percent differ by less than a few counts (the camera's
    own noise is more than that), so standardising it would only amplify noise into cells.
    """
    img = np.asarray(image)
    sub = img[::4, ::4] if img.size > 65536 else img
    lo, hi = np.percentile(sub, [1, 99])
    top = float(2**bit_depth - 1) if bit_depth and img.dtype.kind in "ui" else float(sub.max())
    if hi <= 0:
        return "blank"
    if img.dtype.kind in "ui" and float(np.mean(sub >= top)) > SATURATED_FRACTION:
        return "saturated"
    if float(np.mean(sub <= sub.min())) > DARK_FRACTION and float(sub.min()) <= 0:
        return "blank"
    spread = float(hi - lo)
    if spread < max(3.0, 1e-3 * float(hi)):
        return "flat"
    return None


def trust_warning(prediction: Prediction | None) -> str | None:
    """What the window and the tables say about a frame the models should not be trusted on."""
    if prediction is None:
        return None
    if prediction.input_problem:
        return f"⚠ no usable image ({prediction.input_problem}): no cells measured"
    t = prediction.trust
    if t is not None and t.flagged:
        return (
            f"⚠ unreliable: unlike the model's training images "
            f"(reliability {t.frame:.3f} < {t.threshold:g})"
        )
    return None


def empty_maps(maps: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Maps of the same shapes that show nothing: no stain, all background, nobody dying."""
    out = {k: np.zeros_like(v) for k, v in maps.items()}
    if "phase" in out:
        out["phase"][0] = 1.0
    return out


@dataclass(frozen=True)
class ReliabilityModel:
    """Training-feature statistics and the score → reliability tables (frames and cells)."""

    mean: np.ndarray
    """(C,) mean feature vector of the training pixels."""
    components: np.ndarray
    """(k, C) leading principal axes, each divided by its standard deviation (whitening)."""
    frame_mean: np.ndarray
    """(2k,) mean of the frame descriptor (per-axis mean and spread over the frame)."""
    frame_precision: np.ndarray
    """(2k, 2k) inverse covariance of the frame descriptor."""
    cell_mean: np.ndarray
    """(k,) mean of the cell descriptor (per-axis mean inside the cell)."""
    cell_precision: np.ndarray
    frame_scores: np.ndarray
    """Sorted scores of held-back training frames."""
    cell_scores: np.ndarray
    """Sorted scores of held-back training cells."""
    threshold: float = DEFAULT_THRESHOLD

    def project(self, features: np.ndarray) -> np.ndarray:
        """(C, h, w) features → (k, h, w) whitened principal components."""
        c, h, w = features.shape
        x = features.reshape(c, h * w).astype(np.float32) - self.mean[:, None]
        return (self.components @ x).reshape(-1, h, w)

    def frame_score(self, z: np.ndarray) -> float:
        """Mahalanobis distance² of a frame's descriptor (from its projected features)."""
        flat = z.reshape(len(z), -1)
        d = np.concatenate([flat.mean(1), flat.std(1)])[None]
        return float(mahalanobis(d, self.frame_mean, self.frame_precision)[0])

    def assess(self, features: np.ndarray) -> Trust:
        """The frame's reliability, and what its cells' reliabilities are read from."""
        z = self.project(features)
        frame = survival(self.frame_scores, self.frame_score(z))
        return Trust(
            float(frame), self.threshold, z, self.cell_scores, self.cell_mean, self.cell_precision
        )

    def save(self, path: Path) -> Path:
        """Write the statistics as one ``.npz`` (a model-folder attachment)."""
        np.savez(
            path,
            threshold=np.float64(self.threshold),
            **{k: getattr(self, k) for k in self.__dataclass_fields__ if k != "threshold"},
        )
        return path

    @classmethod
    def load(cls, path: Path) -> ReliabilityModel:
        """Inverse of :meth:`save`."""
        with np.load(path) as z:
            arrays = {k: z[k].astype(np.float32) for k in z.files if k != "threshold"}
            return cls(**arrays, threshold=float(z["threshold"]))


def survival(sorted_scores: np.ndarray, score: float | np.ndarray) -> np.ndarray | float:
    """Fraction of reference scores above ``score`` (with half the ties): 1 − its rank."""
    n = len(sorted_scores)
    below = np.searchsorted(sorted_scores, score, side="left")
    upto = np.searchsorted(sorted_scores, score, side="right")
    r = 1.0 - (below + upto) / (2.0 * n)
    return float(r) if np.ndim(r) == 0 else r.astype(np.float32)


def mahalanobis(x: np.ndarray, mean: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """Squared Mahalanobis distance of each row of ``x`` from ``mean``."""
    d = x - mean
    return np.einsum("ij,jk,ik->i", d, precision, d)


def cell_reliability(trust: Trust, labels: np.ndarray) -> np.ndarray:
    """Reliability of each label 1..labels.max() (labels at any resolution; a cell is read at
    the features' sampling, from its centre pixel when it covers no whole one); without
    per-place statistics every cell gets the frame's reliability."""
    n = int(labels.max()) if labels.size else 0
    z, ref, mean, prec = (
        trust.projected,
        trust.cell_reference,
        trust.cell_mean,
        trust.cell_precision,
    )
    if z is None or ref is None or mean is None or prec is None or n == 0:
        return np.full(n, trust.frame, np.float32)
    return np.asarray(survival(ref, mahalanobis(cell_descriptors(z, labels), mean, prec)))


def cell_descriptors(z: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(n, k) mean of the projected features ``z`` (k, h', w') over each label 1..max."""
    k, fh, fw = z.shape
    lh, lw = labels.shape
    ys = np.minimum(((np.arange(fh) + 0.5) * lh / fh).astype(int), lh - 1)
    xs = np.minimum(((np.arange(fw) + 0.5) * lw / fw).astype(int), lw - 1)
    small = labels[np.ix_(ys, xs)].astype(np.int64).ravel()
    n = int(labels.max())
    count = np.bincount(small, minlength=n + 1)
    flat = z.reshape(k, -1)
    out = np.stack([np.bincount(small, weights=flat[i], minlength=n + 1) for i in range(k)], 1)
    out = out[1:] / np.maximum(count[1:, None], 1)
    missing = np.flatnonzero(count[1:] == 0) + 1
    if missing.size:  # a cell smaller than a feature pixel: read the pixel under its centre
        idx = np.arange(lh * lw)
        lab = labels.ravel().astype(np.int64)
        area = np.maximum(np.bincount(lab, minlength=n + 1), 1)
        cy = np.bincount(lab, weights=idx // lw, minlength=n + 1) / area
        cx = np.bincount(lab, weights=idx % lw, minlength=n + 1) / area
        for m in missing:
            y = min(fh - 1, int((cy[m] + 0.5) * fh / lh))
            x = min(fw - 1, int((cx[m] + 0.5) * fw / lw))
            out[m - 1] = z[:, y, x]
    return out


def _gaussian(x: np.ndarray, shrink: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Mean and shrunk inverse covariance of the rows of ``x`` (shrinkage towards the diagonal
    keeps it invertible with few samples per dimension)."""
    mean = x.mean(0)
    cov = np.cov(x.T)
    cov = (1 - shrink) * cov + shrink * np.diag(np.diag(cov)) + 1e-6 * np.eye(len(mean))
    return mean.astype(np.float32), np.linalg.inv(cov).astype(np.float32)


def fit(
    pixel_features: np.ndarray,
    frame_features: list[np.ndarray],
    frame_labels: list[np.ndarray],
    *,
    k: int = 32,
    threshold: float = DEFAULT_THRESHOLD,
) -> ReliabilityModel:
    """Fit the statistics: principal axes on ``pixel_features`` ``(n, C)``, the frame and cell
    Gaussians on the first half of ``frame_features`` (``(C, h, w)`` each, with their cell
    labels), the score tables on the second half (scores of frames the Gaussians never saw)."""
    x = pixel_features.astype(np.float64)
    mean = x.mean(0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    k = min(k, len(s) - 1)
    std = np.maximum(s[:k] / np.sqrt(len(x)), 1e-9)
    comps = (vt[:k] / std[:, None]).astype(np.float32)
    base = ReliabilityModel(
        mean.astype(np.float32), comps, *(np.zeros(1, np.float32),) * 6, threshold=threshold
    )
    half = max(1, len(frame_features) // 2)
    descs, cells = [], []
    for feats, labels in zip(frame_features, frame_labels, strict=True):
        z = base.project(feats)
        flat = z.reshape(k, -1)
        descs.append(np.concatenate([flat.mean(1), flat.std(1)]))
        cells.append(cell_descriptors(z, labels) if labels.max() > 0 else np.zeros((0, k)))
    f_mean, f_prec = _gaussian(np.array(descs[:half]))
    c_mean, c_prec = _gaussian(np.concatenate(cells[:half]))

    held_cells = [c for c in cells[half:] if len(c)]
    return ReliabilityModel(
        mean=base.mean,
        components=comps,
        frame_mean=f_mean,
        frame_precision=f_prec,
        cell_mean=c_mean,
        cell_precision=c_prec,
        frame_scores=np.sort(mahalanobis(np.array(descs[half:]), f_mean, f_prec)),
        cell_scores=np.sort(mahalanobis(np.concatenate(held_cells), c_mean, c_prec))
        if held_cells
        else np.zeros(1, np.float32),
        threshold=threshold,
    )
