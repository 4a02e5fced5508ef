"""Make docs/simulated_frames.png: simulated brightfield next to its DAPI and membrane truth.

Run: ``.venv/bin/python docs/make_simulator_figure.py``. Rows are a sparse, a medium and a
confluent culture (different seeds and focus); columns are brightfield, true DAPI, true membrane,
cell labels. Each image is shown with a 0.5–99.8 percentile stretch.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from liveaug.sources.simulated import SimulatedMicroscope, SimulationConfig


def _stretch(a: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(a, [0.5, 99.8])
    g = (np.clip((a.astype(np.float32) - lo) / max(hi - lo, 1e-6), 0, 1) * 255).astype(np.uint8)
    return cv2.cvtColor(g, cv2.COLOR_GRAY2BGR)


def _labels(lab: np.ndarray) -> np.ndarray:
    lut = np.random.default_rng(0).integers(60, 255, (int(lab.max()) + 1, 3)).astype(np.uint8)
    lut[0] = 0
    return lut[lab]


def main() -> None:
    rows = []
    cases = [
        ("sparse, defocus 2 um", 0.25, 2.0, 1),
        ("medium, defocus 3 um", 0.6, 3.0, 3),
        ("confluent, defocus 4 um", 1.0, 4.0, 5),
    ]
    for title, density, defocus, seed in cases:
        cfg = SimulationConfig(height=320, width=320, seed=seed).with_(
            biology__density=density,
            optics__defocus_um=defocus,
            biology__initial_apoptotic_fraction=0.08,
        )
        sim = SimulatedMicroscope(cfg)
        sim.open()
        f = sim.read()
        t = f.truth
        tiles = [_stretch(f.image), _stretch(t.dapi), _stretch(t.membrane), _labels(t.cell_labels)]
        row = np.hstack([np.pad(x, ((2, 2), (2, 2), (0, 0)), constant_values=255) for x in tiles])
        cv2.putText(row, title, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 255, 255), 1)
        rows.append(row)
    header = np.full((28, rows[0].shape[1], 3), 255, np.uint8)
    for i, name in enumerate(["brightfield", "true DAPI", "true membrane", "cell labels"]):
        cv2.putText(header, name, (8 + i * 324, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1)
    out = Path(__file__).with_name("simulated_frames.png")
    cv2.imwrite(str(out), np.vstack([header, *rows]))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
