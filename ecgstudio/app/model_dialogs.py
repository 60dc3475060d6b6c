"""Dialogs about the model: the local fine-tune (progress, cancel, outcome) and the model versions.

:class:`FinetuneDialog` only shows things and asks: the window starts and cancels the run
(:class:`~ecgstudio.app.finetune_runner.FinetuneRunner`) and feeds progress back.
:class:`ModelVersionsDialog` lists :func:`ecgstudio.model.registry.list_versions` and calls
:func:`~ecgstudio.model.registry.activate` and :func:`~ecgstudio.model.registry.rollback`.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..errors import EcgStudioError
from ..model import registry
from ..training.finetune import FinetuneProgress, FinetuneResult

log = logging.getLogger(__name__)

#: Time budgets offered, in minutes; the last is the default.
BUDGETS_MIN = (2.0, 5.0, 10.0)

STAGE_TEXT = {
    "reading labels": "Reading the reviewed pages",
    "building samples": "Preparing the pages",
    "validating base model": "Scoring the current model on held-out pages",
    "training": "Training",
    "validating new model": "Scoring the new model on held-out pages",
    "saving": "Saving the new model version",
    "done": "Done",
}

_LEVEL_STYLE = {
    "ok": "color: #14532d; background: #e6f4ea; border: 1px solid #a8d5b5;",
    "info": "color: #173f73; background: #e8f1fd; border: 1px solid #a9c6ee;",
    "warning": "color: #6b4a00; background: #fff6e0; border: 1px solid #e6cf8f;",
    "error": "color: #8a1c1c; background: #fdecea; border: 1px solid #e0a1a1;",
}


def duration_text(seconds: float | None) -> str:
    """``"45 s"``, ``"3 min 05 s"``; ``"-"`` when unknown."""
    if seconds is None or seconds != seconds:
        return "-"
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f} s"
    m, s = divmod(int(round(seconds)), 60)
    return f"{m} min {s:02d} s"


def finetune_result_text(result: FinetuneResult) -> str:
    """The message shown when a fine-tune finished: the version, SNR before -> after, active or not."""
    name = result.version.name
    n_val = len(result.val_labels)
    pages = f"{n_val} held-out page{'s' if n_val != 1 else ''}"
    snr = f"validation SNR {result.val_snr_before_db:.1f} dB -> {result.val_snr_after_db:.1f} dB on {pages}"
    if result.validation_measured_nothing:
        text = (
            f"Fine-tune finished: the new model version {name} was saved but kept inactive. The check had "
            f"nothing to measure: the {pages} kept for it were accepted exactly as the current model proposed "
            "them, so no model can score better there. Correct and accept a few more pages and fine-tune "
            "again, or switch to it in Model > Model versions."
        )
    elif result.activated:
        text = (
            f"Fine-tune finished: the new model version {name} is now active ({snr}; {result.steps} steps "
            f"in {duration_text(result.seconds)}). New pages are digitized with it; Model > Re-run model on "
            "worklist updates the proposals of new and proposed pages."
        )
    else:
        text = (
            f"Fine-tune finished: the new model version {name} was saved but kept inactive: not better than "
            f"the current model ({snr}). The current model stays active; Model > Model versions can still "
            "switch to it."
        )
    if result.skipped:
        path, why = result.skipped[0]
        more = f" and {len(result.skipped) - 1} more" if len(result.skipped) > 1 else ""
        text += f" Left out: {Path(path).name} ({why}){more}."
    return text


def finetune_failure_text(message: str, cancelled: bool) -> str:
    """The message shown when a fine-tune did not finish (never a traceback)."""
    if cancelled:
        return f"Fine-tune cancelled: {message}" if "cancelled" not in message else message[:1].upper() + message[1:]
    unchanged = "" if "unchanged" in message else " The active model is unchanged."
    return f"Fine-tune failed: {message.rstrip('.')}.{unchanged}"


class FinetuneDialog(QDialog):
    """Fine-tune on the worklist's reviewed pages: budget, start, progress, cancel, outcome.

    Modeless: the window stays usable while the model trains in its worker process; closing
    the dialog does not stop the run (the status bar shows it, the Fine-tune action brings the
    dialog back).
    """

    startRequested = Signal(float)  # budget in minutes
    cancelRequested = Signal()
    rerunRequested = Signal()
    versionsRequested = Signal()

    def __init__(self, parent: QWidget | None = None, *, minutes: float = BUDGETS_MIN[-1]) -> None:
        super().__init__(parent)
        self.setWindowTitle("Fine-tune the model - ECG Studio")
        self.setModal(False)
        self.resize(560, 520)
        intro = QLabel(
            "Train the model further on the pages you reviewed, so it learns your paper, scanner and "
            "pens. Some pages are held out to check the new model; it becomes active only if it "
            "does better on them than the current model. Synthetic pages are mixed in so it keeps "
            "what it knew."
        )
        intro.setWordWrap(True)
        intro.setStyleSheet("color: #333;")
        self.pages = QLabel()
        self.pages.setWordWrap(True)
        self.pages.setTextFormat(Qt.TextFormat.RichText)
        self.budget = QComboBox()
        for m in BUDGETS_MIN:
            self.budget.addItem(f"{m:g} minutes", m)
        self.set_budget(minutes)
        self.budget.setToolTip("The whole run ends within this time, scoring and saving included")
        self.start_button = QPushButton("Start fine-tune")
        self.start_button.setDefault(True)
        self.start_button.setStyleSheet("font-weight: bold;")
        self.start_button.clicked.connect(lambda: self.startRequested.emit(float(self.budget.currentData())))
        self.cancel_button = QPushButton("Cancel fine-tune")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self._cancel)
        top = QHBoxLayout()
        top.addWidget(QLabel("Time budget:"))
        top.addWidget(self.budget)
        top.addStretch(1)
        top.addWidget(self.start_button)
        top.addWidget(self.cancel_button)

        self.stage = QLabel("Not started")
        self.stage.setStyleSheet("font-weight: bold; color: #243b55;")
        self.bar = QProgressBar()
        self.bar.setRange(0, 100)
        self.bar.setValue(0)
        self.loss = QLabel("-")
        self.snr = QLabel("-")
        self.left = QLabel("-")
        form = QFormLayout()
        form.addRow("Training loss:", self.loss)
        form.addRow("Validation SNR:", self.snr)
        form.addRow("Time left:", self.left)
        self.snr.setToolTip(
            "Mean per-lead SNR of the digitized held-out pages against your reviewed signals "
            "(higher is better): current model -> new model"
        )
        self.plot = pg.PlotWidget(background="w")
        self.plot.setMinimumHeight(130)
        self.plot.setMaximumHeight(170)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.plot.setLabel("bottom", "step")
        self.plot.setLabel("left", "loss")
        self.plot.getAxis("left").enableAutoSIPrefix(False)
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.curve = self.plot.plot(
            [], [], pen=pg.mkPen("#2f6fd0", width=2), symbol="o", symbolSize=4, symbolBrush="#2f6fd0", symbolPen=None
        )
        self._losses: list[tuple[int, float]] = []

        self.result = QLabel()
        self.result.setWordWrap(True)
        self.result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.result.hide()
        self.rerun_button = QPushButton("Re-run model on worklist")
        self.rerun_button.setToolTip("New proposals for the new and proposed pages; reviewed pages are kept")
        self.rerun_button.clicked.connect(self.rerunRequested)
        self.rerun_button.hide()
        self.versions_button = QPushButton("Model versions…")
        self.versions_button.clicked.connect(self.versionsRequested)
        self.close_button = QPushButton("Close")
        self.close_button.setToolTip("Hide this window; a running fine-tune goes on (see the status bar)")
        self.close_button.clicked.connect(self.hide)
        bottom = QHBoxLayout()
        bottom.addWidget(self.rerun_button)
        bottom.addWidget(self.versions_button)
        bottom.addStretch(1)
        bottom.addWidget(self.close_button)

        lay = QVBoxLayout(self)
        lay.addWidget(intro)
        lay.addWidget(self.pages)
        lay.addLayout(top)
        lay.addSpacing(6)
        lay.addWidget(self.stage)
        lay.addWidget(self.bar)
        lay.addLayout(form)
        lay.addWidget(self.plot)
        lay.addWidget(self.result)
        lay.addStretch(1)
        lay.addLayout(bottom)
        self.running = False

    # ------------------------------------------------------------------ state

    def set_budget(self, minutes: float) -> None:
        k = self.budget.findData(float(minutes))
        self.budget.setCurrentIndex(k if k >= 0 else self.budget.count() - 1)

    def set_selection(self, labels: list[Path], left_out: int, *, base: str = "") -> None:
        """Say which pages will be used (the signed-off ones), how many are left out, the base model."""
        names = ", ".join(p.name.removesuffix(".labels.h5") for p in labels[:6])
        more = f" and {len(labels) - 6} more" if len(labels) > 6 else ""
        other = (
            f" {left_out} other page{'s are' if left_out != 1 else ' is'} not signed off (new, proposed or "
            "edited) and "
            f"{'are' if left_out != 1 else 'is'} left out."
            if left_out
            else ""
        )
        start = f" The fine-tune starts from the active model, <b>{base}</b>." if base else ""
        self.pages.setText(
            f"<b>{len(labels)} signed-off pages</b> of this worklist will be used: {names}{more}.{other}{start}"
        )
        self.pages.setToolTip("\n".join(str(p) for p in labels))

    def set_running(self, running: bool) -> None:
        self.running = running
        self.start_button.setEnabled(not running)
        self.budget.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self.cancel_button.setText("Cancel fine-tune")
        if running:
            self._losses.clear()
            self.curve.setData([], [])
            self.result.hide()
            self.rerun_button.hide()
            self.stage.setText("Starting the fine-tune (loading the engine)…")
            self.bar.setValue(0)
            for label in (self.loss, self.snr, self.left):
                label.setText("-")

    def show_progress(self, p: FinetuneProgress) -> None:
        stage = STAGE_TEXT.get(p.stage, p.stage)
        if p.stage == "training" and p.total_steps:
            stage += f": step {p.step} of about {p.total_steps}"
        self.stage.setText(stage)
        self.bar.setValue(int(round(100 * p.fraction)))
        if p.loss is not None:
            self.loss.setText(f"{p.loss:.4f}")
            if p.stage == "training" and (not self._losses or self._losses[-1][0] != p.step):
                self._losses.append((p.step, p.loss))
                self.curve.setData([s for s, _ in self._losses], [v for _, v in self._losses])
        before = "-" if p.val_snr_before_db is None else f"{p.val_snr_before_db:.1f} dB (current model)"
        after = "…" if p.val_snr_after_db is None else f"{p.val_snr_after_db:.1f} dB (new model)"
        self.snr.setText(before if p.val_snr_before_db is None else f"{before} -> {after}")
        self.left.setText(duration_text(p.seconds_left) if p.seconds_left is not None else "estimating…")

    def show_result(self, text: str, level: str = "ok", *, can_rerun: bool = False) -> None:
        """The outcome (``level`` ok, info, warning or error); the run is over."""
        self.set_running(False)
        self.stage.setText({"ok": "Finished", "info": "Finished", "warning": "Stopped"}.get(level, "Failed"))
        if level in ("ok", "info"):
            self.bar.setValue(100)
            self.left.setText("-")
        self.result.setStyleSheet(
            f"QLabel {{ {_LEVEL_STYLE.get(level, _LEVEL_STYLE['info'])} padding: 8px; "
            "border-radius: 4px; font-size: 13px; }"
        )
        self.result.setText(text)
        self.result.show()
        self.rerun_button.setVisible(can_rerun)

    def _cancel(self) -> None:
        self.cancel_button.setEnabled(False)
        self.cancel_button.setText("Cancelling…")
        self.stage.setText("Cancelling (at the end of the current step)…")
        self.cancelRequested.emit()


class ModelVersionsDialog(QDialog):
    """The model versions (shipped and fine-tuned), which one is active; switch or roll back.

    Parameters
    ----------
    data_dir : Path, optional
        User data directory holding ``models/`` (the platform's by default).
    """

    activeChanged = Signal(object)  # registry.ModelVersion now active

    COLUMNS = ("", "Version", "Validation SNR", "Pages", "Saved")

    def __init__(self, data_dir: Path | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.data_dir = data_dir
        self.setWindowTitle("Model versions - ECG Studio")
        self.setModal(False)
        self.resize(720, 340)
        self.versions: list[registry.ModelVersion] = []
        intro = QLabel(
            "The model that digitizes your pages. Fine-tunes are saved here as new versions; the "
            "active one (●) makes new proposals. Switching does not change saved pages: re-run the "
            "model on a worklist to update its proposals."
        )
        intro.setWordWrap(True)
        self.table = QTableWidget(0, len(self.COLUMNS))
        self.table.setHorizontalHeaderLabels(list(self.COLUMNS))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setMinimumSectionSize(28)
        for c, width in ((0, 28), (2, 170), (3, 110), (4, 130)):
            header.setSectionResizeMode(c, QHeaderView.ResizeMode.Interactive)
            self.table.setColumnWidth(c, width)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.table.itemDoubleClicked.connect(lambda _item: self.use_selected())
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.use_button = QPushButton("Use this version")
        self.use_button.setToolTip("Make the selected version the active model")
        self.use_button.clicked.connect(self.use_selected)
        self.rollback_button = QPushButton("Roll back")
        self.rollback_button.setToolTip("Go back to the version that was active before the current one")
        self.rollback_button.clicked.connect(self.roll_back)
        close = QPushButton("Close")
        close.clicked.connect(self.hide)
        buttons = QHBoxLayout()
        buttons.addWidget(self.use_button)
        buttons.addWidget(self.rollback_button)
        buttons.addStretch(1)
        buttons.addWidget(close)
        lay = QVBoxLayout(self)
        lay.addWidget(intro)
        lay.addWidget(self.table, 1)
        lay.addWidget(self.note)
        lay.addLayout(buttons)

    def refresh(self) -> None:
        """Read the versions again (weights checked against their cards)."""
        try:
            self.versions = registry.list_versions(data_dir=self.data_dir)
        except (EcgStudioError, OSError) as exc:
            self.versions = []
            self._say(f"The model versions cannot be listed: {exc}", "error")
        self.table.setRowCount(len(self.versions))
        bold = self.font()
        bold.setBold(True)
        for row, v in enumerate(self.versions):
            metrics = v.card.metrics or {}
            after = metrics.get("val_snr_db_after", metrics.get("val_snr_after_db"))  # as finetune writes it
            before = metrics.get("val_snr_db_before", metrics.get("val_snr_before_db"))
            if v.shipped:
                snr, snr_tip = "-", "The model that ships with ECG Studio"
                pages, saved = "-", "shipped"
            else:
                snr = "-" if after is None else f"{after:.1f} dB"
                if after is not None and before is not None:
                    snr += f" (base {before:.1f} dB)"
                snr_tip = "Mean per-lead SNR on the held-out reviewed pages; base: the model it started from. " + (
                    "It scored better than its base."
                    if metrics.get("improved")
                    else "It did not score better than its base."
                )
                n_train, n_val = metrics.get("train_pages"), metrics.get("val_pages")
                pages = f"{n_train} + {n_val} held out" if n_train is not None else "-"
                try:
                    saved = time.strftime("%Y-%m-%d %H:%M", time.localtime(os.path.getmtime(v.path)))
                except OSError:
                    saved = "-"
            cells = ("●" if v.active else "", v.name, snr, pages, saved)
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(snr_tip if col == 2 else f"{v.name}: model {v.card.version}\n{v.path}")
                if v.active:
                    item.setFont(bold)
                if col == 0:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                    item.setForeground(Qt.GlobalColor.darkGreen)
                self.table.setItem(row, col, item)
        active = next((r for r, v in enumerate(self.versions) if v.active), -1)
        if active >= 0:
            self.table.selectRow(active)
        self._update_buttons()

    @property
    def active_name(self) -> str:
        return next((v.name for v in self.versions if v.active), "")

    def selected_name(self) -> str:
        rows = self.table.selectionModel().selectedRows()
        return self.versions[rows[0].row()].name if rows and rows[0].row() < len(self.versions) else ""

    def select(self, name: str) -> None:
        for row, v in enumerate(self.versions):
            if v.name == name:
                self.table.selectRow(row)

    def use_selected(self) -> None:
        name = self.selected_name()
        if not name or name == self.active_name:
            return
        try:
            version = registry.activate(name, data_dir=self.data_dir)
        except (EcgStudioError, OSError) as exc:
            self._say(f"Could not switch to {name}: {exc}", "error")
            return
        self.refresh()
        self._say(f"Now using {name}: new proposals are made with it.", "ok")
        self.activeChanged.emit(version)

    def roll_back(self) -> None:
        current = self.active_name
        try:
            version = registry.rollback(data_dir=self.data_dir)
        except (EcgStudioError, OSError) as exc:
            self._say(f"Could not roll back: {exc}", "warning")
            return
        self.refresh()
        self._say(f"Rolled back from {current} to {version.name}.", "ok")
        self.activeChanged.emit(version)

    def _say(self, text: str, level: str) -> None:
        self.note.setStyleSheet(
            f"QLabel {{ {_LEVEL_STYLE.get(level, _LEVEL_STYLE['info'])} padding: 6px; border-radius: 4px; }}"
        )
        self.note.setText(text)
        log.info("%s", text)

    def _update_buttons(self) -> None:
        name = self.selected_name()
        self.use_button.setEnabled(bool(name) and name != self.active_name)
        self.rollback_button.setEnabled(bool(self.versions))
