"""Frame → model input: binning to the model's sampling and the normalisation the rdf declares.

Shared, byte for byte, by training (``liveaug.training``), the inference engine and the model
checks, so a model never sees data prepared differently from what it was trained on. No torch,
no onnxruntime here.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

#: Epsilon of bioimage.io's ``zero_mean_unit_variance`` (its default): ``(x - mean) / (std + eps)``.
ZMUV_EPS = 1e-6


def bin_image(image: np.ndarray, factor: int) -> np.ndarray:
    """Mean of ``factor`` × ``factor`` blocks as float32 (edge rows/columns that do not fill a
    block are dropped), the software equivalent of camera binning."""
    img = np.asarray(image, dtype=np.float32)
    if factor <= 1:
        return img
    h, w = img.shape[0] // factor * factor, img.shape[1] // factor * factor
    # INTER_AREA at an exact integer factor is the block mean, and much faster than numpy's
    return cv2.resize(img[:h, :w], (w // factor, h // factor), interpolation=cv2.INTER_AREA)


def bin_labels(labels: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour subsampling of a label image to the binned grid."""
    if factor <= 1:
        return labels
    h, w = labels.shape[0] // factor * factor, labels.shape[1] // factor * factor
    return labels[factor // 2 : h : factor, factor // 2 : w : factor]


def zero_mean_unit_variance(x: np.ndarray, eps: float = ZMUV_EPS) -> np.ndarray:
    """Per-image standardisation over all pixels, exactly as bioimage.io defines it."""
    x = np.asarray(x, dtype=np.float32)
    mean = float(x.mean(dtype=np.float64))
    std = float(x.std(dtype=np.float64))
    return ((x - np.float32(mean)) / np.float32(std + eps)).astype(np.float32)


def sampling_ratio(pixel_size_um: float | None, model_pixel_um: float) -> float:
    """Frame pixels per model input pixel: a whole number (camera-style binning, exact and
    cheap) when the frame is within 10 % of one, the exact ratio otherwise; 1 when the frame's
    pixel size is unknown (it goes in as it comes)."""
    if not pixel_size_um or pixel_size_um <= 0:
        return 1.0
    ratio = model_pixel_um / pixel_size_um
    k = max(1, round(ratio))
    return float(k) if abs(ratio / k - 1) <= 0.1 else ratio


def to_sampling(image: np.ndarray, ratio: float) -> np.ndarray:
    """``image`` as float32 at ``ratio`` frame pixels per output pixel (see
    :func:`sampling_ratio`): block means for a whole number, area-averaging when shrinking
    otherwise, linear interpolation when enlarging."""
    if float(ratio).is_integer():
        return bin_image(image, int(ratio))
    img = np.asarray(image, dtype=np.float32)
    h, w = img.shape
    size = (max(1, round(w / ratio)), max(1, round(h / ratio)))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA if ratio > 1 else cv2.INTER_LINEAR)


def pad_to_multiple(x: np.ndarray, multiple: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Reflect-pad the last two axes up to a multiple of ``multiple``; returns (padded, (h, w))."""
    h, w = x.shape[-2:]
    ph = math.ceil(h / multiple) * multiple - h
    pw = math.ceil(w / multiple) * multiple - w
    if ph == 0 and pw == 0:
        return x, (h, w)
    pad = [(0, 0)] * (x.ndim - 2) + [(0, ph), (0, pw)]
    mode = "reflect" if h > ph and w > pw else "edge"
    return np.pad(x, pad, mode=mode), (h, w)
