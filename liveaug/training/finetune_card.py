"""The fine-tuned model's card, the cells its reliability statistics are scored on, and its
lineage (parent → child) as ``liveaug models info`` shows it. No torch here."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from liveaug.errors import LiveaugError
from liveaug.frame import Frame
from liveaug.model_zoo import ModelSpec, find_models, load_model, sha256_of


def cells_of(
    raw_x: np.ndarray, maps: dict[str, np.ndarray], pixel_size_um: float
) -> Iterator[tuple[Frame, np.ndarray]]:
    """Each paired frame's quadrants (raw brightfield at the model's sampling) with the cells
    segmented from its real stains, in the model's units, the way liveaug segments virtual
    ones. Quadrants: a user brings tens of frames, and the frame-level Gaussian of the
    reliability statistics needs more descriptions than that (64 dimensions); a quadrant's
    description varies more than a whole frame's, which errs towards trusting this microscope."""
    from liveaug.analysis.segmentation import segment

    h, w = raw_x.shape[1:]
    parts = 2 if min(h, w) >= 128 else 1
    for i, image in enumerate(raw_x):
        labels = segment(maps["dapi"][i], maps["membrane"][i], pixel_size_um=2 * pixel_size_um)
        full = np.kron(labels.labels, np.ones((2, 2), labels.labels.dtype))
        th, tw = h // parts, w // parts
        for k in range(parts * parts):
            ys = slice(k // parts * th, (k // parts + 1) * th)
            xs = slice(k % parts * tw, (k % parts + 1) * tw)
            frame = Frame(image=image[ys, xs], index=i, timestamp_ns=0, pixel_size_um=pixel_size_um)
            yield frame, full[ys, xs]


#: The held-out criterion's weights (as :data:`liveaug.training.finetune.LOSS_WEIGHTS`).
WEIGHTS = {"dapi": 10.0, "membrane": 3.0}


def _row(name: str, s: dict[str, float], roles: list[str]) -> str:
    return f"| {name} | " + " | ".join(f"{s[f'{r}_r']:.3f}" for r in roles) + " |"


def card(parent: ModelSpec, lineage: dict[str, Any]) -> str:
    """Markdown model card: parent vs fine-tuned on the held-out frames, data, time, hardware."""
    roles = list(lineage["targets"])
    fig = lineage["figures"]
    n_frames = sum(len(d["frames"]) for d in lineage["data"])
    lines = [
        f"# {parent.name}, fine-tuned on paired frames",
        "",
        f"Fine-tuned from **{parent.name}** (sha256 `{parent.sha256}`) with `liveaug finetune` "
        f"on {n_frames} paired frames of {len(lineage['data'])} session(s), in "
        f"{lineage['minutes']:.1f} min on {lineage['hardware']} ({lineage['device']}).",
        "",
        f"## Held-out frames ({fig['held_out_frames']}, the last of each session in time)",
        "",
        "Mean per-frame Pearson r of the predicted stain against the real one (model sampling).",
        "",
        "| model | " + " | ".join(f"{r} r" for r in roles) + " |",
        "| --- | " + " | ".join("---" for _ in roles) + " |",
        _row("parent", fig["parent"], roles),
        _row("heads refitted, backbone frozen", fig["heads"], roles),
        _row("fine-tuned (this model)", fig["fine_tuned"], roles),
        "",
        "## Data",
        "",
        "| session | id | frames | held out | offset (dy, dx) px | units (scale, offset) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for d in lineage["data"]:
        offs = "; ".join(f"{c}: {o[0]:+.1f}, {o[1]:+.1f}" for c, o in d["offsets_px"].items())
        units = "; ".join(f"{c}: {u[0]:.4g}, {u[1]:.4g}" for c, u in d["units"].items())
        lines.append(
            f"| {d['path']} | {d['session_id']} | {len(d['frames'])} | "
            f"{len(d['held_out'])} | {offs} | {units} |"
        )
    cfg = lineage["config"]
    hist = lineage.get("history") or [{"step": 0}]
    steps = hist[-1]["step"]
    best = min(hist, key=lambda h: sum(w * h[f"{r}_mse"] for r, w in WEIGHTS.items() if r in roles))
    crops = "flips and 90° turns" if cfg.get("turns") else "in the microscope's own orientation"
    lines += [
        "",
        "## How",
        "",
        f"Targets: {', '.join(f'{r} = channel {c!r}' for r, c in lineage['targets'].items())}. "
        "Each channel was registered to brightfield (cross-correlation of the brightfield's "
        "local contrast with the stain, summed over the session's frames; both cut to their "
        "overlap) and put into the parent's units by a straight line fitted, per session, to "
        "the parent's prediction on the training frames (nucleus-sized squares, the worst 10 % "
        "dropped). The named heads were refitted by least squares on the frozen backbone, then "
        f"the whole network trained at a peak rate of {cfg['lr']:g} (warm-up and cosine, AdamW, "
        f"{cfg['batch']} crops of {cfg['crop']} output pixels {crops}) for {steps} steps, "
        f"keeping the weights best on the held-out frames (step {best['step']}). "
        "Phase and apoptosis heads are the parent's; "
        "the backbone under them moved, so their figures are not re-measured here.",
        "",
        "Reliability statistics (`reliability.npz`) are fitted on these sessions' frames "
        "(cells segmented from the real stains), not on simulated ones: this model is meant "
        "for this microscope, and frames unlike it are what it should flag.",
        "",
        f"Command: `{lineage['command']}`" if lineage.get("command") else "",
    ]
    return "\n".join(lines) + "\n"


def lineage_of(spec: ModelSpec) -> dict[str, Any] | None:
    """The ``config.liveaug.lineage`` a fine-tuned model records, None for others."""
    conf = (spec.rdf.get("config") or {}).get("liveaug") or {}
    lin = conf.get("lineage")
    return lin if isinstance(lin, dict) else None


def find_by_sha(sha: str | None, hint: str | None) -> ModelSpec | None:
    """A locally available model whose weights have ``sha`` (the recorded folder first, then
    the shipped ones); None when none is here."""
    if not sha:
        return None
    places = [Path(hint)] if hint else []
    for folder in [*places, *find_models()]:
        try:
            spec = load_model(folder)
        except LiveaugError:  # a folder that is gone or broken is just not it
            continue
        if spec.sha256 == sha or (spec.sha256 is None and sha256_of(spec.weights) == sha):
            return spec
    return None


def chain(spec: ModelSpec, limit: int = 20) -> list[str]:
    """Lines describing ``spec`` and its ancestors, newest first, as far as they are here."""
    lines = []
    for _ in range(limit):
        lin = lineage_of(spec)
        if lin is None:
            break
        parent = lin.get("parent") or {}
        fig = lin.get("figures") or {}
        figs = ", ".join(
            f"{r} r {fig.get('parent', {}).get(f'{r}_r', float('nan')):.3f} → "
            f"{fig.get('fine_tuned', {}).get(f'{r}_r', float('nan')):.3f}"
            for r in lin.get("targets", {})
        )
        frames = sum(len(d.get("frames", [])) for d in lin.get("data", []))
        sha = str(parent.get("sha256") or "")[:8]
        lines.append(
            f"{parent.get('name')}@{sha} → {spec.short_id}: {frames} paired frames, "
            f"{len(lin.get('data', []))} session(s); held-out {figs}"
        )
        found = find_by_sha(parent.get("sha256"), parent.get("folder"))
        if found is None:
            lines.append(f"{parent.get('name')}@{sha}: not available here")
            break
        spec = found
    return lines
