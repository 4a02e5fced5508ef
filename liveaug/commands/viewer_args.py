"""Options every viewer command shares (demo, view): models, views, rules, analysis rate,
frames."""

from __future__ import annotations

import argparse
from pathlib import Path

from liveaug.commands.argtypes import positive_int
from liveaug.commands.predictor_args import add_views_argument


def add_viewer_arguments(p: argparse.ArgumentParser) -> None:
    """What makes the maps and how often, and a frame limit for scripted runs."""
    p.add_argument("--model", action="append", help="model folder(s) (default: shipped)")
    p.add_argument("--rules", type=Path, metavar="RULES.yaml", help="event rules")
    add_views_argument(p)
    p.add_argument(
        "--analysis-hz",
        type=float,
        default=10.0,
        metavar="HZ",
        help="analyse at most this often (default 10; 0 = as fast as possible), "
        "leaving CPU for a smooth display",
    )
    p.add_argument(
        "--frames",
        type=positive_int,
        metavar="N",
        help="close by itself after N frames were drawn (scripted runs)",
    )
