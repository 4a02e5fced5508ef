"""``liveaug replay``: play a recorded session through the predictors and the per-cell analysis."""

from __future__ import annotations

import argparse
from pathlib import Path

from liveaug.commands.argtypes import positive_float, positive_int
from liveaug.commands.predictor_args import add_nuclei_channel_argument, add_views_argument

HELP = (
    "Replay a recorded session through the predictors and the per-cell analysis; with "
    "--headless, every frame is analysed and the readouts written to CSV/Parquet."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Session, outputs, and what makes the maps."""
    p.add_argument("session", type=Path, metavar="SESSION", help="session folder (.ome.zarr)")
    p.add_argument("--headless", action="store_true", help="no window: analyse and write tables")
    p.add_argument("--readouts", type=Path, metavar="OUT.csv", help="per-cell readouts (CSV)")
    p.add_argument("--parquet", type=Path, metavar="OUT.parquet", help="readouts as Parquet")
    p.add_argument("--events", type=Path, metavar="OUT.jsonl", help="fired events, one per line")
    p.add_argument(
        "--rules", type=Path, metavar="RULES.yaml", help="event rules (default: shipped)"
    )
    p.add_argument(
        "--snapshots",
        type=Path,
        metavar="DIR",
        help="where snapshot actions write (default: OUT_snapshots beside the first output)",
    )
    p.add_argument("--model", action="append", help="model(s) to use (default: shipped)")
    add_views_argument(p)
    add_nuclei_channel_argument(p)
    p.add_argument(
        "--maps",
        choices=("model", "truth"),
        default="model",
        help="prediction maps from the models (default) or, for simulated sessions, from truth",
    )
    p.add_argument(
        "--pixel-size",
        type=positive_float,
        metavar="UM",
        help="sample-plane pixel size in µm, for sessions recorded without one (or to correct "
        "it): sets area_um2 and the segmentation's scale",
    )
    p.add_argument(
        "--frames",
        type=positive_int,
        metavar="N",
        help="analyse only the first N frames (with the window: close after N frames shown)",
    )


def run(args: argparse.Namespace) -> int:
    """Headless batch here; the viewer (when installed) takes the interactive case."""
    if not args.headless:
        given = [o for o in ("readouts", "parquet", "events") if getattr(args, o) is not None]
        if given:
            from liveaug.errors import LiveaugError

            raise LiveaugError(
                f"--{given[0]} writes tables from a headless run",
                "add --headless (the window records sessions and snapshots instead)",
            )
        try:
            from liveaug.viewer.app import run_viewer  # type: ignore[attr-defined]
        except ImportError:
            from liveaug.errors import LiveaugError

            raise LiveaugError(
                "the replay viewer is not available in this build", "pass --headless"
            ) from None
        return int(run_viewer(args) or 0)
    from liveaug.analysis.batch import run_replay

    return run_replay(args)
