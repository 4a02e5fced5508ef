"""Command-line options shared by every command that opens a camera (devices, record, view).

Not a subcommand itself: ``add_camera_arguments(parser)`` adds the options, and
``camera_from_args(args)`` turns them into an unopened
:class:`~liveaug.sources.camera.CameraSource`.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from liveaug.commands.argtypes import positive_float
from liveaug.sources.camera_settings import CameraSettings


def add_producer_arguments(p: argparse.ArgumentParser) -> None:
    """``--cti`` (repeatable) and ``--no-env``."""
    p.add_argument(
        "--cti",
        type=Path,
        action="append",
        default=[],
        metavar="PATH",
        help="GenTL producer (.cti file or its folder), repeatable; added to GENICAM_GENTL64_PATH",
    )
    p.add_argument(
        "--no-env",
        action="store_true",
        help="ignore GENICAM_GENTL64_PATH and use only --cti",
    )


def add_camera_arguments(p: argparse.ArgumentParser) -> None:
    """Producer, device and settings options."""
    add_producer_arguments(p)
    p.add_argument(
        "--device",
        metavar="SEL",
        help="camera: serial, id, model or index (see `liveaug devices`); "
        "prefix serial:/id:/model:/index: to be explicit; default: the only camera",
    )
    p.add_argument("--settings", type=Path, metavar="FILE", help="camera settings (YAML/JSON)")
    p.add_argument("--exposure", type=float, metavar="US", help="exposure time, µs")
    p.add_argument("--gain", type=float, metavar="DB", help="gain, dB")
    p.add_argument("--fps", type=float, metavar="HZ", help="acquisition frame rate, Hz")
    p.add_argument("--pixel-format", metavar="NAME", help="GenICam pixel format, e.g. Mono12p")
    p.add_argument(
        "--roi",
        type=int,
        nargs=4,
        metavar=("X", "Y", "W", "H"),
        help="region of interest: offset and size in sensor pixels",
    )
    p.add_argument(
        "--binning", type=int, metavar="N", help="bin N x N sensor pixels (where offered)"
    )
    p.add_argument(
        "--lenient",
        action="store_true",
        help="skip settings the camera does not offer (reported) instead of failing",
    )
    p.add_argument(
        "--pixel-size",
        type=positive_float,
        metavar="UM",
        help="sample-plane pixel size, µm (cameras do not know it; without it area_um2 is empty)",
    )
    p.add_argument(
        "--reconnect-attempts",
        type=int,
        default=5,
        metavar="N",
        help="reconnection attempts after the camera is lost (default 5; 0: give up at once)",
    )
    p.add_argument(
        "--fetch-timeout",
        type=float,
        metavar="S",
        help="seconds without a frame that count as a fault (default: 1 s + 3 frame periods)",
    )


def settings_from_args(args: argparse.Namespace) -> CameraSettings:
    """The ``--settings`` file, overridden by the individual options given."""
    base = CameraSettings.load(args.settings) if args.settings else CameraSettings()
    values: dict[str, Any] = {
        "exposure_us": args.exposure,
        "gain_db": args.gain,
        "frame_rate_hz": args.fps,
        "pixel_format": args.pixel_format,
    }
    if args.roi:
        values.update(zip(("offset_x", "offset_y", "width", "height"), args.roi, strict=True))
    if args.binning:
        values.update(binning_x=args.binning, binning_y=args.binning)
    return base.merged(CameraSettings(**{k: v for k, v in values.items() if v is not None}))


def quiet_harvesters(args: argparse.Namespace) -> None:
    """harvesters' own log only with ``--debug`` (it prints tracebacks for errors we handle)."""
    if getattr(args, "debug", False):
        logging.getLogger("liveaug.harvesters").setLevel(logging.DEBUG)


def camera_from_args(args: argparse.Namespace, *, latest: bool = False) -> Any:
    """An unopened CameraSource for the options in ``args``."""
    from liveaug.sources.camera import CameraSource, Reconnect

    quiet_harvesters(args)
    device = args.device
    return CameraSource(
        device,
        cti=args.cti,
        use_env=not args.no_env,
        settings=settings_from_args(args),
        strict=not args.lenient,
        latest=latest,
        fetch_timeout_s=args.fetch_timeout,
        reconnect=Reconnect(attempts=max(0, args.reconnect_attempts)),
        pixel_size_um=args.pixel_size,
    )
