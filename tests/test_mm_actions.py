"""Acquisition actions inserted into a running MDA (pymmcore-plus' engine, liveaug's devices)."""

from __future__ import annotations

import dataclasses
import json
import threading
import time

import numpy as np
import pytest

from liveaug.analysis.actions import AcquireOptions, stage_target
from liveaug.analysis.events import Rule, RuleEngine, parse_rule
from liveaug.errors import LiveaugError
from liveaug.frame import CellEvent, CellTable
from liveaug.session import Session
from liveaug.sources.mmcore.devices import CHANNEL_GROUP
from liveaug.sources.mmcore.dish import SimulatedDish
from liveaug.sources.mmcore.schedule import Plan
from liveaug.sources.mmcore.source import simulated_source
from liveaug.sources.simulated import SimulationConfig


@pytest.fixture(autouse=True)
def no_threads_left():
    """Every test ends with the threads it found."""
    before = set(threading.enumerate())
    yield
    left = [t for t in set(threading.enumerate()) - before if t.is_alive()]
    # zarr's process-wide I/O pool starts on first use and stays by design
    left = [t for t in left if not t.name.startswith(("asyncio_", "zarr_io"))]
    assert not left, f"threads left running: {left}"


def running_source(tmp_path=None, *, positions=None, rounds=None, interval_s=0.05):
    """An open source on a 2×2-field dish of 128² px (time moved only by hand)."""
    cfg = SimulationConfig(height=128, width=128, seed=5).with_(biology__reporter=True)
    dish = SimulatedDish(cfg, fields=(2, 2), time_scale=None)
    plan = Plan(
        positions=positions or dish.field_centres_um()[:2],
        interval_s=interval_s,
        channel="brightfield",
        channel_group=CHANNEL_GROUP,
        rounds=rounds,
    )
    src = simulated_source(dish, plan=plan, action_dir=tmp_path)
    src.open()
    return src, dish


def wait_for(pred, timeout_s=10.0):
    """Poll ``pred`` until true (the MDA runs on its own thread)."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.01)
    return False


def central_cell(frame):
    """(id, x, y) of a whole cell well off the field's centre (20-45 px from it)."""
    c = frame.truth.cells
    h, w = frame.shape
    d = np.hypot(c["x"] - w / 2, c["y"] - h / 2)
    ok = (c["area_px"] > 200) & (d > 20) & (d < 45)
    i = int(np.argmax(np.where(ok, d, -1)))
    assert ok[i], "no suitable cell in the field"
    return int(c["cell_id"][i]), float(c["x"][i]), float(c["y"][i])


def test_image_cell_centres_the_cell_bursts_and_returns_to_the_plan(tmp_path):
    src, dish = running_source(tmp_path)
    try:
        frame = src.read(timeout_s=10)
        cid, x, y = central_cell(frame)
        opts = AcquireOptions(channels=("reporter", "nuclear"), frames=2, interval_s=0.0)
        rec = src.request_action("image_cell", opts, CellEvent(frame.index, cid, "r", x, y), frame)
        assert rec.status == "running" and rec.expected == 6
        assert wait_for(lambda: rec.status == "done")
        after = [src.read(timeout_s=10) for _ in range(3)]  # the plan goes on where it was
    finally:
        src.close()
    assert rec.frames == []  # written to disk, not kept
    assert rec.latency_ms is not None and rec.latency_ms > 0
    assert {tuple(f.meta["mda_index"]) for f in after} == {("t", "p")}
    for f in after:
        p = f.meta["mda_index"]["p"]
        assert f.meta["stage_x_um"] == pytest.approx(src.plan.positions[p][0])
    # the burst is a session: brightfield + the two channels, at the cell's position
    s = Session.open(rec.session)
    assert len(s) == 2 and s.metadata["action"]["cell_id"] == cid
    first = s.frame(0)
    assert set(first.channels) == {"reporter", "nuclear"}
    assert (first.meta["stage_x_um"], first.meta["stage_y_um"]) == pytest.approx(rec.target_um)
    # the calibration put the cell in the middle: find it in the dish at the burst's position
    cx, cy = dish.cell_position_um(cid)
    assert np.hypot(cx - rec.target_um[0], cy - rec.target_um[1]) < 6.0  # µm, ~ a nucleus
    assert dish.dose["reporter"].sum() > 0 and dish.dose["nuclear"].sum() > 0
    lines = [json.loads(s) for s in (tmp_path / "actions.jsonl").read_text().splitlines()]
    assert lines[-1]["status"] == "done" and lines[-1]["cell_id"] == cid


def test_refusals_dry_run_no_stacking_rate_limit_and_left_field(tmp_path):
    src, dish = running_source(tmp_path)
    try:
        f = src.read(timeout_s=10)
        cid, x, y = central_cell(f)
        ev = CellEvent(f.index, cid, "r", x, y)
        dry_ev = CellEvent(f.index, cid, "dry", x, y)  # a dry run counts for its rule's limit
        dry = src.request_action("image_cell", AcquireOptions(dry_run=True), dry_ev, f)
        assert dry.status == "dry_run" and dry.target_um is not None
        assert src.events.pending() == 0
        gone = src.request_action("image_cell", AcquireOptions(), CellEvent(0, 9, "r", 500, 5), f)
        assert gone.status.startswith("skipped") and "left the field" in gone.status
        gfp = src.request_action("image_cell", AcquireOptions(channels=("gfp",)), ev, f)
        assert "no channel preset 'gfp'" in gfp.status
        src.plan = dataclasses.replace(src.plan, channel=None)  # and no plan channel either
        none = src.request_action("image_cell", AcquireOptions(channels=()), ev, f)
        assert "no channels to image" in none.status
        src.plan = dataclasses.replace(src.plan, channel="brightfield")
        slow = AcquireOptions(frames=3, interval_s=0.3, min_gap_s=60)
        first = src.request_action("image_cell", slow, ev, f)
        again = src.request_action("image_cell", AcquireOptions(), ev, f)
        other = [CellEvent(f.index, 1000 + i, "r2", x, y) for i in range(2)]
        waits = src.request_action("image_cell", AcquireOptions(), other[0], f)
        refused = src.request_action("image_cell", AcquireOptions(), other[1], f)
        assert first.status == "running" and waits.status == "running"
        assert "being imaged already" in again.status  # never twice for one cell
        assert "still running" in refused.status  # never stacking beyond two bursts
        assert wait_for(lambda: first.status == "done" and waits.status == "done")
        assert waits.first_frame_ns < first.last_frame_ns  # in the first one's gaps
        third = src.request_action("image_cell", slow, ev, f)
        assert "rate limit" in third.status
        fresh = src.read(timeout_s=10)  # acquisition went on through all of it
    finally:
        src.close()
    assert fresh.index > f.index
    assert dish.dose["nuclear"].sum() == 0  # the dry run lit nothing
    assert src.actions.summary() == {"dry_run": 1, "skipped": 6, "done": 2}


def test_rate_makes_the_plan_fast_while_it_holds():
    src, _ = running_source(interval_s=30.0)
    try:
        f = src.read(timeout_s=10)
        src.read(timeout_s=10)  # round 0 (two positions) done; round 1 is due in 30 s
        opts = AcquireOptions(fast_interval_s=0.05, hold_s=30.0)
        rec = src.request_action("rate", opts, CellEvent(f.index, 1, "r", 10, 10), f)
        assert rec.status == "fast" and src.events.interval_s() == 0.05
        nxt = src.read(timeout_s=10)  # brought forward: well before the sparse 30 s
    finally:
        src.close()
    assert nxt.meta["mda_index"] == {"t": 1, "p": 0}


def test_action_whose_stage_move_fails_is_recorded_and_the_plan_continues(tmp_path):
    # the plan images the dish's corner: a cell at the field's outer edge is beyond the travel
    src, _ = running_source(tmp_path, positions=[(-82.0, -82.0)])
    try:
        f = src.read(timeout_s=10)
        ev = CellEvent(f.index, 1, "r", 1.0, 1.0)
        rec = src.request_action("image_cell", AcquireOptions(frames=1), ev, f)
        assert wait_for(lambda: rec.status.startswith("done"))
        more = src.read(timeout_s=10)
    finally:
        src.close()
    assert rec.status == "done (stage errors)" and rec.stage_errors == 2
    assert more.index > f.index and "stage_error" not in more.meta


def test_rules_drive_actions_through_the_source():
    src, _ = running_source()
    try:
        f = src.read(timeout_s=10)
        rule = parse_rule(
            {
                "name": "big",
                "column": "area_px",
                "above": 0,
                "entry": False,
                "actions": ["log", "image_cell"],
                "acquire": {"channels": ["reporter"], "frames": 1},
            }
        )
        engine = RuleEngine([rule])
        engine.source = src
        cid, x, y = central_cell(f)
        table = CellTable(
            {
                "cell_id": np.array([cid]),
                "x": np.array([x]),
                "y": np.array([y]),
                "area_px": np.array([9]),
            }
        )
        (ev,) = engine.update(f, table)
        assert ev.cell_id == cid
        assert wait_for(lambda: src.actions.records and src.actions.records[0].status == "done")
    finally:
        src.close()


def test_rule_errors_are_one_line():
    with pytest.raises(LiveaugError, match="unknown actions") as e:
        parse_rule({"name": "x", "column": "p", "above": 1, "actions": ["zoom_in"]})
    assert "\n" not in str(e.value)
    with pytest.raises(LiveaugError, match="'frames' must be"):
        parse_rule(
            {
                "name": "x",
                "column": "p",
                "above": 1,
                "actions": ["image_cell"],
                "acquire": {"frames": 0},
            }
        )
    with pytest.raises(LiveaugError, match="unknown 'acquire' keys"):
        parse_rule(
            {"name": "x", "column": "p", "above": 1, "actions": ["rate"], "acquire": {"fast": 1}}
        )
    assert isinstance(parse_rule({"name": "x", "column": "p", "above": 1}), Rule)


def test_stage_target_follows_the_pixel_affine():
    # identity at 0.5 µm/px; a 90° rotated, flipped calibration swaps and negates axes
    assert stage_target((10, 20), (59.5, 39.5), (40, 80), 0.5) == pytest.approx((20.0, 30.0))
    aff = (0.0, -0.5, 0.0, 0.5, 0.0, 0.0)
    assert stage_target((0, 0), (59.5, 39.5), (40, 80), 0.5, aff) == pytest.approx((-10.0, 10.0))
    # Micro-Manager's uncalibrated default is not taken for 1 µm/px
    unset = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    assert stage_target((0, 0), (59.5, 39.5), (40, 80), 0.5, unset) == pytest.approx((10.0, 10.0))


def test_without_a_folder_only_the_latest_bursts_keep_their_frames():
    from liveaug.sources.mmcore.acquire import ActionRunner

    src, _ = running_source()
    src.actions = ActionRunner(src, keep=1)
    try:
        f = src.read(timeout_s=10)
        cid, x, y = central_cell(f)
        opts = AcquireOptions(frames=1)
        a = src.request_action("image_cell", opts, CellEvent(f.index, cid, "a", x, y), f)
        assert wait_for(lambda: a.status == "done")
        b = src.request_action("image_cell", opts, CellEvent(f.index, cid, "b", x, y), f)
        assert wait_for(lambda: b.status == "done")
    finally:
        src.close()
    assert a.frames == [] and len(b.frames) == 2  # reporter + brightfield
    assert [fr.meta["channel"] for fr in b.frames] == ["reporter", "brightfield"]


def test_closing_mid_burst_keeps_what_the_burst_took(tmp_path):
    src, _ = running_source(tmp_path)
    try:
        f = src.read(timeout_s=10)
        cid, x, y = central_cell(f)
        opts = AcquireOptions(frames=4, interval_s=5.0)  # 15 s: the run stops long before
        rec = src.request_action("image_cell", opts, CellEvent(f.index, cid, "r", x, y), f)
        assert wait_for(lambda: rec.acquired >= 2)  # the first time point is in
    finally:
        src.close()
    assert rec.status == "incomplete" and rec.acquired == 2
    s = Session.open(rec.session)
    assert len(s) == 1 and set(s.frame(0).channels) == {"reporter"}


def test_rate_stays_fast_while_the_cell_stays_in_its_state():
    src, _ = running_source(interval_s=30.0)
    try:
        f = src.read(timeout_s=10)
        rule = parse_rule(
            {
                "name": "big",
                "column": "area_px",
                "above": 100,
                "actions": ["rate"],
                "acquire": {"fast_interval_s": 0.05, "hold_s": 20.0},
            }
        )
        engine = RuleEngine([rule])
        engine.source = src

        def observe(area):
            table = CellTable(
                {
                    "cell_id": np.array([7]),
                    "x": np.array([50.0]),
                    "y": np.array([50.0]),
                    "area_px": np.array([area]),
                }
            )
            return engine.update(f, table)

        assert observe(50) == [] and src.events.fast_until() is None  # outside the state
        assert len(observe(500)) == 1  # enters: fires, fast for 20 s
        first = src.events.fast_until()
        time.sleep(0.01)
        assert observe(500) == []  # still in the state: no new event, the hold moves on
        assert src.events.fast_until() > first
        held = src.events.fast_until()
        observe(50)  # left the state: the hold is not extended
        assert src.events.fast_until() == held
    finally:
        src.close()
    assert [r.status for r in src.actions.records] == ["fast"]
