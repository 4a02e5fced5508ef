"""Settings of the acquisition actions event rules can ask for (``image_cell``, ``rate``).

Pure data and validation, no instrument code: a rule names the action and gives its settings
under ``acquire``; the source that can act on a microscope (``liveaug.sources.mmcore``) carries
them out::

    - name: translocation
      column: reporter_nc_ratio
      above: 1.5
      actions: [log, image_cell, rate]
      acquire:
        channels: [reporter]   # burst channels (brightfield is taken beside them)
        frames: 3              # burst length
        interval_s: 0          # between burst frames
        min_gap_s: 10          # at most one action of this rule per 10 s
        fast_interval_s: 2     # rate: the plan's interval while the event lasts
        hold_s: 60             # rate: fast until this long after the cell was last seen in
                               # its state (the event lasts while the rule's condition holds)
        dry_run: false         # log what would be done, do nothing
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from liveaug.errors import LiveaugError

#: Actions that act on the instrument (the others are ``log``, ``snapshot``, ``hook``).
ACQUISITION_ACTIONS: tuple[str, ...] = ("image_cell", "rate")


@dataclass(frozen=True)
class AcquireOptions:
    """How ``image_cell`` and ``rate`` act (see the module docstring)."""

    channels: tuple[str, ...] = ("reporter",)
    frames: int = 3
    interval_s: float = 0.0
    exposure_ms: float | None = None
    min_gap_s: float = 0.0
    fast_interval_s: float = 1.0
    hold_s: float = 60.0
    max_age_s: float = 10.0
    """A trigger whose frame is older than this is refused (the cell has moved on)."""
    dry_run: bool = False


def parse_acquire(raw: Any, where: str | Path, rule: str) -> AcquireOptions:
    """``acquire`` settings of a rule; unknown keys and wrong types are one-line errors."""
    if raw is None:
        return AcquireOptions()

    def bad(what: str) -> LiveaugError:
        """The one-line error for this rule's settings."""
        return LiveaugError(
            f"{where}: rule {rule!r}: {what}", "see liveaug/analysis/actions.py for the settings"
        )

    if not isinstance(raw, dict):
        raise bad(f"'acquire' must be a mapping, got {raw!r}")
    known = {f.name for f in fields(AcquireOptions)}
    unknown = set(raw) - known
    if unknown:
        raise bad(f"unknown 'acquire' keys {sorted(unknown)}")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "channels":
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list | tuple) or not all(isinstance(c, str) for c in value):
                raise bad(f"'channels' must be a list of channel names, got {value!r}")
            out[key] = tuple(value)
        elif key == "dry_run":
            if not isinstance(value, bool):
                raise bad(f"'dry_run' must be true or false, got {value!r}")
            out[key] = value
        elif key == "frames":
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise bad(f"'frames' must be a whole number ≥ 1, got {value!r}")
            out[key] = value
        elif key == "exposure_ms" and value is None:
            out[key] = None
        else:
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise bad(f"'{key}' must be a number ≥ 0, got {value!r}")
            out[key] = float(value)
    return AcquireOptions(**out)


def stage_target(
    stage_um: tuple[float, float],
    xy_px: tuple[float, float],
    shape: tuple[int, int],
    pixel_size_um: float,
    affine: tuple[float, ...] | list[float] | None = None,
) -> tuple[float, float]:
    """The stage position that puts pixel ``xy_px`` of a frame taken at ``stage_um`` in the
    centre of the field.

    ``affine`` is Micro-Manager's pixel→stage calibration ``(a, b, tx, c, d, ty)`` (µm per
    pixel, rotation and flips included). Without one — or with one whose scale is not the pixel
    size, such as Micro-Manager's uncalibrated default ``(1, 0, 0, 0, 1, 0)`` — image axes are
    taken as stage axes at ``pixel_size_um``.
    """
    h, w = shape
    dx = xy_px[0] - (w - 1) / 2
    dy = xy_px[1] - (h - 1) / 2
    a = b = c = d = 0.0
    if affine is not None and len(affine) >= 6:
        a, b, _, c, d, _ = (float(v) for v in affine[:6])
    scale = abs(a * d - b * c) ** 0.5
    if not scale or abs(scale - pixel_size_um) > 0.1 * pixel_size_um:
        return stage_um[0] + dx * pixel_size_um, stage_um[1] + dy * pixel_size_um
    return stage_um[0] + a * dx + b * dy, stage_um[1] + c * dx + d * dy
