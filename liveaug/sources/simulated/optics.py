"""Image formation: brightfield of a weak phase object out of focus, fluorescence, the camera.

Brightfield: the cells' optical path length is a phase object (plus weak absorption); the field
is propagated to the focal plane by the angular spectrum method, cut off by the objective pupil
(NA), damped by the partial coherence of Köhler illumination, and its intensity is vignetted and
drifts slowly. Fluorescence: stain density blurred by a Gaussian approximation of the widefield
PSF. Both are then counted by the same camera: shot noise at the photon budget, read noise, offset,
gain, clipping and rounding to the bit depth.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import scipy.fft

from liveaug.sources.simulated.config import Camera, Optics


class Brightfield:
    """Angular-spectrum brightfield imaging for one field size (transfer function cached)."""

    def __init__(self, height: int, width: int, optics: Optics) -> None:
        self.optics = optics
        px = optics.pixel_size_um
        lam = optics.wavelength_um
        n = optics.medium_index
        fy = scipy.fft.fftfreq(height, d=px).astype(np.float32)[:, None]
        fx = scipy.fft.fftfreq(width, d=px).astype(np.float32)[None, :]
        f2 = fx * fx + fy * fy
        pupil = f2 <= (optics.numerical_aperture / lam) ** 2
        kz = np.sqrt(np.clip((n / lam) ** 2 - f2, 0, None))
        dz = optics.defocus_um
        propagate = np.exp(2j * np.pi * dz * (kz - n / lam))
        coherence = np.exp(-((np.pi * dz * optics.condenser_na / n) ** 2) * f2)
        self.transfer = (pupil * propagate * coherence).astype(np.complex64)
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        cy, cx = height * 0.53, width * 0.48
        rr = ((yy - cy) ** 2 + (xx - cx) ** 2) / (0.25 * (height**2 + width**2))
        self.vignette = (1.0 - optics.vignetting * rr).astype(np.float32)
        self.k = np.float32(2 * np.pi / lam)
        self.absorb = np.float32(optics.absorption_per_um / 0.022)

    def intensity(self, opl_um: np.ndarray, time_s: float, drift_walk: float) -> np.ndarray:
        """Relative brightfield intensity (1 = clear medium at the field centre)."""
        phase = opl_um * self.k
        amp = np.exp(opl_um * -self.absorb)
        field = np.empty(opl_um.shape, np.complex64)
        np.multiply(amp, np.cos(phase), out=field.real)
        np.multiply(amp, np.sin(phase), out=field.imag)
        spectrum = scipy.fft.fft2(field, workers=1, overwrite_x=True)
        spectrum *= self.transfer
        img = scipy.fft.ifft2(spectrum, workers=1, overwrite_x=True)
        inten = img.real * img.real + img.imag * img.imag
        o = self.optics
        lamp = 1.0 + o.drift_amplitude * math.sin(2 * math.pi * time_s / o.drift_period_s)
        inten *= self.vignette * np.float32(lamp + drift_walk)
        return inten


def fluorescence_psf_sigma_px(optics: Optics, emission_um: float) -> float:
    """Gaussian sigma (px) approximating the widefield PSF: 0.21·λ/NA (Zhang et al. 2007)."""
    return 0.21 * emission_um / optics.numerical_aperture / optics.pixel_size_um


def blur(img: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian blur by the PSF (no-op below a tenth of a pixel)."""
    if sigma_px < 0.1:
        return img
    return cv2.GaussianBlur(img, (0, 0), sigma_px, borderType=cv2.BORDER_REFLECT)


class Sensor:
    """Photon counting and digitisation shared by every channel of the simulated camera."""

    def __init__(self, camera: Camera, rng: np.random.Generator) -> None:
        self.camera = camera
        self.rng = rng
        self.max_adu = float(2**camera.bit_depth - 1)
        self.e_per_adu = camera.full_well_e / 2**camera.bit_depth
        self.offset = camera.offset_adu * 2.0 ** (camera.bit_depth - 12)
        self.dtype = np.dtype(camera.dtype)

    def expose(self, electrons: np.ndarray) -> np.ndarray:
        """Add shot noise (Gaussian with Poisson variance) and read noise, digitise to ADU.

        The Gaussian form of Poisson noise matches its mean and variance and is 3x cheaper;
        at the ≥ 10 e⁻ per pixel the channels here see, the difference is below the read noise.
        """
        e = np.maximum(electrons, 0, dtype=np.float32)
        sigma = np.sqrt(e + np.float32(self.camera.read_noise_e**2))
        noise = self.rng.standard_normal(e.shape, dtype=np.float32)
        noise *= sigma
        noise += e
        adu = noise
        adu *= np.float32(1.0 / self.e_per_adu)
        adu += np.float32(self.offset)
        np.clip(adu, 0, self.max_adu, out=adu)
        return np.rint(adu).astype(self.dtype)
