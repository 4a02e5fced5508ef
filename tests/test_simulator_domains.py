"""The simulator's other microscopes: contrast modes, imperfect light, sensor defects, samples."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from liveaug.sources.simulated import SimulatedMicroscope, SimulationConfig
from liveaug.sources.simulated.config import CONTRAST_MODES

BASE = SimulationConfig(height=128, width=128, seed=4, truth=False)


def image(**options: object) -> np.ndarray:
    sim = SimulatedMicroscope(BASE.with_(**options))
    sim.open()
    return sim.read().image.astype(np.float32)


def test_each_contrast_mode_renders_its_own_image_of_the_same_cells():
    imgs = {
        m: image(optics__contrast=m, optics__defocus_um=0.0 if m != "brightfield" else 3.0)
        for m in CONTRAST_MODES
    }
    for m, img in imgs.items():
        assert np.isfinite(img).all() and img.std() > 0, m
    for a in CONTRAST_MODES:
        for b in CONTRAST_MODES:
            if a < b:
                r = np.corrcoef(imgs[a].ravel(), imgs[b].ravel())[0, 1]
                assert r < 0.95, (a, b, r)


def test_defocus_sign_inverts_brightfield_contrast():
    plus, minus = image(optics__defocus_um=3.0), image(optics__defocus_um=-3.0)
    # a weak phase object's defocus contrast changes sign with the defocus: the cells' detail
    # (the image less its smooth illumination) anti-correlates
    detail = [a - cv2.GaussianBlur(a, (0, 0), 8) for a in (plus, minus)]
    assert np.corrcoef(detail[0].ravel(), detail[1].ravel())[0, 1] < -0.2


def test_dic_relief_reverses_with_the_shear_direction():
    a = image(optics__contrast="dic", optics__defocus_um=0.0, optics__shear_angle_deg=0.0)
    b = image(optics__contrast="dic", optics__defocus_um=0.0, optics__shear_angle_deg=180.0)
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] < 0.5


def test_unknown_contrast_mode_is_named():
    with pytest.raises(ValueError, match=r"'darkfield'.*brightfield"):
        image(optics__contrast="darkfield")


@pytest.mark.parametrize(
    "options",
    [
        {"optics__illumination_gradient": 0.8},
        {"optics__fringe_amplitude": 0.2},
        {"optics__dust": 3},
        {"optics__debris": 20},
        {"optics__bubbles": 1},
        {"camera__fixed_pattern": 0.05},
        {"camera__hot_pixel_fraction": 0.01},
        {"biology__substrate_texture_um": 0.03},
        {"biology__nucleus_contrast": 0.3},
    ],
)
def test_each_imperfection_changes_the_image(options):
    clean, other = image(), image(**options)
    assert clean.shape == other.shape
    assert np.abs(clean - other).mean() > 0.5  # more than rounding: the option took effect


def test_hot_pixels_read_high_in_every_frame():
    sim = SimulatedMicroscope(BASE.with_(camera__hot_pixel_fraction=0.005, camera__photons=500.0))
    sim.open()
    a, b = sim.read().image, sim.read().image
    top = 2**12 - 1
    hot_a, hot_b = a > 0.3 * top, b > 0.3 * top
    assert 0.003 < hot_a.mean() < 0.01
    assert (hot_a == hot_b).mean() > 0.999  # fixed in place, not noise


def test_clean_defaults_render_as_before_the_options_existed():
    # the imperfections draw from a generator of their own: a clean microscope's frames do not
    # depend on them (checksum of the default frames, recorded before the options were added)
    sim = SimulatedMicroscope(SimulationConfig(height=64, width=64, seed=3, truth=False))
    sim.open()
    img = sim.read().image
    assert int(img.astype(np.int64).sum()) == CLEAN_SUM


CLEAN_SUM = 4977322
