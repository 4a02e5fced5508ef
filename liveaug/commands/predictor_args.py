"""Options of every command that runs the predictors (eval, replay, batch, the viewers)."""

from __future__ import annotations

import argparse


def add_views_argument(p: argparse.ArgumentParser) -> None:
    """``--views``: test-time augmentation (see :class:`liveaug.inference.Predictor`)."""
    p.add_argument(
        "--views",
        type=int,
        choices=(1, 2, 4, 8),
        default=1,
        help="average the maps over this many mirrored/rotated copies of each frame: more "
        "accurate, each view costs one more pass of the models (default 1)",
    )
