"""``bench --only closed-loop``: liveaug drives the simulated microscope and images rare events.

A simulated dish (a grid of fields, reporter translocations and apoptoses at raised but still
rare rates, every onset known) is imaged through pymmcore-plus' MDA engine on liveaug's Python
devices: a sparse time-lapse of every field in brightfield with a low-light reporter sentinel.
Each frame is analysed in order (truth maps or the shipped models; one tracker per field); the
rules ``translocation`` and ``apoptosis`` fire ``image_cell``, which centres the cell and takes a
short burst in full-light fluorescence. Scored against the dish's truth:

- ``latency_ms``: triggering frame acquired → the action's first frame acquired (host clock),
  beside ``compute_ms`` (triggering frame acquired → the rule's request: analysis, with any
  backlog of frames before it) and ``overhead_ms`` (the difference: what the loop adds —
  waiting for the event the MDA is running, then setting up and taking the first frame);
- ``events_imaged_fraction``: true events (onset after the warm-up the rules need for a
  baseline) whose cell a burst centred on, triggered within one sparse interval of the event
  becoming visible in the truth (apoptosis: commitment; translocation: import complete, a
  two-minute ramp); ``…_from_start`` counts from the start of the import instead;
- ``dose_ratio``: light dose used ÷ imaging every field in fluorescence at the fast rate;
- ``false_triggers_per_hour``: triggers on cells with no true onset of that kind, per hour of
  experiment.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np

#: The rules the bench runs (translocation as the shipped rules; apoptosis on one observation).
RULES: tuple[dict[str, Any], ...] = (
    {
        "name": "translocation",
        "column": "reporter_nc_ratio",
        "above": 1.5,
        "rise": 2.0,
        "rearm": 10,
    },
    {"name": "apoptosis", "column": "p_apoptosis", "above": 0.8, "frames": 1},
)
KIND = {"translocation": "translocation", "apoptosis": "apoptosis"}
#: Python's thread switch interval during the run, s (its default is 0.005).
GIL_SWITCH_S = 0.0005


def _stats(values: list[float]) -> dict[str, float | None]:
    """Median and 95th percentile (None when empty)."""
    if not values:
        return {"median": None, "p95": None, "n": 0}
    a = np.asarray(values, np.float64)
    return {
        "median": round(float(np.median(a)), 1),
        "p95": round(float(np.percentile(a, 95)), 1),
        "n": len(values),
    }


def _centre_cell(truth: Any, shape: tuple[int, int], x: float, y: float) -> int | None:
    """The dish id of the truth cell nearest (x, y) px of a frame (None: no cells)."""
    c = truth.cells
    if not len(c.get("cell_id", ())):
        return None
    i = int(np.argmin(np.hypot(c["x"] - x, c["y"] - y)))
    return int(c["cell_id"][i])


def closed_loop_benchmarks(
    *,
    fields: tuple[int, int] = (3, 3),
    size: int = 256,
    hours: float = 6.0,
    sparse_min: float = 10.0,
    fast_min: float = 1.0,
    round_wall_s: float | None = None,
    maps: str = "truth",
    seed: int = 1,
) -> dict[str, Any]:
    """Run the simulated closed-loop experiment; returns the JSON-able figures."""
    from liveaug.analysis.analyzer import Analyzer
    from liveaug.analysis.batch import make_predictor
    from liveaug.analysis.events import parse_rule
    from liveaug.analysis.positions import PositionAnalyzer
    from liveaug.errors import EndOfStream
    from liveaug.sources.mmcore.acquire import ActionRunner
    from liveaug.sources.mmcore.devices import CHANNEL_GROUP
    from liveaug.sources.mmcore.dish import DOSE_BIN_PX, IRRADIANCE, SimulatedDish
    from liveaug.sources.mmcore.schedule import Plan
    from liveaug.sources.mmcore.source import simulated_source
    from liveaug.sources.simulated import SimulationConfig

    n_fields = fields[0] * fields[1]
    sparse_s, fast_s = sparse_min * 60.0, fast_min * 60.0
    round_wall_s = round_wall_s or max(1.0, 0.17 * n_fields)
    scale = sparse_s / round_wall_s  # experiment seconds per wall second
    rounds = round(hours * 3600 / sparse_s)
    config = SimulationConfig(height=size, width=size, seed=seed, truth=True).with_(
        biology__reporter=True,
        biology__frame_interval_s=60.0,
        biology__density=0.5,
        biology__translocation_rate_per_h=0.04,
        biology__translocation_frames=2,
        biology__apoptosis_fraction=0.3,
    )
    dish = SimulatedDish(config, fields=fields, time_scale=scale)
    fluo_ms, sentinel_ms = 100.0, 20.0
    plan = Plan(
        positions=dish.field_centres_um(),
        interval_s=round_wall_s,
        channel="brightfield",
        channel_group=CHANNEL_GROUP,
        exposure_ms=10.0,
        extra_channels=(("reporter", sentinel_ms),),
        rounds=rounds,
    )
    acquire = {
        "channels": ["reporter"],
        "frames": 2,
        "interval_s": fast_s / scale,
        "exposure_ms": fluo_ms,
        "max_age_s": 60.0,
    }
    rules = [parse_rule({**r, "actions": ["image_cell"], "acquire": acquire}) for r in RULES]
    predictor = make_predictor(maps, models=None, metadata={"simulation": config.to_dict()})
    src = simulated_source(dish, plan=plan)
    src.actions = ActionRunner(src, keep=1_000_000)  # every burst's frames, for the scoring
    analyzer = PositionAnalyzer(lambda: Analyzer(rules=list(rules), keep_history=False), source=src)
    roles = sorted(analyzer.required_roles)
    compute_ms: list[float] = []
    triggers: list[tuple[str, int | None, float]] = []  # rule, dish cell, experiment time
    t_start = time.perf_counter()
    # the MDA thread and the analysis share the GIL: hand it over every 0.5 ms, not 5 ms, so
    # an action's events are not held up behind a slice of the next frame's analysis
    switch = sys.getswitchinterval()
    sys.setswitchinterval(GIL_SWITCH_S)
    src.open()
    try:
        while True:
            try:
                frame = src.read(timeout_s=30.0)
            except EndOfStream:
                break
            t0 = time.perf_counter_ns()
            prediction = predictor.predict(frame, roles)
            analysis = analyzer.analyze(frame, prediction)
            compute_ms.append((time.perf_counter_ns() - t0) / 1e6)
            for ev in analysis.events:
                dish_id = _centre_cell(frame.truth, frame.shape, ev.x, ev.y)
                triggers.append((ev.rule, dish_id, frame.timestamp_ns / 1e9))
    finally:
        src.close()
        sys.setswitchinterval(switch)
    wall_s = time.perf_counter() - t_start
    records = src.actions.records if src.actions is not None else []

    # -- scoring against the dish's truth --------------------------------------------------------
    end_s = rounds * sparse_s
    warmup_s = 4 * sparse_s  # the translocation rule needs three observations of a baseline
    onsets = [o for o in dish.onsets if warmup_s <= o.time_s <= end_s - sparse_s]
    imaged_ids: list[tuple[int | None, float]] = []
    for r in records:
        bf = [f for f in r.frames if f.meta.get("channel") == "brightfield" and f.truth]
        if bf:
            h, w = bf[0].shape
            imaged_ids.append((_centre_cell(bf[0].truth, bf[0].shape, w / 2, h / 2), r.trigger_s))
    # an event is there to see once its true state is reached: apoptosis at commitment (what
    # the truth maps mark), a translocation once the import is complete (its ramp: a few steps)
    ramp_s = config.biology.translocation_frames * config.biology.frame_interval_s

    def seen_s(o: Any) -> float:
        """When the event's true state is reached (what the truth shows)."""
        return o.time_s + (ramp_s if o.kind == "translocation" else 0.0)

    def was_imaged(o: Any, start: float) -> bool:
        """A burst centred on the cell, triggered within one sparse interval of ``start``."""
        return any(cid == o.cell_id and o.time_s <= t <= start + sparse_s for cid, t in imaged_ids)

    imaged = [o for o in onsets if was_imaged(o, seen_s(o))]
    imaged_strict = [o for o in onsets if was_imaged(o, o.time_s)]
    missed: dict[str, int] = {}
    for o in onsets:
        if o in imaged:
            continue
        mine = [
            (t, r.status)
            for (rule, cid, t), r in zip(triggers, records, strict=False)
            if cid == o.cell_id and KIND[rule] == o.kind and t >= o.time_s
        ]
        if not mine:
            why = "not detected"
        elif min(t for t, _ in mine) > seen_s(o) + sparse_s:
            why = "detected later than one interval"
        elif any(st.startswith("skipped") for _, st in mine):
            why = "action refused: " + next(st for _, st in mine if st.startswith("skipped"))[9:]
            why = why.split(" (")[0]
        else:
            why = "burst centred on another cell"
        why = f"{o.kind}: {why}"
        missed[why] = missed.get(why, 0) + 1
    delays: dict[str, list[float]] = {"translocation": [], "apoptosis": []}
    for o in onsets:  # onset → the first trigger on its cell by its rule, minutes
        later = [
            t
            for rule, cid, t in triggers
            if cid == o.cell_id and KIND[rule] == o.kind and t >= o.time_s
        ]
        if later:
            delays[o.kind].append((min(later) - o.time_s) / 60.0)
    onset_of: dict[tuple[str, int], float] = {}
    for o in dish.onsets:
        onset_of.setdefault((o.kind, o.cell_id), o.time_s)
    false = [
        t for rule, cid, t in triggers if cid is None or onset_of.get((KIND[rule], cid), np.inf) > t
    ]
    latency = [r.latency_ms for r in records if r.latency_ms is not None]
    comp = [
        (r.requested_ns - r.trigger_ns) / 1e6
        for r in records
        if r.latency_ms is not None and r.requested_ns
    ]
    overhead = [lat - c for lat, c in zip(latency, comp, strict=True)]
    started = [r for r in records if r.started_ns and r.first_frame_ns and r.requested_ns]
    waited = [(r.started_ns - r.requested_ns) / 1e6 for r in started]
    acquiring = [(r.first_frame_ns - r.started_ns) / 1e6 for r in started]
    # dose of imaging every field in fluorescence at the fast rate for the whole experiment
    n_bins = dish.dose["reporter"].size
    reference = n_bins * IRRADIANCE["reporter"] * fluo_ms / 1000.0 * (end_s / fast_s)
    dose_ratio = dish.total_dose() / reference
    compute_stats = _stats(compute_ms)
    latency_stats = _stats(latency)
    overhead_stats = _stats(overhead)
    fraction = len(imaged) / len(onsets) if onsets else None
    per_hour = len(false) / (end_s / 3600.0)
    return {
        "latency_ms": latency_stats,
        "compute_ms": _stats(comp),
        "frame_compute_ms": compute_stats,
        "overhead_ms": overhead_stats,
        "overhead_parts_ms": {
            "wait_for_running_event": _stats(waited),
            "first_action_frame": _stats(acquiring),
        },
        "events_imaged_fraction": None if fraction is None else round(fraction, 3),
        "events_imaged_fraction_from_start": round(len(imaged_strict) / len(onsets), 3)
        if onsets
        else None,
        "events": {
            "true": len(onsets),
            "imaged": len(imaged),
            "by_kind": {
                k: sum(o.kind == k for o in onsets) for k in ("translocation", "apoptosis")
            },
            "detection_delay_min": {k: _stats(v) for k, v in delays.items()},
            "imaged_by_kind": {
                k: sum(o.kind == k for o in imaged) for k in ("translocation", "apoptosis")
            },
            "missed": missed,
            "triggers": len(triggers),
            "actions": src.actions.summary() if src.actions is not None else {},
        },
        "dose_ratio": round(dose_ratio, 4),
        "false_triggers_per_hour": round(per_hour, 3),
        "targets": {
            "latency_p95_le_compute_plus_50ms": bool(
                overhead_stats["p95"] is not None and overhead_stats["p95"] <= 50.0
            ),
            "events_imaged_ge_0.90": bool(fraction is not None and fraction >= 0.90),
            "dose_ratio_le_0.20": bool(dose_ratio <= 0.20),
        },
        "setup": {
            "fields": list(fields),
            "field_px": size,
            "dose_bin_px": DOSE_BIN_PX,
            "hours": hours,
            "sparse_min": sparse_min,
            "fast_min": fast_min,
            "experiment_s_per_wall_s": round(scale, 1),
            "maps": maps,
            "sentinel_ms": sentinel_ms,
            "fluorescence_ms": fluo_ms,
            "frames": len(compute_ms),
            "wall_s": round(wall_s, 1),
            "stage_errors": src.counts["stage_errors"],
            "dropped": src.counts["dropped"],
        },
    }
