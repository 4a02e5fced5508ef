"""Event rules: fire when a tracked cell enters a state, then log, snapshot or call a hook.

Rules live in a small YAML file (``liveaug/analysis/rules.yaml`` is the default)::

    snapshot_dir: snapshots        # optional; without it snapshots are skipped
    rules:
      - name: apoptosis            # p_apoptosis above 0.8 for 3 frames in a row
        column: p_apoptosis
        above: 0.8
        frames: 3
        actions: [log, snapshot]
      - name: mitosis
        column: phase
        equals: M
        actions: [log]
      - name: translocation        # a reporter moving into the nucleus
        column: reporter_nc_ratio
        above: 1.5
        rise: 2.0                  # and ≥ 2 × the cell's own earlier median (≥ 3 frames of it)
        actions: [log, snapshot, hook]
        hook: mypackage.hooks:zoom_on_cell
        unreliable: false          # the default: cells below the model's reliability
                                   # threshold are not observed (true: fire on them too)

A rule fires once per track, on *entry*: the condition must hold for ``frames`` consecutive
observations of a cell that was first seen outside the state (``entry: false`` also fires for
cells already in it when first seen); ``rearm: n`` lets it fire again once the cell has been
outside the state for ``n`` observations. Actions: ``log`` (logger + the event log, e.g. the JSONL
file of ``liveaug replay --events``), ``snapshot`` (crop of the frame, maps and labels around the
cell into ``snapshot_dir``), ``hook`` (a callable ``hook(event, context)`` that may act on the
source — set a camera ROI around the cell, raise the frame rate), and the acquisition actions
``image_cell`` / ``rate`` with their ``acquire:`` settings (:mod:`liveaug.analysis.actions`),
which a source that drives a microscope carries out (``request_action``, see
``liveaug.sources.mmcore``); elsewhere they are skipped with one log line.
"""

from __future__ import annotations

import importlib
import json
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from liveaug.analysis.actions import ACQUISITION_ACTIONS, AcquireOptions, parse_acquire
from liveaug.errors import LiveaugError
from liveaug.frame import CellEvent, CellTable, Frame, Prediction

log = logging.getLogger(__name__)

ACTIONS = ("log", "snapshot", "hook", *ACQUISITION_ACTIONS)
DEFAULT_RULES = Path(__file__).with_name("rules.yaml")


@dataclass(frozen=True)
class Rule:
    """One condition on one readout column, and what to do when a cell enters it."""

    name: str
    column: str
    above: float | None = None
    below: float | None = None
    equals: str | None = None
    frames: int = 1
    rise: float | None = None
    baseline_frames: int = 10
    baseline_min: int = 3
    """With ``rise``: observations outside the state needed before the cell may fire (a track
    that has just started — often a segmentation glitch — has no baseline yet)."""
    entry: bool = True
    rearm: int = 0
    """Observations outside the state after which a cell that fired may fire again on its next
    entry (0: once per track). A cell can leave a state and enter it anew, and a false alarm
    must not silence the cell's real event later."""
    actions: tuple[str, ...] = ("log",)
    hook: str | None = None
    unreliable: bool = False
    """Fire on cells whose ``reliability`` is below the model card's threshold too (by default a
    cell the model does not know how to read is not observed at all for this rule)."""
    acquire: AcquireOptions | None = None
    """Settings of the acquisition actions (``image_cell``, ``rate``; see ``actions``)."""

    def test(self, values: np.ndarray) -> np.ndarray:
        """Where ``values`` satisfy the level condition (NaN never does)."""
        ok = np.ones(len(values), bool)
        if self.equals is not None:
            ok &= values.astype(str) == self.equals
        if self.above is not None or self.below is not None:
            v = values.astype(np.float64)
            if self.above is not None:
                ok &= v > self.above
            if self.below is not None:
                ok &= v < self.below
        return ok


@dataclass(frozen=True)
class HookContext:
    """What a user hook gets besides the event: the frame, its maps, the cell's row, the source."""

    frame: Frame
    prediction: Prediction | None
    row: dict[str, Any]
    source: Any = None


Hook = Callable[[CellEvent, HookContext], object]


@dataclass
class _State:
    run: int = 0
    out: int = 0
    seen_outside: bool = False
    fired: bool = False
    history: deque[float] = field(default_factory=lambda: deque(maxlen=10))
    seen: int = 0


def _config_error(path: Path | str, what: str) -> LiveaugError:
    return LiveaugError(f"{path}: {what}", "see liveaug/analysis/rules.yaml for the format")


def load_rules(path: str | Path | None = None) -> tuple[list[Rule], dict[str, Any]]:
    """Rules and settings (``snapshot_dir``) from a YAML file (default: the shipped rules)."""
    p = Path(path) if path is not None else DEFAULT_RULES
    try:
        doc = yaml.safe_load(p.read_text()) or {}
    except OSError as exc:
        raise LiveaugError(f"{p}: cannot read the rules file ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise _config_error(p, f"not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("rules", []), list):
        raise _config_error(p, "expected a mapping with a 'rules' list")
    rules = [parse_rule(r, p) for r in doc.get("rules", [])]
    for rule in rules:
        _check_column(rule.column, rule.name, p)
    settings = {k: v for k, v in doc.items() if k != "rules"}
    return rules, settings


def parse_rule(d: Any, where: str | Path = "rules") -> Rule:
    """One rule from its mapping; unknown keys and actions are errors (typos must not pass)."""
    if not isinstance(d, dict) or "name" not in d or "column" not in d:
        raise _config_error(where, f"each rule needs a 'name' and a 'column', got {d!r}")
    known = set(Rule.__dataclass_fields__)
    unknown = set(d) - known
    if unknown:
        raise _config_error(where, f"rule {d['name']!r}: unknown keys {sorted(unknown)}")
    d = dict(d)
    name = d["name"]
    for key in ("above", "below", "rise"):
        if d.get(key) is not None and (
            isinstance(d[key], bool) or not isinstance(d[key], int | float)
        ):
            raise _config_error(where, f"rule {name!r}: '{key}' must be a number, got {d[key]!r}")
    if not isinstance(d.get("unreliable", False), bool):
        raise _config_error(where, f"rule {name!r}: 'unreliable' must be true or false")
    for key, least in (("frames", 1), ("rearm", 0), ("baseline_frames", 1), ("baseline_min", 1)):
        v = d.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < least):
            raise _config_error(
                where, f"rule {name!r}: '{key}' must be a whole number ≥ {least}, got {v!r}"
            )
    if not isinstance(d.get("column"), str) or not isinstance(name, str):
        raise _config_error(where, f"rule {name!r}: 'name' and 'column' must be text")
    raw_actions = d.pop("actions", ["log"])
    if not isinstance(raw_actions, list | tuple) or not raw_actions:
        raise _config_error(where, f"rule {name!r}: 'actions' must be a list, e.g. [log]")
    actions = tuple(raw_actions)
    bad = [a for a in actions if a not in ACTIONS]
    if bad:
        raise _config_error(where, f"rule {d['name']!r}: unknown actions {bad}, use {ACTIONS}")
    if "hook" in actions and not d.get("hook"):
        raise _config_error(
            where, f"rule {d['name']!r}: action 'hook' needs 'hook: module:function'"
        )
    if "acquire" in d or any(a in ACQUISITION_ACTIONS for a in actions):
        d["acquire"] = parse_acquire(d.get("acquire"), where, name)
    if all(d.get(k) is None for k in ("above", "below", "equals")):
        raise _config_error(where, f"rule {d['name']!r}: give 'above', 'below' or 'equals'")
    if d.get("equals") is not None:
        d["equals"] = str(d["equals"])
    return Rule(actions=actions, **d)


def _check_column(column: str, name: str, where: str | Path) -> None:
    """A rule on a column no analysis writes would silently never fire: name the real ones."""
    from liveaug.analysis.readouts import CHANNEL_SUFFIXES, UNITS

    if column in UNITS or any(
        column.endswith(f"_{s}") and len(column) > len(s) + 1 for s in CHANNEL_SUFFIXES
    ):
        return
    import difflib

    close = difflib.get_close_matches(column, list(UNITS), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise LiveaugError(
        f"{where}: rule {name!r}: no readout column {column!r}",
        f"{hint}columns: {', '.join(UNITS)}, and for a fluorescence channel NAME: "
        + ", ".join(f"NAME_{s}" for s in CHANNEL_SUFFIXES),
    )


def resolve_hook(spec: str) -> Hook:
    """``"package.module:function"`` → the callable."""
    mod, _, name = spec.partition(":")
    try:
        fn = getattr(importlib.import_module(mod), name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise LiveaugError(
            f"event hook {spec!r} cannot be loaded ({exc})", "write it as package.module:function"
        ) from None
    if not callable(fn):
        raise LiveaugError(f"event hook {spec!r} is not callable")
    return fn


class RuleEngine:
    """Evaluates rules on each frame's tracked CellTable and runs their actions.

    Parameters
    ----------
    rules : list of Rule
    snapshot_dir : path, optional
        Where ``snapshot`` writes (created on first use); None skips snapshots (logged once).
    hooks : dict, optional
        Hooks by the name a rule's ``hook`` gives (otherwise imported from ``module:function``).
    sink : callable, optional
        Receives each logged event as a JSON-able dict (the replay command writes JSONL).
    """

    def __init__(
        self,
        rules: list[Rule],
        *,
        snapshot_dir: str | Path | None = None,
        hooks: dict[str, Hook] | None = None,
        sink: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.rules = rules
        self.snapshot_dir = Path(snapshot_dir) if snapshot_dir is not None else None
        self.hooks: dict[str, Hook] = dict(hooks or {})
        for r in rules:
            if r.hook and r.hook not in self.hooks and "hook" in r.actions:
                self.hooks[r.hook] = resolve_hook(r.hook)
        self.sink = sink
        self.source: Any = None
        self._state: dict[tuple[str, int], _State] = {}
        self._missing: set[str] = set()
        self.counts: dict[str, int] = {r.name: 0 for r in rules}
        self._tick = 0

    def reset(self) -> None:
        """Forget every cell's state."""
        self._state.clear()

    def update(
        self,
        frame: Frame,
        table: CellTable,
        *,
        prediction: Prediction | None = None,
        labels: np.ndarray | None = None,
    ) -> list[CellEvent]:
        """Advance every rule by one frame; returns the events fired (actions already run)."""
        fired: list[tuple[Rule, int]] = []
        lasting: dict[Rule, None] = {}
        ids = table["cell_id"] if len(table) else np.zeros(0, np.int64)
        trust = prediction.trust if prediction is not None else None
        reliable = np.ones(len(ids), bool)
        if trust is not None and "reliability" in table.columns:
            reliable = table["reliability"] >= trust.threshold
        self._tick += 1
        if self._tick % 100 == 0:  # forget cells gone for 50 frames (live runs never end)
            self._state = {k: v for k, v in self._state.items() if self._tick - v.seen <= 50}
        for rule in self.rules:
            if rule.column not in table.columns:
                if rule.column not in self._missing and len(table):
                    self._missing.add(rule.column)
                    log.info("rule %s inactive: no column %s", rule.name, rule.column)
                continue
            values = table[rule.column]
            ok = rule.test(values)
            for i, cid in enumerate(ids.tolist()):
                st = self._state.get((rule.name, cid))
                if st is None:
                    st = self._state[(rule.name, cid)] = _State(
                        history=deque(maxlen=rule.baseline_frames)
                    )
                st.seen = self._tick
                if not (reliable[i] or rule.unreliable):
                    continue  # not observed: neither in the state nor out of it
                hit = bool(ok[i])
                v = values[i]
                if hit and rule.rise is not None:
                    enough = len(st.history) >= rule.baseline_min
                    base = np.nanmedian(st.history) if enough else np.nan
                    hit = bool(np.isfinite(base) and base > 0 and float(v) >= rule.rise * base)
                if hit:
                    st.run += 1
                    st.out = 0
                else:
                    st.run = 0
                    st.out += 1
                    st.seen_outside = True
                    if rule.rise is not None and np.isfinite(float(v)):
                        st.history.append(float(v))
                    if st.fired and rule.rearm and st.out >= rule.rearm:
                        st.fired = False
                if not st.fired and st.run >= rule.frames and (st.seen_outside or not rule.entry):
                    st.fired = True
                    fired.append((rule, i))
                elif st.fired and hit and "rate" in rule.actions:
                    lasting[rule] = None  # a fired cell still in the state: keep imaging fast
        events = []
        for rule, i in fired:
            ev = CellEvent(
                frame_index=frame.index,
                cell_id=int(ids[i]),
                rule=rule.name,
                x=float(table["x"][i]),
                y=float(table["y"][i]),
                message=f"{rule.column}={_fmt(table[rule.column][i])}",
            )
            self.counts[rule.name] += 1
            events.append(ev)
            self._act(rule, ev, frame, table, i, prediction, labels)
        sustain = getattr(self.source, "sustain_action", None)
        for rule in lasting if sustain is not None else ():
            try:
                sustain("rate", rule.acquire or AcquireOptions(), rule.name)
            except Exception as exc:
                log.warning("action rate (sustained) failed: %s", exc)
        return events

    def _act(
        self,
        rule: Rule,
        ev: CellEvent,
        frame: Frame,
        table: CellTable,
        i: int,
        prediction: Prediction | None,
        labels: np.ndarray | None,
    ) -> None:
        """Run the rule's actions; a failing action is logged, never raised into the pipeline."""
        if "log" in rule.actions:
            log.info(
                "event %s: cell %d at frame %d (%s)",
                ev.rule,
                ev.cell_id,
                ev.frame_index,
                ev.message,
            )
            if self.sink is not None:
                self.sink(event_record(ev))
        if "snapshot" in rule.actions and self.snapshot_dir is None:
            if "snapshot" not in self._missing:
                self._missing.add("snapshot")
                log.info("snapshots skipped: no snapshot directory configured")
        elif "snapshot" in rule.actions:
            try:
                save_snapshot(self.snapshot_dir, ev, frame, prediction, labels)
            except OSError as exc:
                log.warning("snapshot for %s failed: %s", ev.rule, exc)
        if "hook" in rule.actions and rule.hook:
            row = {k: _plain(v[i]) for k, v in table.columns.items()}
            try:
                self.hooks[rule.hook](ev, HookContext(frame, prediction, row, self.source))
            except Exception as exc:  # a user hook must not stop the analysis
                log.warning("event hook %s failed: %s", rule.hook, exc)
        for kind in (a for a in rule.actions if a in ACQUISITION_ACTIONS):
            request = getattr(self.source, "request_action", None)
            if request is None:
                if kind not in self._missing:
                    self._missing.add(kind)
                    log.warning("action %s skipped: the source cannot drive a microscope", kind)
                continue
            try:
                request(kind, rule.acquire or AcquireOptions(), ev, frame)
            except Exception as exc:  # the microscope's trouble must not stop the analysis
                log.warning("action %s for cell %d failed: %s", kind, ev.cell_id, exc)


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _fmt(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float | np.floating) else str(v)


def event_record(ev: CellEvent) -> dict[str, Any]:
    """An event as a JSON-able dict (one line of the events JSONL)."""
    return {
        "frame": ev.frame_index,
        "cell_id": ev.cell_id,
        "rule": ev.rule,
        "x": round(ev.x, 2),
        "y": round(ev.y, 2),
        "message": ev.message,
    }


def save_snapshot(
    folder: Path,
    ev: CellEvent,
    frame: Frame,
    prediction: Prediction | None,
    labels: np.ndarray | None,
    *,
    half_px: int = 64,
) -> Path:
    """Crop frame, channels, maps and labels around the cell into ``folder`` (one .npz)."""
    folder.mkdir(parents=True, exist_ok=True)
    h, w = frame.shape
    cx, cy = round(ev.x), round(ev.y)
    y0, y1 = max(0, cy - half_px), min(h, cy + half_px)
    x0, x1 = max(0, cx - half_px), min(w, cx + half_px)
    arrays: dict[str, np.ndarray] = {"brightfield": frame.image[y0:y1, x0:x1]}
    for name, img in frame.channels.items():
        arrays[f"channel_{name}"] = img[y0:y1, x0:x1]
    if prediction is not None:
        s = prediction.scale
        sl = (slice(int(y0 * s), int(y1 * s)), slice(int(x0 * s), int(x1 * s)))
        for role, m in prediction.maps.items():
            arrays[f"map_{role}"] = m[(..., *sl)]
        if labels is not None:
            arrays["labels"] = labels[sl]
    meta = {**event_record(ev), "origin_xy": [x0, y0], "timestamp_ns": frame.timestamp_ns}
    out = folder / f"frame{ev.frame_index:06d}_cell{ev.cell_id}_{ev.rule}.npz"
    np.savez_compressed(out, meta=np.array(json.dumps(meta)), **arrays)
    return out
