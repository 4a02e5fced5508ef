"""The mirrored and quarter-turned copies of an image that the optics cannot tell apart.

Brightfield optics are isotropic, so a frame turned by quarter turns and mirrored is as valid an
input as the frame itself: training augments with these copies (``training.train.Batches``)
and the predictor can average its maps over them (``Predictor(views=…)``). Importing this module
costs nothing (the command line reads :data:`VIEW_COUNTS`); numpy is imported on use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

#: Views as (quarter turns, mirrored left-right), in the order a view count takes them: the
#: image, its mirror, both turned by 180°, then the four turned by 90° and 270°.
VIEWS: tuple[tuple[int, bool], ...] = (
    (0, False),
    (0, True),
    (2, False),
    (2, True),
    (1, False),
    (1, True),
    (3, False),
    (3, True),
)
#: How many of :data:`VIEWS` a predictor may average over.
VIEW_COUNTS = (1, 2, 4, 8)


def turn(a: np.ndarray, k: int, flip: bool) -> np.ndarray:
    """``a`` turned by ``k`` quarter turns and then, if ``flip``, mirrored (last two axes)."""
    import numpy as np

    a = np.rot90(a, k, axes=(-2, -1))
    return a[..., ::-1] if flip else a


def turn_back(a: np.ndarray, k: int, flip: bool) -> np.ndarray:
    """The inverse of :func:`turn`: a map of a turned image put back onto the image's grid."""
    import numpy as np

    return np.rot90(a[..., ::-1] if flip else a, -k, axes=(-2, -1))
