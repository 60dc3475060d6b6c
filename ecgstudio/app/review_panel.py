"""Review and lead panels: page status, reviewer, note, accept; the leads and the selected box."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..editing.document import LOW_LEAD_CONFIDENCE, Change, PageDocument
from ..labels import ReviewStatus
from .document_bridge import DocumentBridge, follow
from .worklist import STATUS_COLORS

#: What the status badge says: whether a person signed the page off is never in doubt.
STATUS_TEXT = {
    ReviewStatus.NEW: "NEW",
    ReviewStatus.PROPOSED: "PROPOSED",
    ReviewStatus.EDITED: "EDITED, NOT SIGNED OFF",
    ReviewStatus.REVIEWED: "ACCEPTED AS PROPOSED",
    ReviewStatus.CORRECTED: "ACCEPTED WITH CORRECTIONS",
}
NOT_SIGNED_OFF = {
    ReviewStatus.PROPOSED: "Model proposal, not reviewed yet",
    ReviewStatus.EDITED: "Edited; press Accept page to sign it off (only signed-off pages train the model)",
}


class ReviewPanel(QWidget):
    """Page status, who reviewed it and when, the reviewer name setting, a note, and Accept."""

    acceptRequested = Signal()
    reviewerChanged = Signal(str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.document: PageDocument | None = None
        self._bridge: DocumentBridge | None = None
        self.status = QLabel("No page")
        self.status.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.status.setMinimumHeight(28)
        self.who = QLabel("")
        self.who.setWordWrap(True)
        self.reviewer = QLineEdit()
        self.reviewer.setToolTip("Your name, stored with every page you edit or accept")
        self.note = QLineEdit()
        self.note.setPlaceholderText("Note on this page (optional)")
        self.accept_button = QPushButton("Accept page  (Ctrl+Enter)")
        self.accept_button.setToolTip("Mark the page reviewed (corrected if you edited it) and go to the next one")
        self.accept_button.setStyleSheet("QPushButton { font-weight: bold; padding: 5px; }")
        form = QFormLayout()
        form.addRow("Reviewer", self.reviewer)
        form.addRow("Note", self.note)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.status)
        lay.addWidget(self.who)
        lay.addLayout(form)
        lay.addWidget(self.accept_button)
        self.accept_button.clicked.connect(self.acceptRequested)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        self.reviewer.editingFinished.connect(lambda: self.reviewerChanged.emit(self.reviewer.text().strip()))
        self.note.editingFinished.connect(self._note)
        self._show(None)

    def set_document(self, bridge: DocumentBridge | None) -> None:
        """Show the review of ``bridge``'s document (None: no page) and follow its changes."""
        self._bridge = follow(self._bridge, bridge, self._on_changed)
        self.document = document = None if bridge is None else bridge.document
        self._show(document)

    def set_status_text(self, text: str, status: str = ReviewStatus.NEW.value) -> None:
        """Show a status without a document (e.g. while the model runs)."""
        color = STATUS_COLORS.get(status, "#b00020")
        self.status.setText(text)
        self.status.setStyleSheet(
            f"QLabel {{ background: {color}; color: white; font-weight: bold; border-radius: 4px; padding: 3px; }}"
        )

    def _on_changed(self, change: Change) -> None:
        if change.review:
            self._show(self.document)

    def _show(self, doc: PageDocument | None) -> None:
        self.accept_button.setEnabled(doc is not None)
        self.note.setEnabled(doc is not None)
        if doc is None:
            self.set_status_text("No page open")
            self.who.setText("")
            self.note.setText("")
            return
        r = doc.review
        self.set_status_text(STATUS_TEXT.get(r.status, r.status.value.upper()), r.status.value)
        if r.status.signed_off and r.reviewer:
            when = r.reviewed_at.replace("T", " ").replace("Z", " UTC")
            self.who.setText(f"Signed off by {r.reviewer}, {when}")
        else:
            self.who.setText(NOT_SIGNED_OFF.get(r.status, ""))
        if not self.note.hasFocus():
            self.note.setText(r.note)

    def _note(self) -> None:
        if self.document is not None:
            self.document.set_note(self.note.text())


class LeadPanel(QWidget):
    """The leads of the page (confidence, status) and the selected box: name, timing, actions."""

    reextractRequested = Signal()
    deleteRequested = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.document: PageDocument | None = None
        self._bridge: DocumentBridge | None = None
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["Lead", "Confidence", "Status"])
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setDefaultSectionSize(20)
        self.lead = QComboBox()
        self.inverted = QCheckBox("Printed inverted")
        self.start = QDoubleSpinBox()
        self.duration = QDoubleSpinBox()
        for s in (self.start, self.duration):
            s.setRange(0.0, 120.0)
            s.setDecimals(3)
            s.setSingleStep(0.1)
            s.setSuffix(" s")
            s.setKeyboardTracking(False)
        self.reextract = QPushButton("Re-extract (Ctrl+R)")
        self.reextract.setToolTip("Trace the ink inside this box again (after moving or resizing it)")
        self.delete = QPushButton("Delete box (Del)")
        box = QGroupBox("Selected box")
        form = QFormLayout(box)
        form.addRow("Lead", self.lead)
        form.addRow("", self.inverted)
        form.addRow("Starts at", self.start)
        form.addRow("Duration", self.duration)
        row = QHBoxLayout()
        row.addWidget(self.reextract)
        row.addWidget(self.delete)
        form.addRow(row)
        self.box_group = box
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.table, 1)
        lay.addWidget(box)
        self.table.itemSelectionChanged.connect(self._table_selected)
        self.lead.activated.connect(self._rename)
        self.inverted.toggled.connect(self._invert)
        self.start.valueChanged.connect(lambda v: self._timing(t_start_s=v))
        self.duration.valueChanged.connect(lambda v: self._timing(duration_s=v))
        self.reextract.clicked.connect(self.reextractRequested)
        self.delete.clicked.connect(self.deleteRequested)
        self.box_group.setEnabled(False)

    def set_document(self, bridge: DocumentBridge | None) -> None:
        """Show the leads of ``bridge``'s document (None: none) and follow its changes."""
        self._bridge = follow(self._bridge, bridge, self._on_changed, self._on_selection)
        self.document = document = None if bridge is None else bridge.document
        self.lead.clear()
        if document is not None:
            self.lead.addItems(list(document.lead_names))
        self._fill_table()
        self._on_selection(document.selected if document else -1)

    def _on_changed(self, change: Change) -> None:
        if change.boxes or change.review or change.traces is None:
            self._fill_table()
            self._on_selection(self.document.selected)

    def _fill_table(self) -> None:
        doc = self.document
        self.table.blockSignals(True)
        self.table.setRowCount(0)
        if doc is not None:
            self.table.setRowCount(len(doc.boxes))
            for k, box in enumerate(doc.boxes):
                conf = doc.confidence.get(box.lead)
                page = doc.review.status
                unreviewed = ReviewStatus.PROPOSED if page in (ReviewStatus.CORRECTED, ReviewStatus.EDITED) else page
                status = doc.review.lead_status.get(box.lead, unreviewed).value
                name = box.lead + (" (rhythm)" if box.duration_s > 5 else "")
                cells = [name, "" if conf is None else f"{conf:.2f}", status]
                for c, text in enumerate(cells):
                    item = QTableWidgetItem(text)
                    item.setData(Qt.ItemDataRole.UserRole, k)
                    if c == 1 and conf is not None and conf < LOW_LEAD_CONFIDENCE:
                        item.setForeground(QBrush(QColor(200, 0, 0)))
                    if c == 2:
                        item.setForeground(QBrush(QColor(STATUS_COLORS.get(status, "#000"))))
                    self.table.setItem(k, c, item)
        self.table.blockSignals(False)

    def _on_selection(self, k: int) -> None:
        doc = self.document
        on = doc is not None and 0 <= k < len(doc.boxes)
        self.box_group.setEnabled(on)
        self.box_group.setTitle(f"Selected box: {doc.boxes[k].lead}" if on else "Selected box (click one)")
        self.table.blockSignals(True)
        if on:
            self.table.selectRow(k)
        else:
            self.table.clearSelection()
        self.table.blockSignals(False)
        if not on:
            return
        box = doc.boxes[k]
        for w, value in ((self.start, box.t_start_s), (self.duration, box.duration_s)):
            w.blockSignals(True)
            w.setValue(value)
            w.blockSignals(False)
        self.lead.setCurrentText(box.lead)
        self.inverted.blockSignals(True)
        self.inverted.setChecked(box.inverted)
        self.inverted.blockSignals(False)
        self.reextract.setEnabled(doc.masks is not None)

    def _table_selected(self) -> None:
        rows = {i.row() for i in self.table.selectedItems()}
        if self.document is not None and rows:
            self.document.select(min(rows))

    def _rename(self) -> None:
        doc = self.document
        if doc is not None and doc.selected >= 0 and self.lead.currentText() != doc.boxes[doc.selected].lead:
            doc.rename_box(doc.selected, self.lead.currentText())

    def _invert(self, on: bool) -> None:
        doc = self.document
        if doc is not None and doc.selected >= 0:
            doc.set_inverted(doc.selected, on)

    def _timing(self, **kw: float) -> None:
        doc = self.document
        if doc is not None and doc.selected >= 0:
            try:
                doc.set_box_timing(doc.selected, **kw)
            except ValueError:
                self._on_selection(doc.selected)
