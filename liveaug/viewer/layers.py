"""Overlay layer models: what the user switches on and styles, with events, and no drawing.

Each :class:`OverlayLayer` is a plain evented dataclass (psygnal): its view adapter in
:mod:`liveaug.viewer.adapters` listens to ``layer.events`` and turns changes into shader
uniforms or node changes; the controls panel edits the same object. No Qt, no vispy here.
"""

from __future__ import annotations

from dataclasses import dataclass

from psygnal import evented

from liveaug.frame import PHASE_CLASSES

RGB = tuple[float, float, float]

#: Outline colour per phase class (index as in PHASE_CLASSES; background never drawn).
PHASE_COLORS: dict[str, RGB] = {
    "background": (0.5, 0.5, 0.5),
    "G1": (0.30, 0.85, 1.00),
    "S": (1.00, 0.90, 0.20),
    "G2": (1.00, 0.50, 0.10),
    "M": (1.00, 0.25, 0.85),
}
assert tuple(PHASE_COLORS) == PHASE_CLASSES

#: Colours for real fluorescence channels by (lower-case) name, then spares.
CHANNEL_COLORS: dict[str, RGB] = {
    "reporter": (0.2, 1.0, 0.3),
    "gfp": (0.2, 1.0, 0.3),
    "mcherry": (1.0, 0.3, 0.2),
}
SPARE_COLORS: tuple[RGB, ...] = ((0.2, 1.0, 0.3), (1.0, 0.8, 0.1))


@evented
@dataclass
class OverlayLayer:
    """One overlay: its kind selects the adapter; ``roles`` are the predictions it needs."""

    name: str
    kind: str
    """``stain`` (virtual stain), ``channel`` (real fluorescence), ``outlines``, ``apoptosis``,
    ``ids`` or ``events``."""
    label: str
    key: int
    """Number key that toggles it."""
    visible: bool = True
    opacity: float = 0.8
    color: RGB = (1.0, 1.0, 1.0)
    roles: tuple[str, ...] = ()


def default_layers(channel_names: tuple[str, ...] = ()) -> list[OverlayLayer]:
    """Every overlay the viewer offers, in toggle-key order (real channels last, up to two)."""
    layers = [
        OverlayLayer("dapi", "stain", "virtual DAPI", 1, True, 0.9, (0.25, 0.45, 1.0), ("dapi",)),
        OverlayLayer(
            "membrane", "stain", "virtual membrane", 2, False, 0.7, (1.0, 0.3, 0.9), ("membrane",)
        ),
        OverlayLayer("outlines", "outlines", "outlines by phase", 3, True, 1.0, (1, 1, 1)),
        OverlayLayer(
            "apoptosis", "apoptosis", "apoptosis", 4, True, 0.5, (1.0, 0.1, 0.1), ("apoptosis",)
        ),
        OverlayLayer("ids", "ids", "cell ids", 5, False, 0.9, (1.0, 1.0, 1.0)),
        # white rings: the S-phase outlines are yellow, G2 orange, apoptosis red
        OverlayLayer("events", "events", "event markers", 6, True, 1.0, (1.0, 1.0, 1.0)),
    ]
    for i, name in enumerate(channel_names[:2]):
        color = CHANNEL_COLORS.get(name.lower(), SPARE_COLORS[i])
        layers.append(OverlayLayer(f"channel:{name}", "channel", name, 7 + i, True, 0.8, color))
    return layers
