"""``liveaug bench --only closed-loop`` on a tiny dish: the figures exist and hang together."""

from __future__ import annotations

import json

from liveaug.bench.closed_loop import closed_loop_benchmarks


def test_closed_loop_section_scores_a_short_experiment():
    res = closed_loop_benchmarks(fields=(1, 2), size=128, hours=1.0, round_wall_s=0.4, seed=2)
    json.dumps(res)  # JSON-able
    ev = res["events"]
    done = ev["actions"].get("done", 0) + ev["actions"].get("done (stage errors)", 0)
    assert res["latency_ms"]["n"] == done + ev["actions"].get("incomplete", 0)
    assert ev["triggers"] == sum(ev["actions"].values())  # one image_cell per fired rule
    assert 0 < res["dose_ratio"] < 1  # sparse imaging lit far less than fast fluorescence
    assert res["setup"]["frames"] == 6 * 2  # 6 rounds (10 min apart) of 2 fields
    assert ev["imaged"] <= ev["true"]
    frac = res["events_imaged_fraction"]
    assert frac is None or 0 <= frac <= 1
    assert res["false_triggers_per_hour"] >= 0
    assert set(res["targets"]) == {
        "latency_p95_le_compute_plus_50ms",
        "events_imaged_ge_0.90",
        "dose_ratio_le_0.20",
    }
