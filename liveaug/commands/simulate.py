"""``liveaug simulate``: write a simulated time-lapse session with its ground truth."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from liveaug.commands.argtypes import positive_float, positive_int
from liveaug.frame import Frame
from liveaug.progress import progress
from liveaug.sources.simulated.config import CONTRAST_MODES

#: Names of the real channels ``--stain-channels`` records the true DAPI and membrane stains as.
STAIN_CHANNELS = ("hoechst", "membrane")

if TYPE_CHECKING:
    from liveaug.frame import Frame

HELP = (
    "Simulate a brightfield time-lapse of living cells and save it as a session (OME-Zarr) "
    "with true DAPI and membrane stains, cell and nucleus labels and a per-cell truth table."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options in the units a microscopist sets them in."""
    p.add_argument("out", type=Path, metavar="OUT.ome.zarr", help="session folder to create")
    p.add_argument(
        "--frames", type=positive_int, default=100, help="number of frames (default 100)"
    )
    p.add_argument(
        "--size",
        type=positive_int,
        nargs=2,
        default=(512, 512),
        metavar=("H", "W"),
        help="field size in pixels (default 512 512)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed; same seed, same session")
    p.add_argument(
        "--density",
        type=float,
        default=0.6,
        help="fraction of the field covered by cells: 0.1 sparse … 1.0 confluent",
    )
    p.add_argument(
        "--interval",
        type=positive_float,
        default=180.0,
        metavar="S",
        help="experiment time between frames, seconds (default 180)",
    )
    p.add_argument(
        "--defocus",
        type=float,
        default=3.0,
        metavar="UM",
        help="focal plane offset from the cells, µm (default 3)",
    )
    p.add_argument(
        "--photons",
        type=float,
        default=3000.0,
        help="brightfield photo-electrons per pixel (default 3000)",
    )
    p.add_argument(
        "--bit-depth",
        type=int,
        choices=(8, 12, 16),
        default=12,
        help="camera bit depth (default 12)",
    )
    p.add_argument(
        "--magnification",
        type=float,
        default=10.0,
        help="objective magnification; pixel size = 6.5 µm / magnification",
    )
    p.add_argument(
        "--apoptosis",
        type=float,
        default=0.05,
        help="fraction of cells entering apoptosis per cell cycle (default 0.05)",
    )
    p.add_argument(
        "--reporter",
        action="store_true",
        help="add a fluorescent reporter channel with rare nuclear translocations",
    )
    p.add_argument(
        "--imports-per-h",
        type=float,
        default=0.01,
        help="with --reporter: per-cell rate of the reporter moving into the nucleus, per hour "
        "of experiment time (default 0.01; raise it to test event rules on more events)",
    )
    p.add_argument(
        "--contrast",
        choices=CONTRAST_MODES,
        default="brightfield",
        help="transmitted-light contrast mode (default brightfield)",
    )
    p.add_argument(
        "--stain-channels",
        action="store_true",
        help=f"also record the true stains as real fluorescence channels {STAIN_CHANNELS} "
        "(paired data for `liveaug finetune`)",
    )
    p.add_argument(
        "--stain-shift",
        type=int,
        nargs=2,
        default=(0, 0),
        metavar=("DY", "DX"),
        help="with --stain-channels: shift them by this many pixels (a misregistered camera)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")


def at_experiment_time(frame: Frame) -> Frame:
    """The frame stamped with its simulated acquisition time (``meta["sim_time_s"]``): a
    session records when the experiment took each frame, not when the simulator rendered it."""
    sim_time_s = frame.meta.get("sim_time_s")
    if sim_time_s is None:
        return frame
    return replace(frame, timestamp_ns=round(float(sim_time_s) * 1e9))


def run(args: argparse.Namespace) -> int:
    """Simulate and record frame by frame (a killed run keeps what it wrote)."""
    from liveaug.session import SessionWriter
    from liveaug.sources.simulated import SimulatedMicroscope, SimulationConfig

    config = SimulationConfig(height=args.size[0], width=args.size[1], seed=args.seed).with_(
        biology__density=args.density,
        biology__frame_interval_s=args.interval,
        biology__apoptosis_fraction=args.apoptosis,
        biology__reporter=args.reporter,
        biology__translocation_rate_per_h=args.imports_per_h,
        optics__defocus_um=args.defocus,
        optics__contrast=args.contrast,
        optics__magnification=args.magnification,
        camera__photons=args.photons,
        camera__bit_depth=args.bit_depth,
    )
    sim = SimulatedMicroscope(config)
    info = sim.open()
    if args.stain_channels:
        info = replace(info, channel_names=(*info.channel_names, *STAIN_CHANNELS))
    with (
        SessionWriter.for_source(
            args.out, info, frame_interval_s=args.interval, overwrite=args.overwrite
        ) as writer,
        progress(args.frames, "simulate") as bar,
    ):
        for _ in range(args.frames):
            frame = at_experiment_time(sim.read())
            writer.append(with_stains(frame, args.stain_shift) if args.stain_channels else frame)
            bar.update()
    print(f"wrote {args.frames} frames to {args.out}")
    return 0


def with_stains(frame: Frame, shift: tuple[int, int] = (0, 0)) -> Frame:
    """``frame`` with its true DAPI and membrane stains also as real channels
    (:data:`STAIN_CHANNELS`), moved by ``shift`` (dy, dx) pixels as a second camera might be."""
    assert frame.truth is not None
    stains = (frame.truth.dapi, frame.truth.membrane)
    moved = {n: _shifted(img, *shift) for n, img in zip(STAIN_CHANNELS, stains, strict=True)}
    return replace(frame, channels={**frame.channels, **moved})


def _shifted(img: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``img`` moved by (dy, dx) pixels, the uncovered edge filled with the nearest pixels."""
    h, w = img.shape
    pad = np.pad(img, ((abs(dy), abs(dy)), (abs(dx), abs(dx))), mode="edge")
    y0, x0 = abs(dy) - dy, abs(dx) - dx
    return pad[y0 : y0 + h, x0 : x0 + w]
