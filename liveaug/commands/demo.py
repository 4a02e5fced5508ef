"""``liveaug demo``: the simulated microscope, live, in the viewer."""

from __future__ import annotations

import argparse

from liveaug.commands.argtypes import positive_float, positive_int
from liveaug.commands.mm_args import add_mm_arguments
from liveaug.commands.viewer_args import add_viewer_arguments

HELP = (
    "Open the live viewer on the built-in simulated microscope (30 frames/s): virtual stains, "
    "phase-coloured outlines, apoptosis and events drawn over brightfield as cells are measured."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Field, rate and what makes the maps."""
    p.add_argument(
        "--size",
        type=positive_int,
        nargs=2,
        default=(512, 512),
        metavar=("H", "W"),
        help="field, px",
    )
    p.add_argument(
        "--fps", type=positive_float, default=30.0, help="frames per second (default 30)"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed of the culture")
    p.add_argument("--density", type=float, default=0.6, help="fraction of the field covered")
    p.add_argument("--reporter", action="store_true", help="add a fluorescent reporter channel")
    p.add_argument(
        "--maps",
        choices=("auto", "model", "truth"),
        default="auto",
        help="prediction maps from the shipped models, or from the simulator's truth "
        "(auto: models when installed, else truth — the HUD names which)",
    )
    p.add_argument(
        "--mm",
        action="store_true",
        help="drive the simulated microscope through pymmcore-plus (Python devices on a dish "
        "of --mm-fields fields): stage, channels and event actions (image_cell, rate) work",
    )
    p.add_argument(
        "--mm-fields", type=int, nargs=2, default=(3, 3), metavar=("R", "C"), help="dish size"
    )
    add_mm_arguments(p, config=False)
    add_viewer_arguments(p)


def choose_maps(maps: str, models: list[str] | None) -> str:
    """``auto`` → ``model`` when a model is named or shipped, else ``truth`` (said aloud)."""
    if maps != "auto":
        return maps
    if models:
        return "model"
    from liveaug.model_zoo import find_models

    if find_models():
        return "model"
    print("liveaug demo: no shipped model found — showing the simulator's truth maps instead")
    return "truth"


def run(args: argparse.Namespace) -> int:
    """Build simulator → pipeline → window and run until the window closes."""
    from liveaug.sources.simulated import SimulatedMicroscope, SimulationConfig
    from liveaug.viewer.app import live_pipeline, qt_app, replay_factory, show

    qt_app()  # no screen: one line now, before models load
    maps = choose_maps(args.maps, args.model)
    config = SimulationConfig(
        height=args.size[0], width=args.size[1], seed=args.seed, truth=(maps == "truth")
    ).with_(biology__density=args.density, biology__reporter=args.reporter)
    if args.mm:
        from liveaug.commands.mm_args import mm_demo_source

        config = config.with_(biology__reporter=True)
        source = mm_demo_source(args, config, fps=args.fps, fields=tuple(args.mm_fields))
    else:
        source = SimulatedMicroscope(config, fps=args.fps)
    metadata = {"simulation": config.to_dict()}
    pipeline = live_pipeline(
        source,
        maps=maps,
        models=args.model,
        rules=args.rules,
        metadata=metadata,
        max_analysis_hz=args.analysis_hz,
        views=args.views,
    )
    return show(
        pipeline,
        make_pipeline=replay_factory(
            maps=maps, models=args.model, rules=args.rules, views=args.views
        ),
        title="liveaug demo — simulated microscope",
        frames=args.frames,
    )
