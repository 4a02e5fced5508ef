"""Plain data that crosses boundaries: frames and the simulator's ground truth.

No Qt, no GL, no I/O here: these objects move between the acquisition thread, the recorder, the
compute worker and the viewer, so they are immutable (frozen) and hold numpy arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

Clock = Literal["device", "host"]


@dataclass(frozen=True, slots=True)
class Truth:
    """Simulator ground truth for one frame (absent for real cameras).

    ``dapi`` and ``membrane`` are the noisy, digitised fluorescence images a real stain would give
    (same PSF and noise model as a real fluorescence channel); ``cell_labels`` and
    ``nucleus_labels`` are ``(H, W) uint32`` instance labels, 0 = background, a nucleus carries
    its cell's id (fragments of an apoptotic nucleus share it); ``cells`` is the per-cell truth
    table as columns of equal length (see ``liveaug.sources.simulated.TRUTH_COLUMNS``).
    """

    dapi: np.ndarray
    membrane: np.ndarray
    cell_labels: np.ndarray
    nucleus_labels: np.ndarray
    cells: dict[str, np.ndarray]


@dataclass(frozen=True, slots=True)
class Frame:
    """One acquired brightfield frame and what came with it.

    Attributes
    ----------
    image : (H, W) ndarray
        Brightfield intensity, uint8 or uint16 as digitised (12-bit data stays in uint16 with
        ``bit_depth=12``), or float32.
    index : int
        Frame number from the source (camera frame id, session frame, simulator step).
    timestamp_ns : int
        Acquisition time in nanoseconds on the clock named by ``clock``: the device clock when the
        camera provides one, the host's monotonic clock otherwise.
    pixel_format : str
        GenICam name of the format the pixels arrived in (``Mono8``, ``Mono12p``, ``BayerRG8`` …).
    bit_depth : int
        Significant bits per pixel of ``image``.
    pixel_size_um : float or None
        Size of one pixel in the sample plane, µm (None when unknown).
    channels : dict of str to (H, W) ndarray
        Real fluorescence channels recorded beside brightfield, by name.
    meta : dict
        Per-frame acquisition settings (exposure_us, gain_db, …) as plain JSON-able values.
    truth : Truth or None
        Ground truth when the frame comes from the simulator (or a simulated session).
    """

    image: np.ndarray
    index: int
    timestamp_ns: int
    clock: Clock = "host"
    pixel_format: str = "Mono16"
    bit_depth: int = 16
    pixel_size_um: float | None = None
    channels: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    truth: Truth | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of the brightfield image."""
        return self.image.shape[0], self.image.shape[1]


#: Roles a predictor can fill; the pipeline asks only for the roles that are switched on.
ROLES: tuple[str, ...] = ("dapi", "membrane", "phase", "apoptosis")
#: Classes of the ``phase`` map, in channel order.
PHASE_CLASSES: tuple[str, ...] = ("background", "G1", "S", "G2", "M")


@dataclass(frozen=True, slots=True)
class Trust:
    """How like the model's training frames one frame is (:mod:`liveaug.reliability`).

    ``frame`` is the frame's reliability in [0, 1] (the fraction of training frames less like
    the training data than this one); below ``threshold`` the frame is flagged. ``projected``
    ``(k, h', w')`` holds the frame's whitened principal feature components; ``cell_mean``,
    ``cell_precision`` and the sorted ``cell_reference`` scores turn a cell's mean of them into
    its reliability.
    """

    frame: float
    threshold: float
    projected: np.ndarray | None = None
    cell_reference: np.ndarray | None = None
    cell_mean: np.ndarray | None = None
    cell_precision: np.ndarray | None = None

    @property
    def flagged(self) -> bool:
        """Below the model card's threshold: the answer should not be trusted."""
        return self.frame < self.threshold


@dataclass(frozen=True, slots=True)
class Prediction:
    """What the models made of one frame, at model resolution.

    ``maps`` holds, per requested role: ``dapi`` and ``membrane`` as ``(h, w) float32`` virtual
    stains (normalised intensity), ``phase`` as ``(5, h, w) float32`` probabilities over
    :data:`PHASE_CLASSES`, ``apoptosis`` as ``(h, w) float32`` probability. ``scale`` is model
    pixels per frame pixel (0.5 when the frame was binned 2x); the viewer upsamples on the GPU.
    ``models`` maps each role to the model (name and sha256 prefix, and the test-time views
    when more than one) that made it. ``features`` ``(C, h', w')`` is what the network saw at
    each place (``feature_scale`` feature pixels per frame pixel), when its model exports them;
    ``trust`` says how like the model's training frames this frame is (None when the model
    carries no statistics); ``input_problem`` names a frame with no usable image ("blank",
    "flat", "saturated"): its maps are empty and its reliability 0.
    """

    frame_index: int
    maps: dict[str, np.ndarray]
    scale: float
    models: dict[str, str]
    provider: str
    timings_ms: dict[str, float] = field(default_factory=dict)
    features: np.ndarray | None = None
    feature_scale: float = 0.0
    trust: Trust | None = None
    input_problem: str | None = None


@dataclass(frozen=True, slots=True)
class CellTable:
    """Per-cell readouts of one frame (or many), as equal-length numpy columns.

    Columns follow the analysis issue: ``frame, timestamp_s, cell_id, parent_id, x, y, area_px,
    area_um2, …, dapi_mean, dapi_integrated, membrane_mean, phase, phase_confidence,
    p_apoptosis`` plus ``<channel>_mean / _integrated / _nc_ratio`` per real fluorescence
    channel. ``x``/``y`` are in frame pixels; ``phase`` is a string from :data:`PHASE_CLASSES`.
    ``units`` maps column → unit for export.
    """

    columns: dict[str, np.ndarray]
    units: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    def to_pandas(self) -> Any:
        """A pandas DataFrame (pandas imported only here); ``parent_id`` is nullable there, NA
        for "no parent" (0 inside, where ids start at 1; in a table 0 reads like a cell id)."""
        import pandas as pd

        df = pd.DataFrame(self.columns)
        if "parent_id" in df and df["parent_id"].dtype.kind in "iu":
            df["parent_id"] = df["parent_id"].astype("Int64").mask(df["parent_id"] <= 0)
        return df


@dataclass(frozen=True, slots=True)
class CellEvent:
    """A rule fired for a tracked cell (entered M, apoptosis for 3 frames, translocation …)."""

    frame_index: int
    cell_id: int
    rule: str
    x: float
    y: float
    message: str = ""


@dataclass(frozen=True, slots=True)
class Analysis:
    """Cells found in one frame: labels at model resolution, their readouts, fired events.

    ``labels`` and ``nuclei`` are ``(h, w) uint32`` at the prediction's resolution whose values
    are the tracked ``cell_id`` of :attr:`cells` (0 = background).
    """

    frame_index: int
    labels: np.ndarray
    nuclei: np.ndarray
    cells: CellTable
    events: tuple[CellEvent, ...] = ()
    timings_ms: dict[str, float] = field(default_factory=dict)
