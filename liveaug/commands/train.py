"""``liveaug train``: simulate training data, train the predictor, export, package and evaluate.

The defaults reproduce the shipped model (``models/liveaug-bf4``): stage 1 trains from scratch,
stage 2 fine-tunes with the stains weighted up, stage 3 polishes with the membrane and
apoptosis weighted up too, stage 4 goes on at half the learning rate with both weighted up
further, stage 5 adds a loss on the DAPI map averaged over nucleus-sized squares (what per-cell
integrated DAPI is read from), stage 6 widens the network (new channels start unused) and goes
on with stage 5's losses — as the shipped default weights were made; about 3¾ hours on 2
cores::

    liveaug train --out models/liveaug-bf4

``--domains`` goes on with stages 7 and 8 over many simulated microscopes (domain
randomisation: contrast modes, light, cameras, samples; their own cache), as
``models/liveaug-bf4-domains`` was made (``--no-int8``).

Steps: (1) simulate and cache the training frames (skipped when the cache exists), (2) train on
the CPU, (3) export ONNX and check it against PyTorch, (4) write the bioimage.io folder,
(5) measure accuracy on held-out sessions (in-distribution and shifted) and write the model card.
Needs the ``train`` extra (torch).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from liveaug.training.train import TrainConfig

HELP = (
    "Train the brightfield predictors (virtual DAPI, membrane, phase, apoptosis) on simulated "
    "data, export them to ONNX and write a bioimage.io model folder with its model card."
)


@dataclass(frozen=True)
class Stage:
    """One training stage after the first, as the shipped weights were made."""

    name: str
    """Option prefix (``--NAME-steps`` …)."""
    steps: int
    lr: float
    """Peak learning rate."""
    loss_weights: str
    seed_offset: int
    why: str
    widths: tuple[int, ...] | None = None
    """Widen the network to these level widths first (:func:`~liveaug.training.model.widen`);
    ``None`` keeps the previous stage's."""
    domains: bool = False
    """Train on the domain-randomised cache (many microscopes) instead of the clean one."""
    schedule_steps: int = 0
    """Stop after ``steps`` of a schedule this long (0: the schedule is ``steps`` long)."""


LATER_STAGES: tuple[Stage, ...] = (
    Stage(
        "finetune",
        3000,
        1e-3,
        "dapi=20,membrane=6,phase=1,apoptosis=1",
        1,
        "the stains weigh more once phase has converged",
    ),
    Stage(
        "polish",
        6000,
        1e-3,
        "dapi=20,membrane=8,phase=1,apoptosis=2",
        0,
        "losses were still falling after stage 2",
    ),
    Stage(
        "extend",
        6000,
        5e-4,
        "dapi=20,membrane=12,phase=1,apoptosis=3",
        2,
        "membrane and apoptosis were still short of their targets after stage 3",
    ),
    Stage(
        "dna",
        3000,
        3e-4,
        "dapi=20,dapi_pool=1000,membrane=12,phase=1,apoptosis=3",
        3,
        "DAPI averaged over nucleus-sized squares fitted too, for per-cell integrated DAPI",
    ),
    Stage(
        "widen",
        8000,
        1e-3,
        "dapi=20,dapi_pool=1000,membrane=12,phase=1,apoptosis=3",
        4,
        "the network widened (the new channels start unused) for the membrane, still short",
        widths=(32, 48, 64, 96, 160),
    ),
    Stage(
        "domains",
        612,
        5e-4,
        "dapi=20,dapi_pool=1000,membrane=12,phase=1,apoptosis=3",
        7,
        "many microscopes (contrast modes, light, cameras, samples; DIC kept out) so the models "
        "hold beyond the clean simulator; cut at step 612 of 3000 for time",
        domains=True,
        schedule_steps=3000,
    ),
    Stage(
        "domains2",
        1000,
        3e-4,
        "dapi=20,dapi_pool=1000,membrane=12,phase=1,apoptosis=3",
        8,
        "stage 7 continued on a schedule that fits the time left",
        domains=True,
    ),
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """What a user sets first (output, threads, a starting point); the recipe, whose defaults
    make the shipped model, in its own group; the later stages' options work but stay out of
    the help's way (named in the group's text)."""
    p.add_argument(
        "--out", type=Path, default=Path("models/liveaug-bf4"), metavar="DIR", help="model folder"
    )
    p.add_argument(
        "--threads", type=int, default=2, metavar="N", help="torch threads (and data workers)"
    )
    p.add_argument(
        "--init",
        type=Path,
        metavar="MODEL",
        help="start from this checkpoint (model.pt) or model folder (its ONNX weights) instead "
        "of from scratch",
    )
    p.add_argument(
        "--checkpoint",
        type=Path,
        metavar="MODEL.pt",
        help="skip training: export and evaluate this checkpoint instead",
    )
    p.add_argument(
        "--cache",
        type=Path,
        default=Path.home() / ".cache/liveaug/train_500x6.npz",
        metavar="FILE.npz",
        help="training-data cache; built when missing",
    )
    p.add_argument("--train-minutes", type=float, help=argparse.SUPPRESS)
    p.add_argument(
        "--int8",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also write the int8-quantised twin (OUT-int8)",
    )
    recipe = p.add_argument_group(
        "training recipe",
        "The defaults reproduce the shipped model. Later stages (finetune, polish, extend, dna, "
        "widen, domains, domains2) each take --STAGE-steps (0 skips it), --STAGE-lr and "
        "--STAGE-loss-weights; see liveaug/commands/train.py for their defaults.",
    )
    recipe.add_argument(
        "--domains",
        action="store_true",
        help="go on with the stages on many simulated microscopes (domains, domains2), as "
        "models/liveaug-bf4-domains was made",
    )
    recipe.add_argument(
        "--domain-cache",
        type=Path,
        default=Path.home() / ".cache/liveaug/train_domains_480x4.npz",
        metavar="FILE.npz",
        help="cache of the domain-randomised sessions (built when missing: --domain-sessions x "
        "4 frames, 35%% of them from the clean microscope)",
    )
    recipe.add_argument(
        "--domain-sessions", type=int, default=480, help="domain-randomised sessions"
    )
    recipe.add_argument("--sessions", type=int, default=500, help="simulated training sessions")
    recipe.add_argument("--frames", type=int, default=6, help="frames per training session")
    recipe.add_argument("--steps", type=int, default=4000, help="stage 1: optimizer steps")
    recipe.add_argument("--batch", type=int, default=12, help="crops per optimizer step")
    recipe.add_argument("--crop", type=int, default=128, help="training crop (model pixels)")
    recipe.add_argument(
        "--seed", type=int, default=0, help="random seed of initialisation and batches"
    )
    recipe.add_argument("--lr", type=float, default=3e-3, help="stage 1: peak learning rate")
    recipe.add_argument(
        "--loss-weights",
        default="dapi=10,membrane=3,phase=1,apoptosis=1",
        help="stage 1: weight of each task's loss, role=weight,…",
    )
    for st in LATER_STAGES:
        recipe.add_argument(
            f"--{st.name}-steps", type=int, default=st.steps, help=argparse.SUPPRESS
        )
        recipe.add_argument(f"--{st.name}-lr", type=float, default=st.lr, help=argparse.SUPPRESS)
        recipe.add_argument(
            f"--{st.name}-loss-weights", default=st.loss_weights, help=argparse.SUPPRESS
        )
    recipe.add_argument(
        "--eval-sessions", type=int, default=8, help="held-out sessions per setting"
    )
    recipe.add_argument("--eval-frames", type=int, default=5, help="frames per held-out session")


def _weights(text: str) -> dict[str, float]:
    return {k: float(v) for k, v in (kv.split("=") for kv in text.split(","))}


def run(args: argparse.Namespace) -> int:
    """The whole recipe, timed."""
    from liveaug.errors import LiveaugError

    try:
        import torch  # noqa: F401
    except ImportError:
        raise LiveaugError(
            "liveaug train needs PyTorch", "install the train extra: pip install 'liveaug[train]'"
        ) from None
    from liveaug.progress import progress
    from liveaug.training.pipeline import finish_model
    from liveaug.training.train import load_checkpoint, save_checkpoint, train

    t_start = time.monotonic()
    work = args.cache.parent / f"work-{args.out.name}"  # checkpoints and raw ONNX, not shipped
    work.mkdir(parents=True, exist_ok=True)
    stages = stage_configs(args, work)
    if args.checkpoint:
        model, cfg = load_checkpoint(args.checkpoint)
        minutes_train = args.train_minutes
    else:
        t0 = time.monotonic()
        data: dict[str, Any] = {}
        for i, cfg in enumerate(stages, 1):
            cache = args.domain_cache if i in domain_stages(args) else args.cache
            if data.get("path") != cache:
                data = {"path": cache, "arrays": _cache(cache, args, domains=cache != args.cache)}
            with progress(cfg.steps, f"train stage {i}", unit="step") as bar:
                model = train(
                    data["arrays"],
                    cfg,
                    log=bar.write,
                    on_step=bar.update,
                    resume=work / f"stage{i}.resume.pt",
                )
            save_checkpoint(model, cfg, work / f"stage{i}.pt")
        minutes_train = (time.monotonic() - t0) / 60
        del data
        save_checkpoint(model, cfg, work / "model.pt")
    report = finish_model(
        model,
        cfg,
        args.out,
        work=work,
        eval_sessions=args.eval_sessions,
        eval_frames=args.eval_frames,
        train_minutes=minutes_train,
        command="liveaug train " + _argv_summary(args),
        recipe=_recipe(stages, domain_stages(args)),
        domains=bool(domain_stages(args)),
        int8=args.int8,
    )
    print(json.dumps(report["accuracy"], indent=1, default=float))
    print(f"wrote {args.out} in {(time.monotonic() - t_start) / 60:.1f} min")
    return 0


def _cache(path: Path, args: argparse.Namespace, *, domains: bool) -> dict[str, Any]:
    """The training arrays in ``path``, simulated first when the file is missing."""
    from liveaug.progress import progress
    from liveaug.training.data import build_cache, load_cache

    if not path.is_file():
        sessions, frames = (args.domain_sessions, 4) if domains else (args.sessions, args.frames)
        with progress(sessions, "simulate", unit="session") as bar:
            build_cache(
                path,
                sessions,
                frames,
                workers=args.threads,
                domains=domains,
                on_session=bar.update,
            )
    return load_cache(path)


def domain_stages(args: argparse.Namespace) -> set[int]:
    """Numbers of the stages (1 = the first) that train on the domain-randomised cache."""
    kept = [st for st in LATER_STAGES if _runs(args, st)]
    return {n for n, st in enumerate(kept, 2) if st.domains}


def init_checkpoint(path: Path, work: Path) -> Path:
    """``--init`` as a checkpoint: a model folder's ONNX weights are read back into the U-Net
    they were exported from (:func:`liveaug.training.finetune.load_parent`, as ``liveaug
    finetune --init`` reads them) and saved in ``work``."""
    if path.suffix == ".pt":
        return path
    import numpy as np

    from liveaug.sources.simulated import SimulatedMicroscope
    from liveaug.training.data import prepare, sample_config
    from liveaug.training.finetune import load_parent
    from liveaug.training.train import TrainConfig, save_checkpoint

    cfg = sample_config(np.random.default_rng(0), seed=300_999)
    sim = SimulatedMicroscope(cfg)
    sim.open()
    frames = np.stack([prepare(sim.read(), cfg).x for _ in range(3)])[:, None]
    spec, model = load_parent(path, frames)  # a folder that is not liveaug's: one line
    out = work / f"init-{spec.folder.name}.pt"
    return save_checkpoint(model, TrainConfig(widths=model.widths), out)


def stage_configs(args: argparse.Namespace, work: Path) -> list[TrainConfig]:
    """The training stages the options ask for, each starting from the one before's checkpoint
    in ``work``; a stage never narrows the network (fine-tuning a widened checkpoint keeps it)."""
    from liveaug.training.train import TrainConfig, load_checkpoint

    common = {"batch": args.batch, "crop": args.crop, "threads": args.threads}
    if args.init:
        args.init = init_checkpoint(args.init, work)
    widths = load_checkpoint(args.init)[1].widths if args.init else TrainConfig.widths
    stages = [
        TrainConfig(
            steps=args.steps,
            seed=args.seed,
            lr=args.lr,
            loss_weights=_weights(args.loss_weights),
            init=str(args.init or ""),
            widths=widths,
            **common,
        )
    ]
    for st in LATER_STAGES:
        steps, lr, weights = _stage(args, st.name)
        if _runs(args, st):
            prev = stages[-1].widths
            if st.widths and len(st.widths) == len(prev):
                prev = tuple(max(a, b) for a, b in zip(st.widths, prev, strict=True))
            stages.append(
                TrainConfig(
                    steps=steps,
                    seed=args.seed + st.seed_offset,
                    lr=lr,
                    loss_weights=_weights(weights),
                    init=str(work / f"stage{len(stages)}.pt"),
                    widths=prev,
                    schedule_steps=st.schedule_steps,
                    **common,
                )
            )
    return stages


def _runs(args: argparse.Namespace, st: Stage) -> bool:
    """Whether a later stage is part of this run: it has steps, and a stage on many microscopes
    only with ``--domains`` (the default recipe makes the default, clean-microscope model)."""
    return _stage(args, st.name)[0] > 0 and (args.domains or not st.domains)


def _stage(args: argparse.Namespace, name: str) -> tuple[int, float, str]:
    """Steps, peak learning rate and loss weights the options give a later stage."""
    return (
        getattr(args, f"{name}_steps"),
        getattr(args, f"{name}_lr"),
        getattr(args, f"{name}_loss_weights"),
    )


def _recipe(stages: list[TrainConfig], domains: Collection[int] = ()) -> str:
    """The stages in words, for the model card: read from the configs that train the weights,
    so the card says what ran (a widening included)."""
    parts = []
    for n, cfg in enumerate(stages, 1):
        weights = ",".join(f"{k}={v:g}" for k, v in cfg.loss_weights.items())
        if n == 1:
            start = f"from {cfg.init}" if cfg.init else "from scratch"
            head = f"Stage 1: {cfg.steps} steps {start}"
        else:
            widened = f", widened to {cfg.widths}" if cfg.widths != stages[n - 2].widths else ""
            head = f"stage {n}: {cfg.steps} steps from stage {n - 1}{widened}"
            if cfg.schedule_steps:
                head += f" (of a {cfg.schedule_steps}-step schedule)"
        if n in domains:
            head += " on many simulated microscopes"
        parts.append(f"{head}, peak lr {cfg.lr:g}, loss weights {weights}")
    text = "; ".join(parts) + ". AdamW, cosine schedule, random 90° rotations and flips."
    if "dapi_pool" in text:
        from liveaug.training.train import TrainConfig

        k = TrainConfig.dapi_pool_px
        text += (
            f" dapi_pool: squared error of the DAPI maps averaged over {k} × {k} output pixels"
            " (about a nucleus), what per-cell integrated DAPI is read from."
        )
    return text


def _argv_summary(args: argparse.Namespace) -> str:
    parts = [f"--out {args.out}"]
    for key, default in (
        ("sessions", 500),
        ("frames", 6),
        ("steps", 4000),
        ("batch", 12),
        ("crop", 128),
        ("seed", 0),
        ("threads", 2),
        ("lr", 3e-3),
        ("loss_weights", "dapi=10,membrane=3,phase=1,apoptosis=1"),
        *(
            (f"{st.name}_{key}", default)
            for st in LATER_STAGES
            for key, default in (
                ("steps", st.steps),
                ("lr", st.lr),
                ("loss_weights", st.loss_weights),
            )
        ),
        ("init", None),
    ):
        if getattr(args, key) != default:
            parts.append(f"--{key.replace('_', '-')} {getattr(args, key)}")
    parts += ["--domains"] * args.domains + ["--no-int8"] * (not args.int8)
    return " ".join(parts)
