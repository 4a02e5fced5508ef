"""Parameters of the simulated microscope, in physical units, with realistic defaults.

Three groups: the optics (objective, illumination, focus), the camera (photons, noise, bits) and
the biology (cell size, density, cell-cycle timing, apoptosis, the fluorescent reporter). All are
plain frozen dataclasses so a session can store them and a training job can vary them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class Optics:
    """Objective, illumination and focus of a transmitted-light brightfield microscope."""

    wavelength_um: float = 0.55
    """Centre wavelength of the (filtered) halogen/LED illumination."""
    magnification: float = 10.0
    numerical_aperture: float = 0.3
    condenser_na: float = 0.09
    """Köhler condenser aperture; larger = less coherent = less defocus contrast."""
    camera_pixel_um: float = 6.5
    """Physical pixel pitch of the sensor; sample pixel = camera_pixel_um / magnification."""
    defocus_um: float = 3.0
    """Distance of the focal plane from the cells: what makes a phase object visible."""
    medium_index: float = 1.337
    vignetting: float = 0.25
    """Relative intensity loss at the field corner."""
    drift_amplitude: float = 0.03
    """Slow relative lamp/intensity drift (sinusoid plus random walk)."""
    drift_period_s: float = 1800.0
    absorption_per_um: float = 0.004
    """Weak amplitude absorption of cytoplasm per µm of thickness."""

    @property
    def pixel_size_um(self) -> float:
        """Pixel size in the sample plane, µm."""
        return self.camera_pixel_um / self.magnification


@dataclass(frozen=True)
class Camera:
    """Sensor model: photon budget, shot and read noise, offset, digitisation."""

    bit_depth: int = 12
    photons: float = 3000.0
    """Mean photo-electrons per pixel of unobstructed brightfield at the field centre."""
    full_well_e: float = 10000.0
    """Electrons at the top of the ADC range; sets the gain (e-/ADU) for any bit depth."""
    read_noise_e: float = 2.0
    offset_adu: float = 100.0
    """Dark offset in ADU at 12 bits; scaled with the bit depth."""
    fluo_photons: float = 400.0
    """Peak photo-electrons of a G1 nucleus in the DAPI channel (other stains scaled alike)."""
    fluo_background_e: float = 12.0

    @property
    def dtype(self) -> str:
        """numpy dtype of the digitised image."""
        return "uint8" if self.bit_depth <= 8 else "uint16"


@dataclass(frozen=True)
class Biology:
    """Adherent human cells (HeLa-like): size, density, motility, cycle timing, death."""

    cell_radius_um: float = 13.0
    """Radius of a newly spread G1 cell."""
    density: float = 0.6
    """Fraction of the field covered by cells at the start: 0.1 sparse … 1.0 confluent."""
    frame_interval_s: float = 180.0
    g1_h: float = 10.0
    s_h: float = 7.0
    g2_h: float = 3.5
    m_h: float = 1.0
    max_confluence: float = 1.3
    """Coverage above which G1 cells stop cycling (contact inhibition keeps density bounded)."""
    cycle_cv: float = 0.15
    """Coefficient of variation of every phase duration."""
    apoptosis_fraction: float = 0.05
    """Fraction of cells that enter apoptosis per cell cycle."""
    initial_apoptotic_fraction: float = 0.03
    apoptosis_h: float = 3.0
    """Duration from commitment to detachment."""
    speed_um_per_min: float = 0.3
    persistence_min: float = 30.0
    reporter: bool = False
    """Add a real fluorescence channel with a tagged protein that can translocate."""
    translocation_rate_per_h: float = 0.01
    """Per-cell hazard that a cytoplasmic reporter moves into the nucleus."""
    translocation_frames: int = 4


@dataclass(frozen=True)
class SimulationConfig:
    """Everything that defines a simulated time-lapse: same config and seed, same frames."""

    height: int = 512
    width: int = 512
    seed: int = 0
    optics: Optics = field(default_factory=Optics)
    camera: Camera = field(default_factory=Camera)
    biology: Biology = field(default_factory=Biology)
    truth: bool = True
    """Render the truth stains and labels (off for a faster brightfield-only live source)."""

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict, for session metadata."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SimulationConfig:
        """Inverse of :meth:`to_dict`."""
        d = dict(d)
        return cls(
            optics=Optics(**d.pop("optics", {})),
            camera=Camera(**d.pop("camera", {})),
            biology=Biology(**d.pop("biology", {})),
            **d,
        )

    def with_(self, **changes: Any) -> SimulationConfig:
        """Copy with top-level fields or ``optics__x`` / ``camera__x`` / ``biology__x`` changed."""
        top: dict[str, Any] = {}
        groups: dict[str, dict[str, Any]] = {"optics": {}, "camera": {}, "biology": {}}
        for key, value in changes.items():
            group, sep, name = key.partition("__")
            if sep:
                groups[group][name] = value
            else:
                top[key] = value
        for group, vals in groups.items():
            if vals:
                top[group] = replace(getattr(self, group), **vals)
        return replace(self, **top)
