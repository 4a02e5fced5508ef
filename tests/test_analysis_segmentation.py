"""Segmentation from virtual stains: accuracy on truth-derived maps, hard cells, µm parameters."""

from __future__ import annotations

import numpy as np
import pytest
from analysis_support import sim_frames

from liveaug.analysis.evaluate import match_instances
from liveaug.analysis.segmentation import SegmentParams, segment, upsample_labels


def _f1(frames, params=None) -> tuple[float, list]:
    tp = n_pred = n_true = 0
    segs = []
    for f, p in frames:
        s = segment(
            p.maps["dapi"],
            p.maps["membrane"],
            pixel_size_um=f.pixel_size_um / p.scale,
            params=params,
        )
        up = upsample_labels(s.labels, p.scale, f.shape)
        pairs, a, b = match_instances(up, f.truth.cell_labels)
        tp, n_pred, n_true = tp + len(pairs), n_pred + a, n_true + b
        segs.append((f, up, s))
    return 2 * tp / (n_pred + n_true), segs


@pytest.mark.parametrize("density", [0.3, 1.0])
def test_f1_on_truth_maps_sparse_and_confluent(density):
    f1, _ = _f1(sim_frames(2, density=density, size=256, step=5))
    assert f1 >= 0.9


def test_labels_are_compact_and_nuclei_inside_their_cells():
    ((_f, p),) = sim_frames(1, density=0.8)
    s = segment(p.maps["dapi"], p.maps["membrane"], pixel_size_um=1.3)
    ids = np.unique(s.labels)
    assert list(ids) == list(range(s.n_cells + 1))
    inside = s.nuclei > 0
    assert (s.nuclei[inside] == s.labels[inside]).all()
    assert s.labels.shape == p.maps["dapi"].shape


def test_mitotic_and_apoptotic_cells_are_one_cell_each():
    frames = sim_frames(6, density=0.8, size=256, step=4, seed=3)
    _, segs = _f1(frames)
    checked = 0
    for f, up, _ in segs:
        tc = f.truth.cells
        hard = tc["cell_id"][(tc["phase"] == 3) | tc["apoptotic"]]
        for cid in hard:
            mask = f.truth.cell_labels == cid
            if mask.sum() < 200 or mask[0].any() or mask[-1].any() or mask[:, 0].any():
                continue
            nuc = f.truth.nucleus_labels == cid
            if nuc.sum() < 8:
                continue
            # all its nuclear pieces (chromosome sets, fragments) seed one cell, not several
            counts = np.bincount(up[nuc])
            counts[0] = 0
            assert counts.max() >= 0.9 * counts.sum(), f"cell {cid} split: {np.sort(counts)[-3:]}"
            checked += 1
    assert checked >= 3


def test_parameters_in_micrometres_hold_at_20x():
    f1, _ = _f1(sim_frames(1, density=0.6, size=256, magnification=20.0))
    assert f1 >= 0.85


def test_upsample_labels_blocks_and_odd_sizes():
    lab = np.array([[1, 2], [0, 3]], np.int32)
    up = upsample_labels(lab, 0.5, (5, 5))
    assert up.shape == (5, 5)
    assert (up[:2, :2] == 1).all() and (up[:2, 2:4] == 2).all() and (up[2:4, 2:4] == 3).all()
    assert up[4, 4] == 3 and up[4, 0] == 0


def test_empty_maps_give_no_cells():
    z = np.zeros((64, 64), np.float32)
    s = segment(z, z, pixel_size_um=1.3)
    assert s.n_cells == 0 and not s.labels.any()


def test_merging_weak_borders_can_be_switched_off():
    ((_f, p),) = sim_frames(1, density=0.8)
    a = segment(p.maps["dapi"], p.maps["membrane"], pixel_size_um=1.3)
    b = segment(
        p.maps["dapi"],
        p.maps["membrane"],
        pixel_size_um=1.3,
        params=SegmentParams(merge_membrane=0.0),
    )
    assert b.n_cells >= a.n_cells


def test_match_instances_counts_pairs_above_the_iou():
    from liveaug.analysis.evaluate import dna_histogram

    true = np.zeros((20, 20), np.int32)
    true[2:8, 2:8], true[10:18, 10:18] = 1, 2
    pred = np.zeros_like(true)
    pred[2:8, 2:7] = 5  # IoU 30/36 with cell 1
    pred[10:12, 10:12] = 6  # a sliver of cell 2: IoU 4/64
    pairs, n_pred, n_true = match_instances(pred, true)
    assert pairs.tolist() == [[5, 1]] and (n_pred, n_true) == (2, 2)
    rng = np.random.default_rng(0)
    dna = np.concatenate([rng.normal(100, 4, 300), rng.normal(200, 6, 120)])
    h = dna_histogram(dna)
    edges, counts = np.array(h["edges"]), np.array(h["counts"])
    g1 = edges[np.argmax(counts)]
    g2 = edges[np.argmax(np.where(edges[:-1] > 1.5, counts, 0))]
    assert 0.85 <= g1 <= 1.1 and 1.8 <= g2 <= 2.2
