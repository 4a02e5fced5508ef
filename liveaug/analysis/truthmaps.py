"""Prediction maps made from a simulated frame's ground truth: the "perfect model".

Used to test the analysis without trained models, and by ``liveaug analysis eval --maps truth``
to separate what the analysis loses from what the models lose. The maps are put on the same
physical scales the shipped models are trained to output (see ``liveaug.training.data``):
background-subtracted photo-electrons over the stain's peak (DAPI: 1.0 ≈ a G1 nucleus' peak;
membrane: over 0.2 × peak), phase one-hot from the truth labels, apoptosis 1 inside dying cells.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import numpy as np

from liveaug.errors import LiveaugError
from liveaug.frame import ROLES, Frame, Prediction
from liveaug.preprocess import bin_image, bin_labels

#: Simulator camera defaults (``liveaug.sources.simulated.config.Camera``), used when a session
#: does not say otherwise.
_CAMERA_DEFAULTS = {
    "full_well_e": 10000.0,
    "offset_adu": 100.0,
    "fluo_photons": 400.0,
    "fluo_background_e": 12.0,
}


class TruthPredictor:
    """A :class:`~liveaug.pipeline.Predictor` that reads the answer from ``frame.truth``.

    Parameters
    ----------
    camera : dict, optional
        The simulated camera's settings (``SimulationConfig.to_dict()["camera"]``), which fix
        how ADU convert to photo-electrons; simulator defaults when absent.
    factor : int
        Binning to the shipped models' output sampling (2 at 0.65 µm/px → 1.3 µm/px).
    """

    provider = "truth"

    def __init__(self, camera: dict[str, Any] | None = None, *, factor: int = 2) -> None:
        self.camera = {**_CAMERA_DEFAULTS, **(camera or {})}
        self.factor = int(factor)

    @classmethod
    def for_session(cls, metadata: dict[str, Any], *, factor: int = 2) -> TruthPredictor:
        """Configured from a simulated session's metadata (``metadata["simulation"]``)."""
        return cls(metadata.get("simulation", {}).get("camera"), factor=factor)

    def predict(self, frame: Frame, roles: Collection[str] = ROLES) -> Prediction:
        """Truth-derived maps for ``roles`` at 1/``factor`` of the frame's resolution."""
        t = frame.truth
        if t is None:
            raise LiveaugError(
                f"frame {frame.index} carries no ground truth",
                "truth-derived maps need a simulated session; use the shipped models instead",
            )
        cam, k = self.camera, self.factor
        bits = frame.bit_depth
        e_per_adu = cam["full_well_e"] / 2**bits
        offset = cam["offset_adu"] * 2.0 ** (bits - 12)
        peak = cam["fluo_photons"]

        def stain(img: np.ndarray, rel: float) -> np.ndarray:
            e = (bin_image(img, k) - np.float32(offset)) * np.float32(e_per_adu)
            return (e - np.float32(cam["fluo_background_e"])) / np.float32(peak * rel)

        maps: dict[str, np.ndarray] = {}
        labels = bin_labels(t.cell_labels, k)
        ids = np.asarray(t.cells["cell_id"], np.int64)
        n = int(max(labels.max(), ids.max(initial=0))) + 1
        if "dapi" in roles:
            maps["dapi"] = stain(t.dapi, 1.0)
        if "membrane" in roles:
            maps["membrane"] = stain(t.membrane, 0.2)
        if "phase" in roles:
            lut = np.zeros(n, np.int64)
            lut[ids] = np.asarray(t.cells["phase"], np.int64) + 1
            cls = lut[labels]
            maps["phase"] = (np.arange(5)[:, None, None] == cls[None]).astype(np.float32)
        if "apoptosis" in roles:
            lut_a = np.zeros(n, np.float32)
            lut_a[ids] = np.asarray(t.cells["apoptotic"], np.float32)
            maps["apoptosis"] = lut_a[labels]
        return Prediction(
            frame_index=frame.index,
            maps=maps,
            scale=1.0 / k,
            models={r: "truth" for r in maps},
            provider=self.provider,
        )
