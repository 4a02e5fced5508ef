"""Accuracy of the analysis against a simulated session's ground truth (``liveaug analysis eval``).

Figures (the analysis issue's acceptance list):

- cell instance segmentation: F1 at IoU 0.5, labels upsampled to frame resolution, against the
  truth cell labels (pooled over frames);
- nuclei count: mean over frames of |found − true| / true (a nucleus = a cell's nuclear pixels;
  fragments of one apoptotic nucleus count once, as in the truth);
- per-cell integrated virtual DAPI vs the true integrated DAPI of the matched cell: Pearson r,
  plus the G2/G1 ratio of mean integrated DAPI (2 for a correct DNA-content histogram);
- tracking: fraction of true frame-to-frame links (same true cell in consecutive frames, matched
  in both) whose two matches carry the same track id; divisions found (a daughter's track names
  a track that followed its mother as parent);
- translocation events: true nuclear imports caught by the ``translocation`` rule within 3
  frames of their start, and rule firings that match no true import (false alarms);
- time per frame of segmentation + readouts + tracking.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from liveaug.analysis.analyzer import Analyzer
from liveaug.analysis.segmentation import upsample_labels
from liveaug.frame import Frame

#: Frames after an import's start within which the rule must fire to count as caught.
CATCH_WINDOW = 3


def match_instances(
    pred: np.ndarray, true: np.ndarray, threshold: float = 0.5
) -> tuple[np.ndarray, int, int]:
    """Pairs ``(pred_label, true_label)`` with IoU > ``threshold`` (unique when ≥ 0.5), and
    the numbers of predicted and true instances."""
    p = np.asarray(pred, np.int64).ravel()
    t = np.asarray(true, np.int64).ravel()
    nt = int(t.max(initial=0)) + 1
    u, c = np.unique(p * nt + t, return_counts=True)
    pa, ta = np.bincount(p), np.bincount(t)
    pi, ti = u // nt, u % nt
    sel = (pi > 0) & (ti > 0)
    pi, ti, c = pi[sel], ti[sel], c[sel]
    iou = c / (pa[pi] + ta[ti] - c)
    ok = iou > threshold
    return np.stack([pi[ok], ti[ok]], 1), int((pa[1:] > 0).sum()), int((ta[1:] > 0).sum())


@dataclass
class _Acc:
    tp: int = 0
    n_pred: int = 0
    n_true: int = 0
    nuc_err: list[float] = field(default_factory=list)
    dapi_pred: list[float] = field(default_factory=list)
    dapi_true: list[float] = field(default_factory=list)
    dapi_phase: list[int] = field(default_factory=list)
    ms: list[float] = field(default_factory=list)
    # per frame: true id -> pred track id
    matches: list[dict[int, int]] = field(default_factory=list)
    parents: dict[int, int] = field(default_factory=dict)  # pred track -> pred parent
    true_parent: dict[int, int] = field(default_factory=dict)
    true_first: dict[int, int] = field(default_factory=dict)
    true_last: dict[int, int] = field(default_factory=dict)
    transloc: dict[int, int] = field(default_factory=dict)  # true id -> start frame
    events: list[tuple[int, int]] = field(default_factory=list)  # (frame pos, pred track id)
    cell_frames: int = 0


def evaluate_frames(
    frames: Any,
    predictor: Any,
    analyzer: Analyzer,
    *,
    on_frame: Callable[[], object] | None = None,
) -> dict[str, Any]:
    """Run predictor + analyzer over ``frames`` (Frames with truth, in order) and score them."""
    acc = _Acc()
    for pos, frame in enumerate(frames):
        _score_frame(pos, frame, predictor, analyzer, acc)
        if on_frame is not None:
            on_frame()
    return _figures(acc)


def _score_frame(pos: int, frame: Frame, predictor: Any, analyzer: Analyzer, acc: _Acc) -> None:
    truth = frame.truth
    if truth is None:
        raise ValueError(f"frame {frame.index} has no ground truth")
    pred = predictor.predict(frame, analyzer.required_roles)
    t0 = time.perf_counter_ns()
    result = analyzer.analyze(frame, pred)
    acc.ms.append((time.perf_counter_ns() - t0) / 1e6)
    labels = upsample_labels(result.labels, pred.scale, frame.shape)
    pairs, n_pred, n_true = match_instances(labels, truth.cell_labels)
    acc.tp += len(pairs)
    acc.n_pred += n_pred
    acc.n_true += n_true
    n_nuc_true = int(np.count_nonzero(np.bincount(truth.nucleus_labels.ravel())[1:]))
    n_nuc_pred = int(np.count_nonzero(np.bincount(result.nuclei.ravel())[1:]))
    if n_nuc_true:
        acc.nuc_err.append(abs(n_nuc_pred - n_nuc_true) / n_nuc_true)
    cells = result.cells
    row_of = {int(c): i for i, c in enumerate(cells["cell_id"])}
    tc = truth.cells
    t_row = {int(c): i for i, c in enumerate(tc["cell_id"])}
    m = {int(t): int(p) for p, t in pairs}
    acc.matches.append(m)
    acc.cell_frames += len(cells)
    for t_id, p_id in m.items():
        i, j = row_of[p_id], t_row.get(t_id)
        if j is None:
            continue
        acc.dapi_pred.append(float(cells["dapi_integrated"][i]))
        acc.dapi_true.append(float(tc["dapi_integrated"][j]))
        acc.dapi_phase.append(-1 if tc["apoptotic"][j] else int(tc["phase"][j]))
    for cid, pid in zip(cells["cell_id"].tolist(), cells["parent_id"].tolist(), strict=True):
        acc.parents.setdefault(cid, pid)
    for j, t_id in enumerate(tc["cell_id"].tolist()):
        acc.true_parent.setdefault(t_id, int(tc["parent_id"][j]))
        acc.true_first.setdefault(t_id, pos)
        acc.true_last[t_id] = pos
        if "translocation_frame" in tc and tc["translocation_frame"][j] >= 0:
            acc.transloc.setdefault(t_id, int(tc["translocation_frame"][j]) - frame.index + pos)
    for ev in result.events:
        if ev.rule == "translocation":
            acc.events.append((pos, ev.cell_id))


def _figures(acc: _Acc) -> dict[str, Any]:
    out: dict[str, Any] = {"frames": len(acc.matches)}
    out["segmentation_f1"] = 2 * acc.tp / max(1, acc.n_pred + acc.n_true)
    out["cells_true_per_frame"] = acc.n_true / max(1, len(acc.matches))
    out["nuclei_count_error"] = float(np.mean(acc.nuc_err)) if acc.nuc_err else float("nan")
    dp, dt = np.array(acc.dapi_pred), np.array(acc.dapi_true)
    ph = np.array(acc.dapi_phase)
    out["dapi_integrated_r"] = float(np.corrcoef(dp, dt)[0, 1]) if len(dp) > 2 else float("nan")
    g1, g2 = dp[ph == 0], dp[(ph == 2) | (ph == 3)]
    out["dapi_g2_g1_ratio"] = (
        float(g2.mean() / g1.mean()) if len(g1) and len(g2) and g1.mean() > 0 else float("nan")
    )
    out["dna_histogram"] = dna_histogram(dp)
    # tracking: links between consecutive frames
    links = good = 0
    for a, b in zip(acc.matches[:-1], acc.matches[1:], strict=False):
        for t_id, p_id in a.items():
            if t_id in b:
                links += 1
                good += b[t_id] == p_id
    out["tracking_links"] = links
    out["tracking_link_recovery"] = good / links if links else float("nan")
    # divisions: daughters born during the run whose mother was followed before
    pred_of: dict[int, set[int]] = defaultdict(set)
    for m in acc.matches:
        for t_id, p_id in m.items():
            pred_of[t_id].add(p_id)
    divisions = found = 0
    by_mother: dict[int, list[int]] = defaultdict(list)
    for t_id, parent in acc.true_parent.items():
        if parent > 0 and acc.true_first.get(t_id, 0) > 0 and parent in acc.true_first:
            by_mother[parent].append(t_id)
    for mother, daughters in by_mother.items():
        if not pred_of.get(mother):
            continue
        divisions += 1
        ok = False
        for d in daughters:
            first = acc.true_first[d]
            for pos in range(first, min(first + CATCH_WINDOW, len(acc.matches))):
                p_id = acc.matches[pos].get(d)
                if p_id is not None and acc.parents.get(p_id, 0) in pred_of[mother]:
                    ok = True
        found += ok
    out["divisions"] = divisions
    out["divisions_found"] = found / divisions if divisions else float("nan")

    # translocations: true imports that started while the cell was in view (seen before). An
    # event counts for a cell when fired on a track that followed that cell (matched at IoU 0.5
    # in some frame from CATCH_WINDOW before the start to the event), within CATCH_WINDOW frames
    # of the start — the track is the cell even where one frame's segmentation was poor.
    def tracks_of(t_id: int, lo: int, hi: int) -> set[int]:
        lo, hi = max(0, lo), min(len(acc.matches) - 1, hi)
        return {p for m in acc.matches[lo : hi + 1] if (p := m.get(t_id)) is not None}

    caught_ids: set[tuple[int, int]] = set()
    ev_used: set[int] = set()
    n_imports = 0
    for t_id, start in acc.transloc.items():
        if start <= acc.true_first[t_id] or start + CATCH_WINDOW >= len(acc.matches):
            continue
        n_imports += 1
        tracks = tracks_of(t_id, start - CATCH_WINDOW, start + CATCH_WINDOW)
        for k, (pos, p_id) in enumerate(acc.events):
            if start <= pos <= start + CATCH_WINDOW and p_id in tracks:
                caught_ids.add((t_id, start))
                ev_used.add(k)
    # an event on a track of a cell that is importing (started before the event) is no false
    # alarm even when late; anything else is
    importing: dict[int, set[int]] = defaultdict(set)  # track -> frames it followed an importer
    for t_id, start in acc.transloc.items():
        for pos in range(max(0, start - CATCH_WINDOW), len(acc.matches)):
            p = acc.matches[pos].get(t_id)
            if p is not None:
                importing[p].add(start)
    false = 0
    for k, (pos, p_id) in enumerate(acc.events):
        if k in ev_used:
            continue
        if not any(start <= pos for start in importing.get(p_id, ())):
            false += 1
    out["translocations"] = n_imports
    out["translocations_caught"] = len(caught_ids) / n_imports if n_imports else float("nan")
    out["translocation_false_alarms"] = false
    out["translocation_false_alarms_per_1000_cell_frames"] = 1000 * false / max(1, acc.cell_frames)
    ms = np.array(acc.ms)
    out["analysis_ms_median"] = float(np.median(ms)) if len(ms) else float("nan")
    out["analysis_ms_p95"] = float(np.percentile(ms, 95)) if len(ms) else float("nan")
    return out


def dna_histogram(values: np.ndarray, bins: int = 22) -> dict[str, list[float]]:
    """Histogram of per-cell integrated DAPI in units of its G1 peak (the tallest mode).

    A correct DNA-content readout shows a peak at 1 (G1) and one at 2 (G2/M), S in between.
    """
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v) & (v > 0)]
    if v.size < 10:
        return {"edges": [], "counts": []}
    counts, edges = np.histogram(v, bins=60, range=(0, np.percentile(v, 99)))
    smooth = np.convolve(counts, np.ones(3) / 3, mode="same")
    k = int(np.argmax(smooth))
    g1 = 0.5 * (edges[k] + edges[k + 1])
    counts, edges = np.histogram(v / g1, bins=bins, range=(0.25, 3.0))
    return {"edges": [round(float(e), 3) for e in edges], "counts": counts.tolist()}


TARGETS: dict[str, tuple[str, float]] = {
    "segmentation_f1": (">=", 0.85),
    "nuclei_count_error": ("<=", 0.05),
    "dapi_integrated_r": (">=", 0.90),
    "tracking_link_recovery": (">=", 0.95),
    "divisions_found": (">=", 0.80),
    "translocations_caught": (">=", 0.90),
    "analysis_ms_median": ("<=", 20.0),
}


def verdict(name: str, value: float) -> str:
    """'✓' / '✗' against the issue's target for ``name`` ('' when it has none)."""
    if name not in TARGETS or not np.isfinite(value):
        return ""
    op, target = TARGETS[name]
    ok = value >= target if op == ">=" else value <= target
    return f"{'✓' if ok else '✗'} (target {op} {target:g})"
