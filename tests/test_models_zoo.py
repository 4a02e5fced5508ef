"""Shipped models are valid bioimage.io 0.5 descriptions that zoo tools can run.

``bioimageio.core.test_model`` reproduces each model's test outputs from its test inputs with
the declared preprocessing, and runs other batch and tile sizes. It is pointed at the CPU
provider only (this CI machine has no GPU; asking onnxruntime for CUDA here only logs errors).
"""

from __future__ import annotations

import pytest

from liveaug.frame import ROLES
from liveaug.model_zoo import find_models, load_model

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
