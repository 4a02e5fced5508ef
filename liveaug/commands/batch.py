"""``liveaug batch``: re-analyse many sessions on a Dask cluster (local by default)."""

from __future__ import annotations

import argparse
from pathlib import Path

from liveaug.commands.argtypes import nonnegative_int, positive_int
from liveaug.commands.predictor_args import add_nuclei_channel_argument, add_views_argument

HELP = (
    "Re-analyse recorded sessions on a Dask cluster — a local one with --workers N, or any "
    "scheduler with --scheduler ADDRESS — and write per-cell readouts as Parquet partitioned by "
    "session, plus a summary. Rerunning skips frame ranges already written."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Sessions, output, where to run, what to run."""
    p.add_argument("sessions", type=Path, nargs="+", metavar="SESSION", help="session folders")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--scheduler", metavar="ADDRESS", help="a running Dask scheduler, e.g. tcp://10.0.0.5:8786"
    )
    where.add_argument(
        "--workers",
        type=positive_int,
        default=2,
        help="local worker processes when no scheduler is given (default 2)",
    )
    p.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="MODEL",
        help="model folder or name (repeatable; default: the shipped models)",
    )
    p.add_argument(
        "--maps",
        choices=("model", "truth"),
        default="model",
        help="maps from the models (default) or, for simulated sessions, from truth",
    )
    p.add_argument("--rules", metavar="RULES.yaml", help="event rules (default: shipped)")
    add_views_argument(p)
    add_nuclei_channel_argument(p)
    p.add_argument("--chunk", type=positive_int, default=50, help="frames per task (default 50)")
    p.add_argument(
        "--warmup",
        type=nonnegative_int,
        default=6,
        help="frames re-analysed before each range so tracking carries over (6)",
    )


def run(args: argparse.Namespace) -> int:
    """Plan, run, stitch, summarise."""
    from liveaug.batch import run_batch

    summary = run_batch(
        args.sessions,
        args.out,
        scheduler=args.scheduler,
        workers=args.workers,
        chunk=args.chunk,
        warmup=args.warmup,
        maps=args.maps,
        models=args.model,
        rules=args.rules,
        views=args.views,
        nuclei_channel=args.nuclei_channel,
    )
    print(
        f"analysed {summary.frames} frames in {summary.ranges} ranges "
        f"({summary.skipped} already done) on {summary.workers} workers: "
        f"{summary.frames_per_s:.1f} frames/s; wrote {args.out / 'readouts'} and "
        f"{args.out / 'summary.json'}"
    )
    return 0
