"""Parameters of the simulated microscope, in physical units, with realistic defaults.

Three groups: the optics (objective, contrast mode, illumination, focus), the camera (photons,
noise, bits, sensor defects) and the biology (cell size, density, cell-cycle timing, apoptosis,
the fluorescent reporter). All are plain frozen dataclasses so a session can store them and a
training job can vary them. The defaults are a clean brightfield microscope; every imperfection a
real one adds (other contrast modes, uneven light, fringes, dust, fixed-pattern noise …) is an
option that is off by default, so models can be trained across many microscopes
(domain randomisation) and tested on settings they never saw.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

#: Transmitted-light contrast modes the simulator renders (``Optics.contrast``).
CONTRAST_MODES: tuple[str, ...] = ("brightfield", "phase_contrast", "dic", "oblique", "qpi")


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
    contrast: str = "brightfield"
    """Contrast mode, one of :data:`CONTRAST_MODES`: brightfield (defocus of either sign makes
    the phase object visible), Zernike phase contrast, DIC, oblique illumination, or a
    quantitative-phase camera (the image is the optical phase)."""
    phase_ring_na: float = 0.04
    """Phase contrast: radius of the phase ring in the pupil, in NA units; object detail coarser
    than λ / this passes the ring too, which gives halos and shade-off."""
    phase_ring_transmission: float = 0.25
    """Phase contrast: amplitude transmission of the ring (the undiffracted light is dimmed)."""
    dic_shear_um: float = 0.25
    """DIC: lateral shear between the two interfering beams."""
    dic_bias_rad: float = 0.8
    """DIC: phase bias between the beams (sets the grey level and the relief's sign)."""
    tilt_na: float = 0.15
    """Oblique illumination: tilt of the illuminating beam, NA units."""
    shear_angle_deg: float = 45.0
    """Direction of the DIC shear or of the oblique tilt."""
    illumination_gradient: float = 0.0
    """Uneven Köhler field: relative intensity change across the field (a tilted ramp)."""
    fringe_amplitude: float = 0.0
    """Interference fringes / banding: relative amplitude of straight sinusoidal bands."""
    fringe_period_um: float = 40.0
    dust: int = 0
    """Out-of-focus dust particles in the light path (soft, ringed shadows)."""
    debris: int = 0
    """Small in-focus absorbing particles on the dish (not cells)."""
    bubbles: int = 0
    """Air bubbles in the medium (large bright-cored discs with dark rims)."""

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
    fixed_pattern: float = 0.0
    """Fixed-pattern noise of the brightfield sensor: per-column offsets and per-pixel gain
    spread, as a fraction of the signal (sCMOS column noise and photo-response non-uniformity)."""
    hot_pixel_fraction: float = 0.0
    """Fraction of brightfield pixels that read far too high whatever the light (hot pixels)."""

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
    nucleus_contrast: float = 1.0
    """Refractive-index excess of the nucleus relative to the default (cell lines differ in how
    much their nuclei stand out from the cytoplasm in label-free contrast)."""
    substrate_texture_um: float = 0.0
    """Optical-path texture of the substrate or matrix under the cells (µm, rms)."""


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
