"""Image formation: transmitted light through a weak phase object, fluorescence, the camera.

Transmitted light: the cells' optical path length is a phase object (plus weak absorption); the
field is propagated to the focal plane by the angular spectrum method, cut off by the objective
pupil (NA), damped by the partial coherence of Köhler illumination, passed through the contrast
mode's pupil element (none for brightfield, a Zernike ring, a DIC shear, a tilted pupil) or read
as phase (a quantitative-phase camera), and its intensity is vignetted, shaded by the
illumination's imperfections and drifts slowly. Fluorescence: stain density blurred by a
Gaussian approximation of the widefield PSF. Both are then counted by the same camera: shot
noise at the photon budget, read noise, offset, gain, clipping and rounding to the bit depth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import scipy.fft

from liveaug.sources.simulated.config import CONTRAST_MODES, Camera, Optics


class TransmittedLight:
    """Transmitted-light imaging of a phase object for one field size and contrast mode.

    The transfer function (pupil, defocus, partial coherence and the mode's own pupil element:
    Zernike ring, DIC shear, tilted pupil) and the static illumination field are made once; each
    frame costs two FFTs.
    """

    def __init__(
        self, height: int, width: int, optics: Optics, rng: np.random.Generator | None = None
    ) -> None:
        if optics.contrast not in CONTRAST_MODES:
            raise ValueError(
                f"unknown contrast mode {optics.contrast!r}; use one of {', '.join(CONTRAST_MODES)}"
            )
        self.optics = optics
        px = optics.pixel_size_um
        lam = optics.wavelength_um
        n = optics.medium_index
        fy = scipy.fft.fftfreq(height, d=px).astype(np.float32)[:, None]
        fx = scipy.fft.fftfreq(width, d=px).astype(np.float32)[None, :]
        f2 = fx * fx + fy * fy
        ang = math.radians(optics.shear_angle_deg)
        along = fx * np.float32(math.cos(ang)) + fy * np.float32(math.sin(ang))
        cut = (optics.numerical_aperture / lam) ** 2
        if optics.contrast == "oblique":  # a tilted beam: the pupil is off-centre in object space
            f0 = min(optics.tilt_na, 0.95 * optics.numerical_aperture) / lam
            pupil = (fx + f0 * math.cos(ang)) ** 2 + (fy + f0 * math.sin(ang)) ** 2 <= cut
        else:
            pupil = f2 <= cut
        kz = np.sqrt(np.clip((n / lam) ** 2 - f2, 0, None))
        dz = optics.defocus_um
        propagate = np.exp(2j * np.pi * dz * (kz - n / lam))
        coherence = np.exp(-((np.pi * dz * optics.condenser_na / n) ** 2) * f2)
        transfer = pupil * propagate * coherence
        if optics.contrast == "phase_contrast":
            ring = f2 <= (optics.phase_ring_na / lam) ** 2
            t = optics.phase_ring_transmission
            # the undiffracted light is advanced a quarter wave and dimmed; so is object detail
            # coarse enough to pass the ring: the halo and shade-off of real phase contrast
            transfer = transfer * np.where(ring, np.complex64(1j * t), 1).astype(np.complex64)
            transfer = transfer / np.complex64(1j * t)
        elif optics.contrast == "dic":
            shift = np.pi * along * optics.dic_shear_um
            bias = np.exp(1j * optics.dic_bias_rad)
            transfer = transfer * (np.exp(1j * shift) - bias * np.exp(-1j * shift))
            transfer = transfer / abs(1 - bias)
        self.transfer = transfer.astype(np.complex64)
        self.lowpass = pupil.astype(np.float32)
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        cy, cx = height * 0.53, width * 0.48
        rr = ((yy - cy) ** 2 + (xx - cx) ** 2) / (0.25 * (height**2 + width**2))
        self.vignette = (1.0 - optics.vignetting * rr).astype(np.float32)
        if rng is not None:
            self.vignette *= illumination_field(height, width, optics, rng)
            self.debris = debris_transmission(height, width, optics, rng)
        else:
            self.debris = None
        self.k = np.float32(2 * np.pi / lam)
        self.absorb = np.float32(optics.absorption_per_um / 0.022)

    def intensity(self, opl_um: np.ndarray, time_s: float, drift_walk: float) -> np.ndarray:
        """Relative image intensity (1 = clear medium at the field centre)."""
        phase = opl_um * self.k
        o = self.optics
        if o.contrast == "qpi":  # a quantitative-phase camera: the (band-limited) phase itself
            spectrum = scipy.fft.rfft2(phase, workers=1)
            h, w = phase.shape
            spectrum *= self.lowpass[:, : w // 2 + 1]
            inten = scipy.fft.irfft2(spectrum, s=(h, w), workers=1).astype(np.float32)
            inten = np.float32(0.25) + np.float32(0.1) * inten
        else:
            amp = np.exp(opl_um * -self.absorb)
            if self.debris is not None:
                amp *= self.debris
            field = np.empty(opl_um.shape, np.complex64)
            np.multiply(amp, np.cos(phase), out=field.real)
            np.multiply(amp, np.sin(phase), out=field.imag)
            spectrum = scipy.fft.fft2(field, workers=1, overwrite_x=True)
            spectrum *= self.transfer
            img = scipy.fft.ifft2(spectrum, workers=1, overwrite_x=True)
            inten = img.real * img.real + img.imag * img.imag
        lamp = 1.0 + o.drift_amplitude * math.sin(2 * math.pi * time_s / o.drift_period_s)
        inten *= self.vignette * np.float32(lamp + drift_walk)
        return inten


def illumination_field(
    height: int, width: int, optics: Optics, rng: np.random.Generator
) -> np.ndarray:
    """Static multiplicative light field: uneven Köhler field, fringes, dust shadows, bubbles."""
    px = optics.pixel_size_um
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    field = np.ones((height, width), np.float32)
    if optics.illumination_gradient:
        a = rng.uniform(0, 2 * np.pi)
        ramp = (xx - width / 2) * math.cos(a) + (yy - height / 2) * math.sin(a)
        field *= 1.0 + optics.illumination_gradient * ramp / max(height, width)
    if optics.fringe_amplitude:
        a = rng.uniform(0, np.pi)
        phase0 = rng.uniform(0, 2 * np.pi)
        along = (xx * math.cos(a) + yy * math.sin(a)) * px
        field *= 1.0 + optics.fringe_amplitude * np.sin(
            2 * np.pi * along / optics.fringe_period_um + phase0
        )
    for _ in range(optics.dust):  # out of focus: soft shadows with a faint Fresnel ring
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        rad = rng.uniform(8.0, 40.0) / px
        r = np.hypot(yy - cy, xx - cx) / rad
        depth = rng.uniform(0.05, 0.3)
        field *= 1.0 - depth * np.exp(-(r**4)) + 0.3 * depth * np.exp(-(((r - 1.2) / 0.15) ** 2))
    for _ in range(optics.bubbles):  # a lensing disc: bright core, dark rim
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        rad = rng.uniform(25.0, 90.0) / px
        r = np.hypot(yy - cy, xx - cx) / rad
        field *= 1.0 + 0.35 * np.exp(-(r**2) * 3) - 0.7 * np.exp(-(((r - 1.0) / 0.08) ** 2))
    return np.clip(field, 0.02, None).astype(np.float32)


def debris_transmission(
    height: int, width: int, optics: Optics, rng: np.random.Generator
) -> np.ndarray | None:
    """Amplitude transmission of small in-focus particles on the dish (None without any)."""
    if not optics.debris:
        return None
    px = optics.pixel_size_um
    t = np.ones((height, width), np.float32)
    for _ in range(optics.debris):
        cy, cx = int(rng.integers(0, height)), int(rng.integers(0, width))
        rad = max(1, round(rng.uniform(0.8, 4.0) / px))
        cv2.circle(t, (cx, cy), rad, float(rng.uniform(0.2, 0.8)), -1)
    return cv2.GaussianBlur(t, (0, 0), 0.7)


def fluorescence_psf_sigma_px(optics: Optics, emission_um: float) -> float:
    """Gaussian sigma (px) approximating the widefield PSF: 0.21·λ/NA (Zhang et al. 2007)."""
    return 0.21 * emission_um / optics.numerical_aperture / optics.pixel_size_um


def blur(img: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian blur by the PSF (no-op below a tenth of a pixel)."""
    if sigma_px < 0.1:
        return img
    return cv2.GaussianBlur(img, (0, 0), sigma_px, borderType=cv2.BORDER_REFLECT)


@dataclass(frozen=True)
class SensorDefects:
    """Fixed-pattern noise of one sensor: pixel gains, column offsets (e⁻), hot pixels."""

    gain: np.ndarray
    column: np.ndarray
    hot_pixels: np.ndarray
    """Flat indices of the hot pixels."""
    hot_level: np.ndarray
    """Their reading as a fraction of full scale."""


class Sensor:
    """Photon counting and digitisation shared by every channel of the simulated camera."""

    def __init__(self, camera: Camera, rng: np.random.Generator) -> None:
        self.camera = camera
        self.rng = rng
        self.max_adu = float(2**camera.bit_depth - 1)
        self.e_per_adu = camera.full_well_e / 2**camera.bit_depth
        self.offset = camera.offset_adu * 2.0 ** (camera.bit_depth - 12)
        self.dtype = np.dtype(camera.dtype)

    def defects(self, shape: tuple[int, int], rng: np.random.Generator) -> SensorDefects | None:
        """This sensor's fixed column offsets, pixel gains and hot pixels (None when clean)."""
        cam = self.camera
        if not (cam.fixed_pattern or cam.hot_pixel_fraction):
            return None
        h, w = shape
        gain = (1.0 + cam.fixed_pattern * rng.standard_normal(shape)).astype(np.float32)
        column = (0.5 * cam.fixed_pattern * cam.photons * rng.standard_normal(w)).astype(np.float32)
        n = round(cam.hot_pixel_fraction * h * w)
        hot = rng.choice(h * w, n, replace=False) if n else np.zeros(0, np.int64)
        return SensorDefects(gain, column, hot, rng.uniform(0.3, 1.0, n).astype(np.float32))

    def expose(self, electrons: np.ndarray, defects: SensorDefects | None = None) -> np.ndarray:
        """Add shot noise (Gaussian with Poisson variance) and read noise, digitise to ADU.

        The Gaussian form of Poisson noise matches its mean and variance and is 3x cheaper;
        at the ≥ 10 e⁻ per pixel the channels here see, the difference is below the read noise.
        """
        e = np.maximum(electrons, 0, dtype=np.float32)
        if defects is not None:
            e *= defects.gain
            e += defects.column
            np.maximum(e, 0, out=e)
        sigma = np.sqrt(e + np.float32(self.camera.read_noise_e**2))
        noise = self.rng.standard_normal(e.shape, dtype=np.float32)
        noise *= sigma
        noise += e
        adu = noise
        adu *= np.float32(1.0 / self.e_per_adu)
        adu += np.float32(self.offset)
        if defects is not None:
            adu.reshape(-1)[defects.hot_pixels] = defects.hot_level * np.float32(self.max_adu)
        np.clip(adu, 0, self.max_adu, out=adu)
        return np.rint(adu).astype(self.dtype)
