"""``liveaug models list|info|check|eval``: the predictors liveaug ships or a user brings."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from liveaug.commands.predictor_args import add_views_argument
from liveaug.errors import LiveaugError

HELP = (
    "List, describe, check (reproduce test outputs) and evaluate bioimage.io ONNX models "
    "(the shipped predictors or your own with the same roles)."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Subcommands list, info, check, eval."""
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub.add_parser("list", help="shipped models and where they are")
    info = sub.add_parser("info", help="inputs, outputs, roles, normalisation of a model")
    info.add_argument("model", help="model folder, rdf.yaml or shipped model name")
    check = sub.add_parser("check", help="run the test input and compare to the test output")
    check.add_argument("model", help="model folder, rdf.yaml or shipped model name")
    ev = sub.add_parser(
        "eval", help="accuracy figures on a simulated session with truth (as in the model card)"
    )
    ev.add_argument(
        "session", type=Path, nargs="?", help="session folder (.ome.zarr) with ground truth"
    )
    ev.add_argument(
        "--held-out",
        type=int,
        nargs=2,
        metavar=("SESSIONS", "FRAMES"),
        help="instead of a session: the model card's held-out simulated sessions, in "
        "distribution and shifted (the card used 8 5)",
    )
    ev.add_argument("--model", action="append", help="model(s) to use (default: shipped)")
    ev.add_argument("--frames", type=int, help="score only the first N frames")
    ev.add_argument("--resolution", choices=("speed", "full"), default="speed")
    add_views_argument(ev)
    ev.add_argument("--json", type=Path, metavar="OUT.json", help="also write the figures")


def run(args: argparse.Namespace) -> int:
    """Dispatch to the action."""
    return {"list": _list, "info": _info, "check": _check, "eval": _eval}[args.action](args)


def _list(args: argparse.Namespace) -> int:
    from liveaug.model_zoo import find_models, load_model, model_dirs

    models = find_models()
    if not models:
        print("no shipped models in " + ", ".join(map(str, model_dirs())))
        return 0
    for folder in models:
        spec = load_model(folder, verify_sha=False)
        print(f"{folder.name:<20} {spec.name}  roles: {', '.join(spec.roles)}  ({folder})")
    return 0


def _info(args: argparse.Namespace) -> int:
    from liveaug.model_zoo import load_model, resolve

    spec = load_model(resolve(args.model))
    print(f"{spec.name}  ({spec.rdf_path})")
    print(f"  weights   {spec.weights.name}  sha256 {spec.sha256}")
    print(
        f"  input     {spec.input_id} axes {', '.join(spec.input_axes)}; H, W = "
        f"{spec.min_size} + k·{spec.stride}; input pixel size {spec.pixel_size_um} µm; "
        f"outputs at {spec.output_scale:g}× its sampling"
    )
    print("  preprocessing " + ", ".join(str(p.get("id")) for p in spec.preprocessing))
    for oid in spec.outputs:
        role = next((r for r, o in spec.roles.items() if o == oid), "-")
        print(f"  output    {oid:<10} role {role:<10} axes {', '.join(spec.output_axes[oid])}")
    acc = ((spec.rdf.get("config") or {}).get("liveaug") or {}).get("accuracy")
    if acc:
        print("  accuracy  " + json.dumps(acc))
    from liveaug.training.finetune_card import chain  # no torch

    for line in chain(spec):
        print("  lineage   " + line)
    return 0


def _check(args: argparse.Namespace) -> int:
    from liveaug.inference import check_model
    from liveaug.model_zoo import load_model, resolve

    spec = load_model(resolve(args.model))
    diffs = check_model(spec)
    if not diffs:
        print(f"{spec.rdf_path}: ran its test input; it declares no test outputs to compare to")
        return 0
    worst = max(diffs.values())
    print(
        f"{spec.rdf_path}: test outputs reproduced ({len(diffs)} outputs, max abs diff {worst:.2g})"
    )
    return 0


def _eval(args: argparse.Namespace) -> int:
    from liveaug.inference import Predictor
    from liveaug.model_eval import evaluate, format_summary
    from liveaug.model_zoo import resolve
    from liveaug.progress import progress
    from liveaug.session import Session

    models = [resolve(m) for m in args.model] if args.model else None
    if args.held_out:
        return _eval_held_out(args, models)
    if args.session is None:
        raise LiveaugError("models eval needs a SESSION", "or --held-out SESSIONS FRAMES")
    session = Session.open(args.session)
    session.require_truth()
    n = min(args.frames or len(session), len(session))
    pred = Predictor(models, resolution=args.resolution, views=args.views)
    print(pred.report.line())
    with progress(n, "eval") as bar:
        summary = evaluate((session.frame(i) for i in range(n)), pred, on_frame=bar.update)
    print(f"{args.session}: {n} frames")
    print(format_summary(summary))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))
    return 0


def _eval_held_out(args: argparse.Namespace, models: list[Path] | None) -> int:
    """The card's figures re-measured: same held-out seeds and settings as ``liveaug train``."""
    from liveaug.model_eval import format_summary, measure

    sessions, frames = args.held_out
    figures = measure(models, sessions, frames, views=args.views)
    for setting, summary in figures.items():
        print(f"held-out {setting.replace('_', ' ')} ({sessions} sessions x {frames} frames):")
        print(format_summary(summary))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    return 0
