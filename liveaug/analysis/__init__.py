"""Per-cell analysis: segmentation, readouts, tracking and event rules (no Qt, no GL).

``Analyzer`` is the pipeline stage; the modules below it are usable on their own:
:mod:`~liveaug.analysis.segmentation` (maps → labels), :mod:`~liveaug.analysis.readouts`
(labels → CellTable), :mod:`~liveaug.analysis.tracking` (stable ids, divisions),
:mod:`~liveaug.analysis.events` (rules and actions), :mod:`~liveaug.analysis.table` (export),
:mod:`~liveaug.analysis.evaluate` (accuracy against simulator truth).
"""

from liveaug.analysis.analyzer import Analyzer
from liveaug.analysis.events import Rule, RuleEngine, load_rules
from liveaug.analysis.readouts import measure
from liveaug.analysis.segmentation import Segmentation, SegmentParams, segment, upsample_labels
from liveaug.analysis.table import concat_tables, write_csv, write_parquet
from liveaug.analysis.tracking import Tracker

__all__ = [
    "Analyzer",
    "Rule",
    "RuleEngine",
    "SegmentParams",
    "Segmentation",
    "Tracker",
    "concat_tables",
    "load_rules",
    "measure",
    "segment",
    "upsample_labels",
    "write_csv",
    "write_parquet",
]
