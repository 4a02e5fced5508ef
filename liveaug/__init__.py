"""liveaug: a real-time augmented microscope (virtual stains, cell-cycle phase, apoptosis, live).

Importing this package pulls in numpy only: no Qt, no vispy, no onnxruntime, so the core runs on a
cluster node without a display.
"""

__version__ = "0.1.0"
