"""Tracking: stable ids, a missed frame, divisions with parents, links on simulated frames."""

from __future__ import annotations

import numpy as np
from analysis_support import disk_labels, sim_frames

from liveaug.analysis.analyzer import Analyzer
from liveaug.analysis.evaluate import match_instances
from liveaug.analysis.segmentation import upsample_labels
from liveaug.analysis.tracking import Tracker


def _update(tr: Tracker, frame: int, lab: np.ndarray, p_m=None):
    n = int(lab.max())
    ys, xs = np.nonzero(lab)
    a = np.bincount(lab.ravel(), minlength=n + 1)[1:].astype(float)
    x = np.bincount(lab[ys, xs], xs, n + 1)[1:] / np.maximum(a, 1)
    y = np.bincount(lab[ys, xs], ys, n + 1)[1:] / np.maximum(a, 1)
    return tr.update(frame, lab, x, y, a, None if p_m is None else np.asarray(p_m, float))


def test_moving_cells_keep_their_ids():
    tr = Tracker(pixel_size_um=1.0)
    first = _update(tr, 0, disk_labels((100, 100), [(20, 20), (70, 60)], 10)).ids
    # order of labels swapped and cells moved: ids follow the cells, not the labels
    nxt = _update(tr, 1, disk_labels((100, 100), [(73, 62), (23, 21)], 10)).ids
    assert list(nxt) == [first[1], first[0]]


def test_a_missed_frame_keeps_the_id():
    tr = Tracker(pixel_size_um=1.0, max_gap=2)
    a = _update(tr, 0, disk_labels((100, 100), [(20, 20), (70, 60)], 10)).ids
    _update(tr, 1, disk_labels((100, 100), [(72, 61)], 10))  # first cell not segmented
    c = _update(tr, 2, disk_labels((100, 100), [(28, 22), (74, 62)], 10)).ids
    assert list(c) == list(a)


def test_division_gives_two_daughters_recording_their_parent():
    tr = Tracker(pixel_size_um=1.0)
    (mother,) = _update(tr, 0, disk_labels((100, 100), [(50, 50)], 16), p_m=[0.9]).ids
    links = _update(tr, 1, disk_labels((100, 100), [(42, 50), (58, 50)], 8), p_m=[0, 0])
    assert len(set(links.ids)) == 2 and mother not in links.ids
    assert list(links.parent_ids) == [mother, mother]
    assert links.divisions == ((mother, *links.ids),)


def test_a_split_without_mitosis_is_not_a_division():
    tr = Tracker(pixel_size_um=1.0)
    (cell,) = _update(tr, 0, disk_labels((100, 100), [(50, 50)], 16), p_m=[0.0]).ids
    links = _update(tr, 1, disk_labels((100, 100), [(42, 50), (58, 50)], 8), p_m=[0, 0])
    assert cell in links.ids and (links.parent_ids == 0).all()


def test_links_on_simulated_frames_and_time_series():
    frames = sim_frames(12, density=0.6, size=256, seed=5)
    an = Analyzer(rules=[])
    prev: dict[int, int] = {}
    links = good = 0
    for f, p in frames:
        res = an.analyze(f, p)
        pairs, _, _ = match_instances(
            upsample_labels(res.labels, p.scale, f.shape), f.truth.cell_labels
        )
        cur = {int(t): int(c) for c, t in pairs}
        for t, c in cur.items():
            if t in prev:
                links += 1
                good += prev[t] == c
        prev = cur
    assert links > 200 and good / links >= 0.95
    cid = int(res.cells["cell_id"][0])
    s = an.series(cid, ["phase", "dapi_integrated"])
    assert len(s["frame"]) == len(s["phase"]) >= 1 and s["frame"][-1] == frames[-1][0].index
    assert an.lineage(cid)[0] == cid
    assert len(an.table()) == sum(1 for _ in an.table()["cell_id"])


def test_history_is_bounded_for_endless_live_runs():
    frames = sim_frames(12, density=0.6, size=256, seed=5)
    an = Analyzer(rules=[], history_frames=4)
    for f, p in frames:
        res = an.analyze(f, p)
    assert sorted(set(an.table()["frame"].tolist())) == [f.index for f, _ in frames[-4:]]
    cid = int(res.cells["cell_id"][0])
    assert len(an.series(cid)["frame"]) <= 4
    # parents are remembered as far as the history reaches, not for every track ever born
    kept = set(an.table()["cell_id"].tolist())
    assert set(an._parent) <= kept


def test_parents_of_ended_tracks_are_forgotten_without_a_history():
    fields = [sim_frames(12, density=0.6, size=256, seed=seed) for seed in (5, 6)]
    an = Analyzer(rules=[], keep_history=False)
    born: set[int] = set()
    for k in range(9):  # 108 analyses; each pass shows another field: all tracks are new
        for f, p in fields[k % 2]:
            born |= set(an.analyze(f, p).cells["cell_id"].tolist())
    assert len(an._parent) < len(born) / 3
