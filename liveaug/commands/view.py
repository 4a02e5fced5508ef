"""``liveaug view``: the live viewer on a GenICam camera."""

from __future__ import annotations

import argparse

from liveaug.commands.camera_args import add_camera_arguments, camera_from_args
from liveaug.commands.mm_args import add_mm_arguments
from liveaug.commands.predictor_args import add_nuclei_channel_argument
from liveaug.commands.viewer_args import add_viewer_arguments

HELP = (
    "Open the live viewer on a GenICam camera (--cti / --device as for `liveaug record`): "
    "virtual stains, outlines, readouts and events over the live image; record while viewing."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Camera options, then what makes the maps."""
    add_camera_arguments(p)
    add_mm_arguments(p, config=True)
    add_viewer_arguments(p)
    add_nuclei_channel_argument(p)


def run(args: argparse.Namespace) -> int:
    """Camera → pipeline → window; closing the window releases the camera."""
    from liveaug.viewer.app import live_pipeline, qt_app, replay_factory, show

    if args.mm_config is not None:  # a bad config is one line before any window opens
        from liveaug.commands.mm_args import mm_source_from_config

        camera = mm_source_from_config(args)
    qt_app()  # no screen: one line now, before models load
    if args.mm_config is None:
        camera = camera_from_args(args)  # every frame reaches the recorder; compute the newest
    pipeline = live_pipeline(
        camera,
        maps="model",
        models=args.model,
        rules=args.rules,
        max_analysis_hz=args.analysis_hz,
        views=args.views,
        nuclei_channel=args.nuclei_channel,
    )
    return show(
        pipeline,
        make_pipeline=replay_factory(
            maps="model",
            models=args.model,
            rules=args.rules,
            views=args.views,
            nuclei_channel=args.nuclei_channel,
        ),
        title=f"liveaug — {camera.name}"
        if args.mm_config is not None
        else f"liveaug — camera {args.device or ''}".strip(),
        frames=args.frames,
    )
