"""The shipped model's reliability end to end: features, scores, unusable frames, tables."""

from __future__ import annotations

import numpy as np
import pytest
from model_support import SHIPPED

from liveaug.analysis.analyzer import Analyzer
from liveaug.frame import Frame
from liveaug.inference import Predictor
from liveaug.model_zoo import load_model
from liveaug.sources.simulated import SimulatedMicroscope, SimulationConfig


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor([SHIPPED], threads=1)


def _frame(seed: int = 42, **options: object) -> Frame:
    sim = SimulatedMicroscope(SimulationConfig(height=256, width=256, seed=seed).with_(**options))
    sim.open()
    return sim.read()


def test_the_shipped_model_exports_features_and_carries_reliability_statistics(predictor):
    spec = load_model(SHIPPED)
    assert spec.features == "features" and spec.reliability is not None
    assert spec.reliability.is_file() and spec.feature_scale == pytest.approx(1 / 8)
    pred = predictor.predict(_frame())
    assert pred.features is not None and pred.features.shape[1:] == (32, 32)
    assert pred.trust is not None and 0.0 <= pred.trust.frame <= 1.0
    assert not pred.trust.flagged  # a frame from the clean microscope it was trained on


def test_a_foreign_image_is_flagged_and_its_cells_scored_low(predictor):
    # a fluorescence-like image (dark background, bright blobs) is nothing like brightfield
    rng = np.random.default_rng(0)
    img = np.full((256, 256), 100.0, np.float32)
    for y, x in rng.integers(10, 246, (40, 2)):
        yy, xx = np.mgrid[:256, :256]
        img += 3000 * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / 60.0)
    frame = Frame(
        (img + rng.normal(0, 5, img.shape)).astype(np.uint16),
        0,
        0,
        bit_depth=12,
        pixel_size_um=0.65,
    )
    pred = predictor.predict(frame)
    assert pred.trust is not None and pred.trust.flagged
    cells = Analyzer(rules=[]).analyze(frame, pred).cells
    familiar = _frame(7)
    usual = Analyzer(rules=[]).analyze(familiar, predictor.predict(familiar)).cells
    if len(cells):  # whatever 'cells' it finds there score below the cells of a familiar frame
        assert np.median(cells["reliability"]) < 0.5 * np.median(usual["reliability"])


@pytest.mark.parametrize(
    "image,problem",
    [
        (np.zeros((256, 256), np.uint16), "blank"),
        (np.full((256, 256), 2000, np.uint16), "flat"),
        (np.full((256, 256), 4095, np.uint16), "saturated"),
    ],
)
def test_blank_flat_and_saturated_frames_give_no_cells(predictor, image, problem):
    frame = Frame(image, 0, 0, bit_depth=12, pixel_size_um=0.65)
    pred = predictor.predict(frame)
    assert pred.input_problem == problem
    assert pred.trust is not None and pred.trust.frame == 0.0 and pred.trust.flagged
    assert float(pred.maps["dapi"].max()) == 0.0
    analysis = Analyzer(rules=[]).analyze(frame, pred)
    assert len(analysis.cells) == 0 and int(analysis.labels.max()) == 0


def test_tables_carry_each_cells_and_the_frames_reliability(predictor):
    frame = _frame(7)
    pred = predictor.predict(frame)
    cells = Analyzer(rules=[]).analyze(frame, pred).cells
    assert len(cells) > 5
    rel, frame_rel = cells["reliability"], cells["frame_reliability"]
    assert ((rel >= 0) & (rel <= 1)).all() and np.median(rel) > 0.05
    assert (frame_rel == pred.trust.frame).all()
    assert cells.units["reliability"] == "1"


def test_real_images_from_other_instruments_are_all_flagged(predictor):
    from liveaug.errors import LiveaugError
    from liveaug.foreign import IMAGES, foreign_report

    familiar = [predictor.predict(_frame(seed)).trust.frame for seed in (1, 2, 3, 4)]
    try:
        report = foreign_report(predictor, familiar)
    except LiveaugError as exc:
        pytest.skip(f"real images cannot be fetched: {exc}")
    assert set(report["images"]) == {name for name, *_ in IMAGES}
    assert report["flagged_fraction"] == 1.0 and report["auroc"] == 1.0
