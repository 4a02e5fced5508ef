"""Test support for the viewer: the simulator's truth shaped as Prediction and Analysis, sessions,
and a fixture that fails a test leaking top-level widgets.

The oracle predictor/analyzer let the viewer be tested exactly against known cells (outlines on
the truth labels' borders, DAPI over the truth nuclei) independently of the models and the
analysis. Maps are made at ``scale`` model pixels per frame pixel, like a binning predictor.
"""

from __future__ import annotations

from collections.abc import Collection

import cv2
import numpy as np

from liveaug.frame import PHASE_CLASSES, Analysis, CellEvent, CellTable, Frame, Prediction
from liveaug.sources.simulated import PHASES

#: Simulator phase index (G1, S, G2, M) → index in PHASE_CLASSES.
_PHASE_TO_CLASS = np.array([PHASE_CLASSES.index(p) for p in PHASES], np.int64)


def _resize(image: np.ndarray, shape: tuple[int, int], nearest: bool = False) -> np.ndarray:
    h, w = shape
    if image.shape == shape:
        return image
    interp = cv2.INTER_NEAREST if nearest else cv2.INTER_AREA
    if nearest and image.dtype == np.uint32:
        return cv2.resize(image.astype(np.float32), (w, h), interpolation=interp).astype(np.uint32)
    return cv2.resize(image, (w, h), interpolation=interp)


def _normalise(image: np.ndarray) -> np.ndarray:
    a = image.astype(np.float32)
    lo, hi = np.percentile(a[::4, ::4], (5.0, 99.9))
    return np.clip((a - lo) / max(hi - lo, 1e-6), 0.0, 1.0)


class TruthPredictor:
    """Virtual stains, phase and apoptosis maps taken from ``frame.truth``."""

    def __init__(self, scale: float = 0.5) -> None:
        self.scale = scale
        self.provider = "truth (simulator)"

    def model_shape(self, frame: Frame) -> tuple[int, int]:
        """Map size for ``frame``."""
        h, w = frame.shape
        return max(1, round(h * self.scale)), max(1, round(w * self.scale))

    def predict(self, frame: Frame, roles: Collection[str]) -> Prediction:
        """Maps for ``roles`` (a frame without truth gives empty maps)."""
        t = frame.truth
        shape = self.model_shape(frame)
        maps: dict[str, np.ndarray] = {}
        if t is None:
            raise ValueError(f"frame {frame.index} carries no simulator truth")
        labels = _resize(t.cell_labels, shape, nearest=True)
        cells = t.cells
        top = int(max(labels.max(), cells["cell_id"].max() if len(cells["cell_id"]) else 0))
        if "dapi" in roles:
            maps["dapi"] = _resize(_normalise(t.dapi), shape)
        if "membrane" in roles:
            maps["membrane"] = _resize(_normalise(t.membrane), shape)
        if "phase" in roles:
            cls = np.zeros(top + 1, np.int64)
            cls[cells["cell_id"]] = _PHASE_TO_CLASS[cells["phase"]]
            phase = np.zeros((len(PHASE_CLASSES), *shape), np.float32)
            per_pixel = cls[labels]
            for k in range(len(PHASE_CLASSES)):
                phase[k] = per_pixel == k
            maps["phase"] = phase
        if "apoptosis" in roles:
            p = np.zeros(top + 1, np.float32)
            p[cells["cell_id"]] = cells["apoptotic"].astype(np.float32)
            maps["apoptosis"] = p[labels]
        return Prediction(frame.index, maps, self.scale, {r: "truth" for r in maps}, self.provider)


class TruthAnalyzer:
    """Labels, a CellTable and "entered M" events from ``frame.truth``."""

    required_roles: frozenset[str] = frozenset()

    def __init__(self) -> None:
        self._last_phase: dict[int, str] = {}

    def analyze(self, frame: Frame, prediction: Prediction) -> Analysis:
        """The truth as an analysis at the prediction's resolution."""
        t = frame.truth
        if t is None:
            raise ValueError(f"frame {frame.index} carries no simulator truth")
        h, w = frame.shape
        shape = (max(1, round(h * prediction.scale)), max(1, round(w * prediction.scale)))
        labels = _resize(t.cell_labels, shape, nearest=True)
        nuclei = _resize(t.nucleus_labels, shape, nearest=True)
        c = t.cells
        phase = np.array([PHASE_CLASSES[k] for k in _PHASE_TO_CLASS[c["phase"]]], dtype=object)
        px = frame.pixel_size_um or 1.0
        n = len(c["cell_id"])
        columns = {
            "frame": np.full(n, frame.index, np.int64),
            "timestamp_s": np.full(n, frame.timestamp_ns / 1e9),
            "cell_id": c["cell_id"].astype(np.int64),
            "parent_id": c["parent_id"].astype(np.int64),
            "x": c["x"].astype(np.float64),
            "y": c["y"].astype(np.float64),
            "area_px": c["area_px"].astype(np.int64),
            "area_um2": c["area_px"] * px * px,
            "dapi_integrated": c["dapi_integrated"].astype(np.float64),
            "phase": phase,
            "phase_confidence": np.ones(n),
            "p_apoptosis": c["apoptotic"].astype(np.float64),
        }
        if "reporter_nc" in c and not np.all(np.isnan(c["reporter_nc"])):
            columns["reporter_nc_ratio"] = c["reporter_nc"].astype(np.float64)
        events = []
        for cid, ph, x, y in zip(columns["cell_id"], phase, c["x"], c["y"], strict=True):
            before = self._last_phase.get(int(cid))
            if ph == "M" and before is not None and before != "M":
                events.append(CellEvent(frame.index, int(cid), "entered M", float(x), float(y)))
            self._last_phase[int(cid)] = ph
        return Analysis(frame.index, labels, nuclei, CellTable(columns), tuple(events))


def write_session(path, *, frames: int = 12, size: int = 128, seed: int = 5, reporter=False):
    """A small simulated session with truth (for replay tests)."""
    from liveaug.session import SessionWriter
    from liveaug.sources.simulated import SimulatedMicroscope, SimulationConfig

    cfg = SimulationConfig(height=size, width=size, seed=seed).with_(biology__reporter=reporter)
    sim = SimulatedMicroscope(cfg)
    info = sim.open()
    with SessionWriter.for_source(path, info, truth=True, frame_interval_s=1 / 30) as writer:
        for _ in range(frames):
            writer.append(sim.read())
    return path


def truth_result(frame: Frame, *, scale: float = 0.5):
    """A pipeline Result for ``frame`` made from its truth."""
    from liveaug.frame import ROLES
    from liveaug.pipeline import Result

    pred = TruthPredictor(scale).predict(frame, ROLES)
    analysis = TruthAnalyzer().analyze(frame, pred)
    return Result(frame, 0, pred, analysis, {}, 0.0, 0)
