"""The inference engine: onnxruntime sessions, provider choice, pre/post-processing, tiling.

Providers are tried in the order TensorRT → CUDA → CPU, as :mod:`liveaug.providers` finds them
usable; a machine without CUDA gets one line saying why::

    onnxruntime 1.31.1: CPU (TensorRT: libcublas.so.13 not found; CUDA: libcublasLt.so.13 …)

Frames are brought to the model's input pixel size ("speed", the default; whole-number binning
within 10 %, resampling otherwise), or run at their own
sampling in overlapping tiles ("full"); maps come at the model's output sampling (the shipped
models answer at half their input's) and the viewer upsamples the overlays on the GPU. The
normalisation is exactly the rdf's (:mod:`liveaug.preprocess`), computed over the whole frame
before tiling. Roles that are switched off are not fetched, and a model none of whose roles is
wanted is not run at all.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from liveaug.errors import one_line
from liveaug.frame import ROLES, Frame, Prediction, Trust
from liveaug.model_zoo import ModelError, ModelSpec, default_model, load_model
from liveaug.preprocess import (
    ZMUV_EPS,
    pad_to_multiple,
    sampling_ratio,
    to_sampling,
)
from liveaug.providers import (
    CPU,
    CUDA,
    SHORT,
    TRT,
    probe_providers,
    session_options,
)
from liveaug.reliability import DEFAULT_THRESHOLD, ReliabilityModel, empty_maps, input_problem
from liveaug.views import VIEW_COUNTS, VIEWS, turn, turn_back

log = logging.getLogger(__name__)

Resolution = Literal["speed", "full"]


def open_session(
    spec: ModelSpec, *, providers: Sequence[str] | None = None, threads: int | None = None
) -> Any:
    """An onnxruntime session for ``spec``'s weights; bad files give one :class:`ModelError`."""
    import onnxruntime as ort

    provs = list(providers or probe_providers().usable)
    opts: list[dict[str, str]] = []
    for p in provs:
        if p == TRT:
            cache = Path(os.environ.get("LIVEAUG_TRT_CACHE", Path.home() / ".cache/liveaug/trt"))
            opts.append({"trt_engine_cache_enable": "True", "trt_engine_cache_path": str(cache)})
        else:
            opts.append({})
    try:
        sess = ort.InferenceSession(
            str(spec.weights), session_options(threads), providers=provs, provider_options=opts
        )
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/… types
        raise ModelError(f"{spec.weights}: onnxruntime cannot load it ({one_line(exc)})") from None
    _check_session_io(spec, sess)
    return sess


def _run_failed(spec: ModelSpec, shape: tuple[int, ...], exc: Exception) -> ModelError:
    """One ModelError for an onnxruntime run failure (its messages span many lines)."""
    return ModelError(
        f"{spec.weights}: onnxruntime failed to run it on a {'×'.join(map(str, shape))} input "
        f"({one_line(exc)})",
        f"check that the graph accepts the sizes {spec.rdf_path.name} declares "
        "(`liveaug models check` runs its test input)",
    )


def _check_session_io(spec: ModelSpec, sess: Any) -> None:
    ins = sess.get_inputs()
    if len(ins) != 1:
        raise ModelError(f"{spec.weights}: the graph has {len(ins)} inputs; expected one image")
    shape = ins[0].shape
    if len(shape) != len(spec.input_axes):
        raise ModelError(
            f"{spec.weights}: input {ins[0].name!r} has rank {len(shape)}; the rdf declares "
            f"axes {', '.join(spec.input_axes)}"
        )
    ch = shape[spec.input_axes.index("channel")]
    if isinstance(ch, int) and ch != 1:
        raise ModelError(f"{spec.weights}: input has {ch} channels; liveaug feeds 1 (brightfield)")
    if "float" not in ins[0].type:
        raise ModelError(f"{spec.weights}: input type {ins[0].type}; liveaug feeds float32")
    names = {o.name for o in sess.get_outputs()}
    missing = [o for o in spec.outputs if o not in names]
    if missing:
        raise ModelError(f"{spec.weights}: outputs {missing} named in the rdf are not in the graph")


def preprocess(x: np.ndarray, steps: Iterable[dict[str, Any]]) -> np.ndarray:
    """Apply bioimage.io preprocessing to a 2-D image (per-sample statistics)."""
    x = np.asarray(x, dtype=np.float32)
    for step in steps:
        sid, kw = step.get("id"), step.get("kwargs") or {}
        if sid == "zero_mean_unit_variance":
            eps = float(kw.get("eps", ZMUV_EPS))
            mean = float(x.mean(dtype=np.float64))
            std = float(x.std(dtype=np.float64))
            x = ((x - np.float32(mean)) / np.float32(std + eps)).astype(np.float32)
        elif sid == "scale_range":
            lo, hi = np.percentile(
                x, [float(kw.get("min_percentile", 0)), float(kw.get("max_percentile", 100))]
            )
            eps = float(kw.get("eps", ZMUV_EPS))
            x = ((x - np.float32(lo)) / np.float32(hi - lo + eps)).astype(np.float32)
        elif sid == "scale_linear":
            x = (x * np.float32(kw.get("gain", 1.0)) + np.float32(kw.get("offset", 0.0))).astype(
                np.float32
            )
        elif sid == "clip":
            x = np.clip(x, kw.get("min"), kw.get("max")).astype(np.float32)
    return x


@dataclass
class _Loaded:
    spec: ModelSpec
    session: Any
    provider: str
    input_name: str


class Predictor:
    """Runs one or more models over frames and returns :class:`Prediction` maps.

    Parameters
    ----------
    models : sequence of model folders / rdf paths / specs, optional
        Each fills the roles its rdf maps; the first model naming a role wins. Default: the
        shipped model.
    resolution : {"speed", "full"}
        "speed" brings the frame to the model's input pixel size (binning by whole
        numbers within 10 %, resampling otherwise) and runs it in one pass;
        "full" keeps every frame pixel and runs overlapping tiles of ``tile`` pixels.
    tile, overlap : int
        Tile size and overlap for "full", in model input pixels (multiples of the model's
        output step, 2 for models that answer at half their input sampling).
    providers : sequence of str, optional
        onnxruntime providers in preference order (default: what :func:`probe_providers` finds).
    threads : int, optional
        intra-op threads of the CPU provider.
    views : {1, 2, 4, 8}
        Test-time augmentation: the maps are the mean over this many mirrored / rotated copies
        of the frame (:data:`liveaug.views.VIEWS`), each put back in place. The optics are
        isotropic, so every copy is an equally valid input and averaging cancels part of the
        network's own error; it costs ``views`` passes. 1 (the default) for live speed; more
        for re-analysis.
    """

    def __init__(
        self,
        models: Sequence[str | Path | ModelSpec] | None = None,
        *,
        resolution: Resolution = "speed",
        tile: int = 256,
        overlap: int = 32,
        providers: Sequence[str] | None = None,
        threads: int | None = None,
        views: int = 1,
    ) -> None:
        if resolution not in ("speed", "full"):
            raise ValueError(f"resolution must be 'speed' or 'full', not {resolution!r}")
        if views not in VIEW_COUNTS:
            raise ValueError(f"views must be one of {VIEW_COUNTS}, not {views!r}")
        self.resolution = resolution
        self.views = views
        self.tile, self.overlap = tile, overlap
        self.report = probe_providers()
        specs = [
            m if isinstance(m, ModelSpec) else load_model(m) for m in (models or [default_model()])
        ]
        self.models: list[_Loaded] = []
        for spec in specs:
            sess = open_session(spec, providers=providers, threads=threads)
            self.models.append(
                _Loaded(spec, sess, sess.get_providers()[0], sess.get_inputs()[0].name)
            )
        self._warned_sampling: set[str] = set()
        self.role_model: dict[str, _Loaded] = {}
        for m in self.models:
            for role in m.spec.roles:
                self.role_model.setdefault(role, m)
        # features and reliability come from the model that draws the virtual DAPI
        lead = self.role_model.get("dapi", self.models[0])
        self._features = lead if lead.spec.features else None
        rel = lead.spec.reliability if self._features else None
        self.reliability = ReliabilityModel.load(rel) if rel is not None else None

    @property
    def provider(self) -> str:
        """Short name of the provider the (first) model runs on."""
        return SHORT.get(self.models[0].provider, self.models[0].provider)

    @property
    def threads(self) -> int:
        """Intra-op threads of the (first) model's onnxruntime session."""
        return int(self.models[0].session.get_session_options().intra_op_num_threads)

    @property
    def roles(self) -> tuple[str, ...]:
        """Roles some loaded model can fill."""
        return tuple(r for r in ROLES if r in self.role_model)

    def factor(self, spec: ModelSpec, pixel_size_um: float | None) -> float:
        """Frame pixels per model input pixel for ``spec`` in the current resolution mode."""
        if spec.pixel_size_um is None:
            return 1.0
        ratio = sampling_ratio(pixel_size_um, float(spec.pixel_size_um))
        if self.resolution == "full":
            if ratio != 1:
                self._warn_sampling(spec, pixel_size_um)
            return 1.0
        return ratio

    def _warn_sampling(self, spec: ModelSpec, pixel_size_um: float | None) -> None:
        """Say once per model that full resolution is outside the sampling it was trained at."""
        if spec.name in self._warned_sampling:
            return
        self._warned_sampling.add(spec.name)
        px = f"{pixel_size_um:g} µm/px" if pixel_size_um else "unknown pixel size"
        log.warning(
            "%s was trained at %g µm/px; full resolution runs it at %s, outside its training "
            "(expect much lower accuracy; the default 'speed' mode bins to its sampling)",
            spec.name,
            spec.pixel_size_um,
            px,
        )

    def predict(self, frame: Frame | np.ndarray, roles: Iterable[str] | None = None) -> Prediction:
        """Maps for the wanted ``roles`` (default: all available) of one frame."""
        if isinstance(frame, Frame):
            image, index, px = frame.image, frame.index, frame.pixel_size_um
            bits: int | None = frame.bit_depth
        else:
            image, index, px, bits = np.asarray(frame), -1, None, None
        if image.ndim != 2:
            raise ValueError(f"expected a 2-D brightfield image, got shape {image.shape}")
        wanted = [r for r in (roles if roles is not None else self.roles) if r in self.role_model]
        by_model: dict[int, list[str]] = {}
        for r in wanted:
            by_model.setdefault(id(self.role_model[r]), []).append(r)
        maps: dict[str, np.ndarray] = {}
        used: dict[str, str] = {}
        timings: dict[str, float] = {}
        scale = 1.0
        features, feature_scale = None, 0.0
        for m in self.models:
            mroles = by_model.get(id(m))
            if not mroles:
                continue
            t0 = time.perf_counter_ns()
            k = self.factor(m.spec, px)
            x = preprocess(to_sampling(image, k), m.spec.preprocessing)
            k = image.shape[1] / x.shape[1] if not float(k).is_integer() else k
            t1 = time.perf_counter_ns()
            outs = [m.spec.roles[r] for r in mroles]
            feat = m.spec.features if m is self._features and self.resolution == "speed" else None
            res = self._run_views(m, x, outs + ([feat] if feat else []))
            t2 = time.perf_counter_ns()
            if feat:
                features, feature_scale = res.pop(feat), m.spec.feature_scale / k
            for r, o in zip(mroles, outs, strict=True):
                maps[r] = res[o]
                # tables name the views too: maps from 2 views are not those from 1
                used[r] = m.spec.short_id + (f" ({self.views} views)" if self.views > 1 else "")
            scale = m.spec.output_scale / k
            timings[f"{m.spec.name}.preprocess"] = (t1 - t0) / 1e6
            timings[f"{m.spec.name}.run"] = (t2 - t1) / 1e6
        problem = input_problem(image, bits)
        trust = None
        if problem is not None:  # nothing to see: no cells, not noise amplified into cells
            maps = empty_maps(maps)
            threshold = self.reliability.threshold if self.reliability else DEFAULT_THRESHOLD
            trust = Trust(0.0, threshold)
        elif self.reliability is not None and features is not None:
            t3 = time.perf_counter_ns()
            trust = self.reliability.assess(features)
            timings["reliability"] = (time.perf_counter_ns() - t3) / 1e6
        return Prediction(
            frame_index=index,
            maps=maps,
            scale=scale,
            models=used,
            provider=self.provider,
            timings_ms=timings,
            features=features,
            feature_scale=feature_scale,
            trust=trust,
            input_problem=problem,
        )

    def _run_once(self, m: _Loaded, x: np.ndarray, outs: list[str]) -> dict[str, np.ndarray]:
        """One pass over ``x``: overlapping tiles in "full" mode when it exceeds a tile."""
        tiled = self.resolution == "full" and max(x.shape) > self.tile
        return self._run_tiled(m, x, outs) if tiled else self._run(m, x, outs)

    def _run_views(self, m: _Loaded, x: np.ndarray, outs: list[str]) -> dict[str, np.ndarray]:
        """The outputs for ``x``, averaged over the first :attr:`views` views."""
        if self.views == 1:
            return self._run_once(m, x, outs)
        # whole output pixels only, so that a mirrored or turned view's output pixels cover the
        # same input pixels as the frame's own (an odd width would shift them by half a pixel)
        x, (h, w) = pad_to_multiple(x, max(1, round(1 / m.spec.output_scale)))
        total: dict[str, np.ndarray] = {}
        for k, flip in VIEWS[: self.views]:
            res = self._run_once(m, np.ascontiguousarray(turn(x, k, flip)), outs)
            for o, r in res.items():
                back = turn_back(r, k, flip)
                total[o] = back + total[o] if o in total else back.astype(np.float32)
        return {
            o: np.ascontiguousarray(
                v[..., : _out_size(h, _scale_of(m.spec, o)), : _out_size(w, _scale_of(m.spec, o))]
                / np.float32(self.views)
            )
            for o, v in total.items()
        }

    def _feed(self, m: _Loaded, x: np.ndarray) -> np.ndarray:
        """(H, W) → the model's declared layout with batch/channel axes."""
        return x[None, None] if len(m.spec.input_axes) == 4 else x[None]

    def _run(self, m: _Loaded, x: np.ndarray, outs: list[str]) -> dict[str, np.ndarray]:
        """One pass over the whole (padded) image; returns (C, h, w) or (h, w) per output, at
        the output's sampling (``h = ceil(H × output_scale)``)."""
        step = max(m.spec.stride, 1)
        xp, (h0, w0) = pad_to_multiple(x, step)
        if min(xp.shape) < m.spec.min_size:
            xp = np.pad(xp, [(0, max(0, m.spec.min_size - s)) for s in xp.shape], mode="edge")
        feed = np.ascontiguousarray(self._feed(m, xp))
        try:
            if m.provider in (CUDA, TRT):
                results = self._run_bound(m, feed, outs)
            else:
                results = m.session.run(outs, {m.input_name: feed})
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidArgument/… types
            raise _run_failed(m.spec, feed.shape, exc) from None
        out = {}
        for o, r in zip(outs, results, strict=True):
            s = _scale_of(m.spec, o)
            out[o] = _squeeze(r)[..., : _out_size(h0, s), : _out_size(w0, s)]
        return out

    @staticmethod
    def _run_bound(m: _Loaded, feed: np.ndarray, outs: list[str]) -> list[np.ndarray]:
        """IO binding on the GPU: one host→device copy in, outputs copied back once."""
        import onnxruntime as ort

        binding = m.session.io_binding()
        binding.bind_ortvalue_input(m.input_name, ort.OrtValue.ortvalue_from_numpy(feed, "cuda", 0))
        for o in outs:
            binding.bind_output(o, "cuda")
        m.session.run_with_iobinding(binding)
        return list(binding.copy_outputs_to_cpu())

    def _run_tiled(self, m: _Loaded, x: np.ndarray, outs: list[str]) -> dict[str, np.ndarray]:
        """Overlapping tiles; each keeps its centre (the borders see too little context).

        Tiles are cut in input pixels and pasted in output pixels (``output_scale`` apart).
        """
        h, w = x.shape
        t, ov, s = self.tile, self.overlap, m.spec.output_scale
        core = t - 2 * ov
        if core <= 0:
            raise ValueError(f"tile {t} must exceed twice the overlap {ov}")
        if not (float(core * s).is_integer() and float(ov * s).is_integer()):
            raise ValueError(
                f"tile {t} and overlap {ov} must be multiples of {1 / s:g} for {m.spec.name}, "
                f"whose outputs come at {s:g}× its input sampling"
            )
        oh, ow = _out_size(h, s), _out_size(w, s)
        result: dict[str, np.ndarray] = {}
        for y0 in range(0, h, core):
            for x0 in range(0, w, core):
                ys, xs = max(0, y0 - ov), max(0, x0 - ov)
                ye, xe = min(h, y0 + core + ov), min(w, x0 + core + ov)
                part = self._run(m, x[ys:ye, xs:xe], outs)
                # the tile's core, in output pixels of the whole image and of the tile
                oy0, ox0 = round(y0 * s), round(x0 * s)
                oy1, ox1 = min(oh, round((y0 + core) * s)), min(ow, round((x0 + core) * s))
                cy0, cx0 = oy0 - round(ys * s), ox0 - round(xs * s)
                for o, r in part.items():
                    if o not in result:
                        result[o] = np.empty((*r.shape[:-2], oh, ow), np.float32)
                    result[o][..., oy0:oy1, ox0:ox1] = r[
                        ..., cy0 : cy0 + oy1 - oy0, cx0 : cx0 + ox1 - ox0
                    ]
        return result


def _scale_of(spec: ModelSpec, output: str) -> float:
    """Output pixels per input pixel of one of the model's outputs."""
    return spec.feature_scale if output == spec.features else spec.output_scale


def _out_size(n: int, scale: float) -> int:
    """Output pixels for ``n`` input pixels (a partial output pixel counts)."""
    return math.ceil(n * scale - 1e-9)


def _squeeze(r: np.ndarray) -> np.ndarray:
    """Drop the batch axis and a single channel axis: (1, 1, h, w) → (h, w), (1, C, h, w) →
    (C, h, w)."""
    r = np.asarray(r, dtype=np.float32)
    if r.ndim == 4:
        r = r[0]
    if r.ndim == 3 and r.shape[0] == 1:
        r = r[0]
    return r


def run_test_tensors(
    spec: ModelSpec, *, providers: Sequence[str] | None = None
) -> dict[str, np.ndarray]:
    """Run the rdf's test input through its declared preprocessing and the model, as zoo tools
    do (the test input is the raw model input, batch and channel axes included)."""
    if spec.test_input is None:
        raise ModelError(f"{spec.rdf_path}: no test_tensor for the input")
    try:
        raw = np.load(spec.test_input)
    except (OSError, ValueError) as exc:
        raise ModelError(f"{spec.test_input}: unreadable test input ({exc})") from None
    sess = open_session(spec, providers=providers or [CPU])
    if raw.ndim != len(spec.input_axes):
        raise ModelError(f"{spec.test_input}: rank {raw.ndim}, rdf declares {spec.input_axes}")
    x = np.stack(
        [
            preprocess(raw[b].reshape(raw.shape[-2:]), spec.preprocessing)
            for b in range(raw.shape[0])
        ]
    ).reshape(raw.shape)
    outs = list(spec.test_outputs) or list(spec.outputs)  # none declared: still run them all
    try:
        res = sess.run(outs, {sess.get_inputs()[0].name: x.astype(np.float32)})
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidArgument/… types
        raise _run_failed(spec, x.shape, exc) from None
    return dict(zip(outs, res, strict=True))


def check_model(spec: ModelSpec, *, atol: float = 1e-4) -> dict[str, float]:
    """Reproduce the rdf's test outputs from its test input; raises :class:`ModelError`."""
    from liveaug.model_zoo import compare_outputs

    return compare_outputs(spec, run_test_tensors(spec), atol=atol)
