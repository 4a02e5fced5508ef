"""The predictor network: a small U-Net with one shared backbone and four named heads.

Why one backbone: the four maps need the same cues (nucleus optical path, cell outline, cell
size), and a shared encoder costs one forward pass instead of four (measured in the model card
and ``liveaug bench``). Each role is its own ONNX output, so the pipeline fetches only the maps
whose overlays are on.

The input is the unbinned frame (0.65 µm/px): a learned stride-2 stem keeps the fine
brightfield detail that 2 × 2 binning averages away (thin membranes, the first shrinking of a
dying cell), and the outputs come at half the input sampling (1.3 µm/px), where the rest of the
network, the analysis and the overlays work. Below the stem the encoder downsamples 16× (five
levels), which gives each pixel a receptive field of about two cell diameters: phase is a
property of the whole cell (nuclear dry mass and cell size), not of one pixel. Skips are added
(not concatenated) to keep the decoder cheap on two CPU cores.
"""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import nn

#: Output names in order: the liveaug roles (``liveaug.frame.ROLES``), then the features.
OUTPUTS: tuple[str, ...] = ("dapi", "membrane", "phase", "apoptosis", "features")
#: Input pixels per pixel of the ``features`` output, and its channels for the widths.
FEATURE_STRIDE = 8


def feature_channels(widths: tuple[int, ...]) -> int:
    """Channels of the ``features`` output: the decoder at 1/4, 1/8 and 1/16 of the input."""
    return widths[1] + widths[2] + widths[3]


#: Spatial stride of the network: input height and width must be multiples of it.
STRIDE = 32


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class UNet(nn.Module):
    """Brightfield ``(N, 1, H, W)`` → ``dapi``, ``membrane`` ``(N, 1, H/2, W/2)``, ``phase``
    ``(N, 5, H/2, W/2)`` softmax probabilities, ``apoptosis`` ``(N, 1, H/2, W/2)`` probability."""

    def __init__(self, widths: tuple[int, ...] = (16, 32, 48, 64, 96), n_phase: int = 5) -> None:
        super().__init__()
        self.widths = widths
        w0 = widths[0]
        self.stem = nn.Sequential(
            nn.Conv2d(1, w0, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(w0),
            nn.ReLU(inplace=True),
            _conv(w0, w0),
        )
        self.down = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(2), _conv(a, b), _conv(b, b)) for a, b in pairwise(widths)
        )
        self.lateral = nn.ModuleList(nn.Conv2d(b, a, 1, bias=False) for a, b in pairwise(widths))
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.fuse = nn.ModuleList(_conv(a, a) for a in widths[:-1])
        self.head_dapi = nn.Conv2d(w0, 1, 1)
        self.head_membrane = nn.Conv2d(w0, 1, 1)
        self.head_phase = nn.Sequential(
            _conv(widths[1], widths[1]), nn.Conv2d(widths[1], n_phase, 1)
        )
        self.head_apoptosis = nn.Conv2d(widths[1], 1, 1)
        # logit offsets for balanced per-cell phase calls and the best per-cell apoptosis F1,
        # fitted after training on training-distribution frames (``pipeline.calibrate``)
        self.register_buffer("phase_bias", torch.zeros(n_phase), persistent=False)
        self.register_buffer("apoptosis_bias", torch.zeros(1), persistent=False)

    def _decoded(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Decoder levels, coarsest first (the last one at half the input's sampling)."""
        feats = [self.stem(x)]
        for down in self.down:
            feats.append(down(feats[-1]))
        y = feats[-1]
        decoded = []
        for i in range(len(feats) - 2, -1, -1):
            y = self.fuse[i](feats[i] + self.up(self.lateral[i](y)))
            decoded.append(y)
        return decoded

    def logits(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Raw head outputs (phase and apoptosis as logits) for the losses."""
        return self._heads(self._decoded(x))

    def _heads(self, decoded: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        full, half = decoded[-1], decoded[-2]
        return {
            "dapi": self.head_dapi(full),
            "membrane": self.head_membrane(full),
            # cell-level properties from the half-resolution decoder (more context, 4× cheaper)
            "phase": self.up(self.head_phase(half)),
            "apoptosis": self.up(self.head_apoptosis(half)),
        }

    @staticmethod
    def _features(decoded: list[torch.Tensor]) -> torch.Tensor:
        """What the network sees at each place, at 1/8 of the input's sampling: the decoder's
        1/4 level averaged 2 × 2, its 1/8 level and its 1/16 level repeated 2 × 2 — the cue for
        reliability (how far a frame is from the training frames) and for per-cell embeddings."""
        quarter, eighth, sixteenth = decoded[-2], decoded[-3], decoded[-4]
        up = nn.functional.interpolate(sixteenth, size=eighth.shape[-2:], mode="nearest")
        return torch.cat([nn.functional.avg_pool2d(quarter, 2), eighth, up], dim=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The exported graph: probabilities and features, in :data:`OUTPUTS` order."""
        decoded = self._decoded(x)
        out = self._heads(decoded)
        return (
            out["dapi"],
            out["membrane"],
            torch.softmax(out["phase"] + self.phase_bias.view(1, -1, 1, 1), dim=1),
            torch.sigmoid(out["apoptosis"] + self.apoptosis_bias),
            self._features(decoded),
        )


def widen(small: UNet, widths: tuple[int, ...]) -> UNet:
    """A wider U-Net that computes exactly what ``small`` computes, to train on from there.

    Every tensor of ``small`` is copied into the leading slice of the wider one; the weights
    that read the new channels start at zero, so the new channels (randomly initialised, as from
    scratch) change nothing until training gives them a use. Capacity grows without throwing
    away what the small network has learnt (net2net-style widening).
    """
    if len(widths) != len(small.widths) or any(
        w < s for w, s in zip(widths, small.widths, strict=True)
    ):
        raise ValueError(f"cannot widen {small.widths} to {widths}")
    wide = UNet(widths, n_phase=int(small.phase_bias.numel()))
    old = small.state_dict()
    new = wide.state_dict()
    for name, t in new.items():
        s = old[name]
        if t.shape == s.shape:
            new[name] = s.clone()
            continue
        lead = tuple(slice(0, n) for n in s.shape)
        if t.dim() == 4:  # conv weight (out, in, k, k): old outputs ignore the new inputs
            t[: s.shape[0], s.shape[1] :] = 0
        t[lead] = s
    wide.load_state_dict(new)
    return wide
