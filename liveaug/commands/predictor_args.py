"""Options of every command that runs the predictors (eval, replay, batch, the viewers)."""

from __future__ import annotations

import argparse

from liveaug.views import VIEW_COUNTS


def add_views_argument(p: argparse.ArgumentParser) -> None:
    """``--views``: test-time augmentation (see :class:`liveaug.inference.Predictor`)."""
    p.add_argument(
        "--views",
        type=int,
        choices=VIEW_COUNTS,
        default=1,
        help="average the maps over this many mirrored/rotated copies of each frame: more "
        "accurate, each view costs one more pass of the models (default 1)",
    )


def add_nuclei_channel_argument(p: argparse.ArgumentParser) -> None:
    """``--nuclei-channel``: segment a recorded nuclear stain instead of the virtual DAPI."""
    p.add_argument(
        "--nuclei-channel",
        metavar="NAME",
        help="find nuclei in this recorded fluorescence channel (a real nuclear stain: Hoechst, "
        "SiR-DNA, H2B-GFP) instead of the virtual DAPI; readouts still include the virtual stains",
    )
