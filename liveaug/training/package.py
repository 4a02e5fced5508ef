"""Write a trained, exported model as a bioimage.io 0.5 model folder liveaug and zoo tools read.

The folder holds ``rdf.yaml`` (axes, zero-mean-unit-variance preprocessing, ONNX weights with
sha256, test tensors, authors, licence, liveaug's role mapping and input pixel size; the outputs'
axes declare their own sampling, as the graph gives it, so zoo tools size them from the input), the
weights, ``test_input.npy`` / ``test_output_<role>.npy`` and ``README.md`` (the model card).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from liveaug.frame import PHASE_CLASSES, ROLES
from liveaug.inference import open_session, preprocess
from liveaug.model_zoo import load_model, sha256_of
from liveaug.providers import CPU
from liveaug.training.export import INPUT, OPSET
from liveaug.training.model import OUTPUTS, STRIDE

PREPROCESSING = [
    {"id": "ensure_dtype", "kwargs": {"dtype": "float32"}},
    {"id": "zero_mean_unit_variance", "kwargs": {"axes": ["channel", "y", "x"], "eps": 1e-6}},
]
MIN_SIZE = 64
OUTPUT_INFO: dict[str, tuple[list[str], str]] = {
    "dapi": (
        ["dapi"],
        "virtual DAPI: background-subtracted photons / peak photons of a G1 nucleus",
    ),
    "membrane": (["membrane"], "virtual membrane stain: photons / (0.2 × peak stain photons)"),
    "phase": (list(PHASE_CLASSES), "per-pixel probabilities of background, G1, S, G2, M"),
    "apoptosis": (["apoptosis"], "per-pixel probability of belonging to an apoptotic cell"),
    "features": (
        [],
        "decoder features at 1/8 of the input's sampling, what liveaug's reliability score is "
        "read from",
    ),
}


def _space(axis: str, scale: float, size: Any) -> dict[str, Any]:
    return {"type": "space", "id": axis, "size": size, "scale": scale, "unit": "micrometer"}


def write_model_folder(
    folder: Path,
    onnx_path: Path,
    test_input: np.ndarray,
    *,
    name: str,
    description: str,
    pixel_size_um: float,
    card: str,
    extra_config: dict[str, Any] | None = None,
    attachments: tuple[Path, ...] = (),
) -> Path:
    """Create ``folder`` from the ONNX file and a raw (unnormalised) test image.

    ``pixel_size_um`` is the input's sampling; each output's is read off the graph (the test
    input's size over the test output's), so the rdf declares what the weights do.
    ``attachments`` (files inside ``folder``, such as the reliability statistics) are listed
    with their sha256.
    """
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / "weights.onnx"
    if onnx_path.resolve() != weights.resolve():
        shutil.copyfile(onnx_path, weights)
    for a in attachments:
        if a.resolve() != (folder / a.name).resolve():
            shutil.copyfile(a, folder / a.name)
    raw = np.asarray(test_input, np.float32)[None, None]
    np.save(folder / "test_input.npy", raw)
    # test outputs: the declared preprocessing, then the model, on the CPU
    x = preprocess(raw[0, 0], PREPROCESSING[1:])[None, None]
    import onnxruntime as ort

    sess = ort.InferenceSession(str(weights), providers=[CPU])
    outs = dict(zip(OUTPUTS, sess.run(list(OUTPUTS), {INPUT: x}), strict=True))
    for role in OUTPUTS:
        np.save(folder / f"test_output_{role}.npy", outs[role].astype(np.float32))
    out_px = {o: pixel_size_um * x.shape[-1] / outs[o].shape[-1] for o in OUTPUTS}
    size = {"min": MIN_SIZE, "step": STRIDE}
    rdf: dict[str, Any] = {
        "format_version": "0.5.4",
        "type": "model",
        "name": name,
        "description": description,
        "authors": [{"name": "liveaug developers"}],
        "cite": [
            {
                "text": "Ronneberger et al., U-Net: Convolutional Networks for Biomedical Image "
                "Segmentation (2015)",
                "doi": "10.1007/978-3-319-24574-4_28",
            }
        ],
        "license": "BSD-3-Clause",
        "documentation": "README.md",
        "tags": [
            "brightfield",
            "virtual-staining",
            "cell-cycle",
            "apoptosis",
            "2d",
            "onnx",
            "liveaug",
        ],
        "version": "0.1.0",
        "inputs": [
            {
                "id": INPUT,
                "description": "brightfield intensity (camera counts, float32) at "
                f"{pixel_size_um} µm/px",
                "axes": [
                    {"type": "batch"},
                    {"type": "channel", "channel_names": ["brightfield"]},
                    _space("y", pixel_size_um, size),
                    _space("x", pixel_size_um, size),
                ],
                "test_tensor": _file(folder / "test_input.npy"),
                "data": {"type": "float32"},
                "preprocessing": PREPROCESSING,
            }
        ],
        "outputs": [
            {
                "id": role,
                "description": OUTPUT_INFO[role][1],
                "axes": [
                    {"type": "batch"},
                    {
                        "type": "channel",
                        "channel_names": OUTPUT_INFO[role][0]
                        or [f"f{i}" for i in range(outs[role].shape[1])],
                    },
                    _space("y", out_px[role], {"tensor_id": INPUT, "axis_id": "y"}),
                    _space("x", out_px[role], {"tensor_id": INPUT, "axis_id": "x"}),
                ],
                "test_tensor": _file(folder / f"test_output_{role}.npy"),
                "data": {"type": "float32"},
            }
            for role in OUTPUTS
        ],
        "weights": {
            "onnx": {
                **_file(weights),
                "opset_version": OPSET,
                "authors": [{"name": "liveaug developers"}],
            }
        },
        **({"attachments": [_file(folder / a.name) for a in attachments]} if attachments else {}),
        "config": {
            "liveaug": {
                "roles": {r: r for r in OUTPUTS if r in ROLES},
                "features": "features",
                "pixel_size_um": pixel_size_um,
                "phase_classes": list(PHASE_CLASSES),
                **(extra_config or {}),
            }
        },
    }
    (folder / "README.md").write_text(card)
    (folder / "rdf.yaml").write_text(
        "# bioimage.io model description (format 0.5), written by liveaug.training.package\n"
        + yaml.safe_dump(json.loads(json.dumps(rdf)), sort_keys=False, allow_unicode=True)
    )
    spec = load_model(folder)
    open_session(spec, providers=[CPU])  # the folder loads the way liveaug loads it
    return folder


def _file(path: Path) -> dict[str, str]:
    return {"source": path.name, "sha256": sha256_of(path)}
