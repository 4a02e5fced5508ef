"""Command-line options for Micro-Manager sources (``view --mm-config``, ``demo --mm``)."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any


def add_mm_arguments(p: argparse.ArgumentParser, *, config: bool) -> None:
    """The plan (interval, channel) and where actions record; ``--mm-config`` when ``config``."""
    g = p.add_argument_group("Micro-Manager (pymmcore-plus)")
    if config:
        g.add_argument(
            "--mm-config",
            type=Path,
            metavar="FILE.cfg",
            help="a Micro-Manager configuration: image through pymmcore-plus instead of GenICam",
        )
    g.add_argument(
        "--mm-interval",
        type=float,
        default=0.0,
        metavar="S",
        help="time-lapse interval, s (default 0: as fast as the camera goes)",
    )
    g.add_argument(
        "--mm-channel", metavar="PRESET", help="channel preset of the plan (default: as set)"
    )
    g.add_argument(
        "--mm-actions",
        type=Path,
        metavar="DIR",
        help="where image_cell bursts are recorded (one session each, plus actions.jsonl)",
    )


def mm_plan(args: argparse.Namespace, core: Any, *, channel: str | None = None) -> Any:
    """The plan the options describe, imaging where the stage is."""
    from liveaug.sources.mmcore.schedule import Plan

    return Plan(
        interval_s=max(0.0, args.mm_interval),
        channel=args.mm_channel or channel,
        channel_group=core.getChannelGroup() or None,
    )


def mm_source_from_config(args: argparse.Namespace) -> Any:
    """An unopened MMSource on the configured microscope (one-line errors for a bad file)."""
    from liveaug.sources.mmcore.source import MMSource

    src = MMSource.from_config(args.mm_config)
    src.plan = mm_plan(args, src.core)
    src.action_dir = args.mm_actions
    return src


def mm_demo_source(
    args: argparse.Namespace, config: Any, *, fps: float, fields: tuple[int, int]
) -> Any:
    """An unopened MMSource on the simulated dish, the culture moving one step per frame."""
    from liveaug.sources.mmcore.devices import new_core
    from liveaug.sources.mmcore.dish import SimulatedDish
    from liveaug.sources.mmcore.source import simulated_source

    scale = config.biology.frame_interval_s * fps
    dish = SimulatedDish(config, fields=fields, time_scale=scale)
    core = new_core()
    src = simulated_source(dish, core=core, action_dir=args.mm_actions)
    plan = mm_plan(args, src.core, channel="brightfield")
    # brightfield at its reference exposure, a low-light reporter sentinel beside it
    src.plan = dataclasses.replace(
        plan,
        interval_s=plan.interval_s or 1.0 / fps,
        exposure_ms=10.0,
        extra_channels=(("reporter", 20.0),),
    )
    return src
