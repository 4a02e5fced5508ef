"""Model folders in bioimage.io format (rdf.yaml 0.5, ONNX weights): find, load, check.

A model folder holds ``rdf.yaml``, the ONNX weights it names (with their sha256), test input
and output ``.npy`` files and a model card. liveaug reads only what it needs from the rdf (no
``bioimageio`` import at run time): the input's axes and preprocessing, the outputs, and the
role mapping in ``config.liveaug.roles`` (which output is ``dapi``, ``membrane``, ``phase``,
``apoptosis``). A model brought by a user without that block still loads when its output ids are
role names. Every problem is one :class:`ModelError` naming the file and what is wrong.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from liveaug.errors import LiveaugError
from liveaug.frame import ROLES
from liveaug.reliability import RELIABILITY_FILE

RDF_NAMES = ("rdf.yaml", "bioimageio.yaml")
#: Preprocessing steps the engine implements (bioimage.io 0.5 ids).
SUPPORTED_PREPROCESSING = ("zero_mean_unit_variance", "scale_linear", "scale_range", "clip")
#: Input layouts liveaug can feed (axis ids; batch and channel axes use their type as id).
INPUT_LAYOUTS = (("batch", "channel", "y", "x"), ("channel", "y", "x"))
MALFORMED_FIX = (
    "compare it with a shipped model's rdf.yaml or the bioimage.io 0.5 model format "
    "(`bioimageio validate rdf.yaml` points at the line)"
)
FIXED_SIZE_FIX = (
    "export the ONNX model with dynamic height and width (torch.onnx.export(..., "
    "dynamic_axes={'input': {2: 'height', 3: 'width'}})) and declare "
    "size: {min: M, step: S} for the y and x axes"
)


class ModelError(LiveaugError):
    """A model folder or file liveaug cannot use (missing, malformed, wrong shape, mismatch)."""


@dataclass(frozen=True)
class ModelSpec:
    """What liveaug needs to run one bioimage.io ONNX model.

    ``roles`` maps liveaug roles to output tensor ids; ``pixel_size_um`` is the input's working
    sampling (frames are binned towards it); ``stride`` is the multiple that height and width must
    have; ``output_scale`` is output pixels per input pixel (0.5 when the outputs come at half the
    input's sampling, as the rdf's axis scales declare).
    """

    name: str
    folder: Path
    rdf_path: Path
    weights: Path
    sha256: str | None
    input_id: str
    input_axes: tuple[str, ...]
    preprocessing: tuple[dict[str, Any], ...]
    outputs: tuple[str, ...]
    output_axes: dict[str, tuple[str, ...]]
    roles: dict[str, str]
    pixel_size_um: float | None
    stride: int
    min_size: int
    output_scale: float
    test_input: Path | None
    test_outputs: dict[str, Path] = field(default_factory=dict)
    rdf: dict[str, Any] = field(default_factory=dict, repr=False)
    features: str | None = None
    """Output id of the per-place features (``config.liveaug.features``), if the model has one."""
    feature_scale: float = 0.125
    """Feature pixels per input pixel."""
    reliability: Path | None = None
    """The training-feature statistics (:mod:`liveaug.reliability`), if the folder has them."""

    @property
    def short_id(self) -> str:
        """Name plus sha256 prefix: what :class:`~liveaug.frame.Prediction` records."""
        return f"{self.name}@{(self.sha256 or 'nosha')[:8]}"


def model_dirs() -> list[Path]:
    """Folders that may hold shipped models: the installed package's, then the repository's."""
    out = []
    try:
        pkg = Path(str(resources.files("liveaug") / "models"))
        if pkg.is_dir():
            out.append(pkg)
    except (ModuleNotFoundError, TypeError):
        pass
    repo = Path(__file__).resolve().parent.parent / "models"
    if repo.is_dir() and repo not in out:
        out.append(repo)
    return out


def find_models() -> list[Path]:
    """Every shipped model folder (those with an rdf), first location winning per name."""
    seen: dict[str, Path] = {}
    for base in model_dirs():
        for sub in sorted(base.iterdir()):
            if sub.is_dir() and any((sub / n).is_file() for n in RDF_NAMES):
                seen.setdefault(sub.name, sub)
    return list(seen.values())


def default_model() -> Path:
    """The shipped model used when none is named."""
    models = find_models()
    if not models:
        raise ModelError(
            "no shipped models found (looked in " + ", ".join(map(str, model_dirs())) + ")",
            "reinstall liveaug or pass --model PATH",
        )
    return models[0]


def resolve(name_or_path: str | Path) -> Path:
    """A model folder or rdf from a path, or a shipped model by folder name."""
    p = Path(name_or_path)
    if p.exists():
        return p
    for m in find_models():
        if m.name == str(name_or_path):
            return m
    raise ModelError(
        f"{name_or_path}: no such model file or shipped model", "see `liveaug models list`"
    )


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _rdf_path(path: Path) -> Path:
    if path.is_file():
        if path.suffix == ".onnx":
            raise ModelError(
                f"{path}: a bare ONNX file has no rdf.yaml describing its axes and normalisation",
                "pass the bioimage.io model folder (or its rdf.yaml) instead",
            )
        return path
    for n in RDF_NAMES:
        if (path / n).is_file():
            return path / n
    raise ModelError(
        f"{path}: no rdf.yaml (bioimage.io model description) in this folder",
        "pass a bioimage.io model folder with rdf.yaml and ONNX weights",
    )


def _axis_ids(axes: list[Any], where: str) -> tuple[str, ...]:
    ids = []
    for a in axes:
        if isinstance(a, dict):
            ids.append(str(a.get("id") or a.get("type")))
        else:
            raise ModelError(f"{where}: axes must be a list of axis objects (format 0.5)")
    return tuple(ids)


def _malformed(exc: Exception) -> str:
    """What a parsing exception says about the rdf, in words."""
    if isinstance(exc, KeyError):
        return f"required field {exc.args[0]!r} is missing"
    if isinstance(exc, StopIteration):
        return "a required axis is missing"
    return f"a field has the wrong type or value ({exc.__class__.__name__}: {exc})"


def _field(d: dict[str, Any], key: str, what: str, rdf_path: Path) -> Any:
    """``d[key]``, or one ModelError saying which entry lacks it."""
    if not isinstance(d, dict) or d.get(key) in (None, ""):
        raise ModelError(f"{rdf_path}: {what} has no {key!r}", MALFORMED_FIX)
    return d[key]


def load_model(path: str | Path, *, verify_sha: bool = True) -> ModelSpec:
    """Read and sanity-check a model folder (or its rdf.yaml); raises :class:`ModelError`.

    A malformed description (missing fields, wrong types) is one ModelError naming the rdf, never
    a KeyError or AttributeError from deep inside the parsing.
    """
    rdf_path = _rdf_path(Path(path))
    try:
        rdf = yaml.safe_load(rdf_path.read_text())
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ModelError(
            f"{rdf_path}: not readable YAML ({exc.__class__.__name__}: {exc})"
        ) from None
    if not isinstance(rdf, dict) or rdf.get("type") != "model":
        raise ModelError(f"{rdf_path}: not a bioimage.io model description (type: model missing)")
    if not str(rdf.get("format_version", "")).startswith("0.5"):
        raise ModelError(
            f"{rdf_path}: format_version {rdf.get('format_version')!r} is not supported",
            "convert it to bioimage.io format 0.5 (bioimageio.spec can update it)",
        )
    try:
        return _parse(rdf, rdf_path, verify_sha=verify_sha)
    except (KeyError, IndexError, TypeError, AttributeError, StopIteration, ValueError) as exc:
        # ModelError is none of these, so the specific messages raised inside pass through
        raise ModelError(
            f"{rdf_path}: malformed model description: {_malformed(exc)}", MALFORMED_FIX
        ) from None


def _parse(rdf: dict[str, Any], rdf_path: Path, *, verify_sha: bool) -> ModelSpec:
    folder = rdf_path.parent
    weights = (rdf.get("weights") or {}).get("onnx")
    if not weights:
        raise ModelError(f"{rdf_path}: no ONNX weights entry", "liveaug runs ONNX models only")
    if not isinstance(weights, dict):
        raise ModelError(
            f"{rdf_path}: weights.onnx is {weights!r}, not an entry with source and sha256",
            "write it as `onnx: {source: weights.onnx, sha256: ...}` (bioimage.io 0.5)",
        )
    wpath = folder / str(_field(weights, "source", "weights.onnx", rdf_path))
    if not wpath.is_file():
        raise ModelError(f"{rdf_path}: ONNX weights {wpath.name} are missing")
    sha = weights.get("sha256")
    if verify_sha and sha and sha256_of(wpath) != sha:
        raise ModelError(
            f"{wpath}: sha256 does not match the one in {rdf_path.name}",
            "the weights file is corrupt or was replaced",
        )
    inputs = rdf.get("inputs") or []
    if len(inputs) != 1:
        raise ModelError(
            f"{rdf_path}: {len(inputs)} inputs; liveaug models take one brightfield image"
        )
    inp = inputs[0]
    input_id = str(_field(inp, "id", "the input", rdf_path))
    in_axes = _axis_ids(inp.get("axes") or [], str(rdf_path))
    _check_input_axes(inp, in_axes, rdf_path)
    stride, min_size = _spatial_step(inp, rdf_path)
    steps = inp.get("preprocessing") or []
    for p in steps:
        if not isinstance(p, dict) or not isinstance(p.get("kwargs") or {}, dict):
            raise ModelError(
                f"{rdf_path}: preprocessing entry {p!r} is not `{{id: ..., kwargs: {{...}}}}`",
                MALFORMED_FIX,
            )
    pre = tuple(p for p in steps if p.get("id") != "ensure_dtype")
    for p in pre:
        if p.get("id") not in SUPPORTED_PREPROCESSING:
            raise ModelError(
                f"{rdf_path}: preprocessing {p.get('id')!r} is not supported by liveaug"
            )
    outputs = rdf.get("outputs") or []
    out_ids = tuple(str(_field(o, "id", f"output {i}", rdf_path)) for i, o in enumerate(outputs))
    out_axes = {
        oid: _axis_ids(o.get("axes") or [], str(rdf_path))
        for oid, o in zip(out_ids, outputs, strict=True)
    }
    lv = (rdf.get("config") or {}).get("liveaug") or {}
    roles = dict(lv.get("roles") or {r: r for r in ROLES if r in out_ids})
    if not roles:
        raise ModelError(
            f"{rdf_path}: no output fills a liveaug role ({', '.join(ROLES)})",
            "add config.liveaug.roles mapping roles to output ids",
        )
    for role, oid in roles.items():
        if role not in ROLES:
            raise ModelError(f"{rdf_path}: unknown role {role!r} (known: {', '.join(ROLES)})")
        if oid not in out_ids:
            raise ModelError(
                f"{rdf_path}: role {role} names output {oid!r}, which is not an output"
            )
    test_in = (inp.get("test_tensor") or {}).get("source")
    test_outs = {
        oid: folder / str(_field(o["test_tensor"], "source", f"test_tensor of {oid}", rdf_path))
        for oid, o in zip(out_ids, outputs, strict=True)
        if o.get("test_tensor")
    }
    px = lv.get("pixel_size_um")
    output_scale = _output_scale(inp, [o for o in outputs if o["id"] in roles.values()], rdf_path)
    features = lv.get("features")
    if features is not None and features not in out_ids:
        raise ModelError(f"{rdf_path}: config.liveaug.features names {features!r}, not an output")
    feature_scale = (
        _output_scale(inp, [o for o in outputs if o["id"] == features], rdf_path)
        if features
        else 1.0
    )
    attached = {
        str(a.get("source")): folder / str(a.get("source"))
        for a in rdf.get("attachments") or []
        if isinstance(a, dict)
    }
    reliability = attached.get(RELIABILITY_FILE) if features else None
    if reliability is not None and not reliability.is_file():
        raise ModelError(f"{rdf_path}: attachment {RELIABILITY_FILE} is missing")
    return ModelSpec(
        name=str(rdf.get("name") or folder.name),
        folder=folder,
        rdf_path=rdf_path,
        weights=wpath,
        sha256=sha,
        input_id=input_id,
        input_axes=in_axes,
        preprocessing=pre,
        outputs=out_ids,
        output_axes=out_axes,
        roles=roles,
        pixel_size_um=None if px is None else float(px),
        stride=stride,
        min_size=min_size,
        output_scale=output_scale,
        test_input=folder / test_in if test_in else None,
        test_outputs=test_outs,
        rdf=rdf,
        features=None if features is None else str(features),
        feature_scale=feature_scale,
        reliability=reliability,
    )


def _check_input_axes(inp: dict[str, Any], axes: tuple[str, ...], rdf_path: Path) -> None:
    if axes[-2:] != ("y", "x"):
        raise ModelError(f"{rdf_path}: input axes {axes} do not end in y, x")
    if axes not in INPUT_LAYOUTS:
        raise ModelError(
            f"{rdf_path}: input axes ({', '.join(axes)}); liveaug needs (batch, channel, y, x) "
            "or (channel, y, x)",
            "declare the axes in that order, with one channel named brightfield",
        )
    ch = inp["axes"][axes.index("channel")]
    names = ch.get("channel_names") or []
    if len(names) != 1:
        raise ModelError(
            f"{rdf_path}: input has {len(names)} channels; liveaug feeds 1 (brightfield)"
        )


def _spatial_step(inp: dict[str, Any], rdf_path: Path) -> tuple[int, int]:
    """(step, min) of the input's y axis: sizes must be ``min + k*step``.

    liveaug runs frames of whatever size the camera gives, so an input with a fixed height or
    width (``size: 256``) cannot be used and is refused here rather than failing on every frame.
    """
    found = {}
    for a in inp["axes"]:
        aid = a.get("id")
        if aid not in ("y", "x"):
            continue
        size = a.get("size")
        if isinstance(size, int) and not isinstance(size, bool):
            raise ModelError(
                f"{rdf_path}: input axis {aid} has a fixed size {size}; liveaug runs frames of "
                "any size, and fixed-size model inputs are not supported",
                FIXED_SIZE_FIX,
            )
        if size is None or (isinstance(size, dict) and "min" not in size and "step" not in size):
            found[aid] = (1, 1)  # no constraint declared (or a reference to another tensor)
        elif isinstance(size, dict):
            step, lo = int(size.get("step", 1) or 1), int(size.get("min", 1) or 1)
            if step < 1 or lo < 1:
                raise ModelError(
                    f"{rdf_path}: input axis {aid} size {size} needs min ≥ 1 and step ≥ 1",
                    MALFORMED_FIX,
                )
            found[aid] = (step, lo)
        else:
            raise ModelError(
                f"{rdf_path}: input axis {aid} size {size!r} is neither {{min, step}} nor a number",
                MALFORMED_FIX,
            )
    return found.get("y", (1, 1))


def _output_scale(inp: dict[str, Any], outputs: list[dict[str, Any]], rdf_path: Path) -> float:
    """Output pixels per input pixel, from the space axes' ``scale`` (bioimage.io 0.5: an output
    axis whose size references the input has ``size = ref.size × ref.scale / scale``).

    liveaug hands all maps of a frame over with one scale, so the role outputs must agree.
    """

    def y_scale(tensor: dict[str, Any]) -> float:
        y = next(a for a in tensor.get("axes") or [] if a.get("id") == "y")
        return float(y.get("scale", 1.0) or 1.0)

    in_scale = y_scale(inp)
    ratios = {round(in_scale / y_scale(o), 6) for o in outputs}
    if len(ratios) > 1:
        raise ModelError(
            f"{rdf_path}: outputs come at different scales ({sorted(ratios)} output pixels per "
            "input pixel); liveaug needs one scale for all role outputs",
            "split the model into one description per output scale",
        )
    return ratios.pop() if ratios else 1.0


def compare_outputs(
    spec: ModelSpec, got: dict[str, np.ndarray], *, rtol: float = 1e-4, atol: float = 1e-4
) -> dict[str, float]:
    """Max absolute difference of each output from its test tensor; raises on mismatch."""
    diffs: dict[str, float] = {}
    for oid, path in spec.test_outputs.items():
        try:
            expected = np.load(path)
        except (OSError, ValueError) as exc:
            raise ModelError(f"{path}: unreadable test output ({exc})") from None
        g = got[oid]
        if g.shape != expected.shape:
            raise ModelError(
                f"{spec.rdf_path}: output {oid} has shape {g.shape}, its test output {path.name} "
                f"{expected.shape}"
            )
        diffs[oid] = float(np.abs(g - expected).max())
        if not np.allclose(g, expected, rtol=rtol, atol=atol):
            raise ModelError(
                f"{spec.rdf_path}: output {oid} differs from {path.name} by up to {diffs[oid]:.3g}",
                "the weights do not reproduce their own test output; re-export the model",
            )
    return diffs
