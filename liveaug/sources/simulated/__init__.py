"""The simulated microscope: physics-based brightfield of a living, dividing, dying culture."""

from liveaug.sources.simulated.biology import APOPTOSIS_STAGES, PHASES, REPORTER_CLASSES
from liveaug.sources.simulated.config import Biology, Camera, Optics, SimulationConfig
from liveaug.sources.simulated.microscope import REPORTER, SimulatedMicroscope
from liveaug.sources.simulated.truth import TRUTH_COLUMNS

__all__ = [
    "APOPTOSIS_STAGES",
    "PHASES",
    "REPORTER",
    "REPORTER_CLASSES",
    "TRUTH_COLUMNS",
    "Biology",
    "Camera",
    "Optics",
    "SimulatedMicroscope",
    "SimulationConfig",
]
