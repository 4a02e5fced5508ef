"""Test support for model folders: a writable copy of the shipped model, and rdf.yaml edits."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from liveaug.model_zoo import find_models

SHIPPED = next(m for m in find_models() if m.name == "liveaug-bf4")


def copy_shipped(dst: Path) -> Path:
    """A copy of the shipped float32 model folder at ``dst`` (to break in a test)."""
    shutil.copytree(SHIPPED, dst)
    return dst


def edit_rdf(folder: Path, fn: Callable[[dict[str, Any]], object]) -> None:
    """Apply ``fn`` to the folder's rdf.yaml (as a dict) and write it back."""
    rdf = yaml.safe_load((folder / "rdf.yaml").read_text())
    fn(rdf)
    (folder / "rdf.yaml").write_text(yaml.safe_dump(rdf, sort_keys=False))
