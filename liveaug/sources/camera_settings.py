"""Camera settings: what the user asks for, checked against what the camera's GenICam nodes offer.

:class:`CameraSettings` is plain data (saved to / loaded from a small YAML or JSON file, written
into recordings). :func:`apply_settings` writes it into a node map in a safe order (binning, pixel
format, ROI, exposure, gain, frame rate: each may change the next one's range), validating every
value against the node's range and increment first; :func:`read_settings` reads back what the camera
actually runs with. A setting whose node the camera lacks is a :class:`SourceError` naming it
(``strict``) or is skipped and reported — never an ``AttributeError`` from three layers down.

Integer nodes (ROI, binning) must be hit exactly: a value off the node's increment is an error
naming the nearest valid values. Float nodes (exposure, gain, frame rate) are continuous
quantities the camera quantises anyway, so they snap to the increment and the report says so.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import yaml

from liveaug.errors import SourceError
from liveaug.sources import pixels

Kind = Literal["int", "float", "enum"]

# genicam.genapi.EAccessMode values: not implemented, not available, write-only, read-only, rw.
_NI, _NA, _WO, _RO, _RW = range(5)


@dataclass(frozen=True, slots=True)
class Feature:
    """How one setting maps onto GenICam (SFNC) nodes."""

    label: str
    nodes: tuple[str, ...]
    kind: Kind
    auto: str | None = None  # node switched "Off" before an explicit value is written
    enable: str | None = None  # boolean node switched on before the value is written
    flag: str = ""  # the command-line option that sets it


#: Settings in the order they are applied (each may change the next one's valid range).
FEATURES: dict[str, Feature] = {
    "binning_x": Feature("horizontal binning", ("BinningHorizontal",), "int", flag="--binning"),
    "binning_y": Feature("vertical binning", ("BinningVertical",), "int", flag="--binning"),
    "pixel_format": Feature("pixel format", ("PixelFormat",), "enum", flag="--pixel-format"),
    "width": Feature("image width", ("Width",), "int", flag="--roi"),
    "height": Feature("image height", ("Height",), "int", flag="--roi"),
    "offset_x": Feature("ROI x offset", ("OffsetX",), "int", flag="--roi"),
    "offset_y": Feature("ROI y offset", ("OffsetY",), "int", flag="--roi"),
    "exposure_us": Feature(
        "exposure control",
        ("ExposureTime", "ExposureTimeAbs"),
        "float",
        "ExposureAuto",
        flag="--exposure",
    ),
    "gain_db": Feature("gain control", ("Gain", "GainAbs"), "float", "GainAuto", flag="--gain"),
    "frame_rate_hz": Feature(
        "frame-rate control",
        ("AcquisitionFrameRate", "AcquisitionFrameRateAbs"),
        "float",
        enable="AcquisitionFrameRateEnable",
        flag="--fps",
    ),
}


@dataclass(frozen=True, slots=True)
class CameraSettings:
    """Requested camera settings; ``None`` leaves the camera's own value alone."""

    pixel_format: str | None = None
    width: int | None = None
    height: int | None = None
    offset_x: int | None = None
    offset_y: int | None = None
    binning_x: int | None = None
    binning_y: int | None = None
    exposure_us: float | None = None
    gain_db: float | None = None
    frame_rate_hz: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The settings that are set, as plain JSON-able values."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "settings") -> CameraSettings:
        """Settings from a mapping; unknown keys and wrong types are a ``SourceError``. Keys that
        :func:`read_settings` adds for the record (vendor, model, …) are ignored."""
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key in _RECORD_ONLY:
                continue
            if key not in known:
                raise SourceError(
                    f"{source}: unknown camera setting {key!r}",
                    f"use only {', '.join(known)}",
                )
            if value is None:
                continue
            kind = FEATURES[key].kind
            ok = (
                isinstance(value, str)
                if kind == "enum"
                else isinstance(value, int | float) and not isinstance(value, bool)
            )
            if kind == "int" and isinstance(value, float) and not value.is_integer():
                ok = False
            if not ok:
                raise SourceError(
                    f"{source}: camera setting {key} = {value!r} is not a valid {kind}",
                    "fix the value in the settings file",
                )
            cast = {"int": int, "float": float, "enum": str}[kind]
            values[key] = cast(value)
        return cls(**values)

    def merged(self, override: CameraSettings) -> CameraSettings:
        """These settings with every value ``override`` sets replacing ours."""
        return CameraSettings(**{**self.to_dict(), **override.to_dict()})

    def save(self, path: str | Path) -> Path:
        """Write to ``path`` as YAML (``.yaml``/``.yml``) or JSON (anything else)."""
        path = Path(path)
        text = (
            yaml.safe_dump(self.to_dict(), sort_keys=False)
            if path.suffix.lower() in (".yaml", ".yml")
            else json.dumps(self.to_dict(), indent=2) + "\n"
        )
        path.write_text(text, encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> CameraSettings:
        """Read a file written by :meth:`save` (or by hand); a ``camera:`` section is accepted."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise SourceError(
                f"cannot read camera settings {path}: {exc.strerror}", "check the path"
            ) from None
        try:
            data = yaml.safe_load(text)  # YAML is a superset of JSON
        except yaml.YAMLError as exc:
            raise SourceError(
                f"camera settings {path} is not YAML/JSON ({exc.__class__.__name__})",
                "write it as `key: value` lines, e.g. `exposure_us: 5000`",
            ) from None
        if isinstance(data, dict) and isinstance(data.get("camera"), dict):
            data = data["camera"]
        if not isinstance(data, dict):
            raise SourceError(
                f"camera settings {path} holds no `key: value` mapping",
                "write it as `key: value` lines, e.g. `exposure_us: 5000`",
            )
        return cls.from_dict(data, source=str(path))


#: Values that mean "no change" on a camera that lacks the node.
_IDENTITY: dict[str, Any] = {"offset_x": 0, "offset_y": 0, "binning_x": 1, "binning_y": 1}

_RECORD_ONLY = {"vendor", "model", "serial", "id", "producer", "unsupported", "adjusted"}


@dataclass(slots=True)
class SettingsReport:
    """What :func:`apply_settings` did: values the camera runs with, values it moved to the
    nearest step, and settings it does not offer (only when not strict)."""

    applied: dict[str, Any] = field(default_factory=dict)
    adjusted: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    unsupported: list[str] = field(default_factory=list)


def _access(node: Any) -> int:
    try:
        return int(node.node.get_access_mode())
    except Exception:  # a node whose access cannot even be read is as good as absent
        return _NA


def find_node(node_map: Any, names: tuple[str, ...]) -> tuple[str, Any] | None:
    """The first of ``names`` the node map implements and makes available, with its node."""
    for name in names:
        try:
            node = getattr(node_map, name)
        except Exception:  # genicam raises for unknown names; that is "not offered"
            continue
        if _access(node) not in (_NI, _NA):
            return name, node
    return None


def _writable(node: Any) -> bool:
    return _access(node) in (_WO, _RW)


def _limits(node: Any) -> tuple[Any, Any, Any]:
    """(min, max, inc) of a numeric node; ``inc`` is None when the node has none."""
    lo, hi = node.min, node.max
    try:
        inc = node.inc if (not hasattr(node, "has_inc") or node.has_inc()) else None
    except Exception:  # float nodes without an increment raise on ``inc``
        inc = None
    return lo, hi, inc


def _fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _check_number(key: str, name: str, node: Any, value: float, camera: str, kind: Kind) -> Any:
    lo, hi, inc = _limits(node)
    flag = FEATURES[key].flag
    if not lo <= value <= hi:
        raise SourceError(
            f"{key} {_fmt(value)} is out of range for {camera}: {name} takes {_fmt(lo)}…{_fmt(hi)}",
            f"choose {flag or key} between {_fmt(lo)} and {_fmt(hi)}",
        )
    if kind == "int":
        step = int(inc or 1)
        if (int(value) - lo) % step:
            below = lo + (int(value) - lo) // step * step
            nearest = [v for v in (below, below + step) if lo <= v <= hi]
            raise SourceError(
                f"{key} {value} is not valid for {camera}: "
                f"{name} takes {lo} + a multiple of {step}",
                f"use {' or '.join(str(v) for v in nearest)}",
            )
        return int(value)
    if inc:
        snapped = min(hi, max(lo, lo + round((value - lo) / inc) * inc))
        return float(snapped)
    return float(value)


def _check_format(name: str, node: Any, value: str, camera: str) -> str:
    pixels.lookup(value)  # SourceError naming a format liveaug cannot convert
    offered = list(node.symbolics)
    if value not in offered:
        usable = [f for f in offered if f in pixels.FORMATS]
        raise SourceError(
            f"{camera} does not offer pixel format {value}",
            f"choose one of {', '.join(usable) or '(none liveaug converts)'}",
        )
    return value


def _switch(node_map: Any, name: str | None, value: Any) -> None:
    if name is None:
        return
    found = find_node(node_map, (name,))
    if found is not None and _writable(found[1]):
        try:
            found[1].value = value
        except Exception:  # auto/enable switches are a courtesy; the value write says what failed
            pass


def apply_settings(
    node_map: Any, settings: CameraSettings, *, camera: str = "camera", strict: bool = True
) -> SettingsReport:
    """Write ``settings`` into ``node_map`` (harvesters/genicam), validated; see the module doc."""
    report = SettingsReport()
    wanted = settings.to_dict()
    for key, feature in FEATURES.items():
        if key not in wanted:
            continue
        value = wanted[key]
        found = find_node(node_map, feature.nodes)
        if found is None and _IDENTITY.get(key) == value:
            continue  # offset 0 / binning 1 is what a camera without the node does anyway
        if found is None:
            if strict:
                raise SourceError(
                    f"{camera} offers no {feature.label} (GenICam node {feature.nodes[0]})",
                    f"drop {feature.flag or key} (liveaug devices --device … shows what it offers)",
                )
            report.unsupported.append(key)
            continue
        name, node = found
        _switch(node_map, feature.auto, "Off")
        _switch(node_map, feature.enable, True)
        if not _writable(node):
            raise SourceError(
                f"{name} of {camera} is read-only now",
                "stop acquisition (and other programs using the camera) before changing it",
            )
        if key in ("width", "height"):
            # Move the offset out of the way first: Width's maximum shrinks as OffsetX grows.
            offset_key = "offset_x" if key == "width" else "offset_y"
            if offset_key in wanted:
                off = find_node(node_map, FEATURES[offset_key].nodes)
                if off is not None and _writable(off[1]):
                    off[1].value = _limits(off[1])[0]
        if feature.kind == "enum":
            target: Any = _check_format(name, node, str(value), camera)
        else:
            target = _check_number(key, name, node, value, camera, feature.kind)
        try:
            node.value = target
        except Exception as exc:  # the camera refused a value its node advertised as valid
            raise SourceError(
                f"{camera} refused {key} = {_fmt(target)} ({exc.__class__.__name__})",
                "check the settings it depends on (exposure limits the frame rate, "
                "the ROI size limits its offsets)",
            ) from None
        got = node.value
        report.applied[key] = got
        if feature.kind == "float" and abs(float(got) - float(value)) > 1e-6 * max(1.0, abs(value)):
            report.adjusted[key] = (value, got)
    return report


def read_settings(node_map: Any) -> dict[str, Any]:
    """The value of every setting the camera offers, as it is now (absent ones left out)."""
    out: dict[str, Any] = {}
    for key, feature in FEATURES.items():
        found = find_node(node_map, feature.nodes)
        if found is None:
            continue
        try:
            value = found[1].value
        except Exception:  # write-only or momentarily unreadable: leave it out of the record
            continue
        kind = feature.kind
        out[key] = int(value) if kind == "int" else float(value) if kind == "float" else str(value)
    return out


def offered_settings(node_map: Any) -> dict[str, dict[str, Any] | None]:
    """For each setting: its node, value, range/increment or choices, writability — or None."""
    out: dict[str, dict[str, Any] | None] = {}
    for key, feature in FEATURES.items():
        found = find_node(node_map, feature.nodes)
        if found is None:
            out[key] = None
            continue
        name, node = found
        info: dict[str, Any] = {"node": name, "writable": _writable(node)}
        try:
            info["value"] = node.value
            if feature.kind == "enum":
                info["choices"] = [str(s) for s in node.symbolics]
            else:
                info["min"], info["max"], info["inc"] = _limits(node)
        except Exception:  # report what could be read
            pass
        out[key] = info
    return out
