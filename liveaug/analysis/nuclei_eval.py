"""Nucleus segmentation on real images: F1 at IoU 0.5 against truth, beside two references.

``liveaug analysis eval-nuclei`` prints, per real image of :mod:`liveaug.analysis.realdata`, the
F1 of :func:`~liveaug.analysis.nuclei.segment_nuclei` and of

- ``baseline``: the textbook Otsu + distance-transform watershed (Gaussian σ = 1 µm, Otsu's
  threshold, seeds at distance-transform peaks ≥ ``BASELINE_MIN_DISTANCE_UM`` apart, watershed
  of the inverted distance transform), the figure the segmentation must never fall below;
- ``components``: connected components of one clamped Otsu threshold after the fragment-merging
  closing — the seeds liveaug used before splitting (same normalisation as ours).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from liveaug.analysis.evaluate import match_instances
from liveaug.analysis.nuclei import (
    NucleusParams,
    disk,
    normalise_counts,
    otsu_threshold,
    segment_nuclei,
    smooth,
    split_touching,
)
from liveaug.analysis.realdata import SAMPLES, NucleiSample, load_sample

#: Smallest distance between two seeds of the baseline watershed, µm.
BASELINE_MIN_DISTANCE_UM = 3.0


def f1_at_05(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """F1, precision and recall at IoU 0.5 (one-to-one matching)."""
    pairs, n_pred, n_true = match_instances(pred, truth, 0.5)
    tp = len(pairs)
    return {
        "f1": 2 * tp / max(1, n_pred + n_true),
        "precision": tp / max(1, n_pred),
        "recall": tp / max(1, n_true),
        "n_pred": n_pred,
        "n_true": n_true,
    }


def baseline_nuclei(image: np.ndarray, *, pixel_size_um: float) -> np.ndarray:
    """Otsu + distance-transform watershed, as in scikit-image's example; ``(h, w) int32``."""
    from scipy import ndimage as ndi
    from skimage.feature import peak_local_max
    from skimage.filters import threshold_otsu
    from skimage.segmentation import watershed

    px = float(pixel_size_um)
    s = smooth(np.asarray(image, np.float32), 1.0 / px)
    mask = s > threshold_otsu(s)
    dist = ndi.distance_transform_edt(mask)
    comp, _ = ndi.label(mask)
    peaks = peak_local_max(
        dist,
        min_distance=max(1, round(BASELINE_MIN_DISTANCE_UM / px)),
        labels=comp,
        exclude_border=False,
    )
    markers = np.zeros(mask.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    labels = watershed(-dist, markers, mask=mask).astype(np.int32)
    return _drop_small(labels, NucleusParams().min_area_um2 / px**2)


def _drop_small(labels: np.ndarray, min_area: float) -> np.ndarray:
    """Regions below ``min_area`` pixels removed (labels kept)."""
    sizes = np.bincount(labels.ravel())
    return np.where(sizes[labels] < min_area, 0, labels).astype(np.int32)


def components_nuclei(image: np.ndarray, *, pixel_size_um: float) -> np.ndarray:
    """The former seeds: components of one clamped Otsu threshold after a closing."""
    import cv2

    p = NucleusParams()
    px = float(pixel_size_um)
    d = smooth(normalise_counts(image, sigma_px=p.sigma_um / px), p.sigma_um / px)
    mask = (d > otsu_threshold(d, *p.threshold_range)).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, disk(p.fragment_merge_um / px))
    return split_touching(mask, px, 0.0, p.min_area_um2 / px**2)


def evaluate_sample(sample: NucleiSample, params: NucleusParams | None = None) -> dict[str, Any]:
    """F1@0.5 of liveaug, the baseline and the former components on one sample."""
    px = sample.pixel_size_um
    t0 = time.perf_counter()
    ours = segment_nuclei(sample.image, pixel_size_um=px, params=params, counts=True)
    ms = (time.perf_counter() - t0) * 1e3
    out: dict[str, Any] = {
        "sample": sample.name,
        "source": sample.source,
        "note": sample.note,
        "shape": list(sample.image.shape),
        "pixel_size_um": px,
        "liveaug": f1_at_05(ours, sample.truth),
        "baseline": f1_at_05(baseline_nuclei(sample.image, pixel_size_um=px), sample.truth),
        "components": f1_at_05(components_nuclei(sample.image, pixel_size_um=px), sample.truth),
        "liveaug_ms": ms,
    }
    return out


#: The acceptance target on every real image (issue #18): F1 at IoU 0.5 at least this, and
#: never below the baseline's.
TARGET_F1 = 0.85


def meets_target(figures: dict[str, Any]) -> bool:
    """F1 ≥ :data:`TARGET_F1` and ≥ the baseline's on this image."""
    f1 = figures["liveaug"]["f1"]
    return f1 >= TARGET_F1 and f1 >= figures["baseline"]["f1"]


def run_eval_nuclei(names: list[str] | None, json_out: Path | None) -> int:
    """``liveaug analysis eval-nuclei``: one line per image, figures to ``json_out``."""
    samples = [load_sample(name) for name in names or SAMPLES]  # a fetch error: one line
    rows = []
    print(f"nucleus F1 at IoU 0.5 (target >= {TARGET_F1:g} and >= baseline on every image)")
    print(
        f"  {'image':<12} {'liveaug':>8} {'baseline':>9} {'components':>11}   found/true  P     R"
    )
    for sample in samples:
        name = sample.name
        fig = evaluate_sample(sample)
        ours = fig["liveaug"]
        verdict = "✓" if meets_target(fig) else "✗"
        print(
            f"  {name:<12} {ours['f1']:8.3f} {fig['baseline']['f1']:9.3f} "
            f"{fig['components']['f1']:11.3f}   {ours['n_pred']:>4}/{ours['n_true']:<4}  "
            f"{ours['precision']:.2f}  {ours['recall']:.2f}  {verdict}"
        )
        rows.append(fig)
    if json_out is not None:
        json_out.write_text(json.dumps({"target_f1": TARGET_F1, "images": rows}, indent=2))
        print(f"wrote {json_out}")
    return 0
