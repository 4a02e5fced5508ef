"""GLSL files and their loader, without GL: found, documented, specialised per feature."""

from __future__ import annotations

import re

import pytest

from liveaug.errors import LiveaugError
from liveaug.viewer.shaders import load_shader, resolve_conditionals, shader_dir, template_variables

FEATURES = {
    "composite.frag.glsl": ("GAMMA", "STAIN2", "STAIN3", "MAPS", "OUTLINES"),
    "bake_maps.frag.glsl": ("STAIN0", "STAIN1", "APOPTOSIS"),
    "bake_outlines.frag.glsl": (),
}


def _code(source: str) -> str:
    return "\n".join(line.split("//")[0] for line in source.splitlines())


def test_every_shader_is_ascii_and_its_header_lists_its_template_variables():
    files = sorted(shader_dir().glob("*.glsl"))
    assert {f.name for f in files} >= {"composite.vert.glsl", "composite.frag.glsl"}
    for f in files:
        text = f.read_text(encoding="utf-8")
        assert text.isascii(), f"{f.name}: Mesa rejects non-ASCII, even in comments"
        header = "\n".join(line for line in text.splitlines() if line.startswith("//"))
        assert "Template variables:" in header, f.name
        code = "\n".join(line.split("//")[0] for line in text.splitlines())
        for var in template_variables(code):
            assert f"${var}" in header, f"{f.name}: ${var} not listed in its header"


def test_includes_are_inlined_and_features_switched_at_link_time():
    plain = _code(load_shader("composite.frag.glsl"))
    assert "#include" not in plain and "window_linear" in plain
    for name in ("u_stain2", "u_maps", "u_outlines", "u_gamma"):
        assert name not in plain
    full = _code(load_shader("composite.frag.glsl", frozenset(FEATURES["composite.frag.glsl"])))
    assert "#ifdef" not in full and "#endif" not in full
    for name in ("u_stain2", "u_stain3", "u_maps", "u_outlines", "u_gamma"):
        assert name in full
    maps = _code(load_shader("bake_maps.frag.glsl", frozenset(FEATURES["bake_maps.frag.glsl"])))
    for name in ("u_stain0", "u_stain1", "u_apop", "window_linear"):
        assert name in maps
    outlines = _code(load_shader("bake_outlines.frag.glsl"))
    assert "is_edge" in outlines and "u_lut" in outlines
    for fname, features in FEATURES.items():
        header = shader_dir().joinpath(fname).read_text()
        assert set(re.findall(r"#ifn?def (\w+)", header)) == set(features), fname
        documented = "\n".join(line for line in header.splitlines() if line.startswith("//"))
        for feature in features:
            assert re.search(rf"\b{feature}\b", documented), f"{fname}: {feature} undocumented"


def test_conditionals_nest_and_bad_blocks_are_reported():
    src = "a\n#ifdef X\nb\n#ifndef Y\nc\n#else\nd\n#endif\n#endif\ne\n"
    assert resolve_conditionals(src, set()) == "a\ne\n"
    assert resolve_conditionals(src, {"X"}) == "a\nb\nc\ne\n"
    assert resolve_conditionals(src, {"X", "Y"}) == "a\nb\nd\ne\n"
    with pytest.raises(LiveaugError):
        resolve_conditionals("#ifdef X\n", set())
    with pytest.raises(LiveaugError):
        resolve_conditionals("#endif\n", set())


def test_an_installed_package_finds_its_own_copy_of_the_shaders(tmp_path):
    """The wheel carries shaders/ as liveaug/shaders (pyproject force-include)."""
    import importlib.util
    import shutil

    pkg = tmp_path / "site" / "liveaug"
    (pkg / "viewer").mkdir(parents=True)
    shutil.copytree(shader_dir(), pkg / "shaders")
    shutil.copy(shader_dir().parent / "liveaug" / "viewer" / "shaders.py", pkg / "viewer")
    spec = importlib.util.spec_from_file_location(
        "installed_shaders", pkg / "viewer" / "shaders.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.shader_dir() == pkg / "shaders"
    assert "window_linear" in mod.load_shader("composite.frag.glsl")
    (pkg / "shaders" / "contrast.glsl").unlink()
    mod.load_shader.cache_clear()
    with pytest.raises(LiveaugError, match=r"contrast\.glsl"):
        mod.load_shader("composite.frag.glsl")
