"""How fast the predictors run here: all four maps, each map alone, fp32 vs int8, CPU vs GPU,
and with test-time views (``Predictor(views=…)``).

The per-output figures tell the pipeline what switching an overlay off saves, the views what
their accuracy costs. GPU providers are timed at 512² and 2048² whenever
:func:`liveaug.providers.probe_providers` finds them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from liveaug.frame import ROLES
from liveaug.inference import Predictor
from liveaug.model_zoo import find_models
from liveaug.providers import CPU, SHORT, probe_providers
from liveaug.sources.simulated import SimulatedMicroscope, SimulationConfig
from liveaug.timing import time_calls
from liveaug.views import VIEW_COUNTS


def _frame(size: int):
    sim = SimulatedMicroscope(SimulationConfig(height=size, width=size, seed=8999, truth=False))
    sim.open()
    return sim.read()


def model_benchmarks(
    sizes: tuple[int, ...] = (512,),
    frames: int = 30,
    threads: int | None = None,
    models: list[Path] | None = None,
) -> dict[str, Any]:
    """Median/p95 ms per case; keys name the model, provider, size and outputs fetched.

    Each case includes the engine's preprocessing (binning where needed, normalisation), i.e.
    what the pipeline pays per frame.
    """
    report = probe_providers()
    out: dict[str, Any] = {"providers": report.line()}
    folders = models or find_models()
    if not folders:
        out["error"] = "no models found"
        return out
    frame_cache = {s: _frame(s) for s in sorted({*sizes, 512})}
    for folder in folders:
        pred = Predictor([folder], threads=threads, providers=[CPU])
        name = folder.name
        for size in sizes:
            f = frame_cache[size]
            stats = time_calls(lambda f=f, p=pred: p.predict(f), repeats=frames, warmup=3)
            stats["fps"] = 1000.0 / stats["median_ms"]
            out[f"{name} CPU {size}² all four"] = stats
        f = frame_cache[512]
        for role in ROLES:
            if role in pred.roles:
                out[f"{name} CPU 512² {role} only"] = time_calls(
                    lambda f=f, r=role, p=pred: p.predict(f, [r]), repeats=frames, warmup=2
                )
        for views in VIEW_COUNTS[1:]:
            pv = Predictor([folder], threads=threads, providers=[CPU], views=views)
            out[f"{name} CPU 512² all four, {views} views"] = time_calls(
                lambda f=f, p=pv: p.predict(f), repeats=max(3, frames // views), warmup=1
            )
        for gpu in (p for p in report.usable if p != CPU):
            gp = Predictor([folder], providers=[gpu, CPU])
            for size in sorted({*sizes, 512, 2048}):
                f = frame_cache.get(size) or _frame(size)
                frame_cache[size] = f
                out[f"{name} {SHORT[gpu]} {size}² all four"] = time_calls(
                    lambda f=f, gp=gp: gp.predict(f), repeats=frames, warmup=5
                )
    return out
