"""Nuclei from a nucleus map: touching nuclei split, dim nuclei kept, one path for counts."""

from __future__ import annotations

import numpy as np
import pytest

from liveaug.analysis.evaluate import match_instances
from liveaug.analysis.nuclei import NucleusParams, normalise_counts, segment_nuclei
from liveaug.analysis.nuclei_eval import baseline_nuclei, components_nuclei, f1_at_05

PX = 0.5  # µm per pixel: nuclei of radius 5 µm are 10 px


def _blobs(shape, spots) -> tuple[np.ndarray, np.ndarray]:
    """A nucleus map (soft-edged ellipses, value = brightness) and its truth labels."""
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float32)
    img = np.zeros(shape, np.float32)
    lab = np.zeros(shape, np.int32)
    for i, (x, y, rx, ry, level) in enumerate(spots, 1):
        r = np.sqrt(((xx - x) / rx) ** 2 + ((yy - y) / ry) ** 2)
        img = np.maximum(img, level / (1 + np.exp(np.minimum((r - 1) * 12, 50))))
        lab[(r <= 1) & (lab == 0)] = i
    return img, lab


def test_touching_nuclei_are_split_where_one_threshold_merges_them():
    img, truth = _blobs((80, 100), [(35, 40, 10, 10, 1.0), (53, 40, 10, 10, 1.0)])
    found = segment_nuclei(img, pixel_size_um=PX)
    assert found.max() == 2
    assert f1_at_05(found, truth)["f1"] == 1.0
    assert components_nuclei(img * 1000 + 100, pixel_size_um=PX).max() == 1


def test_an_elongated_or_kidney_shaped_nucleus_stays_whole():
    img, _ = _blobs((80, 120), [(60, 40, 24, 8, 1.0)])
    assert segment_nuclei(img, pixel_size_um=PX).max() == 1


def test_dim_nuclei_beside_bright_ones_are_kept():
    spots = [(25, 30, 10, 10, 1.0), (75, 30, 10, 10, 1.0), (50, 70, 10, 10, 0.12)]
    img, truth = _blobs((100, 100), spots)
    rng = np.random.default_rng(0)
    img = img + rng.normal(0, 0.01, img.shape).astype(np.float32)
    found = segment_nuclei(img, pixel_size_um=PX)
    assert f1_at_05(found, truth)["f1"] == 1.0
    global_only = segment_nuclei(img, pixel_size_um=PX, params=NucleusParams(local_fraction=0))
    pairs, _, _ = match_instances(global_only, truth)
    assert 3 not in pairs[:, 1]  # one global threshold loses the dim one


def test_camera_counts_take_the_same_path_as_model_units():
    spots = [(25, 30, 10, 10, 1.0), (43, 30, 10, 10, 1.0), (70, 70, 12, 9, 0.3)]
    img, truth = _blobs((100, 100), spots)
    rng = np.random.default_rng(1)
    counts = rng.poisson(img * 2000 + 400).astype(np.float32)  # offset, gain, shot noise
    norm = normalise_counts(counts, sigma_px=2.0)
    assert abs(float(np.median(norm[truth == 0]))) < 0.05
    found = segment_nuclei(counts, pixel_size_um=PX, counts=True)
    assert f1_at_05(found, truth)["f1"] == 1.0
    # the textbook Otsu + distance-transform watershed splits the pair but loses the dim one
    base = f1_at_05(baseline_nuclei(counts, pixel_size_um=PX), truth)
    assert base["precision"] == 1.0 and base["recall"] == pytest.approx(2 / 3)


@pytest.mark.parametrize("px", [0.25, 1.0])
def test_settings_in_micrometres_hold_at_other_pixel_sizes(px):
    k = PX / px  # the same sample at a finer or coarser sampling
    spots = [(35 * k, 40 * k, 10 * k, 10 * k, 1.0), (53 * k, 40 * k, 10 * k, 10 * k, 1.0)]
    img, truth = _blobs((round(80 * k), round(100 * k)), spots)
    assert f1_at_05(segment_nuclei(img, pixel_size_um=px), truth)["f1"] == 1.0
