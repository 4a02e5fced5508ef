"""What the README tells a new user matches what the code does."""

from __future__ import annotations

import re
from pathlib import Path

from liveaug.viewer.layers import default_layers

README = (Path(__file__).parents[1] / "README.md").read_text()


def test_the_overlays_the_readme_says_start_on_are_the_ones_that_do():
    m = re.search(r"The viewer starts with (.+?) on;", " ".join(README.split()))
    assert m, "README: the sentence naming the overlays that start on is missing"
    said = {s.strip() for s in re.split(r",| and ", m.group(1)) if s.strip()}
    layers = default_layers(("gfp",))
    on = {layer.label for layer in layers if layer.visible and layer.kind != "channel"}
    assert said - {"the real channels"} == on
    assert all(layer.visible for layer in layers if layer.kind == "channel")
    assert "every overlay on |" not in README  # the command table said so


def test_the_headless_demo_command_is_written_out_in_full():
    """On a fresh machine Xvfb exists only after .ci/setup: 'prefix xvfb-run' is not enough."""
    assert (
        'bash .ci/setup && xvfb-run -a -s "-screen 0 1280x1024x24" .venv/bin/liveaug demo '
        "--frames 300" in README
    )
