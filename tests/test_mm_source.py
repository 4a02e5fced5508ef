"""The Micro-Manager source on pymmcore-plus' real MDA engine with liveaug's Python devices."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from liveaug.errors import EndOfStream, SourceError
from liveaug.sources.base import Source
from liveaug.sources.mmcore.devices import CHANNEL_GROUP, simulated_core
from liveaug.sources.mmcore.dish import SimulatedDish
from liveaug.sources.mmcore.schedule import EventQueue, Plan
from liveaug.sources.mmcore.source import MMSource, simulated_source
from liveaug.sources.simulated import SimulationConfig


def small_dish(**kw) -> SimulatedDish:
    """A 2×2-field dish of 96² px fields whose time moves only by hand (deterministic)."""
    cfg = SimulationConfig(height=96, width=96, seed=3).with_(biology__reporter=True)
    return SimulatedDish(cfg, fields=(2, 2), time_scale=None, **kw)


def read_all(src: MMSource, n: int) -> list:
    """Up to ``n`` frames (fewer when the plan ends)."""
    out = []
    for _ in range(n):
        try:
            out.append(src.read(timeout_s=10))
        except EndOfStream:
            break
    return out


@pytest.fixture(autouse=True)
def no_threads_left():
    """Every test ends with the threads it found: the MDA's and the action writer are gone."""
    before = set(threading.enumerate())
    yield
    left = [t for t in set(threading.enumerate()) - before if t.is_alive()]
    assert not left, f"threads left running: {left}"


def test_plan_frames_carry_stage_channel_exposure_pixel_size_and_truth():
    dish = small_dish()
    plan = Plan(
        positions=dish.field_centres_um(),
        interval_s=0.0,
        channel="brightfield",
        channel_group=CHANNEL_GROUP,
        exposure_ms=12.0,
        rounds=2,
    )
    src = simulated_source(dish, plan=plan)
    assert isinstance(src, Source)
    info = src.open()
    assert info.shape == (96, 96) and info.pixel_size_um == pytest.approx(0.65)
    frames = read_all(src, 20)
    src.close()
    assert len(frames) == 8  # 2 rounds × 4 positions, then EndOfStream
    with pytest.raises(EndOfStream):
        src.read(timeout_s=0.1)
    assert [f.index for f in frames] == list(range(8))
    for i, f in enumerate(frames):
        x, y = dish.field_centres_um()[i % 4]
        assert (f.meta["stage_x_um"], f.meta["stage_y_um"]) == pytest.approx((x, y))
        assert f.meta["channel"] == "brightfield" and f.meta["exposure_ms"] == 12.0
        assert f.pixel_size_um == pytest.approx(0.65)
        assert f.image.shape == (96, 96) and f.image.dtype == np.uint16
        assert f.truth is not None
    # different fields show different cells; the same field twice shows the same ones
    ids = [set(f.truth.cells["cell_id"].tolist()) for f in frames]
    assert ids[0] != ids[1] and ids[0] == ids[4]
    # brightfield light was booked on every field, nothing in fluorescence
    assert dish.dose["brightfield"].sum() > 0 and dish.dose["reporter"].sum() == 0
    assert dish.exposures == 8


def test_channels_switch_the_light_path_and_are_recorded():
    dish = small_dish()
    core = simulated_core(dish)
    src = MMSource(core, plan=Plan(interval_s=0.0, rounds=1), dish=dish)
    src.open()
    src.read(timeout_s=10)
    src.close()
    # a sequence in three channels through the same core, the MDA engine switching the filter
    import useq

    images = {}

    def keep(img, ev, meta):
        images[ev.channel.config] = img

    core.mda.events.frameReady.connect(keep)
    core.mda.run(useq.MDASequence(channels=["brightfield", "nuclear", "reporter"]))
    assert set(images) == {"brightfield", "nuclear", "reporter"}
    assert images["brightfield"].mean() > 3 * images["nuclear"].mean()  # lit vs dark background
    assert dish.dose["nuclear"].sum() > 0 and dish.dose["reporter"].sum() > 0


def test_stage_error_mid_run_is_flagged_and_acquisition_continues():
    dish = small_dish()
    good = dish.field_centres_um()[0]
    plan = Plan(
        positions=[good, (1e5, 0.0), dish.field_centres_um()[3]],  # the middle one is off-dish
        interval_s=0.0,
        channel="brightfield",
        channel_group=CHANNEL_GROUP,
        rounds=2,
    )
    src = simulated_source(dish, plan=plan)
    faults = []
    src.fault.connect(faults.append)
    src.open()
    frames = read_all(src, 10)
    src.close()
    assert len(frames) == 6  # nothing lost: the failed move leaves the stage where it was
    bad = [f for f in frames if "stage_error" in f.meta]
    assert len(bad) == 2 and all(f.meta["mda_index"]["p"] == 1 for f in bad)
    assert bad[0].meta["stage_x_um"] == pytest.approx(good[0])  # honest: where it really was
    assert faults and faults[0].kind == "stage"
    assert src.counts["stage_errors"] == 2
    assert (frames[2].meta["stage_x_um"], frames[2].meta["stage_y_um"]) == pytest.approx(
        dish.field_centres_um()[3]
    )


def test_close_mid_run_stops_the_mda_and_its_thread():
    dish = small_dish()
    src = simulated_source(dish, plan=Plan(interval_s=0.0, channel="brightfield"))
    src.open()
    read_all(src, 3)
    src.close()
    src.close()  # twice is fine


def test_missing_and_invalid_config_are_one_line_errors(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        MMSource.from_config(tmp_path / "nope.cfg")
    bad = tmp_path / "bad.cfg"
    bad.write_text("Device,Camera,NoSuchAdapter,NoSuchCamera\nProperty,Core,Initialize,1\n")
    with pytest.raises(SourceError, match="cannot be loaded") as err:
        MMSource.from_config(bad)
    assert "\n" not in str(err.value)


def test_config_file_with_python_devices_loads(tmp_path):
    cfg = tmp_path / "py.cfg"
    cfg.write_text(
        "#py pyDevice,Cam,liveaug.sources.mmcore.devices,NoArgCamera\n"
        "Property,Core,Initialize,1\n"
        "Property,Core,Camera,Cam\n"
    )
    with pytest.raises(SourceError, match="cannot be loaded"):
        MMSource.from_config(cfg)  # no such class: still one line, not a traceback


def test_event_queue_rate_hold_and_inserted_events_with_a_manual_clock():
    now = [0.0]
    q = EventQueue(Plan(positions=[(0.0, 0.0)], interval_s=10.0), clock=lambda: now[0])
    first = next(q)
    assert first.index["t"] == 0
    import useq

    q.insert([useq.MDAEvent(metadata={"liveaug_action": 1})])
    assert next(q).metadata["liveaug_action"] == 1  # ahead of the plan, at once
    q.hold_interval(1.0, seconds=5.0)
    assert q.interval_s() == 1.0
    now[0] = 1.0
    assert next(q).index["t"] == 1  # brought forward from t=10 to t=1
    now[0] = 6.5
    assert q.interval_s() == 10.0  # the hold has lapsed: sparse again
    q.stop()
    with pytest.raises(StopIteration):
        next(q)


def test_mm_room_imports_no_gui_and_leaves_logging_alone():
    import subprocess
    import sys

    code = (
        "import logging, sys\n"
        "logging.getLogger().setLevel(logging.WARNING)\n"
        "import liveaug.sources.mmcore.source, liveaug.sources.mmcore.acquire\n"
        "assert logging.getLogger().level == logging.WARNING\n"
        "print('GUI:', [m for m in ('PyQt6', 'vispy', 'qtpy') if m in sys.modules])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert "GUI: []" in out.stdout


def test_plan_extra_channels_arrive_in_the_main_channel_frame():
    dish = small_dish()
    plan = Plan(
        positions=dish.field_centres_um()[:2],
        interval_s=0.0,
        channel="brightfield",
        channel_group=CHANNEL_GROUP,
        extra_channels=(("reporter", 20.0),),
        rounds=2,
    )
    src = simulated_source(dish, plan=plan)
    info = src.open()
    frames = read_all(src, 10)
    src.close()
    assert info.channel_names == ("reporter",)
    assert len(frames) == 4 and [f.index for f in frames] == [0, 1, 2, 3]
    for f in frames:
        assert set(f.channels) == {"reporter"} and f.channels["reporter"].shape == (96, 96)
        assert f.meta["channel"] == "brightfield"
        assert f.meta["channel_exposures_ms"] == {"reporter": 20.0}
        assert f.truth is not None  # the brightfield image's
    # the sentinel's light was booked in the reporter channel, at a fifth of a full exposure
    assert dish.dose["reporter"].sum() > 0


def test_camera_fault_mid_run_loses_only_that_frame():
    dish = small_dish()
    plan = Plan(
        positions=dish.field_centres_um()[:2],
        interval_s=0.0,
        channel="brightfield",
        channel_group=CHANNEL_GROUP,
        extra_channels=(("reporter", 20.0),),
        rounds=3,
    )
    src = simulated_source(dish, plan=plan)
    src.core.setProperty("Camera", "FailEvery", 5)  # images 5 and 10 of 12 fail
    src.open()
    frames = read_all(src, 10)
    src.close()
    # image 5 is round 1's first brightfield (its sentinel is dropped with it), image 10 is
    # round 2's second sentinel (its brightfield is held back): 6 frames − 2, in order
    assert len(frames) == 4
    assert [f.meta["mda_index"]["t"] for f in frames] == [0, 0, 1, 2]
    assert all(set(f.channels) == {"reporter"} for f in frames)
    assert src.counts["incomplete"] == 2


def test_the_shipped_simulated_config_loads_and_images():
    from pathlib import Path

    import liveaug.sources.mmcore as mm

    cfg = Path(mm.__file__).with_name("simulated.cfg")
    src = MMSource.from_config(cfg)
    info = src.open()
    frames = read_all(src, 2)
    src.close()
    assert info.pixel_size_um == pytest.approx(0.65) and info.bit_depth == 12
    assert info.settings["micro_manager"]["channel_group"] == "Channel"
    assert len(frames) == 2 and frames[0].shape == (512, 512)
    assert frames[0].meta["stage_x_um"] == pytest.approx(0.0)
    assert 100 < float(frames[0].image.mean()) < 4095  # lit brightfield, 12-bit


def test_a_plan_naming_an_unknown_channel_is_one_line_before_acquiring():
    dish = small_dish()
    plan = Plan(channel="gfp", channel_group=CHANNEL_GROUP, rounds=1)
    src = simulated_source(dish, plan=plan)
    with pytest.raises(SourceError, match="no channel preset 'gfp'") as e:
        src.open()
    assert "\n" not in str(e.value) and dish.exposures == 0
    src.close()


def test_nobody_reading_never_stalls_the_instrument():
    dish = small_dish()
    plan = Plan(interval_s=0.0, channel="brightfield", channel_group=CHANNEL_GROUP, rounds=8)
    src = MMSource(simulated_core(dish), plan=plan, dish=dish, queue_frames=3)
    src.open()
    assert src._done.wait(10)  # all 8 taken without a reader
    frames = read_all(src, 10)
    src.close()
    assert dish.exposures == 8 and src.counts["dropped"] == 5
    assert [f.index for f in frames] == [5, 6, 7]  # the newest kept
