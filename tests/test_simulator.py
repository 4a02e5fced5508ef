"""The simulated microscope: determinism, DNA-content truth, division, apoptosis, reporter."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from liveaug.sources.simulated import (
    PHASES,
    TRUTH_COLUMNS,
    SimulatedMicroscope,
    SimulationConfig,
)


def frames(config: SimulationConfig, n: int):
    sim = SimulatedMicroscope(config)
    sim.open()
    return [sim.read() for _ in range(n)]


def test_same_seed_same_frames_other_seed_other_frames():
    cfg = SimulationConfig(height=96, width=128, seed=5)
    a, b = frames(cfg, 3), frames(cfg, 3)
    for fa, fb in zip(a, b, strict=True):
        np.testing.assert_array_equal(fa.image, fb.image)
        np.testing.assert_array_equal(fa.truth.dapi, fb.truth.dapi)
        np.testing.assert_array_equal(fa.truth.cell_labels, fb.truth.cell_labels)
    c = frames(cfg.with_(seed=6), 1)[0]
    assert not np.array_equal(a[0].image, c.image)


@pytest.mark.parametrize("bits,dtype", [(8, np.uint8), (12, np.uint16), (16, np.uint16)])
def test_brightfield_is_digitised_to_the_bit_depth(bits, dtype):
    f = frames(SimulationConfig(height=64, width=64).with_(camera__bit_depth=bits), 1)[0]
    assert f.image.dtype == dtype and f.bit_depth == bits
    assert int(f.image.max()) <= 2**bits - 1
    assert f.image.std() > 0  # noise and cells, not a flat field
    assert f.pixel_size_um == pytest.approx(0.65)


def test_truth_table_matches_labels():
    f = frames(SimulationConfig(height=160, width=160, seed=2), 1)[0]
    t = f.truth
    assert set(t.cells) == set(TRUTH_COLUMNS)
    ids = set(np.unique(t.cell_labels)) - {0}
    assert ids == set(t.cells["cell_id"].tolist())
    for cid, area in zip(t.cells["cell_id"], t.cells["area_px"], strict=True):
        assert area == int((t.cell_labels == cid).sum())
    # every nucleus pixel lies inside its own cell
    nuc = t.nucleus_labels > 0
    assert np.all(t.cell_labels[nuc] == t.nucleus_labels[nuc])


def test_dna_content_g2_is_twice_g1_in_the_dapi_image():
    cfg = SimulationConfig(height=384, width=384, seed=11).with_(
        biology__initial_apoptotic_fraction=0.0
    )
    f = frames(cfg, 1)[0]
    t = f.truth
    background = np.median(f.truth.dapi[t.cell_labels == 0])
    dapi = f.truth.dapi.astype(np.float64) - background
    # integrate the noisy, blurred image over each cell (captures the PSF tails)
    measured = ndimage.sum(dapi, t.cell_labels, t.cells["cell_id"])
    g1 = t.cells["phase"] == PHASES.index("G1")
    g2 = t.cells["phase"] == PHASES.index("G2")
    full = t.cells["area_px"] > 200  # cells not cut by the field border
    assert (g1 & full).sum() >= 5 and (g2 & full).sum() >= 3
    ratio_truth = np.median(t.cells["dapi_integrated"][g2 & full]) / np.median(
        t.cells["dapi_integrated"][g1 & full]
    )
    ratio_image = np.median(measured[g2 & full]) / np.median(measured[g1 & full])
    assert ratio_truth == pytest.approx(2.0, rel=0.05)
    assert ratio_image == pytest.approx(2.0, rel=0.15)


def test_division_gives_two_daughters_with_lineage():
    # a fast clock (30 min per frame) so many cells divide within a short run
    cfg = SimulationConfig(height=192, width=192, seed=4).with_(
        biology__frame_interval_s=1800.0,
        biology__apoptosis_fraction=0.0,
        biology__initial_apoptotic_fraction=0.0,
    )
    sim = SimulatedMicroscope(cfg)
    sim.open()
    seen_parents: dict[int, set[int]] = {}
    ever_alive: set[int] = set()
    for _ in range(30):
        f = sim.read()
        cells = f.truth.cells
        ever_alive |= set(cells["cell_id"].tolist())
        for cid, pid in zip(cells["cell_id"], cells["parent_id"], strict=True):
            if pid:
                seen_parents.setdefault(int(pid), set()).add(int(cid))
    assert len(seen_parents) >= 3
    # the simulator's own lineage: every mother has exactly two daughters
    born = [c for c in sim.population.cells if c.parent_id]
    by_parent: dict[int, int] = {}
    for c in born:
        by_parent[c.parent_id] = by_parent.get(c.parent_id, 0) + 1
    assert by_parent and all(n == 2 for n in by_parent.values())
    assert set(seen_parents) <= ever_alive  # parents were cells we saw


def test_apoptotic_cells_shrink_condense_and_fragment():
    cfg = SimulationConfig(height=256, width=256, seed=9).with_(
        biology__initial_apoptotic_fraction=0.0,
        biology__apoptosis_fraction=0.0,
        biology__frame_interval_s=600.0,
    )
    sim = SimulatedMicroscope(cfg)
    sim.open()
    # commit one well-inside, interphase cell to apoptosis and follow it
    cell = min(
        (c for c in sim.population.cells if c.phase < 3),
        key=lambda c: (c.x - 128) ** 2 + (c.y - 128) ** 2,
    )
    sim.population._commit_apoptosis(cell)
    areas, nuc_areas, fragments, stages = [], [], [], []
    while cell in sim.population.cells:
        f = sim.read()
        row = np.flatnonzero(f.truth.cells["cell_id"] == cell.id)
        if not row.size:
            break
        areas.append(int(f.truth.cells["area_px"][row[0]]))
        nuc_areas.append(int(f.truth.cells["nucleus_area_px"][row[0]]))
        stages.append(int(f.truth.cells["apoptosis_stage"][row[0]]))
        fragments.append(ndimage.label(f.truth.nucleus_labels == cell.id)[1])
    assert stages[0] >= 1 and max(stages) >= 4
    assert min(areas) < 0.6 * areas[0]  # shrinkage
    condensed = [n for n, s in zip(nuc_areas, stages, strict=True) if s == 2]
    assert condensed and min(condensed) < 0.6 * nuc_areas[0]  # nuclear condensation
    assert max(fragments) >= 3  # karyorrhexis: several fragments …
    assert len(set(np.unique(f.truth.nucleus_labels)) & {cell.id}) <= 1  # … one cell's id


def test_reporter_translocation_raises_nc_ratio():
    cfg = SimulationConfig(height=192, width=192, seed=1).with_(
        biology__reporter=True, biology__translocation_rate_per_h=2.0
    )
    sim = SimulatedMicroscope(cfg)
    sim.open()
    f0 = sim.read()
    assert "reporter" in f0.channels and f0.channels["reporter"].dtype == f0.image.dtype
    for _ in range(12):
        f = sim.read()
    c = f.truth.cells
    moved = c["translocation_frame"] >= 0
    assert moved.any()
    done = moved & (f.index - c["translocation_frame"] >= cfg.biology.translocation_frames)
    assert np.all(c["reporter_nc"][done] > 2.5)
    # the image agrees: nucleus brighter than cytoplasm for translocated cells
    rep = f.channels["reporter"].astype(float)
    for cid in c["cell_id"][done][:5]:
        nuc = f.truth.nucleus_labels == cid
        cyto = (f.truth.cell_labels == cid) & ~nuc
        if nuc.sum() > 20 and cyto.sum() > 20:
            assert rep[nuc].mean() > rep[cyto].mean()
