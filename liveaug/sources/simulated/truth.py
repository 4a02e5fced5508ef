"""Per-cell ground truth of a simulated frame: one row per visible cell, as numpy columns."""

from __future__ import annotations

import functools

import numpy as np

from liveaug.sources.simulated.biology import Population
from liveaug.sources.simulated.render import Maps

#: Columns of the per-cell truth table, in order. ``phase`` indexes ``biology.PHASES``,
#: ``apoptosis_stage`` indexes ``biology.APOPTOSIS_STAGES``; positions are label centroids (px);
#: ``dna_content`` is in units of the 2N genome; ``dapi_integrated`` is noise-free DAPI photons;
#: ``reporter_nc`` is the reporter's nuclear/cytoplasmic concentration ratio (NaN without one) and
#: ``translocation_frame`` the frame its nuclear import began (-1 if never).
TRUTH_COLUMNS: tuple[str, ...] = (
    "cell_id",
    "parent_id",
    "x",
    "y",
    "area_px",
    "nucleus_area_px",
    "phase",
    "apoptotic",
    "apoptosis_stage",
    "dna_content",
    "dapi_integrated",
    "reporter_nc",
    "translocation_frame",
)


@functools.lru_cache(maxsize=4)
def _pixel_coordinates(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of every pixel, flattened (made once per field size, not per frame)."""
    rows = np.repeat(np.arange(h, dtype=np.float64), w)
    cols = np.tile(np.arange(w, dtype=np.float64), h)
    rows.flags.writeable = cols.flags.writeable = False
    return rows, cols


def cell_table(
    population: Population, maps: Maps, dapi_scale: float, reporter_nc: dict[int, float] | None
) -> dict[str, np.ndarray]:
    """Measure every cell that has at least one pixel in the field."""
    lab = maps.cell_labels.ravel()
    n = population.next_id
    area = np.bincount(lab, minlength=n)
    nuc_area = np.bincount(maps.nucleus_labels.ravel(), minlength=n)
    h, w = maps.cell_labels.shape
    rows, cols = _pixel_coordinates(h, w)
    sy = np.bincount(lab, weights=rows, minlength=n)
    sx = np.bincount(lab, weights=cols, minlength=n)
    dapi = np.bincount(lab, weights=maps.dna.ravel(), minlength=n) * dapi_scale
    cells = [c for c in population.cells if area[c.id] > 0]
    ids = np.array([c.id for c in cells], np.int64)
    a = area[ids].astype(np.int64)
    return {
        "cell_id": ids,
        "parent_id": np.array([c.parent_id for c in cells], np.int64),
        "x": (sx[ids] / np.maximum(a, 1)).astype(np.float32),
        "y": (sy[ids] / np.maximum(a, 1)).astype(np.float32),
        "area_px": a,
        "nucleus_area_px": nuc_area[ids].astype(np.int64),
        "phase": np.array([c.phase for c in cells], np.int8),
        "apoptotic": np.array([c.apoptotic for c in cells], bool),
        "apoptosis_stage": np.array([c.apoptosis_stage for c in cells], np.int8),
        "dna_content": np.array([c.dna_content for c in cells], np.float32),
        "dapi_integrated": dapi[ids].astype(np.float32),
        "reporter_nc": np.array(
            [reporter_nc[c.id] if reporter_nc else np.nan for c in cells], np.float32
        ),
        "translocation_frame": np.array([c.translocation_frame for c in cells], np.int64),
    }
