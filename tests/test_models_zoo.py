"""Shipped models are valid bioimage.io 0.5 descriptions that zoo tools can run.

``bioimageio.core.test_model`` reproduces each model's test outputs from its test inputs with
the declared preprocessing, and runs other batch and tile sizes. It is pointed at the CPU
provider only (this CI machine has no GPU; asking onnxruntime for CUDA here only logs errors).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from model_support import copy_shipped, edit_rdf

from liveaug.frame import ROLES
from liveaug.model_zoo import ModelError, find_models, load_model

MODELS = find_models()

#: bioimageio.spec/core (0.5.12 / 0.11) leave file handles of model files open; the resulting
#: ResourceWarnings are theirs, not ours, and are ignored in this module only.
pytestmark = [
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


def test_models_are_shipped():
    names = [m.name for m in MODELS]
    assert "liveaug-bf4" in names, names
    spec = load_model(MODELS[names.index("liveaug-bf4")])
    assert set(spec.roles) == set(ROLES)
    card = (spec.folder / "README.md").read_text()
    assert "Simulated brightfield only" in card
    assert "Not validated on real cells" in card
    assert spec.weights.stat().st_size < 5_000_000


@pytest.mark.parametrize("folder", MODELS, ids=[m.name for m in MODELS])
def test_bioimageio_spec_validates(folder):
    bioimageio_spec = pytest.importorskip("bioimageio.spec")
    descr = bioimageio_spec.load_description(folder / "rdf.yaml")
    summary = descr.validation_summary
    errors = [(e.loc, e.msg) for d in summary.details for e in d.errors]
    assert summary.status != "failed", errors
    assert type(descr).__name__ == "ModelDescr"


@pytest.mark.parametrize("folder", MODELS, ids=[m.name for m in MODELS])
def test_bioimageio_core_test_model(folder, monkeypatch):
    core = pytest.importorskip("bioimageio.core")
    from bioimageio.core.backends import onnx_backend

    monkeypatch.setattr(
        onnx_backend.rt, "get_available_providers", lambda: ["CPUExecutionProvider"]
    )
    summary = core.test_model(folder / "rdf.yaml")
    failed = [(d.name, [e.msg[:300] for e in d.errors]) for d in summary.details if d.errors]
    assert summary.status == "passed", failed
    names = " ".join(d.name for d in summary.details)
    assert "Reproduce test outputs" in names
    assert "batch_size: 2" in names


# -- malformed rdf.yaml: one ModelError naming the file, never a raw KeyError/StopIteration ------


@pytest.fixture
def model_copy(tmp_path) -> Path:
    return copy_shipped(tmp_path / "model")


def _drop_channel_axis(rdf):
    rdf["inputs"][0]["axes"] = [a for a in rdf["inputs"][0]["axes"] if a["type"] != "channel"]


def _output(i, **changes):
    def fn(rdf):
        o = rdf["outputs"][i]
        for k, v in changes.items():
            if v is None:
                o.pop(k)
            else:
                o[k] = v

    return fn


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_drop_channel_axis, r"input axes \(batch, y, x\); liveaug needs"),
        (lambda rdf: rdf["weights"].update(onnx="weights.onnx"), "weights.onnx is 'weights.onnx'"),
        (lambda rdf: rdf["weights"]["onnx"].pop("source"), "weights.onnx has no 'source'"),
        (lambda rdf: rdf["inputs"][0].pop("id"), "the input has no 'id'"),
        (_output(1, id=None), "output 1 has no 'id'"),
        (_output(0, test_tensor={"sha256": "0" * 64}), "test_tensor of dapi has no 'source'"),
        (
            lambda rdf: rdf["inputs"][0].update(preprocessing=["zero_mean_unit_variance"]),
            "preprocessing entry 'zero_mean_unit_variance' is not",
        ),
        (
            lambda rdf: rdf["inputs"][0]["preprocessing"][1].update(kwargs=[1]),
            "preprocessing entry .* is not",
        ),
        (
            lambda rdf: rdf["inputs"][0]["axes"][2].update(size={"min": "big", "step": 16}),
            r"malformed model description: .*ValueError",
        ),
        (lambda rdf: rdf.update(outputs=5), r"malformed model description: .*TypeError"),
        (lambda rdf: rdf.update(config=["liveaug"]), r"malformed model description: .*Attribute"),
        (
            lambda rdf: rdf["config"]["liveaug"].update(pixel_size_um="fine"),
            r"malformed model description: .*ValueError",
        ),
    ],
    ids=[
        "channel-less-axes",
        "string-weights",
        "weights-without-source",
        "input-without-id",
        "output-without-id",
        "test-tensor-without-source",
        "string-preprocessing",
        "list-kwargs",
        "non-numeric-size",
        "outputs-not-a-list",
        "config-not-a-mapping",
        "non-numeric-pixel-size",
    ],
)
def test_malformed_rdf_is_one_model_error(model_copy, edit, message):
    edit_rdf(model_copy, edit)
    with pytest.raises(ModelError, match=message) as info:
        load_model(model_copy)
    text = str(info.value)
    assert text.startswith(str(model_copy / "rdf.yaml") + ": ")
    assert "\n" not in text and info.value.fix  # one line, with a fix
    err = info.value  # no chained KeyError/AttributeError traceback behind it
    assert err.__cause__ is None and (err.__context__ is None or err.__suppress_context__)


def test_specific_model_errors_survive_the_malformed_wrapper(model_copy):
    edit_rdf(model_copy, lambda rdf: rdf["config"]["liveaug"]["roles"].update(nuclei="dapi"))
    with pytest.raises(ModelError, match="unknown role 'nuclei'") as info:
        load_model(model_copy)
    assert "malformed" not in str(info.value)
