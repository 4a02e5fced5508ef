"""Fit a model's reliability statistics on its training distribution, and score how well they
tell foreign frames from familiar ones.

The statistics (:mod:`liveaug.reliability`) are fitted on fresh sessions drawn exactly as the
training sessions are (the clean microscope and randomly drawn ones, never the contrast mode kept
out of training), through the exported model as liveaug runs it — not on the training frames
themselves, which the network has memorised in part. No torch here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from liveaug.frame import Frame, Truth
from liveaug.reliability import DEFAULT_THRESHOLD, ReliabilityModel, fit
from liveaug.sources.simulated import SimulatedMicroscope
from liveaug.training.data import INPUT_PIXEL_UM, resampled, session_config

#: Seeds of the sessions the statistics are fitted on (apart from training, calibration,
#: quantisation and evaluation seeds).
RELIABILITY_SEED0 = 500_000


def training_like_frames(
    n_sessions: int, n_frames: int, *, size: int = 512, domains: bool = True
) -> Iterator[Frame]:
    """Frames drawn as the training frames are (``domains``: with randomly drawn microscopes),
    at the models' sampling (resampled as in training when their microscope has another pixel
    size)."""
    for i in range(n_sessions):
        config, resample = session_config(RELIABILITY_SEED0 + i, size, domains=domains)
        sim = SimulatedMicroscope(config)
        sim.open()
        for _ in range(n_frames):
            frame = sim.read()
            if resample and frame.truth is not None:
                image, dapi, membrane, labels = resampled(frame, size)
                t = frame.truth
                frame = Frame(
                    image=image,
                    index=frame.index,
                    timestamp_ns=frame.timestamp_ns,
                    bit_depth=frame.bit_depth,
                    pixel_size_um=INPUT_PIXEL_UM,
                    meta=frame.meta,
                    truth=Truth(dapi, membrane, labels.astype(np.uint32), labels * 0, t.cells),
                )
            yield frame


def fit_reliability(
    folder: Path,
    *,
    n_sessions: int = 80,
    n_frames: int = 2,
    pixels_per_frame: int = 400,
    threads: int = 2,
    threshold: float = DEFAULT_THRESHOLD,
    domains: bool = True,
    frames: Iterable[tuple[Frame, np.ndarray]] | None = None,
) -> ReliabilityModel:
    """Statistics of model ``folder``'s features: pixels from the even sessions, the score
    tables (frames and their truth cells) from the odd ones. ``frames`` (a frame and its cell
    labels, in groups of ``n_frames`` per session) replaces the simulated training-like ones:
    a model fine-tuned on a user's microscope is fitted on that microscope's frames."""
    from liveaug.inference import Predictor

    pred = Predictor([folder], threads=threads)
    rng = np.random.default_rng(0)
    pixels, feats, labels = [], [], []
    if frames is None:
        simulated = training_like_frames(n_sessions, n_frames, domains=domains)
        frames = ((f, f.truth.cell_labels) for f in simulated if f.truth is not None)
    for i, (frame, cell_labels) in enumerate(frames):
        p = pred.predict(frame, roles=("dapi",))
        if p.features is None:
            raise ValueError(f"{folder} has no features output to fit reliability on")
        if (i // n_frames) % 2 == 0:
            c = p.features.shape[0]
            flat = p.features.reshape(c, -1).T
            pixels.append(flat[rng.choice(len(flat), min(pixels_per_frame, len(flat)), False)])
        else:
            feats.append(p.features)
            labels.append(cell_labels)
    return fit(np.concatenate(pixels), feats, labels, threshold=threshold)
