"""The readouts table: the current frame's cells, sortable, selection kept by cell id."""

from __future__ import annotations

from typing import Any

import numpy as np
from PyQt6.QtCore import QAbstractTableModel, QModelIndex, QSortFilterProxyModel, Qt
from PyQt6.QtWidgets import QAbstractItemView, QHeaderView, QTableView, QWidget

from liveaug.frame import CellTable

#: Columns shown first when present; any ``*_nc_ratio`` / ``*_mean`` of real channels follow.
PREFERRED = (
    "cell_id",
    "phase",
    "phase_confidence",
    "p_apoptosis",
    "area_um2",
    "area_px",
    "dapi_integrated",
    "dapi_mean",
    "membrane_mean",
)
SORT_ROLE = Qt.ItemDataRole.UserRole


def shown_columns(table: CellTable) -> list[str]:
    """Which columns of ``table`` the panel shows, in order."""
    cols = list(table.columns)
    chosen = [c for c in PREFERRED if c in cols]
    if "area_um2" in chosen and "area_px" in chosen:
        chosen.remove("area_px")
    chosen += [c for c in cols if c.endswith(("_nc_ratio",)) and c not in chosen]
    chosen += [c for c in ("x", "y") if c in cols]
    return chosen


class CellTableModel(QAbstractTableModel):
    """A read-only Qt model over a :class:`CellTable` (raw values under ``UserRole`` to sort)."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.table = CellTable({})
        self.columns: list[str] = []
        self._ids = np.zeros(0, np.int64)

    def set_table(self, table: CellTable) -> None:
        """Replace the rows (one reset: cheap at a few hundred cells)."""
        self.beginResetModel()
        self.table = table
        self.columns = shown_columns(table) if len(table) else self.columns
        self._ids = (
            np.asarray(table["cell_id"], np.int64) if "cell_id" in table.columns else np.zeros(0)
        )
        self.endResetModel()

    def row_of(self, cell_id: int) -> int | None:
        """Source row holding ``cell_id``."""
        hit = np.flatnonzero(self._ids == cell_id)
        return int(hit[0]) if hit.size else None

    def cell_id(self, row: int) -> int:
        """Cell id of a source row."""
        return int(self._ids[row])

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.table)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.columns)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = 0) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            name = self.columns[section]
            unit = self.table.units.get(name)
            return f"{name} [{unit}]" if unit else name
        return None

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        value = self.table.columns[self.columns[index.column()]][index.row()]
        if role == SORT_ROLE:
            return value.item() if isinstance(value, np.generic) else value
        if role == Qt.ItemDataRole.DisplayRole:
            if isinstance(value, float | np.floating):
                return f"{value:.3g}"
            return str(value)
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None


class CellTableView(QTableView):
    """Sortable table view; ``select_cell`` / ``selected_cell`` speak in cell ids."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model_ = CellTableModel(self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model_)
        self.proxy.setSortRole(SORT_ROLE)
        self.setModel(self.proxy)
        self.setSortingEnabled(True)
        self.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.verticalHeader().setVisible(False)
        self.verticalHeader().setDefaultSectionSize(18)
        # sized once per set of columns, not on every update (ResizeToContents reads every cell)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self._sized_for: list[str] = []

    def set_table(self, table: CellTable, selected: int | None) -> None:
        """New rows; the selected cell stays selected if it is still there."""
        self.blockSignals(True)
        self.selectionModel().blockSignals(True)
        try:
            self.model_.set_table(table)
            self.select_cell(selected, scroll=False)
            if self.model_.columns != self._sized_for and len(table):
                self._sized_for = list(self.model_.columns)
                self.resizeColumnsToContents()
        finally:
            self.selectionModel().blockSignals(False)
            self.blockSignals(False)

    def select_cell(self, cell_id: int | None, scroll: bool = True) -> bool:
        """Select the row of ``cell_id`` (None clears); False if it is not in the table."""
        sel = self.selectionModel()
        if cell_id is None:
            sel.clearSelection()
            return True
        row = self.model_.row_of(cell_id)
        if row is None:
            sel.clearSelection()
            return False
        index = self.proxy.mapFromSource(self.model_.index(row, 0))
        self.selectRow(index.row())
        if scroll:
            self.scrollTo(index)
        return True

    def selected_cell(self) -> int | None:
        """Cell id of the selected row."""
        rows = self.selectionModel().selectedRows()
        if not rows:
            return None
        return self.model_.cell_id(self.proxy.mapToSource(rows[0]).row())
