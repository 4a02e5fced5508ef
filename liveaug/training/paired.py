"""Paired frames for fine-tuning: brightfield and real fluorescence channels of the user's own
sessions, registered to each other and brought to the model's sampling and units.

No torch here. Every problem with the user's data (a missing channel, channels of different
shapes, a dark channel, too few frames to hold some back) is one :class:`LiveaugError`.

Registration: a second camera (or a filter-cube change) shifts the fluorescence image against
brightfield by a constant (dy, dx). It is found by cross-correlation of the brightfield's local
contrast (cells scatter light, background does not) with the background-subtracted stain,
summed over all of a session's frames, and corrected by cutting both images to their overlap
(to the nearest pixel at the model's input sampling, 0.65 µm). Plain cross-correlation, not
phase correlation: whitening the spectrum weights the fine detail, which differs between the
two modalities (measured: errors of 3–14 px for DAPI against 0.2–1 px without whitening). When
both stains are given and their estimates agree within :data:`SAME_CAMERA_PX`, they are taken
to share a camera and the membrane's estimate (cell borders: the sharper match) is used for both.

Units: the model's DAPI is background-subtracted photo-electrons over the peak photons of a G1
nucleus, the membrane stain the same over 0.2 × that peak (the model card). A real camera's
photon scale, stain brightness and exposure are unknown, so each session's raw channel is
mapped to those units by a straight line fitted to the parent model's prediction on the same
frames (:func:`fit_units`, robust and on nucleus-sized squares); :func:`percentile_units` is
the model-free alternative (background = median, scale from a high percentile). Which one lands
nearer the true units was measured on simulated sessions (``docs/finetune.md``).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from liveaug.errors import LiveaugError
from liveaug.frame import Frame
from liveaug.preprocess import bin_image, sampling_ratio, to_sampling, zero_mean_unit_variance

#: Output pixels per input pixel of the liveaug U-Net (targets are binned by this).
BIN = 2
#: Height and width of the network's input must be multiples of this (the U-Net's stride).
STRIDE = 32
#: Channels whose own offsets are this close (model input pixels) are taken to come from one
#: camera and share the membrane channel's estimate (measured: about 0.6 px from the membrane's
#: cell borders, 2–3 px from nuclei alone, on 256² × 4 simulated frames).
SAME_CAMERA_PX = 3.0
#: Robust range (99.9th − 0.1th percentile, in ADU) under which a stain channel counts as dark.
DARK_RANGE_ADU = 4.0
#: Target-map value of the high percentile :func:`percentile_units` maps a session to, per role
#: (measured on the clean simulated microscope at its default density, model units).
PERCENTILE_REFERENCE = {"dapi": (99.5, 1.07), "membrane": (99.5, 2.85)}


@dataclass
class SessionPairs:
    """One session's paired frames at the model's sampling, and how they were registered."""

    path: str
    session_id: str
    frames: list[int]
    pixel_size_um: float | None
    ratio: float
    """Session pixels per model input pixel."""
    offsets: dict[str, tuple[float, float]]
    """Per role: (dy, dx) of the fluorescence channel against brightfield, session pixels, as
    corrected."""
    measured: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Per role: the offset each channel's own cross-correlation found."""
    x: list[np.ndarray] = field(default_factory=list, repr=False)
    """Brightfield at the model's input sampling, raw (not yet normalised)."""
    raw: dict[str, list[np.ndarray]] = field(default_factory=dict, repr=False)
    """Per role: the channel binned to the model's output sampling, ADU."""
    units: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Per role: (scale, offset) with target = scale · raw + offset."""


def no_channel(where: str, role: str, name: str, real: Sequence[str]) -> LiveaugError:
    """The error for a ``--target`` naming a channel the data does not have."""
    listed = ", ".join(real) if real else "none (brightfield only)"
    return LiveaugError(
        f"{where} has no channel {name!r} (--target {role}={name}); its fluorescence channels: "
        f"{listed}",
        "name one of those",
    )


def check_frame(frame: Frame, channels: dict[str, str], where: str) -> None:
    """Raise when a frame lacks a named channel or carries one of another shape."""
    for role, name in channels.items():
        if name not in frame.channels:
            raise no_channel(where, role, name, tuple(frame.channels))
        if frame.channels[name].shape != frame.image.shape:
            raise LiveaugError(
                f"{where}: channel {name!r} is {frame.channels[name].shape}, brightfield is "
                f"{frame.image.shape}",
                "record both on the same pixel grid (or resample the channel first)",
            )


def local_contrast(image: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """How much brightfield varies around each pixel (cells scatter, background is flat)."""
    img = np.asarray(image, np.float32)
    detail = img - cv2.GaussianBlur(img, (0, 0), sigma)
    return np.sqrt(cv2.GaussianBlur(detail * detail, (0, 0), 2 * sigma))


def estimate_offset(
    references: Sequence[np.ndarray],
    moving: Sequence[np.ndarray],
    *,
    max_shift: float = 0.25,
    whiten: float = 0.0,
) -> tuple[float, float]:
    """(dy, dx) such that ``moving`` ≈ ``references`` moved by it: phase correlation with the
    cross-power spectra of all frame pairs summed, peak refined to a fraction of a pixel.
    Shifts beyond ``max_shift`` of the field are not considered."""
    acc = None
    for ref, mov in zip(references, moving, strict=True):
        h, w = ref.shape
        win = cv2.createHanningWindow((w, h), cv2.CV_32F)
        a = cv2.GaussianBlur(np.asarray(ref, np.float32), (0, 0), 2.0)
        b = cv2.GaussianBlur(np.asarray(mov, np.float32), (0, 0), 2.0)
        fa = np.fft.rfft2((a - a.mean()) * win)
        fb = np.fft.rfft2((b - b.mean()) * win)
        cross = fb * np.conj(fa)
        acc = cross if acc is None else acc + cross
    assert acc is not None
    corr = np.fft.irfft2(acc / np.maximum(np.abs(acc), 1e-12) ** whiten, s=references[0].shape)
    corr = np.fft.fftshift(cv2.GaussianBlur(corr.astype(np.float32), (0, 0), 1.0))
    h, w = corr.shape
    cy, cx = h // 2, w // 2
    ry, rx = int(h * max_shift), int(w * max_shift)
    sub = corr[cy - ry : cy + ry + 1, cx - rx : cx + rx + 1]
    py, px = np.unravel_index(int(np.argmax(sub)), sub.shape)

    def refine(c_m: float, c_0: float, c_p: float) -> float:
        den = c_m - 2 * c_0 + c_p
        return 0.5 * (c_m - c_p) / den if den < 0 else 0.0

    fy = refine(*sub[max(py - 1, 0) : py + 2, px]) if 0 < py < sub.shape[0] - 1 else 0.0
    fx = refine(*sub[py, max(px - 1, 0) : px + 2]) if 0 < px < sub.shape[1] - 1 else 0.0
    return float(py - ry + fy), float(px - rx + fx)


def overlap(shape: tuple[int, int], dy: int, dx: int) -> tuple[slice, slice]:
    """(rows, cols) of the reference that the moving image (the reference moved by (dy, dx)
    pixels) also shows; the moving image's are these plus (dy, dx)."""
    h, w = shape
    dy, dx = int(dy), int(dx)
    return slice(max(0, -dy), h - max(0, dy)), slice(max(0, -dx), w - max(0, dx))


def shift_back(image: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """``image`` (the reference moved by (dy, dx), a fraction of a pixel included) moved back
    onto the reference's grid (bilinear); the edge it uncovers repeats the nearest pixels."""
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    h, w = image.shape
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    img = np.asarray(image, np.float32)
    return cv2.warpAffine(img, m, (w, h), flags=flags, borderMode=cv2.BORDER_REPLICATE)


def load_session(
    path: Path, channels: dict[str, str], model_pixel_um: float | None
) -> SessionPairs:
    """Read a session's paired frames, check them, register each channel to brightfield."""
    from liveaug.session import Session

    session = Session.open(path)
    if len(session) == 0:
        raise LiveaugError(f"{path} has no frames", "record some paired frames first")
    for role, name in channels.items():
        if name not in session.channel_names:
            raise no_channel(str(path), role, name, session.channel_names)
    frames = [session.frame(i) for i in range(len(session))]
    for f in frames:
        check_frame(f, channels, f"{path} frame {f.index}")
    px = frames[0].pixel_size_um
    ratio = sampling_ratio(px, model_pixel_um) if model_pixel_um else 1.0
    sid = hashlib.sha256(np.ascontiguousarray(frames[0].image).tobytes()).hexdigest()[:12]
    pairs = SessionPairs(str(path), f"{path.name}#{sid}", list(range(len(frames))), px, ratio, {})
    bf = [to_sampling(f.image, ratio) for f in frames]
    contrast = [local_contrast(b) for b in bf]
    h, w = bf[0].shape
    crop = (slice(0, h), slice(0, w))
    stacks: dict[str, list[np.ndarray]] = {}
    found: dict[str, tuple[float, float]] = {}
    for role, name in channels.items():
        stack = [to_sampling(f.channels[name], ratio) for f in frames]
        lo, hi = np.percentile(np.stack(stack), [0.1, 99.9])
        if hi - lo < DARK_RANGE_ADU:
            raise LiveaugError(
                f"{path}: channel {name!r} is dark or flat in every frame (values {lo:g}–{hi:g})",
                "check the exposure and the light path of that channel",
            )
        stacks[role] = stack
        found[role] = estimate_offset(contrast, [s - np.median(s) for s in stack])
        pairs.measured[role] = (round(found[role][0] * ratio, 2), round(found[role][1] * ratio, 2))
    if (
        len(found) == 2
        and np.hypot(*np.subtract(found["dapi"], found["membrane"])) <= SAME_CAMERA_PX
    ):
        found["dapi"] = found["membrane"]  # one camera: the membrane's estimate is the sharper
    moved: dict[str, list[np.ndarray]] = {}
    for role, stack in stacks.items():
        dy, dx = found[role]
        pairs.offsets[role] = (round(dy * ratio, 2), round(dx * ratio, 2))
        ry, rx = overlap((h, w), math.ceil(abs(dy)) * np.sign(dy), math.ceil(abs(dx)) * np.sign(dx))
        crop = (
            slice(max(crop[0].start, ry.start), min(crop[0].stop, ry.stop)),
            slice(max(crop[1].start, rx.start), min(crop[1].stop, rx.stop)),
        )
        moved[role] = [shift_back(s, dy, dx) for s in stack]
    hh = (crop[0].stop - crop[0].start) // BIN * BIN
    ww = (crop[1].stop - crop[1].start) // BIN * BIN
    ys = slice(crop[0].start, crop[0].start + hh)
    xs = slice(crop[1].start, crop[1].start + ww)
    pairs.x = [b[ys, xs] for b in bf]
    pairs.raw = {r: [bin_image(s[ys, xs], BIN) for s in st] for r, st in moved.items()}
    return pairs


def split_holdout(counts: Sequence[int], fraction: float) -> list[np.ndarray]:
    """Per session, which frames are held out: the last ``fraction`` of each session's frames
    in time (neighbouring frames of a time-lapse are nearly alike, so random frames would leak);
    a session of one frame trains. Raises when that leaves nothing to train on or to hold out."""
    if not 0 < fraction < 1:
        raise LiveaugError(f"--holdout {fraction:g} is not a fraction", "pass e.g. --holdout 0.2")
    masks = []
    for n in counts:
        k = int(np.ceil(fraction * n)) if n >= 2 else 0
        masks.append(np.arange(n) >= n - k)
    held = int(sum(m.sum() for m in masks))
    total = int(sum(counts))
    if held == 0 or held == total:
        raise LiveaugError(
            f"{total} paired frame(s) cannot be split into training and held-out frames "
            f"(--holdout {fraction:g})",
            "record at least 2 frames in a session (20 or more for useful figures)",
        )
    return masks


def fit_units(
    raw: Sequence[np.ndarray], predicted: Sequence[np.ndarray], pool: int = 8
) -> tuple[float, float]:
    """(scale, offset) mapping raw ADU to the parent model's units: the parent's prediction
    regressed on the raw channel over nucleus-sized squares (raw as the regressor: it is the
    less noisy of the two once averaged), with the 10 % worst-fitting squares dropped once."""
    r = np.concatenate([bin_image(a, pool).ravel() for a in raw]).astype(np.float64)
    p = np.concatenate([bin_image(b, pool).ravel() for b in predicted]).astype(np.float64)
    keep = np.ones(r.size, bool)
    for _ in range(2):
        scale, offset = np.polyfit(r[keep], p[keep], 1)
        resid = np.abs(p - (scale * r + offset))
        keep = resid <= np.quantile(resid, 0.9)
    if not scale > 0:
        raise LiveaugError(
            "the parent model's prediction does not rise with the stain channel",
            "is this the right channel? (or pass a parent model that sees these cells)",
        )
    return float(scale), float(offset)


def percentile_units(raw: Sequence[np.ndarray], role: str) -> tuple[float, float]:
    """(scale, offset) from the channel alone: background = median, and the
    :data:`PERCENTILE_REFERENCE` percentile of the background-subtracted pixels → its value."""
    stack = np.stack(raw).astype(np.float64)
    bg = float(np.median(stack))
    q, value = PERCENTILE_REFERENCE[role]
    top = float(np.percentile(stack, q)) - bg
    scale = value / max(top, 1e-6)
    return scale, -bg * scale


def common_inputs(pairs: Sequence[SessionPairs]) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Every frame's raw brightfield at the model's sampling, cut to the size all share (centre,
    a multiple of the network's stride), and the (session, frame) of each."""
    h = min(p.x[0].shape[0] for p in pairs) // STRIDE * STRIDE
    w = min(p.x[0].shape[1] for p in pairs) // STRIDE * STRIDE
    if h == 0 or w == 0:
        raise LiveaugError(
            f"the paired frames' overlap is smaller than {STRIDE} × {STRIDE} pixels at the model's "
            "sampling",
            "record larger frames",
        )
    xs, where = [], []
    for s, p in enumerate(pairs):
        for i, x in enumerate(p.x):
            y0, x0 = (x.shape[0] - h) // 2, (x.shape[1] - w) // 2
            xs.append(x[y0 : y0 + h, x0 : x0 + w])
            where.append((s, i))
    return np.stack(xs).astype(np.float32), where


def normalised_inputs(raw: np.ndarray) -> np.ndarray:
    """Each frame standardised as the model folder's preprocessing does it."""
    return np.stack([zero_mean_unit_variance(x) for x in raw])


def stacked_raw(pairs: Sequence[SessionPairs], role: str, shape: tuple[int, int]) -> np.ndarray:
    """Every frame's raw ``role`` channel (ADU, output sampling), centre-cut to ``shape``."""
    h, w = shape
    out = []
    for p in pairs:
        for r in p.raw[role]:
            y0, x0 = (r.shape[0] - h) // 2, (r.shape[1] - w) // 2
            out.append(r[y0 : y0 + h, x0 : x0 + w])
    return np.stack(out).astype(np.float32)


def normalise(
    pairs: Sequence[SessionPairs],
    raw: dict[str, np.ndarray],
    where: list[tuple[int, int]],
    train: np.ndarray,
    predict: Callable[[str], np.ndarray] | None,
) -> dict[str, np.ndarray]:
    """Targets in the model's units, session by session (:func:`fit_units` on the training
    frames when a parent ``predict(role)`` is given, :func:`percentile_units` otherwise)."""
    sessions = np.array([s for s, _ in where])
    out = {}
    for role, stack in raw.items():
        pred = predict(role) if predict is not None else None
        target = np.empty_like(stack)
        for s, p in enumerate(pairs):
            rows = sessions == s
            fit_rows = rows & train if (rows & train).any() else rows
            if pred is not None:
                p.units[role] = fit_units(list(stack[fit_rows]), list(pred[fit_rows]))
            else:
                p.units[role] = percentile_units(list(stack[fit_rows]), role)
            a, b = p.units[role]
            target[rows] = a * stack[rows] + b
        out[role] = target
    return out
