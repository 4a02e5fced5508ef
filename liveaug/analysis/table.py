"""Whole-session tables: concatenate per-frame CellTables, export CSV and Parquet with units.

CSV goes with a ``<name>-metadata.json`` sidecar in the W3C *CSV on the Web* style (column
titles, units, which models and liveaug version made the rows); Parquet keeps each column's unit
in its field metadata and the same provenance in the file's schema metadata. Every row also
names its model in the ``model`` column, so rows from different runs can be mixed safely.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from liveaug import __version__
from liveaug.frame import CellTable


def concat_tables(tables: Sequence[CellTable]) -> CellTable:
    """Rows of all ``tables`` in order; a column missing in some table is filled with NaN/''."""
    if not tables:
        return CellTable({}, {})
    names: list[str] = []
    units: dict[str, str] = {}
    for t in tables:
        for c in t.columns:
            if c not in names:
                names.append(c)
        units.update(t.units)
    cols: dict[str, np.ndarray] = {}
    for c in names:
        parts = []
        for t in tables:
            if c in t.columns:
                parts.append(np.asarray(t.columns[c]))
            else:
                like = next(x.columns[c] for x in tables if c in x.columns)
                fill: Any = "" if like.dtype == object else np.nan
                parts.append(np.full(len(t), fill, dtype=object if fill == "" else np.float64))
        cols[c] = np.concatenate(parts) if parts else np.zeros(0)
    return CellTable(cols, units)


def provenance(table: CellTable, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Who made these rows: liveaug version, models, plus ``extra`` (session path …)."""
    models = sorted({str(m) for m in table.columns.get("model", np.zeros(0, object))})
    return {"liveaug_version": __version__, "models": models, **(extra or {})}


def write_csv(table: CellTable, path: str | Path, *, extra: dict[str, Any] | None = None) -> Path:
    """CSV plus ``<path>-metadata.json`` (units and provenance); returns the sidecar path."""
    path = Path(path)
    df = table.to_pandas()
    df["liveaug_version"] = __version__
    df.to_csv(path, index=False, float_format="%.6g")
    return write_csv_metadata(table, path, extra=extra)


def write_csv_metadata(
    table: CellTable, path: str | Path, *, extra: dict[str, Any] | None = None
) -> Path:
    """The ``<path>-metadata.json`` sidecar of a readouts CSV: column units and provenance."""
    path = Path(path)
    names = [*table.columns, "liveaug_version"]
    meta = {
        "url": path.name,
        "dc:creator": f"liveaug {__version__}",
        "liveaug": provenance(table, extra),
        "tableSchema": {
            "columns": [{"name": c, "titles": c, "unit": table.units.get(c, "")} for c in names]
        },
    }
    side = path.with_name(path.name + "-metadata.json")
    side.write_text(json.dumps(meta, indent=1, ensure_ascii=False))
    return side


def write_parquet(
    table: CellTable, path: str | Path, *, extra: dict[str, Any] | None = None
) -> None:
    """Parquet with each column's unit in its field metadata and provenance in the schema's."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    df = table.to_pandas()
    df["liveaug_version"] = __version__
    t = pa.Table.from_pandas(df, preserve_index=False)
    fields = [f.with_metadata({"unit": table.units.get(f.name, "")}) for f in t.schema]
    meta = dict(t.schema.metadata or {})
    meta[b"liveaug"] = json.dumps(provenance(table, extra)).encode()
    t = t.cast(pa.schema(fields, metadata=meta))
    pq.write_table(t, Path(path))
