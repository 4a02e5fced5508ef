"""Batch throughput on a local Dask cluster with 1 and 2 workers, from the same session."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from liveaug.batch import run_batch
from liveaug.bench.pipeline import make_bench_session


def batch_benchmarks(
    size: int = 512, frames: int = 60, workers: tuple[int, ...] = (1, 2)
) -> dict[str, Any]:
    """Frames per second end to end (cluster start excluded per range file, included overall)."""
    folder = Path(tempfile.mkdtemp(prefix="liveaug-bench-batch-"))
    session = make_bench_session(folder, size, frames)
    out: dict[str, Any] = {}
    for n in workers:
        s = run_batch(
            [session],
            folder / f"out-{n}",
            workers=n,
            chunk=max(10, frames // 6),
            warmup=6,
            progress=False,
        )
        out[f"{n} worker{'s' if n > 1 else ''}"] = {
            "frames_per_s": s.frames_per_s,
            "seconds": s.seconds,
            "frames": s.frames,
            "predict_ms": s.predict_ms,
            "analyze_ms": s.analyze_ms,
            "model_loads": s.model_loads,
        }
    return out
