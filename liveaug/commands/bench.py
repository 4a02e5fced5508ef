"""``liveaug bench``: measure every stage on this machine and print a table (and JSON)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from liveaug.commands.argtypes import positive_float, positive_int
from liveaug.commands.camera_args import add_camera_arguments

HELP = (
    "Measure how fast each stage runs on this machine (simulator, camera conversion, …) "
    "and print a table; --json writes the figures to a file."
)

SECTIONS = (
    "simulator",
    "camera",
    "models",
    "analysis",
    "pipeline",
    "display",
    "batch",
    "closed-loop",
)
#: Sections a plain ``liveaug bench`` leaves out (they run an experiment of their own).
OPT_IN = ("closed-loop",)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Which sections, sizes and where to write JSON."""
    p.add_argument(
        "--only",
        choices=SECTIONS,
        action="append",
        help="run only this section (repeatable); default: all",
    )
    p.add_argument(
        "--batch",
        action="store_true",
        help="batch throughput with 1 and 2 Dask workers (same as --only batch)",
    )
    p.add_argument("--sizes", type=positive_int, nargs="+", default=[512], help="frame sizes (px)")
    p.add_argument("--frames", type=positive_int, default=40, help="frames timed per case")
    p.add_argument(
        "--seconds",
        type=positive_float,
        default=10.0,
        help="how long each timed pipeline run lasts (default 10)",
    )
    p.add_argument(
        "--source",
        choices=("replay", "simulator", "camera"),
        default="replay",
        help="pipeline section's source: a replayed simulated session (default), the simulated "
        "microscope live, or a GenICam camera (--cti, --device …; --fps defaults to 30)",
    )
    p.add_argument("--json", type=Path, metavar="OUT.json", help="also write results as JSON")
    loop = p.add_argument_group("closed loop (--only closed-loop)")
    loop.add_argument(
        "--loop-fields", type=int, nargs=2, default=(3, 3), metavar=("R", "C"), help="dish"
    )
    loop.add_argument("--loop-size", type=int, default=256, metavar="PX", help="field side")
    loop.add_argument("--loop-hours", type=float, default=6.0, metavar="H", help="experiment")
    loop.add_argument(
        "--loop-maps",
        choices=("truth", "model"),
        default="truth",
        help="truth maps (default) or the shipped models",
    )
    cam = p.add_argument_group("camera (with --source camera)")
    add_camera_arguments(cam)  # type: ignore[arg-type]


@contextlib.contextmanager
def _drawer() -> Iterator[Any]:
    """The viewer's canvas as the draw stage when there is a screen (xvfb-run), else None."""
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        print("no screen: the pipeline runs without a draw stage (use xvfb-run to include it)")
        yield None
        return
    from liveaug.bench.display import canvas_drawer

    with canvas_drawer() as draw:
        yield draw


def _pipeline_sources(args: argparse.Namespace) -> list[tuple[str, Any]]:
    """(label, source factory) for each case of the pipeline section."""
    from liveaug.bench.pipeline import SOURCE_FPS, replay_source, simulator_source

    if args.source == "camera":
        from liveaug.commands.camera_args import camera_from_args

        if args.fps is None:
            args.fps = SOURCE_FPS
        return [("camera", lambda: camera_from_args(args))]
    if args.source == "simulator":
        return [(f"simulator {n}", simulator_source(n)) for n in args.sizes]
    folder = Path(tempfile.mkdtemp(prefix="liveaug-bench-"))
    return [(f"replay {n}", replay_source(folder, n)) for n in args.sizes]


def _thread_counts(predictor: Any, drawing: bool) -> dict[str, Any]:
    """Threads each library may use here (they share the same cores)."""
    import cv2

    out: dict[str, Any] = {
        "onnxruntime_intra_op": getattr(predictor, "threads", None),
        "opencv": cv2.getNumThreads(),
        "cores": os.cpu_count(),
    }
    if drawing:
        out["llvmpipe (LP_NUM_THREADS)"] = os.environ.get("LP_NUM_THREADS", "cores")
    return out


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _print_table(section: str, results: dict[str, Any]) -> None:
    print(f"\n== {section} ==")
    for case, stats in results.items():
        if isinstance(stats, dict):
            cells = "  ".join(
                f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in stats.items()
            )
            print(f"  {case:<34} {cells}")
        else:
            print(f"  {case:<34} {stats}")


def run(args: argparse.Namespace) -> int:
    """Run the chosen sections in one process so ratios compare like with like."""
    sections = args.only or (["batch"] if args.batch else [s for s in SECTIONS if s not in OPT_IN])
    if "batch" in sections:  # named before the other sections run, not after them
        from liveaug.batch import require_dask

        require_dask()
    report: dict[str, Any] = {
        "machine": {
            "cpu": _cpu_model(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
        },
    }
    print(f"liveaug bench on {report['machine']['cpu']} ({report['machine']['cores']} cores)")
    if "simulator" in sections:
        from liveaug.bench.simulator import simulator_benchmarks

        report["simulator"] = simulator_benchmarks(tuple(args.sizes), args.frames)
        _print_table("simulator (one thread)", report["simulator"])
    if "camera" in sections:
        from liveaug.bench.camera import camera_benchmarks

        report["camera"] = camera_benchmarks()
        _print_table("camera", report["camera"])
    if "models" in sections:
        from liveaug.bench.models import model_benchmarks

        report["models"] = model_benchmarks(tuple(args.sizes), args.frames)
        _print_table("models (onnxruntime)", report["models"])
    if "analysis" in sections:
        from liveaug.bench.analysis import analysis_benchmarks

        report["analysis"] = analysis_benchmarks(max(args.sizes), args.frames)
        _print_table("analysis (one thread)", report["analysis"])
    if "pipeline" in sections:
        from liveaug.analysis.analyzer import Analyzer
        from liveaug.bench.pipeline import pipeline_benchmarks
        from liveaug.inference import Predictor

        predictor = Predictor()
        print(predictor.report)
        for label, make_source in _pipeline_sources(args):
            analyzer = Analyzer(keep_history=False)
            with _drawer() as draw:
                res = pipeline_benchmarks(
                    predictor, analyzer, make_source=make_source, seconds=args.seconds, draw=draw
                )
            res["provider"] = predictor.report.line()
            res["threads"] = _thread_counts(predictor, draw is not None)
            report.setdefault("pipeline", {})[label] = res
            _print_table(
                f"pipeline vs naive loop, {res['size']}, {res['source']}",
                {
                    "compute alone": res["compute_alone_ms"],
                    "naive loop": res["naive"],
                    "pipeline": {k: v for k, v in res["pipeline"].items() if k != "stages"},
                    "pipeline stages (median ms)": {
                        k: round(v["median_ms"], 2) for k, v in res["pipeline"]["stages"].items()
                    },
                    "targets": res["targets"],
                },
            )
    if "batch" in sections:
        from liveaug.bench.batch import batch_benchmarks

        report["batch"] = batch_benchmarks(size=args.sizes[0])
        _print_table(
            f"batch on a local Dask cluster, {args.sizes[0]}x{args.sizes[0]}", report["batch"]
        )
    if "display" in sections:
        from liveaug.bench.display import display_benchmarks

        report["display"] = display_benchmarks((512, 2048), seconds=args.seconds)
        _print_table("display (real window; xvfb-run when headless)", report["display"])
    if "closed-loop" in sections:
        from liveaug.bench.closed_loop import closed_loop_benchmarks

        loop = closed_loop_benchmarks(
            fields=tuple(args.loop_fields),
            size=args.loop_size,
            hours=args.loop_hours,
            maps=args.loop_maps,
        )
        report["closed_loop"] = loop
        _print_table("closed loop (simulated dish through pymmcore-plus)", loop)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
        print(f"\nwrote {args.json}")
    return 0
