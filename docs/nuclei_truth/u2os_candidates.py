"""Candidate seeds for the hand annotation (reviewed by eye afterwards)."""

import cv2
import numpy as np
from skimage.feature import peak_local_max

from liveaug.analysis.realdata import MAHOTAS, NAPARI_SAMPLES, TRACKASTRA, fetch  # noqa: F401

a = cv2.imread(str(fetch(MAHOTAS, "mahotas/demos/data/nuclear.png")), cv2.IMREAD_UNCHANGED)[
    ..., 0
].astype(np.float32)
s = cv2.GaussianBlur(a, (0, 0), 12)
pk = peak_local_max(s, min_distance=25, threshold_abs=27, exclude_border=False)
print(len(pk))
np.save("u2os_cand.npy", pk)
g = (np.clip((a - 18) / (70 - 18), 0, 1) ** 0.7 * 255).astype(np.uint8)
rgb = np.dstack([g, g, g])
for i, (y, x) in enumerate(pk):
    cv2.circle(rgb, (int(x), int(y)), 6, (0, 0, 255), -1)
    cv2.putText(rgb, str(i), (int(x) + 8, int(y)), 0, 0.9, (0, 255, 255), 2)
for half, (x0, x1) in enumerate([(0, 700), (644, 1344)]):
    cv2.imwrite(f"u2os_cand{half}.png", cv2.resize(rgb[:, x0:x1], None, fx=0.75, fy=0.75))
