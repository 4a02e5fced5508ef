"""Per-cell readouts of one frame as a columnar :class:`~liveaug.frame.CellTable`.

Everything is a ``np.bincount`` over the label image (one pass per map), so ~150 cells cost
about a millisecond; only the convex hull (solidity) loops over cells, through OpenCV. Maps at
model resolution are measured on the model-resolution labels; real fluorescence channels, which
arrive at frame resolution, are measured on the labels upsampled to it (each model pixel a block
of frame pixels), so their means and integrals are exactly what a standard measurement on the
upsampled labels gives (``skimage.measure.regionprops_table``, tested).

``touches_border`` flags cells cut off by the image edge (partial area, shape and integrals).

Units: positions in frame pixels, areas in frame pixels and µm², virtual stains in the models'
output units (``a.u.``), integrated intensities summed over frame pixels (map value × frame
pixels), real channels in camera ADU (raw: no background subtracted). The nuclear/cytoplasmic
ratio of a real channel is background-corrected (background = median outside all cells), since
the camera offset would otherwise pull every ratio towards 1.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from liveaug.analysis.segmentation import upsample_labels
from liveaug.frame import PHASE_CLASSES, CellTable

#: Unit of every fixed column (channel columns get theirs from :func:`channel_units`).
UNITS: dict[str, str] = {
    "frame": "",
    "timestamp_s": "s",
    "cell_id": "",
    "parent_id": "",
    "x": "px",
    "y": "px",
    "area_px": "px",
    "area_um2": "µm²",
    "eccentricity": "",
    "solidity": "",
    "touches_border": "",
    "nucleus_area_px": "px",
    "nucleus_area_um2": "µm²",
    "dapi_mean": "a.u.",
    "dapi_integrated": "a.u.·px",
    "membrane_mean": "a.u.",
    "membrane_integrated": "a.u.·px",
    "phase": "",
    "phase_confidence": "",
    "p_G1": "",
    "p_S": "",
    "p_G2": "",
    "p_M": "",
    "p_apoptosis": "",
    "model": "",
}
PHASES: tuple[str, ...] = PHASE_CLASSES[1:]


#: Columns a real fluorescence channel ``NAME`` adds (``NAME_mean`` …) and their units.
CHANNEL_SUFFIXES: dict[str, str] = {
    "mean": "ADU",
    "integrated": "ADU·px",
    "nc_ratio": "",
    "background": "ADU",
}


def channel_units(name: str) -> dict[str, str]:
    """Units of the columns a real fluorescence channel ``name`` adds."""
    return {f"{name}_{suffix}": unit for suffix, unit in CHANNEL_SUFFIXES.items()}


def _sums(labels: np.ndarray, weights: np.ndarray | None, n: int) -> np.ndarray:
    w = None if weights is None else np.asarray(weights, np.float64).ravel()
    return np.bincount(labels.ravel(), weights=w, minlength=n)


@functools.lru_cache(maxsize=4)
def _grid(shape: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """Flattened y, x, y², x², xy of every pixel (cached per shape: moments are bincounts)."""
    h, w = shape
    yy = np.repeat(np.arange(h, dtype=np.float64), w)
    xx = np.tile(np.arange(w, dtype=np.float64), h)
    out = (yy, xx, yy * yy, xx * xx, xx * yy)
    for a in out:
        a.flags.writeable = False
    return out


def shape_features(labels: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """Area, centroid (row/col), eccentricity and solidity of labels 1..n-1 (model pixels).

    Eccentricity follows ``regionprops`` (second central moments); solidity is area over the
    area of the convex hull of the region's pixel squares.
    """
    lab = labels.ravel()
    yy, xx, y2, x2, xy = _grid(labels.shape)
    a = np.bincount(lab, minlength=n).astype(np.float64)
    safe = np.maximum(a, 1)
    sy = np.bincount(lab, yy, n) / safe
    sx = np.bincount(lab, xx, n) / safe
    myy = np.bincount(lab, y2, n) / safe - sy * sy
    mxx = np.bincount(lab, x2, n) / safe - sx * sx
    mxy = np.bincount(lab, xy, n) / safe - sx * sy
    # eigenvalues of the inertia tensor [[myy, -mxy], [-mxy, mxx]]
    tr, det = myy + mxx, myy * mxx - mxy * mxy
    disc = np.sqrt(np.maximum(tr * tr / 4 - det, 0))
    l1, l2 = tr / 2 + disc, tr / 2 - disc
    with np.errstate(divide="ignore", invalid="ignore"):
        ecc = np.where(l1 > 0, np.sqrt(np.clip(1 - l2 / l1, 0, 1)), 0.0)
    return {
        "area": a[1:],
        "y": sy[1:],
        "x": sx[1:],
        "eccentricity": ecc[1:],
        "solidity": _solidity(labels, a, n)[1:],
    }


def touches_border(labels: np.ndarray, n: int) -> np.ndarray:
    """Which of labels 1..n-1 reach the image edge: cut off there, so their area, shape and
    integrated intensities are partial (a sliver at the edge reads like a tiny, odd cell)."""
    edge = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]).astype(np.int64)
    out = np.zeros(n, bool)
    out[edge] = True
    return out[1:]


def _solidity(labels: np.ndarray, area: np.ndarray, n: int) -> np.ndarray:
    """Area / convex-hull area of the region's pixel squares.

    The hull of the boundary pixels' centres, grown by a unit pixel square (Minkowski sum:
    area + half the L1 perimeter + 1) — the same as the hull of the pixels' corners, with a
    quarter of the points.
    """
    lab = labels
    edge = np.zeros(lab.shape, bool)
    dx = lab[:, 1:] != lab[:, :-1]
    dy = lab[1:, :] != lab[:-1, :]
    edge[:, 1:] |= dx
    edge[:, :-1] |= dx
    edge[1:, :] |= dy
    edge[:-1, :] |= dy
    edge[0, :] = edge[-1, :] = True
    edge[:, 0] = edge[:, -1] = True
    edge &= lab > 0
    ys, xs = np.nonzero(edge)
    ls = lab[ys, xs]
    order = np.argsort(ls, kind="stable")
    pts_all = np.stack([xs[order], ys[order]], axis=1).astype(np.int32)
    bounds = np.searchsorted(ls[order], np.arange(n + 1))
    out = np.ones(n, np.float64)
    hull_fn, area_fn = cv2.convexHull, cv2.contourArea
    which, hulls, areas = [], [], []
    for i in range(1, n):
        lo, hi = bounds[i], bounds[i + 1]
        if hi <= lo:
            continue
        hull = hull_fn(pts_all[lo:hi])
        which.append(i)
        hulls.append(hull[:, 0, :])
        areas.append(area_fn(hull))
    if not hulls:
        return out
    # L1 perimeter of every hull at once: each vertex to the next, the last back to the first
    sizes = np.array([len(h) for h in hulls])
    v = np.concatenate(hulls).astype(np.int64)
    start = np.repeat(np.cumsum(sizes) - sizes, sizes)
    nxt = np.arange(len(v)) + 1
    wrap = nxt == np.repeat(np.cumsum(sizes), sizes)
    nxt[wrap] = start[wrap]
    step = np.abs(v[nxt] - v).sum(1)
    l1 = np.bincount(np.repeat(np.arange(len(hulls)), sizes), weights=step, minlength=len(hulls))
    idx = np.array(which)
    hull_area = np.array(areas) + 0.5 * l1 + 1.0
    out[idx] = np.minimum(1.0, area[idx] / hull_area)
    return out


def measure(
    labels: np.ndarray,
    nuclei: np.ndarray,
    maps: dict[str, np.ndarray],
    *,
    scale: float,
    pixel_size_um: float | None,
    channels: dict[str, np.ndarray] | None = None,
    frame_index: int = 0,
    timestamp_s: float = 0.0,
    model: str = "",
    nc_margin_um: float = 0.0,
) -> CellTable:
    """Readouts of cells ``1..labels.max()`` (one row each, in label order).

    Parameters
    ----------
    labels, nuclei : (h, w) int ndarray
        Cells and their nuclei at model resolution, labels 1..n without gaps.
    maps : dict
        ``Prediction.maps``: ``dapi``/``membrane`` ``(h, w)``, ``phase`` ``(5, h, w)``,
        ``apoptosis`` ``(h, w)``; absent roles give NaN columns.
    scale : float
        Model pixels per frame pixel.
    pixel_size_um : float or None
        Frame pixel size (None: ``area_um2`` is NaN).
    channels : dict, optional
        Real fluorescence channels at frame resolution.
    nc_margin_um : float
        Ring around each nucleus left out of both sides of the nuclear/cytoplasmic ratio.
    """
    labels = np.asarray(labels)
    n = int(labels.max()) + 1
    rows = n - 1
    k2 = 1.0 / (scale * scale)  # frame pixels per model pixel
    sh = shape_features(labels, n)
    a = sh["area"]
    safe = np.maximum(a, 1)
    px_um = pixel_size_um if pixel_size_um else np.nan
    cols: dict[str, np.ndarray] = {
        "frame": np.full(rows, frame_index, np.int64),
        "timestamp_s": np.full(rows, timestamp_s, np.float64),
        "cell_id": np.arange(1, n, dtype=np.int64),
        "parent_id": np.zeros(rows, np.int64),
        "x": (sh["x"] + 0.5) / scale - 0.5,
        "y": (sh["y"] + 0.5) / scale - 0.5,
        "area_px": a * k2,
        "area_um2": a * k2 * px_um * px_um,
        "eccentricity": sh["eccentricity"],
        "solidity": sh["solidity"],
        "touches_border": touches_border(labels, n),
        "nucleus_area_px": _sums(nuclei, None, n)[1:] * k2,
    }
    cols["nucleus_area_um2"] = cols["nucleus_area_px"] * px_um * px_um
    for role in ("dapi", "membrane"):
        if role in maps:
            s = _sums(labels, maps[role], n)[1:]
            cols[f"{role}_mean"] = s / safe
            cols[f"{role}_integrated"] = s * k2
        else:
            cols[f"{role}_mean"] = cols[f"{role}_integrated"] = np.full(rows, np.nan)
    if "phase" in maps:
        probs = np.stack([_sums(labels, maps["phase"][c], n)[1:] for c in range(1, 5)], 1)
        probs /= np.maximum(probs.sum(1, keepdims=True), 1e-12)
        best = probs.argmax(1) if rows else np.zeros(0, np.int64)
        cols["phase"] = np.asarray(PHASES, dtype=object)[best]
        cols["phase_confidence"] = probs[np.arange(rows), best]
    else:
        probs = np.full((rows, 4), np.nan)
        cols["phase"] = np.full(rows, "", dtype=object)
        cols["phase_confidence"] = np.full(rows, np.nan)
    for j, name in enumerate(PHASES):
        cols[f"p_{name}"] = probs[:, j]
    if "apoptosis" in maps:
        cols["p_apoptosis"] = _sums(labels, maps["apoptosis"], n)[1:] / safe
    else:
        cols["p_apoptosis"] = np.full(rows, np.nan)
    units = dict(UNITS)
    if channels:
        margin = 0
        if nc_margin_um > 0 and pixel_size_um:
            margin = max(1, round(nc_margin_um * scale / pixel_size_um))
        cols.update(_channel_readouts(labels, nuclei, channels, scale, n, margin))
        for name in channels:
            units.update(channel_units(name))
    cols["model"] = np.full(rows, model, dtype=object)
    return CellTable(cols, units)


def _channel_readouts(
    labels: np.ndarray,
    nuclei: np.ndarray,
    channels: dict[str, np.ndarray],
    scale: float,
    n: int,
    margin_px: int = 0,
) -> dict[str, np.ndarray]:
    """Mean, integral, background and N/C ratio of each real channel at frame resolution.

    The ratio compares the nucleus' core with the cytoplasm beyond a ``margin_px`` ring around
    the nucleus (label pixels): the blurred nuclear edge of a virtual DAPI mask belongs to
    neither, and counting it would pull every ratio towards 1. A nucleus too small for a core, or
    a cell with no cytoplasm past the ring, falls back to the plain masks.

    When the frame is exactly ``k`` × the label grid, each channel is block-summed to the label
    grid first (``k`` × ``k`` blocks: the sums over the upsampled labels, at a quarter of the
    cost; the background is then the median of block means); otherwise the labels are upsampled.
    """
    out: dict[str, np.ndarray] = {}
    shape = next(iter(channels.values())).shape
    k = round(1.0 / scale)
    blocks = k > 1 and shape == (labels.shape[0] * k, labels.shape[1] * k)
    if blocks:
        lab, kk = labels, float(k * k)
    else:
        lab = upsample_labels(labels, scale, shape)
        kk = 1.0
    core, cyto = _nc_masks(labels, nuclei, margin_px, n)
    if not blocks:
        core = upsample_labels(core, scale, shape)
        cyto = upsample_labels(cyto, scale, shape)
    a = np.bincount(lab.ravel(), minlength=n).astype(np.float64) * kk
    a_nuc = np.bincount(core.ravel(), minlength=n).astype(np.float64) * kk
    a_cyto = np.bincount(cyto.ravel(), minlength=n).astype(np.float64) * kk
    outside = lab == 0
    for name, img in channels.items():
        img = np.asarray(img)
        if blocks:  # block means (exact for k x k blocks) x k², as float64 sums
            mean = cv2.resize(
                img.astype(np.float32), labels.shape[::-1], interpolation=cv2.INTER_AREA
            )
            bg_pixels = mean[outside]
            img = mean.astype(np.float64) * kk
        else:
            bg_pixels = img[outside]
        s = _sums(lab, img, n)
        s_nuc = _sums(core, img, n)
        s_cyto = _sums(cyto, img, n)
        bg = float(np.median(bg_pixels)) if bg_pixels.size else float(np.percentile(img, 1) / kk)
        with np.errstate(divide="ignore", invalid="ignore"):
            nuc_mean = s_nuc / a_nuc - bg
            cyto_mean = s_cyto / a_cyto - bg
            ok = (a_nuc > 0) & (a_cyto > 0) & (cyto_mean > 0)
            ratio = np.where(ok, nuc_mean / cyto_mean, np.nan)
        out[f"{name}_mean"] = s[1:] / np.maximum(a[1:], 1)
        out[f"{name}_integrated"] = s[1:]
        out[f"{name}_nc_ratio"] = ratio[1:]
        out[f"{name}_background"] = np.full(n - 1, bg)
    return out


def _nc_masks(
    labels: np.ndarray, nuclei: np.ndarray, margin_px: int, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Nuclear cores and cytoplasm past a ring of ``margin_px`` around each nucleus (labelled)."""
    plain_cyto = np.where(nuclei > 0, 0, labels)
    if margin_px <= 0:
        return nuclei, plain_cyto
    kernel = np.ones((2 * margin_px + 1, 2 * margin_px + 1), np.uint8)
    nuc_mask = (nuclei > 0).astype(np.uint8)
    core = np.where(cv2.erode(nuc_mask, kernel) > 0, nuclei, 0)
    cyto = np.where(cv2.dilate(nuc_mask, kernel) > 0, 0, labels)
    # fall back per cell where the core or the far cytoplasm is empty
    no_core = np.bincount(core.ravel(), minlength=n) == 0
    no_cyto = np.bincount(cyto.ravel(), minlength=n) == 0
    core = np.where(no_core[nuclei], nuclei, core)
    cyto = np.where(no_cyto[labels], plain_cyto, cyto)
    return core, cyto
