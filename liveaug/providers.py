"""onnxruntime execution providers: which of TensorRT, CUDA and CPU can run here, and why not.

Each GPU provider is probed quietly before a session asks for it (is it compiled in, do its
shared libraries load, is there a GPU), so a machine without CUDA gets one line saying why — not
onnxruntime's loud load errors.
"""

from __future__ import annotations

import ctypes
import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TRT, CUDA, CPU = "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"
SHORT = {TRT: "TensorRT", CUDA: "CUDA", CPU: "CPU"}
_LIB = {TRT: "libonnxruntime_providers_tensorrt.so", CUDA: "libonnxruntime_providers_cuda.so"}


@dataclass(frozen=True)
class ProviderReport:
    """Which providers will be used, and why each of the others will not."""

    version: str
    usable: tuple[str, ...]
    reasons: dict[str, str]

    def line(self) -> str:
        """One line for logs and the command line."""
        why = "; ".join(f"{SHORT.get(p, p)}: {r}" for p, r in self.reasons.items())
        runs = " → ".join(SHORT.get(p, p) for p in self.usable)
        return f"onnxruntime {self.version}: {runs}" + (f" ({why})" if why else "")


def _missing_library(lib_path: Path) -> str | None:
    """Load a provider library the way the dynamic linker would; None when it loads."""
    try:
        ctypes.CDLL(str(lib_path), mode=os.RTLD_LAZY | os.RTLD_LOCAL)
    except OSError as exc:
        msg = str(exc)
        m = re.search(r"([\w.+-]+\.so[\w.]*): cannot open shared object file", msg)
        return f"{m.group(1)} not found" if m else msg.split(":")[-1].strip()
    return None


def _gpu_count() -> tuple[int, str | None]:
    """CUDA devices visible through the driver API (0 and a reason when none)."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return 0, "no NVIDIA driver (libcuda.so.1 not found)"
    if cuda.cuInit(0) != 0:
        return 0, "the NVIDIA driver found no usable GPU"
    n = ctypes.c_int(0)
    if cuda.cuDeviceGetCount(ctypes.byref(n)) != 0 or n.value == 0:
        return 0, "no CUDA device visible"
    return n.value, None


@functools.cache
def probe_providers() -> ProviderReport:
    """Decide quietly which of TensorRT, CUDA, CPU can run here (cached per process)."""
    import onnxruntime as ort

    available = set(ort.get_available_providers())
    capi = Path(ort.__file__).parent / "capi"
    usable: list[str] = []
    reasons: dict[str, str] = {}
    gpus: tuple[int, str | None] | None = None
    for prov in (TRT, CUDA):
        if prov not in available:
            reasons[prov] = "not in this onnxruntime build"
            continue
        missing = _missing_library(capi / _LIB[prov])
        if missing:
            reasons[prov] = missing
            continue
        gpus = gpus or _gpu_count()
        if gpus[1]:
            reasons[prov] = gpus[1]
            continue
        usable.append(prov)
    usable.append(CPU)
    return ProviderReport(ort.__version__, tuple(usable), reasons)


def session_options(threads: int | None = None) -> Any:
    """Full graph optimisation, sequential execution, deliberate thread counts.

    ``threads`` defaults to the cores this process may use: inference is the pipeline's
    heaviest stage, and acquisition/display threads mostly wait on I/O.
    """
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.intra_op_num_threads = threads or len(os.sched_getaffinity(0))
    so.inter_op_num_threads = 1
    # no spin-waiting between runs: idle ORT workers would otherwise burn the cores that the
    # analysis, acquisition and display threads of the same process need (measured: analysis
    # 27 → 14 ms, prediction 55 → 33 ms per 512² frame on 2 cores)
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3
    return so
