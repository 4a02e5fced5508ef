"""Reliability: unusable frames named, training-feature statistics, scores in [0, 1], gating."""

from __future__ import annotations

import numpy as np
import pytest

from liveaug.frame import Prediction, Trust
from liveaug.reliability import (
    ReliabilityModel,
    cell_descriptors,
    cell_reliability,
    fit,
    input_problem,
    survival,
    trust_warning,
)
from liveaug.sources.simulated import SimulatedMicroscope, SimulationConfig


def test_blank_flat_and_saturated_frames_are_named_and_real_frames_pass():
    assert input_problem(np.zeros((64, 64), np.uint16), 12) == "blank"
    assert input_problem(np.full((64, 64), 1000, np.uint16), 12) == "flat"
    sat = np.full((64, 64), 255, np.uint8)
    sat[:10] = 40
    assert input_problem(sat, 8) == "saturated"
    sim = SimulatedMicroscope(SimulationConfig(height=96, width=96, seed=1, truth=False))
    sim.open()
    assert input_problem(sim.read().image, 12) is None
    dim = SimulatedMicroscope(
        SimulationConfig(height=96, width=96, seed=1, truth=False).with_(camera__photons=60.0)
    )
    dim.open()
    assert input_problem(dim.read().image, 12) is None  # dim but real: the model decides


def test_survival_is_one_minus_the_rank_among_the_reference():
    ref = np.sort(np.arange(100, dtype=float))
    assert survival(ref, -1.0) == 1.0 and survival(ref, 1000.0) == 0.0
    assert survival(ref, 49.5) == pytest.approx(0.5)
    np.testing.assert_allclose(survival(ref, np.array([9.5, 89.5])), [0.9, 0.1])


def _frames(rng: np.random.Generator, n: int, shift: float = 0.0) -> list[np.ndarray]:
    """Feature maps (C=6, 16 x 16): two kinds of place (background, cell) and a shift."""
    out = []
    for _ in range(n):
        f = rng.normal(0, 1, (6, 16, 16)).astype(np.float32)
        f[:3, 4:12, 4:12] += 3.0  # a 'cell' pattern in the middle
        f[2:5] += shift
        out.append(f)
    return out


def test_familiar_frames_score_typical_and_foreign_ones_near_zero():
    rng = np.random.default_rng(0)
    train = _frames(rng, 220)
    pixels = np.concatenate([f.reshape(6, -1).T for f in train[:20]])
    labels = np.zeros((32, 32), np.int32)
    labels[8:24, 8:24] = 1  # one cell at twice the features' sampling
    model = fit(pixels, train[20:], [labels] * 200, k=3)
    familiar = [model.assess(f).frame for f in _frames(rng, 100)]
    foreign = [model.assess(f).frame for f in _frames(rng, 20, shift=2.0)]
    assert 0.3 < np.median(familiar) < 0.7
    assert max(foreign) < 0.01 and np.mean(np.array(familiar) < 0.01) <= 0.03
    trust = model.assess(_frames(rng, 1, shift=2.0)[0])
    assert trust.flagged and cell_reliability(trust, labels)[0] < 0.1
    assert "unreliable" in (trust_warning(Prediction(0, {}, 0.5, {}, "CPU", trust=trust)) or "")


def test_statistics_survive_a_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    train = _frames(rng, 10)
    model = fit(
        np.concatenate([f.reshape(6, -1).T for f in train]), train, [np.ones((8, 8), int)] * 10
    )
    back = ReliabilityModel.load(model.save(tmp_path / "r.npz"))
    f = _frames(rng, 1, shift=0.5)[0]
    assert back.assess(f).frame == model.assess(f).frame


def test_a_cell_smaller_than_a_feature_pixel_is_read_at_its_centre():
    z = np.arange(32, dtype=np.float32).reshape(2, 4, 4)  # k = 2 components on 4 x 4 places
    labels = np.zeros((32, 32), np.int32)
    labels[9, 25] = 1  # one pixel, inside feature pixel (1, 3)
    labels[16:24, 0:8] = 2  # exactly feature pixel (2, 0)
    d = cell_descriptors(z, labels)
    np.testing.assert_allclose(d, [[7, 23], [8, 24]])
    trust = Trust(0.5, 0.01, z, np.arange(0.0, 2000.0), np.zeros(2), np.eye(2, dtype=np.float32))
    rel = cell_reliability(trust, labels)
    assert rel[0] == pytest.approx(survival(np.arange(0.0, 2000.0), 7.0**2 + 23.0**2))
