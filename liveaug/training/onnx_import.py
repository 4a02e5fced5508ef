"""Read a liveaug U-Net back from its exported ONNX file, to fine-tune a shipped model.

Export folds every BatchNorm into the convolution before it, so the ONNX file holds folded
weights ``W' = W·γ/σ`` and biases ``b'``. They go back into the PyTorch modules with each
BatchNorm set to add ``b'`` exactly in eval mode; its running statistics are then set from the
folded convolution's own output on a few frames, so that training-mode BatchNorm (which
normalises with batch statistics) starts from nearly what the exported model computes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from liveaug.training.model import UNet


def _pair(conv: nn.Module, bn: nn.Module | None = None) -> tuple[nn.Conv2d, nn.BatchNorm2d | None]:
    """A convolution and the BatchNorm after it (None for the bias-carrying 1 × 1 heads)."""
    assert isinstance(conv, nn.Conv2d) and (bn is None or isinstance(bn, nn.BatchNorm2d))
    return conv, bn


def _conv_order(model: UNet) -> list[tuple[nn.Conv2d, nn.BatchNorm2d | None]]:
    """The network's convolutions in the order its exported graph computes them."""
    blocks: list[nn.Module] = [model.stem[3]]
    for down in model.down:
        blocks += [down[1], down[2]]
    order = [_pair(model.stem[0], model.stem[1])] + [_pair(b[0], b[1]) for b in blocks]
    for i in range(len(model.fuse) - 1, -1, -1):
        fuse = model.fuse[i]
        order += [_pair(model.lateral[i]), _pair(fuse[0], fuse[1])]
    phase = model.head_phase
    heads = [_pair(model.head_dapi), _pair(model.head_membrane), _pair(phase[0][0], phase[0][1])]
    return [*order, *heads, _pair(phase[1]), _pair(model.head_apoptosis)]


def unet_from_onnx(
    path: Path,
    *,
    phase_offsets: list[float] | None = None,
    apoptosis_offset: float = 0.0,
    frames: np.ndarray | None = None,
) -> UNet:
    """The :class:`UNet` an ONNX file was exported from (eval mode), with its logit offsets.

    ``frames`` ``(N, 1, H, W)``, prepared as for training, set the BatchNorm statistics for
    further training; without them the network is exact in eval mode only. Raises ``ValueError``
    when the graph is not a liveaug U-Net.
    """
    proto = onnx.load(str(path))
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    found = [inits.get(n.input[1]) for n in convs]
    weights = [w for w in found if w is not None and w.ndim == 4]
    if len(weights) != len(convs) or len(weights) < 8 or "head_phase.1.bias" not in inits:
        raise ValueError(f"{path} is not a liveaug U-Net (its convolutions do not match)")
    lateral = [w for n, w in zip(convs, weights, strict=True) if n.input[1].startswith("lateral")]
    widths = (int(weights[0].shape[0]), *(int(w.shape[1]) for w in reversed(lateral)))
    model = UNet(widths, n_phase=int(inits["head_phase.1.bias"].shape[0]))
    order = _conv_order(model)
    if len(order) != len(convs):
        raise ValueError(f"{path} has {len(convs)} convolutions; a {widths} U-Net has {len(order)}")
    with torch.no_grad():
        for node, w, (conv, bn) in zip(convs, weights, order, strict=True):
            if tuple(conv.weight.shape) != w.shape:
                raise ValueError(
                    f"{path}: {node.name} has shape {w.shape}, expected {tuple(conv.weight.shape)}"
                )
            conv.weight.copy_(torch.from_numpy(np.array(w)))
            b = inits[node.input[2]] if len(node.input) > 2 else None
            if bn is None:
                if conv.bias is not None and b is not None:
                    conv.bias.copy_(torch.from_numpy(np.array(b)))
                continue
            bn.reset_running_stats()
            assert bn.running_var is not None
            bn.running_var.fill_(1.0 - bn.eps)
            bn.weight.fill_(1.0)
            bn.bias.copy_(torch.from_numpy(np.array(b)))
        if phase_offsets is not None:
            model.phase_bias.copy_(torch.tensor(phase_offsets, dtype=torch.float32))
        model.apoptosis_bias.fill_(float(apoptosis_offset))
    model.eval()
    if frames is not None:
        _set_batchnorm_statistics(model, torch.from_numpy(frames.astype(np.float32)))
    return model


def _set_batchnorm_statistics(model: UNet, x: torch.Tensor) -> None:
    """Give each BatchNorm the statistics of its input on ``x`` while keeping what it adds."""
    stats: dict[nn.Module, tuple[torch.Tensor, torch.Tensor]] = {}

    def hook(bn: nn.Module, inputs: tuple[torch.Tensor, ...], _out: torch.Tensor) -> None:
        t = inputs[0]
        stats[bn] = (t.mean((0, 2, 3)), t.var((0, 2, 3), unbiased=False))

    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    handles = [bn.register_forward_hook(hook) for bn in bns]
    with torch.no_grad():
        model.logits(x)
        for h in handles:
            h.remove()
        for bn in bns:
            mean, var = stats[bn]
            assert bn.running_mean is not None and bn.running_var is not None
            added = bn.bias.clone()
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)
            bn.weight.copy_(torch.sqrt(var + bn.eps))
            bn.bias.copy_(added + mean)
