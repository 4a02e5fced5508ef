"""Event rules: config parsing, entry semantics, frames in a row, rise over baseline, actions."""

from __future__ import annotations

import numpy as np
import pytest

from liveaug.analysis.events import Rule, RuleEngine, load_rules, parse_rule
from liveaug.errors import LiveaugError
from liveaug.frame import CellTable, Frame


def _table(ids, **cols) -> CellTable:
    n = len(ids)
    base = {"cell_id": np.asarray(ids, np.int64), "x": np.zeros(n), "y": np.zeros(n)}
    return CellTable({**base, **{k: np.asarray(v) for k, v in cols.items()}})


def _frame(i: int) -> Frame:
    return Frame(image=np.zeros((32, 32), np.uint16), index=i, timestamp_ns=i)


def _run(engine: RuleEngine, series: list[dict]) -> list[tuple[int, int, str]]:
    out = []
    for i, cols in enumerate(series):
        ids = cols.pop("ids")
        for ev in engine.update(_frame(i), _table(ids, **cols)):
            out.append((ev.frame_index, ev.cell_id, ev.rule))
    return out


def test_shipped_rules_load():
    rules, settings = load_rules()
    assert {r.name for r in rules} >= {"apoptosis", "mitosis", "translocation"}
    assert isinstance(settings, dict)


def test_bad_rules_are_one_line_errors(tmp_path):
    bad = tmp_path / "r.yaml"
    bad.write_text("rules:\n  - {name: a, column: p_apoptosis, abov: 0.8}\n")
    with pytest.raises(LiveaugError, match="unknown keys"):
        load_rules(bad)
    with pytest.raises(LiveaugError, match="unknown actions"):
        parse_rule({"name": "a", "column": "x", "above": 1, "actions": ["email"]})
    with pytest.raises(LiveaugError, match="above"):
        parse_rule({"name": "a", "column": "x"})
    bad.write_text("rules: [\n")
    with pytest.raises(LiveaugError, match="YAML"):
        load_rules(bad)
    # wrong types are caught when the file is read, not on the first analysed frame
    for rule, word in (
        ({"above": "high"}, "'above' must be a number"),
        ({"above": 1, "frames": "two"}, "'frames' must be a whole number"),
        ({"above": 1, "frames": 0}, "'frames' must be a whole number"),
        ({"above": 1, "rearm": -1}, "'rearm' must be a whole number"),
        ({"above": 1, "actions": None}, "'actions' must be a list"),
        ({"above": 1, "actions": "log"}, "'actions' must be a list"),
    ):
        with pytest.raises(LiveaugError, match=word):
            parse_rule({"name": "a", "column": "x", **rule}, bad)


def test_fires_once_on_entry_after_n_frames():
    eng = RuleEngine([Rule("apo", "p_apoptosis", above=0.8, frames=3)])
    p = [0.1, 0.9, 0.9, 0.9, 0.95, 0.2, 0.9, 0.9, 0.9]
    # cell 2 is in the state from its first frame: it never entered it while watched
    events = _run(eng, [{"ids": [1, 2], "p_apoptosis": [v, 0.99]} for v in p])
    assert events == [(3, 1, "apo")]


def test_rearm_lets_a_cell_fire_again_after_it_stayed_outside_long_enough():
    eng = RuleEngine([Rule("apo", "p_apoptosis", above=0.8, frames=1, rearm=3)])
    # in, out 2 frames (not re-armed), in, out 3 frames (re-armed), in again
    p = [0.1, 0.9, 0.1, 0.1, 0.9, 0.1, 0.1, 0.1, 0.9, 0.9]
    events = _run(eng, [{"ids": [1], "p_apoptosis": [v]} for v in p])
    assert events == [(1, 1, "apo"), (8, 1, "apo")]
    assert parse_rule({"name": "a", "column": "x", "above": 1, "rearm": 4}).rearm == 4


def test_entry_false_fires_for_cells_already_in_the_state():
    eng = RuleEngine([Rule("apo", "p_apoptosis", above=0.8, frames=2, entry=False)])
    events = _run(eng, [{"ids": [2], "p_apoptosis": [0.99]} for _ in range(3)])
    assert events == [(1, 2, "apo")]


def test_equals_on_phase():
    eng = RuleEngine([Rule("m", "phase", equals="M")])
    ph = ["G2", "G2", "M", "M"]
    events = _run(eng, [{"ids": [5], "phase": np.array([v], object)} for v in ph])
    assert events == [(2, 5, "m")]


def test_rise_over_the_cells_own_baseline():
    eng = RuleEngine([Rule("t", "nc", above=1.3, rise=2.0)])
    # cell 1 imports (0.4 -> 2.5); cell 2 sits near 1.4 all the time (above, but no rise)
    a = [0.4, 0.45, 0.38, 0.9, 2.5, 2.6]
    b = [1.2, 1.4, 1.35, 1.45, 1.4, 1.5]
    events = _run(eng, [{"ids": [1, 2], "nc": [x, y]} for x, y in zip(a, b, strict=True)])
    assert events == [(4, 1, "t")]


def test_actions_log_snapshot_and_hook(tmp_path):
    calls, logged = [], []
    rule = Rule("t", "v", above=1.0, actions=("log", "snapshot", "hook"), hook="mine")
    eng = RuleEngine(
        [rule],
        snapshot_dir=tmp_path / "snaps",
        hooks={"mine": lambda ev, ctx: calls.append((ev, ctx))},
        sink=logged.append,
    )
    eng.source = "the camera"
    eng.update(_frame(0), _table([7], v=[0.5]))
    (ev,) = eng.update(_frame(1), _table([7], v=[2.0]))
    assert logged == [{"frame": 1, "cell_id": 7, "rule": "t", "x": 0.0, "y": 0.0, "message": "v=2"}]
    assert len(list((tmp_path / "snaps").glob("frame000001_cell7_t.npz"))) == 1
    ((got_ev, ctx),) = calls
    assert got_ev == ev and ctx.source == "the camera" and ctx.row["cell_id"] == 7


def test_a_failing_hook_does_not_stop_the_analysis(tmp_path):
    def boom(ev, ctx):
        raise RuntimeError("camera gone")

    rule = Rule("t", "v", above=1.0, actions=("hook",), hook="boom")
    eng = RuleEngine([rule], hooks={"boom": boom})
    eng.update(_frame(0), _table([1], v=[0.0]))
    assert len(eng.update(_frame(1), _table([1], v=[2.0]))) == 1


def test_hook_from_module_path():
    rule = parse_rule(
        {"name": "t", "column": "v", "above": 1, "actions": ["hook"], "hook": "json:dumps"}
    )
    assert RuleEngine([rule]).hooks["json:dumps"].__name__ == "dumps"
    with pytest.raises(LiveaugError, match="cannot be loaded"):
        RuleEngine([Rule("t", "v", above=1, actions=("hook",), hook="nope.nothing:f")])


def test_no_snapshot_dir_skips_snapshots(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    eng = RuleEngine([Rule("t", "v", above=1.0, actions=("snapshot",))])
    eng.update(_frame(0), _table([1], v=[0.0]))
    assert len(eng.update(_frame(1), _table([1], v=[2.0]))) == 1
    assert list(tmp_path.iterdir()) == []


def test_rules_ignore_unreliable_cells_unless_told():
    from liveaug.frame import Prediction, Trust

    pred = Prediction(0, {}, 0.5, {}, "CPU", trust=Trust(0.5, 0.01))
    strict = RuleEngine([parse_rule({"name": "dying", "column": "p", "above": 0.5})])
    loose = RuleEngine(
        [parse_rule({"name": "dying", "column": "p", "above": 0.5, "unreliable": True})]
    )
    fired = {"strict": [], "loose": []}
    # cell 1 is reliable throughout; cell 2 is below the threshold when it enters the state
    series = [([0.1, 0.1], [0.9, 0.9]), ([0.9, 0.9], [0.9, 0.001])]
    for i, (p, rel) in enumerate(series):
        table = _table([1, 2], p=p, reliability=np.array(rel, np.float32))
        for name, engine in (("strict", strict), ("loose", loose)):
            fired[name] += [ev.cell_id for ev in engine.update(_frame(i), table, prediction=pred)]
    assert fired == {"strict": [1], "loose": [1, 2]}
    with pytest.raises(LiveaugError, match="'unreliable' must be true or false"):
        parse_rule({"name": "a", "column": "x", "above": 1, "unreliable": "yes"})


def test_a_rule_on_a_column_that_does_not_exist_names_the_real_ones(tmp_path, capsys):
    from liveaug.cli import main

    bad = tmp_path / "r.yaml"
    bad.write_text("rules:\n  - {name: dying, column: p_apoptossis, above: 0.8}\n")
    with pytest.raises(LiveaugError, match="no readout column 'p_apoptossis'") as e:
        load_rules(bad)
    assert "did you mean 'p_apoptosis'?" in str(e.value) and "dapi_integrated" in str(e.value)
    # a real fluorescence channel's columns are accepted whatever the channel is called
    bad.write_text("rules:\n  - {name: imp, column: gfp_nc_ratio, above: 1.5}\n")
    assert load_rules(bad)[0][0].column == "gfp_nc_ratio"
    bad.write_text("rules:\n  - {name: dying, column: p_apoptossis, above: 0.8}\n")
    argv = ["replay", "nowhere.ome.zarr", "--headless", "--readouts", str(tmp_path / "o.csv")]
    assert main([*argv, "--rules", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "'p_apoptossis'" in err and len(err.strip().splitlines()) == 1
