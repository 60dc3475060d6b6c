"""The worklist panel: the pages to review with their status, filter and sort.

The pages, where their labels go and what each label file says are plain Python
(:mod:`ecgstudio.editing.worklist`); this module only shows them.

After the model is re-run on the worklist (:mod:`ecgstudio.app.rerun`), a Change column shows
how each re-run page's proposal moved (mean absolute difference in mV), and changed pages are
highlighted.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QAction, QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..editing.proposals import ProposalChange
from ..editing.worklist import UNREADABLE, WorkItem
from ..labels import ReviewStatus

log = logging.getLogger(__name__)

STATUS_COLORS = {
    ReviewStatus.NEW: "#6b6b6b",
    ReviewStatus.PROPOSED: "#b35c00",
    ReviewStatus.EDITED: "#7a3fb0",
    ReviewStatus.REVIEWED: "#1d7a2e",
    ReviewStatus.CORRECTED: "#1f5fbf",
}
CHANGED_COLOR = "#ffd9a8"  # background of pages whose proposal changed in the last re-run


# ---------------------------------------------------------------------- Qt model and panel

COLUMNS = ("File", "Status", "Conf.", "Change")
#: Beside a page's status where the engine assumed values it could not measure (the tooltip says which).
ASSUMED_MARK = "\u2691"
CHANGE_COLUMN = 3
SORT_ROLE = Qt.ItemDataRole.UserRole + 1


class WorklistModel(QAbstractTableModel):
    """The worklist items as a table: file, status, lowest lead confidence (reviewer in the tooltip)."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.items: list[WorkItem] = []
        self.current = -1

    def set_items(self, items: list[WorkItem]) -> None:
        self.beginResetModel()
        self.items = list(items)
        for item in self.items:
            item.refresh()
        self.current = -1
        self.endResetModel()

    def replace_item(self, row: int, new_items: list[WorkItem]) -> None:
        """Replace one item by several (the pages of a multi-page file)."""
        self.beginResetModel()
        self.items[row : row + 1] = new_items
        for item in new_items:
            item.refresh()
        self.endResetModel()

    def item_changed(self, row: int) -> None:
        self.dataChanged.emit(self.index(row, 0), self.index(row, len(COLUMNS) - 1))

    def item_changed_all(self) -> None:
        if self.items:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self.items) - 1, len(COLUMNS) - 1))

    def set_current(self, row: int) -> None:
        old, self.current = self.current, row
        for r in (old, row):
            if 0 <= r < len(self.items):
                self.item_changed(r)

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.items)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.ToolTipRole and section == 1:
            return f"Review status; {ASSUMED_MARK}: values assumed, not measured (the page's tooltip says which)"
        if (
            orientation == Qt.Orientation.Horizontal
            and role == Qt.ItemDataRole.ToolTipRole
            and section == CHANGE_COLUMN
        ):
            return (
                "Last re-run of the model: mean |new - old| of the page's signals in mV (highlighted when "
                "changed); 'same' when unchanged, 'first' for a first proposal"
            )
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        item = self.items[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if col == 0:
                return item.page.title
            if col == 1:
                return f"{item.status} {ASSUMED_MARK}" if item.assumed else item.status
            if col == CHANGE_COLUMN:
                return _change_text(item.change)
            return "" if item.confidence is None else f"{item.confidence:.2f}"
        if role == SORT_ROLE:
            if col == 0:
                return str(item.page.source).lower() + f"#{item.page.page_index:05d}"
            if col == 1:
                order = [s.value for s in ReviewStatus] + [UNREADABLE]
                return order.index(item.status) if item.status in order else len(order)
            if col == CHANGE_COLUMN:
                return -2.0 if item.change is None else item.change.size  # largest first, unknown last
            return 2.0 if item.confidence is None else item.confidence  # unknown sorts last
        if role == Qt.ItemDataRole.ForegroundRole and col == 1:
            return QBrush(QColor(STATUS_COLORS.get(item.status, "#b00020")))
        if (
            role == Qt.ItemDataRole.ForegroundRole
            and col == CHANGE_COLUMN
            and item.change is not None
            and not item.change.changed
        ):
            return QBrush(QColor("#6b6b6b"))
        if role == Qt.ItemDataRole.BackgroundRole and item.change is not None and item.change.changed:
            return QBrush(QColor(CHANGED_COLOR))
        if role == Qt.ItemDataRole.FontRole and index.row() == self.current:
            from PySide6.QtGui import QFont

            font = QFont()
            font.setBold(True)
            return font
        if role == Qt.ItemDataRole.ToolTipRole:
            conf = "not digitized yet" if item.confidence is None else f"{item.confidence:.2f}"
            who = f" by {item.reviewer}" if item.reviewer else ""
            change = f"\nlast re-run of the model: {item.change.describe()}" if item.change is not None else ""
            assumed = f"\nassumed, not measured: {', '.join(item.assumed)}" if item.assumed else ""
            return (
                f"{item.page.source}\nstatus: {item.status}{who}; lowest lead confidence: {conf}{assumed}"
                f"\nlabels: {item.label_path}{change}"
            )
        return None


def _change_text(change: ProposalChange | None) -> str:
    """The Change column: mean |new - old| in mV when changed, "same", or "first"."""
    if change is None:
        return ""
    if change.first:
        return "first"
    if not change.changed:
        return "same"
    return f"{change.mean_abs_mv:.2f}" if change.mean_abs_mv == change.mean_abs_mv else "gaps"


class WorklistFilter(QSortFilterProxyModel):
    """Filters by status and by text in the file name; sorts on :data:`SORT_ROLE`."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.status = ""
        self.text = ""
        self.setSortRole(SORT_ROLE)

    def set_status(self, status: str) -> None:
        self._refilter("status", status)

    def set_text(self, text: str) -> None:
        self._refilter("text", text.lower())

    def _refilter(self, name: str, value: str) -> None:
        if hasattr(self, "beginFilterChange"):  # Qt >= 6.9; invalidateFilter() is deprecated there
            self.beginFilterChange()
            setattr(self, name, value)
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            setattr(self, name, value)
            self.invalidateFilter()

    def filterAcceptsRow(self, row: int, parent: QModelIndex | QPersistentModelIndex) -> bool:
        item = self.sourceModel().items[row]
        if self.status and item.status != self.status:
            return False
        return not self.text or self.text in item.page.title.lower()


SORTS = {
    "File name": (0, Qt.SortOrder.AscendingOrder),
    "Lowest confidence first": (2, Qt.SortOrder.AscendingOrder),
    "Status": (1, Qt.SortOrder.AscendingOrder),
    "Largest change first": (CHANGE_COLUMN, Qt.SortOrder.DescendingOrder),
}


class WorklistPanel(QWidget):
    """Table of the worklist with a status filter, a name filter and a sort choice."""

    activated = Signal(int)  # row in the model

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.model = WorklistModel(self)
        self.proxy = WorklistFilter(self)
        self.proxy.setSourceModel(self.model)
        self.status_combo = QComboBox()
        self.status_combo.addItem("All statuses", "")
        for s in ReviewStatus:
            self.status_combo.addItem(s.value.capitalize(), s.value)
        self.status_combo.setToolTip("Show only pages with this review status")
        self.sort_combo = QComboBox()
        self.sort_combo.addItems(list(SORTS))
        self.sort_combo.setToolTip("Order of the pages (or click a column header)")
        self.search = QLineEdit()
        self.search.setPlaceholderText("Filter by file name")
        self.search.setClearButtonEnabled(True)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setMinimumSectionSize(40)
        for c, width in ((1, 76), (2, 46), (CHANGE_COLUMN, 62)):
            header.setSectionResizeMode(c, QHeaderView.ResizeMode.Interactive)
            self.table.setColumnWidth(c, width)
        self.table.setColumnHidden(CHANGE_COLUMN, True)  # shown after the model is re-run on the worklist
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.buttons = QHBoxLayout()
        self.buttons.setContentsMargins(0, 0, 0, 0)
        top = QHBoxLayout()
        top.addWidget(self.status_combo)
        top.addWidget(self.sort_combo)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(top)
        lay.addWidget(self.search)
        lay.addWidget(self.table, 1)
        lay.addWidget(self.summary)
        lay.addLayout(self.buttons)
        self.status_combo.currentIndexChanged.connect(lambda: self.proxy.set_status(self.status_combo.currentData()))
        self.sort_combo.currentTextChanged.connect(self._sort)
        self.search.textChanged.connect(self.proxy.set_text)
        self.table.activated.connect(self._activate)
        self.table.clicked.connect(self._activate)
        self.model.modelReset.connect(self.update_summary)
        self.model.dataChanged.connect(self.update_summary)

    def add_action_buttons(self, actions: list[QAction]) -> list[QToolButton]:
        """Buttons under the table for actions on the whole worklist (fine-tune, re-run)."""
        made = []
        for act in actions:
            b = QToolButton()
            b.setDefaultAction(act)
            b.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
            self.buttons.addWidget(b)
            made.append(b)
        self.buttons.addStretch(1)
        return made

    def show_changes(self, on: bool = True) -> None:
        """Show the Change column (after a re-run of the model on the worklist)."""
        self.table.setColumnHidden(CHANGE_COLUMN, not on)

    def _sort(self, name: str) -> None:
        col, order = SORTS[name]
        self.table.sortByColumn(col, order)

    def _activate(self, index: QModelIndex) -> None:
        row = self.proxy.mapToSource(index).row()
        if row != self.model.current:
            self.activated.emit(row)

    def visible_rows(self) -> list[int]:
        """Model rows in the order shown (filter and sort applied)."""
        return [self.proxy.mapToSource(self.proxy.index(r, 0)).row() for r in range(self.proxy.rowCount())]

    def neighbour(self, row: int, step: int) -> int | None:
        """The row shown ``step`` places after (or before) ``row``, or None at the end."""
        rows = self.visible_rows()
        if not rows:
            return None
        if row not in rows:
            return rows[0] if step > 0 else rows[-1]
        j = rows.index(row) + step
        return rows[j] if 0 <= j < len(rows) else None

    def show_current(self, row: int) -> None:
        self.model.set_current(row)
        index = self.proxy.mapFromSource(self.model.index(row, 0))
        if index.isValid():
            self.table.selectRow(index.row())
            self.table.scrollTo(index)

    def update_summary(self) -> None:
        counts: dict[str, int] = {}
        for item in self.model.items:
            counts[item.status] = counts.get(item.status, 0) + 1
        total = len(self.model.items)
        parts = [f"{counts[s.value]} {s.value}" for s in ReviewStatus if counts.get(s.value)]
        if counts.get(UNREADABLE):
            parts.append(f"{counts[UNREADABLE]} with damaged labels")
        self.summary.setText(
            f"{total} page{'s' if total != 1 else ''}: " + ", ".join(parts)
            if total
            else "No pages yet: open a scan or a folder."
        )
