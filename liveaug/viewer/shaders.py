"""Load GLSL from ``shaders/``: the copy in the installed package or the repository's.

The wheel carries the top-level ``shaders/`` folder as ``liveaug/shaders`` (pyproject
force-include); a source checkout reads ``<repo>/shaders``. ``#include "name.glsl"`` lines are
inlined (once per file); ``$name`` template variables are left for vispy to fill.

Features are switched at link time, not per fragment: ``#ifdef NAME`` / ``#ifndef`` / ``#else``
/ ``#endif`` blocks are resolved here against the ``defines`` passed in, so a shader carries
only the overlays that are on (a uniform branch still costs every fragment on a software
rasteriser such as llvmpipe), and vispy never sees uniforms the GL program would not have.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from liveaug.errors import LiveaugError

_INCLUDE = re.compile(r'^\s*#include\s+"([^"]+)"\s*$', re.MULTILINE)


def shader_dir() -> Path:
    """The folder holding the ``.glsl`` files (installed package first, then the repository)."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package / "shaders", package.parent / "shaders"):
        if candidate.is_dir() and any(candidate.glob("*.glsl")):
            return candidate
    raise LiveaugError(
        "the GLSL shaders of the viewer are missing (no liveaug/shaders or shaders/ folder)",
        "reinstall liveaug, or run from a complete source checkout",
    )


@functools.cache
def load_shader(name: str, defines: frozenset[str] = frozenset()) -> str:
    """``shaders/<name>`` with ``#include`` inlined and ``#ifdef`` blocks resolved."""
    return resolve_conditionals(_expand(name, shader_dir(), set()), defines)


_COND = re.compile(r"^\s*#(ifdef|ifndef|else|endif)\b\s*(\w*)")


def resolve_conditionals(source: str, defines: frozenset[str] | set[str]) -> str:
    """Keep the lines of ``#ifdef``/``#ifndef``/``#else``/``#endif`` blocks that apply."""
    out: list[str] = []
    stack: list[bool] = []  # is each open block's current branch active?
    for line in source.splitlines():
        m = _COND.match(line)
        if m is None:
            if all(stack):
                out.append(line)
            continue
        kind, name = m.groups()
        if kind in ("ifdef", "ifndef"):
            stack.append((name in defines) == (kind == "ifdef"))
        elif not stack:
            raise LiveaugError(f"#{kind} without #ifdef in a shader", "fix the .glsl file")
        elif kind == "else":
            stack[-1] = not stack[-1]
        else:
            stack.pop()
    if stack:
        raise LiveaugError("#ifdef without #endif in a shader", "fix the .glsl file")
    return "\n".join(out) + "\n"


def _expand(name: str, folder: Path, seen: set[str]) -> str:
    path = folder / name
    if not path.is_file():
        raise LiveaugError(f"shader {name} not found in {folder}", "reinstall liveaug")
    seen.add(name)

    def include(match: re.Match[str]) -> str:
        child = match.group(1)
        if child in seen:
            return f"// {child} already included"
        return _expand(child, folder, seen)

    return _INCLUDE.sub(include, path.read_text(encoding="utf-8"))


def template_variables(source: str) -> set[str]:
    """The ``$name`` template variables a shader leaves for vispy."""
    return set(re.findall(r"\$(\w+)", source))
