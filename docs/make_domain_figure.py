"""Make docs/simulator_domains.png: the simulator's contrast modes and imperfections, one tile each.

Run: ``.venv/bin/python docs/make_domain_figure.py``. Every tile is the same culture (seed 3,
320 × 320 px at 0.65 µm/px) with one option changed from the clean brightfield default; the
caption names the option as ``SimulationConfig.with_`` takes it. 0.5–99.8 percentile stretch.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from liveaug.sources.simulated import SimulatedMicroscope, SimulationConfig

#: (caption, options) per tile, row by row.
TILES: list[tuple[str, dict[str, object]]] = [
    ("brightfield, defocus +3 um", {}),
    ("defocus -3 um", {"optics__defocus_um": -3.0}),
    ("in focus (0.3 um)", {"optics__defocus_um": 0.3}),
    ("phase contrast", {"optics__contrast": "phase_contrast", "optics__defocus_um": 0.0}),
    ("DIC", {"optics__contrast": "dic", "optics__defocus_um": 0.0}),
    ("oblique illumination", {"optics__contrast": "oblique", "optics__defocus_um": 0.5}),
    ("quantitative phase", {"optics__contrast": "qpi", "optics__defocus_um": 0.0}),
    ("uneven field, vignetting", {"optics__illumination_gradient": 0.8, "optics__vignetting": 0.6}),
    ("fringes / banding", {"optics__fringe_amplitude": 0.15, "optics__fringe_period_um": 25.0}),
    ("dust + debris", {"optics__dust": 4, "optics__debris": 40}),
    ("bubble", {"optics__bubbles": 1}),
    (
        "fixed pattern, hot pixels",
        {"camera__fixed_pattern": 0.05, "camera__hot_pixel_fraction": 2e-3},
    ),
    ("8 bit, saturated", {"camera__bit_depth": 8, "camera__photons": 9500.0}),
    ("low light (200 e-)", {"camera__photons": 200.0}),
    ("textured substrate", {"biology__substrate_texture_um": 0.03}),
    ("dim nuclei (contrast 0.4)", {"biology__nucleus_contrast": 0.4}),
    ("small, dense cells", {"biology__cell_radius_um": 8.0, "biology__density": 1.0}),
    ("sparse, large cells", {"biology__cell_radius_um": 18.0, "biology__density": 0.2}),
    ("20x (0.325 um/px)", {"optics__magnification": 20.0}),
    ("5x (1.3 um/px)", {"optics__magnification": 5.0}),
]
COLUMNS = 5


def _stretch(a: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(a, [0.5, 99.8])
    g = (np.clip((a.astype(np.float32) - lo) / max(hi - lo, 1e-6), 0, 1) * 255).astype(np.uint8)
    return cv2.cvtColor(g, cv2.COLOR_GRAY2BGR)


def tile(options: dict[str, object], size: int = 320) -> np.ndarray:
    """One frame of the reference culture with ``options`` changed."""
    cfg = SimulationConfig(height=size, width=size, seed=3, truth=False).with_(**options)
    sim = SimulatedMicroscope(cfg)
    sim.open()
    return sim.read().image


def main() -> None:
    tiles = []
    for caption, options in TILES:
        t = np.pad(_stretch(tile(options)), ((2, 2), (2, 2), (0, 0)), constant_values=255)
        cv2.rectangle(t, (2, 2), (322, 26), (0, 0, 0), -1)
        cv2.putText(t, caption, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 255, 255), 1)
        tiles.append(t)
    rows = [np.hstack(tiles[i : i + COLUMNS]) for i in range(0, len(tiles), COLUMNS)]
    out = Path(__file__).with_name("simulator_domains.png")
    cv2.imwrite(str(out), np.vstack(rows))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
