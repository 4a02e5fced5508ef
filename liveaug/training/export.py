"""Export a trained network to ONNX (opset 17, IR 10, dynamic H/W) and check it against PyTorch.

IR version 10 is what onnxruntime 1.31 loads; onnx ≥ 1.23 writes newer IR by default, so the
version is set explicitly before saving.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch

from liveaug.training.model import OUTPUTS, STRIDE, UNet

OPSET = 17
IR_VERSION = 10
INPUT = "brightfield"


def export_onnx(model: UNet, path: Path) -> Path:
    """Write ``model`` (eval mode, float32) as ONNX with dynamic batch, height and width."""
    model = model.eval().float()
    dummy = torch.zeros(1, 1, 4 * STRIDE, 4 * STRIDE)
    dyn = {0: "batch", 2: "height", 3: "width"}
    buf = io.BytesIO()
    # The TorchScript exporter is deprecated in favour of torch.export (which needs onnxscript);
    # for this plain convolutional graph it is exact (checked below) and has no extra dependency.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)  # scoped to this call
        torch.onnx.export(
            model,
            (dummy,),
            buf,
            input_names=[INPUT],
            output_names=list(OUTPUTS),
            dynamic_axes={INPUT: dyn, **{name: dyn for name in OUTPUTS}},
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    proto = onnx.load_model_from_string(buf.getvalue())
    proto.ir_version = IR_VERSION
    proto.producer_name = "liveaug.training"
    onnx.checker.check_model(proto)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(path))
    return path


def check_against_torch(
    model: UNet, path: Path, x: np.ndarray, *, atol: float = 1e-4
) -> dict[str, float]:
    """Max absolute difference per output between onnxruntime (CPU) and PyTorch on ``x``.

    Raises ``AssertionError`` when any output differs by more than ``atol``.
    """
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(list(OUTPUTS), {INPUT: x.astype(np.float32)})
    with torch.no_grad():
        ref = [t.numpy() for t in model.eval()(torch.from_numpy(x.astype(np.float32)))]
    diffs = {name: float(np.abs(g - r).max()) for name, g, r in zip(OUTPUTS, got, ref, strict=True)}
    bad = {k: v for k, v in diffs.items() if not v <= atol}
    if bad:
        raise AssertionError(f"ONNX export of {path} differs from PyTorch: {bad} (atol {atol})")
    return diffs
