"""Fine-tuning on a "new microscope": paired frames vs accuracy, docs/finetune_curve.png.

Run (about 15 minutes on 2 cores; nothing else should be running)::

    .venv/bin/python docs/make_finetune_curve.py /tmp/ft-bench --minutes 14 --curve 5,10 \
        --curve-minutes 6

The new microscope is one no liveaug model was trained on: **DIC** (differential interference
contrast, shear 0.25 µm at 45°, bias 0.8 rad, focus 0.5 µm; every training stage kept DIC out),
10x (0.65 µm/px), 512 × 512, with its fluorescence camera misregistered by (+3, −2) pixels.
Paired sessions are recorded with ``liveaug simulate --contrast dic --stain-channels`` (the
true stains written as the real channels ``hoechst`` and ``membrane``); the first N frames of one
culture (seed 41, 20 min apart) are the paired data, and ``liveaug finetune`` holds back the last
20 % of them. Figures are measured on a second, independent culture of the same microscope
(seed 42, 8 frames) against its true stains, exactly as ``liveaug models eval`` scores (mean
per-frame Pearson r at the model's output sampling), for the parent and each fine-tuned model;
the held-out figures ``finetune`` itself wrote into each card are listed beside them.
Writes ``docs/finetune_curve.png`` and ``docs/finetune_results.json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import cv2
import numpy as np

from liveaug.cli import main as liveaug
from liveaug.inference import Predictor
from liveaug.model_eval import evaluate
from liveaug.model_zoo import default_model, load_model
from liveaug.session import Session

DOCS = Path(__file__).resolve().parent
MICROSCOPE = ["--contrast", "dic", "--defocus", "0.5", "--interval", "1200"]
SHIFT = ["--stain-shift", "3", "-2"]


def simulate(path: Path, frames: int, seed: int, size: int = 512) -> Path:
    """A paired session of the new microscope (kept when it is already there)."""
    if not path.exists():
        args = [str(path), "--frames", str(frames), "--size", str(size), str(size)]
        args += ["--seed", str(seed)]
        rc = liveaug(["simulate", *args, *MICROSCOPE, "--stain-channels", *SHIFT])
        assert rc == 0, f"simulate failed for {path}"
    return path


def score(folder: Path, session: Path, threads: int) -> dict[str, float]:
    """DAPI and membrane r of a model on a session's frames against their truth."""
    s = evaluate(iter(Session.open(session)), Predictor([folder], threads=threads))
    keys = ("dapi_r", "membrane_r", "phase_balanced_accuracy", "apoptosis_f1")
    out = {k: round(float(s[k]), 4) for k in keys if k in s}
    if "frame_reliability" in s:
        out["frame_reliability"] = round(float(np.mean(s["frame_reliability"])), 3)
    return out


def reliability_on(folder: Path, session: Path, threads: int) -> float | None:
    """Mean frame reliability a model gives a session's frames (None without statistics)."""
    pred = Predictor([folder], threads=threads)
    scores = [pred.predict(f, roles=("dapi",)).trust for f in Session.open(session)]
    return round(float(np.mean([t.frame for t in scores])), 3) if scores[0] else None


def plot(points: list[dict[str, float]], out: Path) -> None:
    """Paired frames (0 = parent) vs r, with the targets as dashed lines (opencv drawing)."""
    w, h, m = 640, 420, 60
    img = np.full((h, w, 3), 255, np.uint8)
    xmax = max(p["frames"] for p in points) * 1.1
    lo = min(0.5, min(min(p["dapi_r"], p["membrane_r"]) for p in points) - 0.05)

    def xy(n: float, r: float) -> tuple[int, int]:
        return int(m + (w - 2 * m) * n / xmax), int(h - m - (h - 2 * m) * (r - lo) / (1 - lo))

    cv2.rectangle(img, xy(0, lo), xy(xmax, 1.0), (0, 0, 0), 1)
    for r in np.arange(np.ceil(lo * 10) / 10, 1.001, 0.1):
        cv2.putText(img, f"{r:.1f}", (10, xy(0, r)[1] + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45, 0, 1)
    for p in points:
        x = xy(p["frames"], lo)[0]
        cv2.putText(img, str(p["frames"]), (x - 8, h - m + 20), cv2.FONT_HERSHEY_SIMPLEX, 0.45, 0)
    for key, goal, colour in (("dapi_r", 0.90, (200, 60, 0)), ("membrane_r", 0.85, (0, 140, 0))):
        y = xy(0, goal)[1]
        for x0 in range(m, w - m, 12):
            cv2.line(img, (x0, y), (min(x0 + 6, w - m), y), colour, 1)
        pts = [xy(p["frames"], p[key]) for p in points]
        for a, b in itertools.pairwise(pts):
            cv2.line(img, a, b, colour, 2, cv2.LINE_AA)
        for pt in pts:
            cv2.circle(img, pt, 4, colour, -1, cv2.LINE_AA)
        label = f"{key.split('_')[0]} r (dashed: goal {goal})"
        at = (w - m - 230, h - m - (40 if key == "dapi_r" else 18))
        cv2.putText(img, label, at, cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)
    title = "fine-tuning on an unseen microscope (DIC): an independent culture"
    cv2.putText(img, title, (m, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.55, 0, 1, cv2.LINE_AA)
    cv2.putText(
        img,
        "paired frames (0 = parent)",
        (w // 2 - 100, h - 15),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.5,
        0,
        1,
        cv2.LINE_AA,
    )
    cv2.imwrite(str(out), img)


def run() -> None:
    """Simulate, fine-tune for each number of paired frames, score, plot."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("work", type=Path)
    ap.add_argument("--frames", type=int, default=20, help="paired frames of the main run")
    ap.add_argument("--minutes", type=float, default=14.0, help="budget of the main run")
    ap.add_argument("--curve", default="5,10", help="paired frames of the extra runs")
    ap.add_argument("--curve-minutes", type=float, default=6.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", type=int, default=512, help="field, pixels (smaller: a smoke test)")
    ap.add_argument("--init", type=Path, default=default_model())
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    held = simulate(args.work / "eval_seed42.ome.zarr", 8, 42, args.size)
    other = args.work / "brightfield_seed43.ome.zarr"  # the microscope the parent was made for
    if not other.exists():
        argv = [str(other), "--frames", "4", "--size", str(args.size), str(args.size)]
        assert liveaug(["simulate", *argv, "--seed", "43", "--interval", "1200"]) == 0
    parent = load_model(args.init)
    points = [{"frames": 0, **score(args.init, held, args.threads)}]
    runs = [(args.frames, args.minutes)]
    runs += [(int(n), args.curve_minutes) for n in args.curve.split(",") if n]
    results = []
    for n, minutes in runs:
        session = simulate(args.work / f"paired_seed41_{n}.ome.zarr", n, 41, args.size)
        out = args.work / f"dic-ft-{n}"
        if not out.exists():
            t0 = time.monotonic()
            cmd = [str(session), "--out", str(out), "--target", "dapi=hoechst"]
            cmd += ["--target", "membrane=membrane", "--init", str(args.init)]
            cmd += ["--minutes", str(minutes), "--threads", str(args.threads)]
            assert liveaug(["finetune", *cmd]) == 0
            print(f"finetune {n} frames: {(time.monotonic() - t0) / 60:.1f} min")
        lineage = load_model(out).rdf["config"]["liveaug"]["lineage"]
        res = {
            "frames": n,
            "budget_minutes": minutes,
            "minutes": lineage["minutes"],
            "hardware": lineage["hardware"],
            "offsets_px": lineage["data"][0]["offsets_px"],
            "held_out_frames_of_run": lineage["figures"],
            **score(out, held, args.threads),
            "frame_reliability_on_brightfield": reliability_on(out, other, args.threads),
        }
        results.append(res)
        points.append({"frames": n, "dapi_r": res["dapi_r"], "membrane_r": res["membrane_r"]})
        print(json.dumps(res))
    points.sort(key=lambda p: p["frames"])
    docs = DOCS if args.size == 512 else args.work  # a smoke test leaves the docs alone
    plot(points, docs / "finetune_curve.png")
    report = {
        "parent": {"name": parent.name, "sha256": parent.sha256, **points[0]},
        "independent_culture": "seed 42, 8 frames",
        "microscope": " ".join(MICROSCOPE + SHIFT),
        "runs": results,
    }
    (docs / "finetune_results.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    run()
