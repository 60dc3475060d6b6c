"""Calibration panel: grid scale, paper speed, gain, the two-click ruler and pulse, re-running the model."""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..editing.document import Change, PageDocument
from ..paper import LAYOUTS
from ..pipeline import DigitizeOptions
from .document_bridge import DocumentBridge, follow


class _DocumentUndo(QObject):
    """Lets Ctrl+Z and Ctrl+Shift+Z reach the page's undo while a field that edits the page has
    the focus: its value is already an edit of the page, its own text undo would only confuse."""

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ShortcutOverride and (
            event.matches(QKeySequence.StandardKey.Undo) or event.matches(QKeySequence.StandardKey.Redo)
        ):
            event.ignore()
            return True
        return False


_DOCUMENT_UNDO = _DocumentUndo()


def _spin(lo: float, hi: float, decimals: int, suffix: str, step: float) -> QDoubleSpinBox:
    s = QDoubleSpinBox()
    s.installEventFilter(_DOCUMENT_UNDO)
    s.setRange(lo, hi)
    s.setDecimals(decimals)
    s.setSuffix(suffix)
    s.setSingleStep(step)
    s.setKeyboardTracking(False)  # typing applies on Enter or leaving the field; arrows apply at once
    s.setAlignment(Qt.AlignmentFlag.AlignRight)
    return s


#: How a value the engine assumed rather than measured looks.
ASSUMED_STYLE = "QDoubleSpinBox { background: #fff3cd; border: 1px solid #e0a800; }"


class CalibrationPanel(QWidget):
    """Edits the document's :class:`~ecgstudio.results.Calibration`; signals follow at once."""

    rulerRequested = Signal()
    pulseRequested = Signal()
    rerunRequested = Signal(object)  # DigitizeOptions

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.document: PageDocument | None = None
        self._bridge: DocumentBridge | None = None
        self.px_x = _spin(0.5, 200.0, 3, " px/mm", 0.05)
        self.px_y = _spin(0.5, 200.0, 3, " px/mm", 0.05)
        self.same = QCheckBox("Same scale both ways")
        self.same.setChecked(True)
        self.speed = _spin(1.0, 200.0, 1, " mm/s", 12.5)
        self.gain = _spin(0.5, 100.0, 2, " mm/mV", 5.0)
        self.speed_presets = self._presets(self.speed, (25.0, 50.0))
        self.gain_presets = self._presets(self.gain, (5.0, 10.0, 20.0))
        self.ruler_mm = _spin(0.5, 500.0, 1, " mm", 5.0)
        self.ruler_mm.setValue(10.0)
        self.ruler_mm.setToolTip("How far apart the two ruler clicks are on the paper (10 mm = two big squares)")
        self.ruler_button = QPushButton("Ruler (R)")
        self.assumed = QLabel("")  # what the engine assumed, not measured
        self.assumed.setWordWrap(True)
        self.assumed.setStyleSheet("QLabel { background: #fff3cd; color: #6b4a00; padding: 4px; border-radius: 3px; }")
        self.assumed.hide()
        self.ruler_button.setToolTip("Click two grid points the distance above apart; sets px/mm")
        self.pulse_button = QPushButton("Measure pulse (U)")
        self.pulse_button.setToolTip("Click the foot, then the top of the 1 mV calibration pulse; sets mm/mV")
        self.result = QLabel("")
        self.result.setWordWrap(True)
        self.layout_combo = QComboBox()
        self.layout_combo.addItem("auto", "auto")
        for name in sorted(LAYOUTS):
            self.layout_combo.addItem(name, name)
        self.columns_combo = QComboBox()
        for label, value in (
            ("auto (from the rhythm strip)", "auto"),
            ("consecutive (standard)", "consecutive"),
            ("all from 0 s", "from-zero"),
        ):
            self.columns_combo.addItem(label, value)
        self.columns_combo.setToolTip(
            "Which seconds each column shows: the standard printout continues "
            "each column where the one before ends; some start every column at 0 s"
        )
        self.use_cal = QCheckBox("Use the speed and gain above")
        self.use_cal.setChecked(True)
        self.rerun_button = QPushButton("Run the model again")
        self.rerun_button.setToolTip("Digitize the page again with these settings (undoable)")

        scale = QGroupBox("Grid scale")
        form = QFormLayout(scale)
        form.addRow("Horizontal", self.px_x)
        form.addRow("Vertical", self.px_y)
        form.addRow(self.same)
        ruler_row = QHBoxLayout()
        ruler_row.addWidget(self.ruler_mm)
        ruler_row.addWidget(self.ruler_button)
        form.addRow("Ruler", ruler_row)

        paper = QGroupBox("Paper speed and gain")
        form2 = QFormLayout(paper)
        form2.addRow("Speed", self._with(self.speed, self.speed_presets))
        form2.addRow("Gain", self._with(self.gain, self.gain_presets))
        form2.addRow("Pulse", self.pulse_button)

        rerun = QGroupBox("Model")
        form3 = QFormLayout(rerun)
        form3.addRow("Layout", self.layout_combo)
        form3.addRow("Columns", self.columns_combo)
        form3.addRow(self.use_cal)
        form3.addRow(self.rerun_button)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.assumed)
        lay.addWidget(scale)
        lay.addWidget(paper)
        lay.addWidget(self.result)
        lay.addWidget(rerun)
        lay.addStretch(1)

        self.px_x.valueChanged.connect(lambda v: self._set("px_per_mm_x", v))
        self.px_y.valueChanged.connect(lambda v: self._set("px_per_mm_y", v))
        self.speed.valueChanged.connect(lambda v: self._set("mm_per_s", v))
        self.gain.valueChanged.connect(lambda v: self._set("mm_per_mv", v))
        self.ruler_button.clicked.connect(self.rulerRequested)
        self.pulse_button.clicked.connect(self.pulseRequested)
        self.rerun_button.clicked.connect(self._rerun)
        self.setEnabled(False)

    @staticmethod
    def _presets(spin: QDoubleSpinBox, values: tuple[float, ...]) -> list[QPushButton]:
        buttons = []
        for v in values:
            b = QPushButton(f"{v:g}")
            b.setFixedWidth(38)
            b.setToolTip(f"Set {v:g}{spin.suffix()}")
            b.clicked.connect(lambda _=False, v=v: spin.setValue(v))
            buttons.append(b)
        return buttons

    @staticmethod
    def _with(spin: QDoubleSpinBox, buttons: list[QPushButton]) -> QHBoxLayout:
        row = QHBoxLayout()
        row.setSpacing(3)
        row.addWidget(spin, 1)
        for b in buttons:
            row.addWidget(b)
        return row

    def set_document(self, bridge: DocumentBridge | None) -> None:
        """Show the calibration of ``bridge``'s document (None: disabled) and follow its changes."""
        self._bridge = follow(self._bridge, bridge, self._on_changed)
        self.document = document = None if bridge is None else bridge.document
        self.result.setText("")
        self.setEnabled(document is not None)
        if document is not None:
            cal = document.calibration
            self.same.setChecked(abs(cal.px_per_mm_x - cal.px_per_mm_y) < 1e-9)
            self.refresh()
        self._show_assumed()

    def _on_changed(self, change: Change) -> None:
        if change.calibration:
            self.refresh()
        self._show_assumed()

    def _show_assumed(self) -> None:
        """Mark each value the engine assumed (orange, with why in its tooltip) and list them."""
        doc = self.document
        for what, spins in (("scale", (self.px_x, self.px_y)), ("speed", (self.speed,)), ("gain", (self.gain,))):
            why = "" if doc is None else doc.assumed(what)
            for spin in spins:
                spin.setStyleSheet(ASSUMED_STYLE if why else "")
                spin.setToolTip(f"Assumed, not measured: {why}. Set it if you know it." if why else "")
        texts = [] if doc is None else [a.text for a in doc.assumptions]
        self.assumed.setText("Assumed, not measured:\n" + "\n".join(f"- {t}" for t in texts) if texts else "")
        self.assumed.setVisible(bool(texts))

    def refresh(self) -> None:
        """Show the document's calibration without editing it."""
        cal = self.document.calibration
        for spin, value in (
            (self.px_x, cal.px_per_mm_x),
            (self.px_y, cal.px_per_mm_y),
            (self.speed, cal.mm_per_s),
            (self.gain, cal.mm_per_mv),
        ):
            spin.blockSignals(True)
            spin.setValue(value)
            spin.blockSignals(False)

    def _set(self, name: str, value: float) -> None:
        doc = self.document
        if doc is None:
            return
        changes = {name: float(value)}
        if self.same.isChecked() and name in ("px_per_mm_x", "px_per_mm_y"):
            changes = {"px_per_mm_x": float(value), "px_per_mm_y": float(value)}
        doc.set_calibration(replace(doc.calibration, **changes), merge_key=f"calibration:{name}")

    def ruler_axis(self) -> str:
        return "both" if self.same.isChecked() else "auto"

    def show_result(self, text: str) -> None:
        self.result.setText(text)

    def options(self, fs: float) -> DigitizeOptions:
        cal = self.document.calibration if self.document else None
        use = self.use_cal.isChecked() and cal is not None
        return DigitizeOptions(
            layout=self.layout_combo.currentData(),
            fs=fs,
            mm_per_s=cal.mm_per_s if use else None,
            mm_per_mv=cal.mm_per_mv if use else None,
            columns=self.columns_combo.currentData(),
        )

    def _rerun(self) -> None:
        if self.document is not None:
            self.rerunRequested.emit(self.options(self.document.fs))
