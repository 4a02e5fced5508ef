"""Readouts equal a standard measurement (scikit-image regionprops_table) on the same labels."""

from __future__ import annotations

import numpy as np
import pytest
from analysis_support import disk_labels, sim_frames
from skimage.measure import regionprops_table

from liveaug.analysis.readouts import UNITS, measure
from liveaug.analysis.segmentation import segment, upsample_labels
from liveaug.frame import PHASE_CLASSES


@pytest.fixture(scope="module")
def measured():
    ((f, p),) = sim_frames(1, density=0.8, reporter=True)
    s = segment(p.maps["dapi"], p.maps["membrane"], pixel_size_um=1.3)
    t = measure(
        s.labels,
        s.nuclei,
        p.maps,
        scale=p.scale,
        pixel_size_um=f.pixel_size_um,
        channels=f.channels,
        frame_index=f.index,
        timestamp_s=1.5,
        model="m@1234",
    )
    return f, p, s, t


def test_matches_regionprops_on_model_resolution_maps(measured):
    _f, p, s, t = measured
    for role in ("dapi", "membrane"):
        r = regionprops_table(
            s.labels,
            intensity_image=p.maps[role],
            properties=("label", "area", "centroid", "eccentricity", "intensity_mean"),
        )
        np.testing.assert_array_equal(t["cell_id"], r["label"])
        np.testing.assert_allclose(t["area_px"], r["area"] * 4)  # 2x2 frame px per model px
        np.testing.assert_allclose(t["y"], (r["centroid-0"] + 0.5) * 2 - 0.5, atol=1e-9)
        np.testing.assert_allclose(t["x"], (r["centroid-1"] + 0.5) * 2 - 0.5, atol=1e-9)
        np.testing.assert_allclose(t["eccentricity"], r["eccentricity"], atol=1e-9)
        np.testing.assert_allclose(t[f"{role}_mean"], r["intensity_mean"], rtol=1e-5)
        np.testing.assert_allclose(
            t[f"{role}_integrated"], r["intensity_mean"] * r["area"] * 4, rtol=1e-5
        )
    np.testing.assert_allclose(t["area_um2"], t["area_px"] * 0.65**2)


def test_solidity_close_to_regionprops(measured):
    _, _, s, t = measured
    r = regionprops_table(s.labels, properties=("solidity",))
    # hull of pixel squares vs skimage's pixel-count hull: a few percent apart, never more
    assert np.abs(t["solidity"] - r["solidity"]).max() < 0.07
    assert ((t["solidity"] > 0) & (t["solidity"] <= 1)).all()


def test_real_channel_matches_regionprops_on_upsampled_labels(measured):
    f, p, s, t = measured
    img = f.channels["reporter"]
    up = upsample_labels(s.labels, p.scale, f.shape)
    r = regionprops_table(up, intensity_image=img, properties=("label", "area", "intensity_mean"))
    np.testing.assert_allclose(t["reporter_mean"], r["intensity_mean"], rtol=1e-5)
    np.testing.assert_allclose(t["reporter_integrated"], r["intensity_mean"] * r["area"], rtol=1e-5)


def test_frame_not_a_multiple_of_the_bin_uses_upsampled_labels(measured):
    f, p, s, _ = measured
    img = f.channels["reporter"][:-1, :-1]
    t = measure(
        s.labels, s.nuclei, p.maps, scale=0.5, pixel_size_um=0.65, channels={"reporter": img}
    )
    up = upsample_labels(s.labels, 0.5, img.shape)
    r = regionprops_table(up, intensity_image=img, properties=("intensity_mean", "area"))
    np.testing.assert_allclose(t["reporter_integrated"], r["intensity_mean"] * r["area"], rtol=1e-5)


def test_nuclear_cytoplasmic_ratio_is_background_corrected():
    lab = disk_labels((64, 64), [(20, 20), (44, 44)], 12)
    nuc = np.where(disk_labels((64, 64), [(20, 20), (44, 44)], 5) > 0, lab, 0)
    bg = 100.0
    img = np.full((128, 128), bg)
    cyto_level, nuc_level = np.array([0, 50.0, 80.0]), np.array([0, 150.0, 40.0])
    img_lab = upsample_labels(lab, 0.5, (128, 128))
    img_nuc = upsample_labels(nuc, 0.5, (128, 128))
    img = (
        img
        + cyto_level[img_lab]
        + np.where(img_nuc > 0, nuc_level[img_nuc] - cyto_level[img_nuc], 0)
    )
    z = np.zeros((64, 64), np.float32)
    t = measure(
        lab, nuc, {"dapi": z, "membrane": z}, scale=0.5, pixel_size_um=0.65, channels={"gfp": img}
    )
    np.testing.assert_allclose(t["gfp_nc_ratio"], [3.0, 0.5])
    np.testing.assert_allclose(t["gfp_background"], bg)
    # leaving a ring around the nucleus out of both sides: same ratio on flat compartments
    t2 = measure(
        lab,
        nuc,
        {"dapi": z, "membrane": z},
        scale=0.5,
        pixel_size_um=0.65,
        channels={"gfp": img},
        nc_margin_um=1.3,
    )
    np.testing.assert_allclose(t2["gfp_nc_ratio"], [3.0, 0.5])


def test_phase_and_apoptosis_columns(measured):
    _f, _p, _s, t = measured
    assert set(t["phase"]) <= set(PHASE_CLASSES[1:])
    probs = np.stack([t[f"p_{c}"] for c in PHASE_CLASSES[1:]], 1)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(t["phase_confidence"], probs.max(1))
    assert ((t["p_apoptosis"] >= 0) & (t["p_apoptosis"] <= 1)).all()
    assert (t["model"] == "m@1234").all() and (t["timestamp_s"] == 1.5).all()


def test_missing_roles_give_nan_and_every_column_has_a_unit(measured):
    _, p, s, _ = measured
    maps = {k: p.maps[k] for k in ("dapi", "membrane")}
    t = measure(s.labels, s.nuclei, maps, scale=0.5, pixel_size_um=None)
    assert np.isnan(t["p_apoptosis"]).all() and np.isnan(t["phase_confidence"]).all()
    assert np.isnan(t["area_um2"]).all()
    assert set(t.columns) <= set(t.units) and set(UNITS) <= set(t.units)


def test_no_cells_gives_an_empty_table():
    z = np.zeros((32, 32), np.int32)
    t = measure(
        z,
        z,
        {"dapi": z.astype(np.float32)},
        scale=1.0,
        pixel_size_um=1.0,
        channels={"gfp": np.ones((32, 32))},
    )
    assert len(t) == 0 and "gfp_nc_ratio" in t.columns


def test_nucleus_area_in_um2_and_cells_touching_the_border_are_flagged():
    lab = np.zeros((40, 50), np.int32)
    lab[0:6, 10:20] = 1  # touches the top edge
    lab[15:25, 15:25] = 2  # inside
    lab[30:40, 44:50] = 3  # touches the bottom-right corner
    lab[12:20, 0:4] = 4  # touches the left edge
    nuc = np.where(lab > 0, lab, 0)
    nuc[15:18, 15:25] = 0
    z = np.zeros(lab.shape, np.float32)
    t = measure(lab, nuc, {"dapi": z, "membrane": z}, scale=0.5, pixel_size_um=0.65)
    assert t["touches_border"].tolist() == [True, False, True, True]
    assert t["touches_border"].dtype == bool and t.units["touches_border"] == ""
    np.testing.assert_allclose(t["nucleus_area_um2"], t["nucleus_area_px"] * 0.65**2)
    assert t.units["nucleus_area_um2"] == "µm²"
    assert t["nucleus_area_px"][1] == 70 * 4  # 7 x 10 model pixels, 4 frame pixels each
    t = measure(lab, nuc, {"dapi": z, "membrane": z}, scale=0.5, pixel_size_um=None)
    assert np.isnan(t["nucleus_area_um2"]).all()


def test_no_parent_is_empty_not_zero_in_exported_tables(tmp_path):
    import pandas as pd

    from liveaug.analysis.table import write_csv, write_parquet
    from liveaug.frame import CellTable

    t = CellTable(
        {"cell_id": np.array([1, 2, 3]), "parent_id": np.array([0, 0, 1]), "x": np.ones(3)},
        {"cell_id": "", "parent_id": "", "x": "px"},
    )
    df = t.to_pandas()
    assert df["parent_id"].isna().tolist() == [True, True, False] and df["parent_id"][2] == 1
    write_csv(t, tmp_path / "t.csv")
    assert (tmp_path / "t.csv").read_text().splitlines()[1].split(",")[:2] == ["1", ""]
    write_parquet(t, tmp_path / "t.parquet")
    back = pd.read_parquet(tmp_path / "t.parquet")
    assert back["parent_id"].isna().tolist() == [True, True, False]
