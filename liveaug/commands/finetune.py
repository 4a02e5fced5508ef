"""``liveaug finetune``: adapt a model to your microscope from paired brightfield and
fluorescence sessions (see :mod:`liveaug.training.finetune`). Needs the ``train`` extra."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

HELP = (
    "Fine-tune a model on your own paired sessions (brightfield + a real DAPI / membrane "
    "channel) and write a new model folder that records its parent, data and figures."
)
ROLES = ("dapi", "membrane")


def _target(text: str) -> tuple[str, str]:
    """``ROLE=CHANNEL`` → (role, channel)."""
    role, sep, channel = text.partition("=")
    if not sep or role not in ROLES or not channel:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not ROLE=CHANNEL with ROLE one of {', '.join(ROLES)} (e.g. dapi=hoechst)"
        )
    return role, channel


def add_arguments(p: argparse.ArgumentParser) -> None:
    """SESSION... --out DIR --target ROLE=CHANNEL [--init MODEL] [--minutes M] [--holdout F]."""
    p.add_argument("sessions", type=Path, nargs="+", metavar="SESSION", help="paired sessions")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="new model folder")
    p.add_argument(
        "--target",
        type=_target,
        action="append",
        required=True,
        metavar="ROLE=CHANNEL",
        help="a stain to learn and the session channel that holds it: dapi=CHANNEL, "
        "membrane=CHANNEL (repeatable)",
    )
    p.add_argument(
        "--init", type=Path, metavar="MODEL", help="parent model folder (default: the shipped one)"
    )
    p.add_argument(
        "--minutes", type=float, default=10.0, help="time budget of the whole run (default 10)"
    )
    p.add_argument(
        "--holdout",
        type=float,
        default=0.2,
        metavar="FRACTION",
        help="last fraction of each session's frames held out for early stopping and the "
        "card's figures (default 0.2)",
    )
    # for tests and scripts: a fixed number of steps, fewer threads, smaller crops
    p.add_argument("--steps", type=int, help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=2, help=argparse.SUPPRESS)
    p.add_argument("--crop", type=int, default=96, help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, default=6, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    """Fine-tune, write the folder, print the held-out figures."""
    from liveaug.errors import LiveaugError

    try:
        import torch  # noqa: F401
    except ImportError:
        raise LiveaugError(
            "liveaug finetune needs PyTorch",
            "install the train extra: pip install 'liveaug[train]'",
        ) from None
    from liveaug.progress import progress
    from liveaug.training.finetune import FinetuneConfig, finetune

    targets = dict(args.target)
    if len(targets) != len(args.target):
        raise LiveaugError("a stain is named twice in --target", "name each stain once")
    if args.minutes <= 0:
        raise LiveaugError(f"--minutes {args.minutes:g} is not a time budget", "pass e.g. 10")
    cfg = FinetuneConfig(
        minutes=args.minutes,
        holdout=args.holdout,
        steps=args.steps,
        threads=args.threads,
        crop=args.crop,
        batch=args.batch,
    )
    words = [*map(str, args.sessions), "--out", str(args.out)]
    words += [f"--target={r}={c}" for r, c in targets.items()]
    words += ["--init", str(args.init)] if args.init else []
    words += ["--minutes", f"{args.minutes:g}", "--holdout", f"{args.holdout:g}"]
    words += ["--steps", str(args.steps)] if args.steps else []
    command = "liveaug finetune " + shlex.join(words)
    result = finetune(
        args.sessions,
        targets,
        args.out,
        init=args.init,
        cfg=cfg,
        command=command,
        progress_bar=lambda total: progress(total, "finetune", unit="step"),
    )
    for name in ("parent", "fine_tuned"):
        s = result.figures[name]
        print(f"{name:>10}: " + ", ".join(f"{r} r {s[f'{r}_r']:.3f}" for r in targets))
    print(f"wrote {result.folder} in {result.minutes:.1f} min")
    return 0
