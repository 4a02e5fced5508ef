"""Training data from the simulated microscope: wide settings, cached as arrays.

Every session draws its own optics, camera and biology from wide ranges (defocus, photon budget,
illumination, density, bit depth, pixel size …) so the models cannot learn one setting by heart.
Frames are prepared exactly as the inference engine prepares them (:mod:`liveaug.preprocess`)
at the frame's own sampling; the targets are binned to the models' output sampling and put on
physical scales that do not depend on the camera:

- ``dapi`` / ``membrane``: background-subtracted photo-electrons over the stain's peak photons;
- ``phase``: 0 background, 1..4 = G1, S, G2, M, 255 = ignore (apoptotic cells: their phase is
  frozen and no longer visible);
- ``apoptosis``: 1 inside apoptotic cells, 0 elsewhere.

No torch here: generation runs in plain worker processes and the cache is one ``.npz`` file.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from liveaug.frame import Frame
from liveaug.preprocess import bin_image, bin_labels, zero_mean_unit_variance
from liveaug.sources.simulated import SimulatedMicroscope, SimulationConfig

#: Input pixels per output pixel: the models take frames at 0.65 µm/px and answer at 1.3 µm/px
#: (the network's stride-2 stem), so the targets are binned by this factor.
BIN = 2
#: Input pixel size the shipped models are trained for (µm/px, the simulator's sampling).
INPUT_PIXEL_UM = 0.65
IGNORE = 255
#: Seeds of training sessions start here; evaluation uses seeds below it (never trained on).
TRAIN_SEED0 = 100_000

#: Ranges the training settings are drawn from (documented in the model card).
TRAIN_RANGES: dict[str, tuple[float, float]] = {
    "defocus_um": (1.0, 5.0),
    "photons": (1000.0, 8000.0),
    "magnification": (8.5, 12.5),
    "condenser_na": (0.06, 0.14),
    "vignetting": (0.0, 0.4),
    "drift_amplitude": (0.0, 0.06),
    "density": (0.15, 1.0),
    "cell_radius_um": (12.0, 14.0),
    "read_noise_e": (1.5, 4.0),
    "offset_adu": (50.0, 200.0),
    "m_h": (1.0, 2.0),
    "initial_apoptotic_fraction": (0.03, 0.15),
    "apoptosis_fraction": (0.05, 0.2),
}
BIT_DEPTHS = (8, 12, 16)
#: The shifted test setting: defocus twice the trained maximum, a quarter of the least light.
SHIFTED = {"optics__defocus_um": 10.0, "camera__photons": 250.0}

#: Contrast modes of the domain-randomised sessions and how often each is drawn. DIC is kept out
#: of training entirely, so the models can be reported on an optics family they never saw.
DOMAIN_CONTRASTS: dict[str, float] = {
    "brightfield": 0.5,
    "phase_contrast": 0.17,
    "oblique": 0.17,
    "qpi": 0.16,
}
NEVER_SEEN_CONTRAST = "dic"
#: Fraction of training sessions drawn from :func:`sample_config` (the clean brightfield
#: microscope the in-distribution figures are measured on); the rest from
#: :func:`sample_domain_config`.
CLEAN_FRACTION = 0.35


def sample_domain_config(
    rng: np.random.Generator,
    *,
    seed: int,
    size: int = 512,
    contrast: str | None = None,
    magnification: float | None = None,
) -> SimulationConfig:
    """A session from a randomly drawn microscope: contrast mode, focus of either sign, uneven
    light, fringes, dust, debris, bubbles, sensor defects, 8–16 bit, 150–12000 photons,
    cell size and nuclear contrast, textured substrates, 0.43–0.93 µm/px.

    ``size`` is the field at the models' input sampling (:data:`INPUT_PIXEL_UM`): the session
    is simulated at its own pixel size over the same field and :func:`prepare` resamples it.
    """
    base = sample_config(rng, seed=seed, size=size)
    modes = list(DOMAIN_CONTRASTS)
    mode = contrast or str(rng.choice(modes, p=list(DOMAIN_CONTRASTS.values())))

    def maybe(p: float, lo: float, hi: float) -> float:
        return float(rng.uniform(lo, hi)) if rng.random() < p else 0.0

    sign = 1.0 if rng.random() < 0.5 else -1.0
    defocus = {
        "brightfield": sign * float(rng.uniform(0.7, 6.0)),
        "phase_contrast": float(rng.uniform(-1.0, 1.0)),
        "dic": float(rng.uniform(-1.0, 1.0)),
        "oblique": float(rng.uniform(-1.5, 1.5)),
        "qpi": 0.0,
    }[mode]
    drawn = float(rng.uniform(7.0, 15.0))
    magnification = drawn if magnification is None else magnification
    sim_size = math.ceil(size * INPUT_PIXEL_UM * magnification / base.optics.camera_pixel_um)
    return base.with_(
        height=sim_size,
        width=sim_size,
        optics__contrast=mode,
        optics__defocus_um=defocus,
        optics__magnification=magnification,
        optics__phase_ring_na=float(rng.uniform(0.02, 0.06)),
        optics__phase_ring_transmission=float(rng.uniform(0.25, 0.6)),
        optics__tilt_na=float(rng.uniform(0.1, 0.28)),
        optics__shear_angle_deg=float(rng.uniform(0, 360)),
        optics__vignetting=float(rng.uniform(0.0, 0.7)),
        optics__illumination_gradient=maybe(0.5, 0.0, 0.8),
        optics__fringe_amplitude=maybe(0.25, 0.02, 0.15),
        optics__fringe_period_um=float(rng.uniform(10.0, 80.0)),
        optics__dust=int(rng.integers(1, 6)) if rng.random() < 0.3 else 0,
        optics__debris=int(rng.integers(5, 60)) if rng.random() < 0.3 else 0,
        optics__bubbles=int(rng.integers(1, 3)) if rng.random() < 0.1 else 0,
        camera__photons=float(math.exp(rng.uniform(math.log(150.0), math.log(12000.0)))),
        camera__fixed_pattern=maybe(0.3, 0.005, 0.05),
        camera__hot_pixel_fraction=maybe(0.3, 1e-4, 2e-3),
        biology__nucleus_contrast=float(rng.uniform(0.4, 1.6)),
        biology__substrate_texture_um=maybe(0.3, 0.005, 0.04),
        biology__cell_radius_um=float(rng.uniform(8.0, 18.0)),
        biology__density=float(rng.uniform(0.05, 1.0)),
    )


def sample_config(rng: np.random.Generator, *, seed: int, size: int = 512) -> SimulationConfig:
    """One training session's settings, drawn from :data:`TRAIN_RANGES`."""
    r = TRAIN_RANGES

    def uni(key: str) -> float:
        return float(rng.uniform(*r[key]))

    def loguni(key: str) -> float:
        lo, hi = r[key]
        return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))

    return SimulationConfig(height=size, width=size, seed=seed).with_(
        optics__defocus_um=uni("defocus_um"),
        optics__magnification=uni("magnification"),
        optics__condenser_na=uni("condenser_na"),
        optics__vignetting=uni("vignetting"),
        optics__drift_amplitude=uni("drift_amplitude"),
        camera__photons=loguni("photons"),
        camera__bit_depth=int(rng.choice(BIT_DEPTHS, p=(0.2, 0.5, 0.3))),
        camera__read_noise_e=uni("read_noise_e"),
        camera__offset_adu=uni("offset_adu"),
        biology__density=uni("density"),
        biology__cell_radius_um=uni("cell_radius_um"),
        biology__m_h=uni("m_h"),
        biology__initial_apoptotic_fraction=uni("initial_apoptotic_fraction"),
        biology__apoptosis_fraction=uni("apoptosis_fraction"),
        biology__frame_interval_s=1200.0,
    )


def domain_eval_config(seed: int, contrast: str, *, size: int = 512) -> SimulationConfig:
    """A held-out session of a randomly drawn microscope in one contrast mode, at the models'
    own sampling (10x, 0.65 µm/px), for the per-mode figures of the model card."""
    if seed >= TRAIN_SEED0:
        raise ValueError(f"seed {seed} is in the training range (≥ {TRAIN_SEED0})")
    rng = np.random.default_rng([seed, 17])
    return sample_domain_config(
        rng, seed=seed, size=size, contrast=contrast, magnification=10.0
    ).with_(biology__frame_interval_s=1200.0)


def eval_config(seed: int, *, shifted: bool = False, size: int = 512) -> SimulationConfig:
    """A held-out session at the simulator's defaults (or the shifted setting)."""
    if seed >= TRAIN_SEED0:
        raise ValueError(f"seed {seed} is in the training range (≥ {TRAIN_SEED0})")
    cfg = SimulationConfig(height=size, width=size, seed=seed).with_(
        biology__frame_interval_s=1200.0
    )
    return cfg.with_(**SHIFTED) if shifted else cfg


@dataclass(frozen=True)
class Sample:
    """One frame prepared for training: ``x`` at frame sampling, targets binned by :data:`BIN`."""

    x: np.ndarray
    dapi: np.ndarray
    membrane: np.ndarray
    phase: np.ndarray
    apoptosis: np.ndarray


def stain_scale(config: SimulationConfig) -> tuple[float, float, float]:
    """(offset ADU, e⁻ per ADU, background e⁻) of the simulated camera."""
    cam = config.camera
    e_per_adu = cam.full_well_e / 2**cam.bit_depth
    offset = cam.offset_adu * 2.0 ** (cam.bit_depth - 12)
    return offset, e_per_adu, cam.fluo_background_e


def resampled(frame: Frame, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(image, DAPI, membrane, cell labels) of a frame resampled to :data:`INPUT_PIXEL_UM` and
    cut to ``size`` × ``size`` from the centre — what inference feeds a frame of that sampling."""
    t = frame.truth
    assert t is not None
    ratio = (frame.pixel_size_um or INPUT_PIXEL_UM) / INPUT_PIXEL_UM
    out = []
    for img, interp in (
        (frame.image, None),
        (t.dapi, None),
        (t.membrane, None),
        (t.cell_labels, cv2.INTER_NEAREST),
    ):
        h, w = img.shape
        nh, nw = max(size, round(h * ratio)), max(size, round(w * ratio))
        if interp is None:
            interp = cv2.INTER_AREA if ratio < 1 else cv2.INTER_LINEAR
            img = img.astype(np.float32)
        else:
            img = img.astype(np.int32)
        r = cv2.resize(img, (nw, nh), interpolation=interp)
        y0, x0 = (nh - size) // 2, (nw - size) // 2
        out.append(r[y0 : y0 + size, x0 : x0 + size])
    return out[0], out[1], out[2], out[3]


def prepare(
    frame: Frame, config: SimulationConfig, factor: int = BIN, *, size: int | None = None
) -> Sample:
    """Normalised input and binned, physical-scale targets for one simulated frame; with
    ``size``, resampled to the models' input sampling first and cut to ``size`` × ``size``."""
    t = frame.truth
    if t is None:
        raise ValueError("frame has no truth")
    if size is not None:
        image, dapi_img, mem_img, lab_img = resampled(frame, size)
    else:
        image, dapi_img, mem_img, lab_img = frame.image, t.dapi, t.membrane, t.cell_labels
    x = zero_mean_unit_variance(image)
    offset, e_per_adu, bg = stain_scale(config)
    peak = config.camera.fluo_photons

    def stain(img: np.ndarray, scale: float) -> np.ndarray:
        e = (bin_image(img, factor) - np.float32(offset)) * np.float32(e_per_adu) - np.float32(bg)
        return e / np.float32(peak * scale)

    labels = bin_labels(lab_img, factor)
    cells = t.cells
    n = int(labels.max()) + 1
    ids = cells["cell_id"].astype(np.int64)
    keep = ids < n
    phase_lut = np.zeros(max(n, 1), np.uint8)
    apo_lut = np.zeros(max(n, 1), np.uint8)
    phase_lut[ids[keep]] = np.where(cells["apoptotic"][keep], IGNORE, cells["phase"][keep] + 1)
    apo_lut[ids[keep]] = cells["apoptotic"][keep].astype(np.uint8)
    return Sample(
        x=x,
        dapi=stain(dapi_img, 1.0),
        membrane=stain(mem_img, 0.2),
        phase=phase_lut[labels],
        apoptosis=apo_lut[labels],
    )


def session_config(seed: int, size: int, domains: bool) -> tuple[SimulationConfig, bool]:
    """The settings of training session ``seed`` and whether its frames are resampled: with
    ``domains``, a :data:`CLEAN_FRACTION` of sessions from the clean microscope (used as they
    come, as before) and the rest from randomly drawn ones (resampled to the models' sampling)."""
    rng = np.random.default_rng(seed)
    if domains and np.random.default_rng([seed, 1]).random() >= CLEAN_FRACTION:
        return sample_domain_config(rng, seed=seed, size=size), True
    return sample_config(rng, seed=seed, size=size), False


def _session(args: tuple[int, int, int, bool]) -> list[Sample]:
    """All frames of one training session (runs in a worker process)."""
    seed, frames, size, domains = args
    config, resample = session_config(seed, size, domains)
    sim = SimulatedMicroscope(config)
    sim.open()
    return [prepare(sim.read(), config, size=size if resample else None) for _ in range(frames)]


def iter_sessions(
    n_sessions: int,
    frames: int,
    *,
    size: int = 512,
    workers: int = 2,
    seed0: int = TRAIN_SEED0,
    domains: bool = False,
) -> Iterator[list[Sample]]:
    """Generate training sessions in ``workers`` processes (one thread each), in seed order."""
    jobs = [(seed0 + i, frames, size, domains) for i in range(n_sessions)]
    if workers <= 1:
        yield from map(_session, jobs)
        return
    with ProcessPoolExecutor(workers) as pool:
        yield from pool.map(_session, jobs, chunksize=2)


def build_cache(
    path: Path,
    n_sessions: int,
    frames: int,
    *,
    size: int = 512,
    workers: int = 2,
    seed0: int = TRAIN_SEED0,
    domains: bool = False,
    on_session: object = None,
) -> Path:
    """Simulate ``n_sessions × frames`` frames and store them as one compressed ``.npz``
    (``domains``: mix in randomly drawn microscopes, :func:`session_config`)."""
    xs, dapi, mem, phase, apo = [], [], [], [], []
    sessions = iter_sessions(
        n_sessions, frames, size=size, workers=workers, seed0=seed0, domains=domains
    )
    for samples in sessions:
        for s in samples:
            xs.append(s.x.astype(np.float16))
            dapi.append(s.dapi.astype(np.float16))
            mem.append(s.membrane.astype(np.float16))
            phase.append(s.phase)
            apo.append(s.apoptosis)
        if callable(on_session):
            on_session()
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        x=np.stack(xs),
        dapi=np.stack(dapi),
        membrane=np.stack(mem),
        phase=np.stack(phase),
        apoptosis=np.stack(apo),
        meta=np.array([n_sessions, frames, size, seed0], np.int64),
    )
    return path


def load_cache(path: Path) -> dict[str, np.ndarray]:
    """The arrays written by :func:`build_cache`."""
    with np.load(path) as z:
        return {k: z[k] for k in z.files}
