"""The main window: worklist, scan with proposals, signals, review, lead and calibration panels.

The window wires the pieces together and talks to the engine through
:class:`~ecgstudio.app.worker.Engine` (digitizing), :mod:`ecgstudio.labels` (the label store),
:mod:`ecgstudio.io.images` (reading pages) and :mod:`ecgstudio.io.writers` (export).  Edits are
operations of the :class:`~ecgstudio.editing.document.PageDocument` (plain Python, with its own
undo history); a :class:`~ecgstudio.app.document_bridge.DocumentBridge` tells the views and the
window about them.  When labels are opened, saved, set aside and exported is the editing model's
save policy (:mod:`ecgstudio.editing.session`); the window shows what it did.

The Model menu fine-tunes the model on the worklist's reviewed pages
(:func:`ecgstudio.training.finetune.finetune` in a worker process, see
:class:`~ecgstudio.app.finetune_runner.FinetuneRunner`), lists and switches model versions
(:mod:`ecgstudio.model.registry`) and re-runs the model on the worklist's new and proposed
pages (:class:`~ecgstudio.app.rerun.WorklistRerun`).  Model versions live in ``data_dir``
(the platform's user data directory unless the window is given another).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import QPointF, QSize, Qt, QTimer, QUrl
from PySide6.QtGui import QAction, QActionGroup, QDesktopServices, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSlider,
    QSplitter,
    QStackedWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from ..editing.document import PageDocument
from ..editing.session import LabelSession, export_signals, trainable_label_files
from ..editing.worklist import WorkItem, items_for_paths, pages_of, user_labels_root
from ..errors import EcgStudioError, LabelFormatError
from ..io.images import SUPPORTED_SUFFIXES, Page, read_pages
from ..labels import ImageIdentity, LabelConflictError, ReviewStatus
from ..model import registry
from ..pipeline import DigitizeOptions
from ..resources import resource_path
from ..training.finetune import FinetuneConfig
from .calibration_panel import CalibrationPanel
from .document_bridge import DocumentBridge
from .finetune_job import FinetuneRequest
from .finetune_runner import FinetuneRunner
from .model_dialogs import FinetuneDialog, ModelVersionsDialog, finetune_failure_text, finetune_result_text
from .rerun import RerunSummary, WorklistRerun
from .review_panel import LeadPanel, ReviewPanel
from .scan_view import ScanView, Tool
from .settings import AppSettings
from .signal_view import SignalView
from .worker import STAGE_NAMES, Engine, active_digitizer
from .worklist import WorklistPanel

log = logging.getLogger(__name__)

#: The sample scan that ships with ECG Studio (in the source checkout or the installed bundle).
SAMPLE_SCAN = resource_path("resources/sample_scan.jpg")
DEFAULT_SIZE = QSize(1400, 900)
DEFAULT_FS = 500.0


def default_finetune_config() -> FinetuneConfig:
    """The studio's fine-tune settings: the engine's defaults, one CPU core left to the window."""
    return FinetuneConfig(threads=max(1, (os.cpu_count() or 2) - 1))


SHORTCUTS = [
    ("Open a scan, photo or PDF", "Ctrl+O"),
    ("Open a folder as a worklist", "Ctrl+Shift+O"),
    ("Save now (autosave is on)", "Ctrl+S"),
    ("Export WFDB, CSV and EDF+", "Ctrl+E"),
    ("Accept the page and go to the next", "Ctrl+Return / Ctrl+Enter"),
    ("Next / previous page", "PgDown / PgUp"),
    ("Next / previous lead", "] / ["),
    ("Undo / redo", "Ctrl+Z / Ctrl+Shift+Z (Ctrl+Y)"),
    ("Select and move boxes", "V"),
    ("Drag trace points", "D"),
    ("Pen: redraw a stretch", "P"),
    ("Snap pen strokes to the ink", "S"),
    ("Eraser: blank a stretch", "E"),
    ("Add a box", "A"),
    ("Ruler (sets px/mm)", "R"),
    ("Measure the calibration pulse (sets mm/mV)", "U"),
    ("Delete the selected box", "Delete"),
    ("Rename the selected lead", "F2"),
    ("Re-extract the trace in the selected box", "Ctrl+R"),
    ("Toggle boxes / mask / traces / low confidence", "Ctrl+1 / Ctrl+2 / Ctrl+3 / Ctrl+4"),
    ("Fit the page / zoom in / zoom out", "F / Ctrl++ (Ctrl+=) / Ctrl+-"),
    ("Zoom about the cursor", "mouse wheel"),
    ("Pan the page", "middle button drag, or drag the background with Select (V)"),
    ("Zoom to the selected box", "Z"),
    ("Calipers: intervals in ms and bpm, amplitudes in mV", "K"),
    ("Show every lead completed over the whole record (dashed: not on the paper)", "Ctrl+5"),
    ("These shortcuts", "F1"),
    ("Cancel the current tool", "Esc"),
]


class WelcomePanel(QWidget):
    """Shown while nothing is open: what to do first and where labels go."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__()
        title = QLabel("ECG Studio")
        title.setStyleSheet("font-size: 28px; font-weight: bold; color: #243b55;")
        sub = QLabel(
            "Turn paper ECGs into calibrated 12-lead signals: check the model's proposals, "
            "correct them, and save them as labels."
        )
        sub.setWordWrap(True)
        sub.setStyleSheet("font-size: 14px; color: #333;")
        buttons = QHBoxLayout()
        for text, tip, slot in (
            ("Open a scan…", "A scan, photo or PDF (Ctrl+O)", window.choose_files),
            ("Open a folder…", "Every scan in a folder, as a worklist (Ctrl+Shift+O)", window.choose_folder),
            ("Open the sample", "A real scanned 12-lead ECG that ships with ECG Studio", window.open_sample),
        ):
            b = QPushButton(text)
            b.setToolTip(tip)
            b.setMinimumHeight(44)
            b.setStyleSheet("font-size: 14px; padding: 6px 18px;")
            b.clicked.connect(slot)
            buttons.addWidget(b)
            if text.startswith("Open the sample"):
                b.setEnabled(SAMPLE_SCAN.is_file())
                b.setStyleSheet(
                    "font-size: 14px; padding: 6px 18px; font-weight: bold; color: white; "
                    "background: #2f6fd0; border: 1px solid #2459a8; border-radius: 4px;"
                )
                self.sample_button = b
        buttons.addStretch(1)
        self.where = QLabel()
        self.where.setWordWrap(True)
        self.where.setTextFormat(Qt.TextFormat.RichText)
        self.where.setStyleSheet("font-size: 13px; color: #333;")
        tips = QLabel(
            "<b>How it works</b><ol>"
            "<li>Open a page: the model proposes lead boxes and traces (a few seconds).</li>"
            "<li>Check them on the scan (left) and as signals on ECG paper (right). Red marks low confidence.</li>"
            "<li>Fix what is wrong: calibration, boxes, traces. Every edit can be undone (Ctrl+Z).</li>"
            "<li>Accept (Ctrl+Enter): the page is saved as reviewed and the next one opens.</li></ol>"
            "You can also drop files or a folder onto this window."
        )
        tips.setWordWrap(True)
        tips.setTextFormat(Qt.TextFormat.RichText)
        tips.setStyleSheet("font-size: 13px; color: #333;")
        card = QFrame()
        card.setObjectName("card")
        card.setStyleSheet("#card { background: white; border: 1px solid #d0d4da; border-radius: 8px; }")
        card.setMaximumWidth(760)
        inner = QVBoxLayout(card)
        inner.setContentsMargins(32, 28, 32, 28)
        inner.setSpacing(14)
        inner.addWidget(title)
        inner.addWidget(sub)
        inner.addLayout(buttons)
        inner.addWidget(tips)
        inner.addWidget(self.where)
        outer = QVBoxLayout(self)
        outer.addStretch(1)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(card, 3)
        row.addStretch(1)
        outer.addLayout(row)
        outer.addStretch(2)
        self.setStyleSheet("WelcomePanel { background: #eef1f5; }")
        self.setAutoFillBackground(True)

    def set_labels_root(self, root: Path) -> None:
        self.where.setText(
            "<b>Where labels go</b><br>Nothing is written next to your scans. A folder's pages are saved in "
            "<code>&lt;folder&gt;/labels/</code>; single files in your data folder:<br>"
            f"<code>{root}</code>"
        )


class MainWindow(QMainWindow):
    """ECG Studio's main window.

    Parameters
    ----------
    settings : AppSettings, optional
        Where preferences live (the user's QSettings by default).
    digitizer_factory : callable, optional
        Makes the digitizer in the worker thread (the active model version of ``data_dir`` by
        default); called again after the active version changes.
    labels_root : Path, optional
        Label folder for single files (``user_data_dir("ecgstudio")/labels`` by default).
    autosave_ms : int
        Delay between the last edit and the automatic save.
    data_dir : Path, optional
        User data directory holding the model versions (``models/``); the platform's
        (``user_data_dir("ecgstudio")``) by default.  Tests pass a temporary folder.
    finetune_config : FinetuneConfig, optional
        Settings of a fine-tune (:func:`default_finetune_config` by default); the dialog's time
        budget replaces its ``minutes``, so a config with ``steps`` set may stop sooner.
    finetune_mode : {"process", "thread"}
        Where a fine-tune runs: a worker process (the studio) or a thread (fast tests).
    """

    def __init__(
        self,
        *,
        settings: AppSettings | None = None,
        digitizer_factory: Callable[[], Any] | None = None,
        labels_root: Path | None = None,
        autosave_ms: int = 800,
        data_dir: Path | None = None,
        finetune_config: FinetuneConfig | None = None,
        finetune_mode: str = "process",
    ) -> None:
        super().__init__()
        self.settings = settings or AppSettings()
        self.labels_root = Path(labels_root) if labels_root else user_labels_root()
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.finetune_config = finetune_config or default_finetune_config()
        self.engine = Engine(digitizer_factory or functools.partial(active_digitizer, self.data_dir), self)
        self.finetune_runner = FinetuneRunner(mode=finetune_mode, parent=self)
        self.finetune_dialog: FinetuneDialog | None = None
        self.versions_dialog: ModelVersionsDialog | None = None
        self.document: PageDocument | None = None
        self._bridge: DocumentBridge | None = None
        self.session = LabelSession()
        self.current_row = -1
        self._job: dict | None = None
        self._pages_cache: tuple[Path, list[Page]] | None = None
        self.setWindowTitle("ECG Studio")
        self.setAcceptDrops(True)
        self.resize(DEFAULT_SIZE)

        self.scan_view = ScanView()
        self.signal_view = SignalView()
        self.worklist = WorklistPanel()
        self.review_panel = ReviewPanel()
        self.lead_panel = LeadPanel()
        self.calibration_panel = CalibrationPanel()
        self.welcome = WelcomePanel(self)
        self.welcome.set_labels_root(self.labels_root)

        self.banner = QLabel()
        self.banner.setWordWrap(True)
        self.banner.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.banner_close = QPushButton("Dismiss")
        self.banner_close.clicked.connect(self.clear_banner)
        banner_row = QHBoxLayout()
        banner_row.setContentsMargins(8, 4, 8, 4)
        banner_row.addWidget(self.banner, 1)
        banner_row.addWidget(self.banner_close)
        self.banner_frame = QFrame()
        self._banner_level = "info"
        self.banner_frame.setLayout(banner_row)
        self.banner_frame.hide()

        self.scan_title = QLabel("Scan and proposals")
        self.signal_title = QLabel("Signals at 25 mm/s, 10 mm/mV")
        self.signal_title.setToolTip("One small square is 0.04 s by 0.1 mV, as on ECG paper; click a lead to select it")
        for label in (self.scan_title, self.signal_title):
            label.setStyleSheet("font-weight: bold; padding: 2px 4px; color: #243b55;")
        self.legend = QLabel(
            '<span style="color:#00a03c">&#9632;</span> trace &nbsp; '
            '<span style="color:#005ac8">&#9632;</span> selected &nbsp; '
            '<span style="color:#e61e1e">&#9632;</span> low confidence / no trace found'
        )
        self.legend.setStyleSheet("color: #333; padding: 2px 6px;")
        self.legend.setToolTip("Red over a trace: faint ink. A red bar: the model found no trace there.")
        self.legend.setWordWrap(True)
        for label in (self.scan_title, self.signal_title):  # never let titles widen the panes
            label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        lv.setSpacing(0)
        lv.addWidget(self.scan_title)
        lv.addWidget(self.scan_view, 1)
        lv.addWidget(self.legend)
        right = QWidget()
        rv = QVBoxLayout(right)
        rv.setContentsMargins(0, 0, 0, 0)
        rv.setSpacing(0)
        rv.addWidget(self.signal_title)
        rv.addWidget(self.signal_view, 1)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(left)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([580, 420])
        self.splitter.setChildrenCollapsible(False)
        editor = QWidget()
        ev = QVBoxLayout(editor)
        ev.setContentsMargins(0, 0, 0, 0)
        ev.setSpacing(0)
        ev.addWidget(self.banner_frame)
        ev.addWidget(self.splitter, 1)
        self.editor = editor
        self.stack = QStackedWidget()
        self.stack.addWidget(self.welcome)
        self.stack.addWidget(editor)
        self.setCentralWidget(self.stack)

        self.worklist_dock = self._dock("Worklist", self.worklist, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.review_dock = self._dock("Review", self.review_panel, Qt.DockWidgetArea.RightDockWidgetArea)
        self.lead_dock = self._dock("Leads", self.lead_panel, Qt.DockWidgetArea.RightDockWidgetArea)
        self.calibration_dock = self._dock("Calibration", self.calibration_panel, Qt.DockWidgetArea.RightDockWidgetArea)
        self.tabifyDockWidget(self.lead_dock, self.calibration_dock)
        self.lead_dock.raise_()
        self.resizeDocks([self.worklist_dock, self.review_dock], [270, 275], Qt.Orientation.Horizontal)
        self.worklist_dock.hide()  # shown when a worklist has more than one page
        layout = self.settings.window_layout()
        if layout is not None:  # size, position and docks as the person left them
            self.restoreGeometry(layout[0])
            self.restoreState(layout[1])

        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setMaximumWidth(220)
        self.progress.setTextVisible(True)
        self.progress.hide()
        self.labels_label = QLabel()
        self.labels_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.model_label = QLabel()
        self.model_label.setStyleSheet("color: #243b55; padding: 0 6px;")
        self.rerun_progress = QProgressBar()
        self.rerun_progress.setMaximumWidth(200)
        self.rerun_progress.hide()
        self.rerun_stop = QPushButton("Stop")
        self.rerun_stop.setToolTip(
            "Stop re-running the model on the worklist (pages done so far keep their new proposals)"
        )
        self.rerun_stop.hide()
        self.finetune_status = QPushButton()
        self.finetune_status.setFlat(True)
        self.finetune_status.setToolTip("A fine-tune is running; click to see its progress")
        self.finetune_status.hide()
        self.cursor_label = QLabel("")  # time and mV under the cursor in the signal view
        self.statusBar().addPermanentWidget(self.cursor_label)
        self.statusBar().addPermanentWidget(self.labels_label)
        self.statusBar().addPermanentWidget(self.model_label)
        self.statusBar().addPermanentWidget(self.finetune_status)
        self.statusBar().addPermanentWidget(self.rerun_progress)
        self.statusBar().addPermanentWidget(self.rerun_stop)
        self.statusBar().addPermanentWidget(self.progress)
        self.worklist_rerun = WorklistRerun(
            self.engine,
            self.worklist.model,
            may_replace=self._may_replace,
            options=DigitizeOptions(fs=DEFAULT_FS),
            parent=self,
        )

        self._build_actions()
        self._connect()
        self._show_model()
        self._autosave = QTimer(self)
        self._autosave.setSingleShot(True)
        self._autosave.setInterval(autosave_ms)
        self._autosave.timeout.connect(self.save)
        self._show_labels_location(None)
        self._update_enabled()
        self._mode_set = False
        self._show_editor(False)

    # ------------------------------------------------------------------ building

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(title.lower())
        dock.setWidget(widget)
        dock.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetMovable
            | QDockWidget.DockWidgetFeature.DockWidgetFloatable
            | QDockWidget.DockWidgetFeature.DockWidgetClosable
        )
        self.addDockWidget(area, dock)
        return dock

    def _action(
        self,
        text: str,
        slot: Callable | None = None,
        shortcut: str | QKeySequence.StandardKey | list | None = None,
        *,
        checkable: bool = False,
        tip: str = "",
    ) -> QAction:
        act = QAction(text, self)
        if shortcut is not None:
            if isinstance(shortcut, list):
                act.setShortcuts([QKeySequence(s) for s in shortcut])
            else:
                act.setShortcut(QKeySequence(shortcut))
        act.setCheckable(checkable)
        if tip:
            act.setToolTip(tip)
            act.setStatusTip(tip)
        if slot is not None:
            act.triggered.connect(slot)
        self.addAction(act)  # shortcuts work even when the menu bar is hidden
        return act

    def _build_actions(self) -> None:
        a = self._action
        self.act_open = a(
            "&Open scan…", self.choose_files, QKeySequence.StandardKey.Open, tip="Open scans, photos or PDFs"
        )
        self.act_open_folder = a(
            "Open &folder…", self.choose_folder, "Ctrl+Shift+O", tip="Open every scan in a folder as a worklist"
        )
        self.act_sample = a("Open &sample", self.open_sample, tip="Open the sample scan that ships with ECG Studio")
        self.act_sample.setEnabled(SAMPLE_SCAN.is_file())
        self.act_save = a(
            "&Save",
            lambda: self.save(explicit=True),
            QKeySequence.StandardKey.Save,
            tip="Save the labels now (they are also saved automatically)",
        )
        self.act_export = a("&Export signals…", self.choose_export, "Ctrl+E", tip="Write WFDB, CSV and EDF+ files")
        self.act_labels_folder = a(
            "Show &labels folder", self.show_labels_folder, tip="Open the folder the labels of this page are saved in"
        )
        self.act_quit = a("&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.act_undo = a("&Undo", self.undo, QKeySequence.StandardKey.Undo)
        self.act_redo = a("&Redo", self.redo, ["Ctrl+Shift+Z", "Ctrl+Y"])
        self.act_delete = a("&Delete box", self.delete_box, QKeySequence.StandardKey.Delete)
        self.act_rename = a("Re&name lead…", self.rename_lead, "F2")
        self.act_reextract = a(
            "Re-e&xtract trace in box",
            self.reextract_box,
            "Ctrl+R",
            tip="Trace the model's ink inside the selected box again",
        )
        self.act_accept = a(
            "&Accept page and go to next",
            self.accept_and_next,
            ["Ctrl+Return", "Ctrl+Enter"],
            tip="Mark this page reviewed (corrected if edited), save it, open the next",
        )
        self.act_next = a("&Next page", lambda: self.step(+1), "PgDown")
        self.act_prev = a("&Previous page", lambda: self.step(-1), "PgUp")
        self.act_next_lead = a("Next lead", lambda: self.step_lead(+1), "]")
        self.act_prev_lead = a("Previous lead", lambda: self.step_lead(-1), "[")
        self.act_fit = a("&Fit page", self.fit_views, "F", tip="Show the whole page and every signal (F)")
        self.act_zoom_in = a("Zoom &in", lambda: self.scan_view.zoom_by(1.25), ["Ctrl++", "Ctrl+="])
        self.act_calipers = a(
            "&Calipers",
            lambda on: self.signal_view.show_calipers(on),
            "K",
            checkable=True,
            tip="Measure intervals (ms, bpm) and amplitudes (mV) on the signals: drag the bands' edges (K)",
        )
        self.act_completed = a(
            "Show c&ompleted leads",
            self.show_completion,
            "Ctrl+5",
            checkable=True,
            tip="Draw every lead over the whole record: limb leads from the others, beats placed by the rhythm "
            "strip, dashed in blue where the paper does not show them; exports keep what was read (Ctrl+5)",
        )
        self.act_completed.setChecked(self.settings.layer("completed", False))
        self.signal_view.show_completion(self.act_completed.isChecked())
        self.act_zoom_out = a("Zoom &out", lambda: self.scan_view.zoom_by(0.8), "Ctrl+-")
        self.act_zoom_box = a("&Zoom to selected box", self.zoom_to_selected, "Z")
        self.act_rerun = a(
            "Run the &model again",
            lambda: self.rerun(self.calibration_panel.options(DEFAULT_FS)),
            tip="Digitize the page again with the calibration panel's settings",
        )
        self.act_finetune = a(
            "&Fine-tune on reviewed pages…",
            self.open_finetune,
            tip="Train the model further on the reviewed pages of this worklist",
        )
        self.act_versions = a(
            "Model &versions…", self.show_versions, tip="List the model versions; switch to one or roll back"
        )
        self.act_rerun_worklist = a(
            "&Re-run model on worklist",
            self.rerun_worklist,
            tip="New proposals for the new and proposed pages of the worklist, with the "
            "active model; reviewed and corrected pages are kept",
        )
        self.act_help = a("&Keyboard shortcuts", self.show_shortcuts, QKeySequence.StandardKey.HelpContents)
        self.act_about = a("&About ECG Studio", self.show_about)

        self.tool_actions: dict[Tool, QAction] = {}
        group = QActionGroup(self)
        group.setExclusive(True)
        for tool, text, key, tip in (
            (Tool.SELECT, "Select", "V", "Select, move and resize boxes"),
            (Tool.POINTS, "Drag points", "D", "Drag trace points up or down"),
            (Tool.PEN, "Pen", "P", "Redraw a stretch of trace"),
            (Tool.ERASER, "Eraser", "E", "Erase a stretch of trace"),
            (Tool.ADD_BOX, "Add box", "A", "Draw a new lead box"),
            (Tool.RULER, "Ruler", "R", "Two clicks on the grid set px/mm"),
            (Tool.PULSE, "Pulse", "U", "Two clicks on the calibration pulse set mm/mV"),
        ):
            act = a(text, lambda _=False, t=tool: self.set_tool(t), key, checkable=True, tip=f"{tip} ({key})")
            group.addAction(act)
            self.tool_actions[tool] = act
        self.tool_actions[Tool.SELECT].setChecked(True)
        self.act_snap = a(
            "Snap to ink",
            lambda on: setattr(self.scan_view, "snap", on),
            "S",
            checkable=True,
            tip="Pull pen strokes onto the darkest ink nearby (S)",
        )
        self.act_snap.setChecked(True)
        self.layer_actions: dict[str, QAction] = {}
        for i, (name, text) in enumerate(
            (("boxes", "Boxes"), ("mask", "Mask"), ("traces", "Traces"), ("low", "Low confidence")), start=1
        ):
            act = a(
                text,
                lambda on, n=name: self.set_layer(n, on),
                f"Ctrl+{i}",
                checkable=True,
                tip=f"Show or hide the {text.lower()} layer (Ctrl+{i})",
            )
            act.setChecked(self.settings.layer(name))
            self.scan_view.set_layer(name, act.isChecked())
            self.layer_actions[name] = act
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(int(round(self.settings.mask_opacity * 100)))
        self.opacity.setFixedWidth(90)
        self.opacity.setToolTip("Opacity of the trace mask")
        self.scan_view.set_mask_opacity(self.opacity.value() / 100)
        self.opacity.valueChanged.connect(self._opacity)

        mb = self.menuBar()
        m = mb.addMenu("&File")
        for act in (self.act_open, self.act_open_folder, self.act_sample):
            m.addAction(act)
        self.recent_menu = m.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        m.addSeparator()
        for act in (self.act_save, self.act_export, self.act_labels_folder):
            m.addAction(act)
        m.addSeparator()
        m.addAction(self.act_quit)
        m = mb.addMenu("&Edit")
        for act in (self.act_undo, self.act_redo):
            m.addAction(act)
        m.addSeparator()
        for act in (self.act_delete, self.act_rename, self.act_reextract, self.act_rerun):
            m.addAction(act)
        m = mb.addMenu("&Tools")
        for act in self.tool_actions.values():
            m.addAction(act)
        m.addSeparator()
        m.addAction(self.act_snap)
        m = mb.addMenu("&View")
        for act in self.layer_actions.values():
            m.addAction(act)
        m.addSeparator()
        for act in (
            self.act_fit,
            self.act_zoom_in,
            self.act_zoom_out,
            self.act_zoom_box,
            self.act_calipers,
            self.act_completed,
        ):
            m.addAction(act)
        m.addSeparator()
        for dock in (self.worklist_dock, self.review_dock, self.lead_dock, self.calibration_dock):
            m.addAction(dock.toggleViewAction())
        m = mb.addMenu("&Review")
        for act in (self.act_accept, self.act_next, self.act_prev, self.act_next_lead, self.act_prev_lead):
            m.addAction(act)
        m = mb.addMenu("&Model")
        for act in (self.act_finetune, self.act_rerun_worklist):
            m.addAction(act)
        m.addSeparator()
        m.addAction(self.act_versions)
        m = mb.addMenu("&Help")
        m.addAction(self.act_help)
        m.addAction(self.act_about)

        tb = QToolBar("Tools")
        tb.setObjectName("tools")
        tb.setObjectName("tools")
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        tb.setMovable(False)
        for act in self.tool_actions.values():
            tb.addAction(act)
        tb.addAction(self.act_snap)
        tb.addSeparator()
        tb.addAction(self.act_undo)
        tb.addAction(self.act_redo)
        tb.addSeparator()
        tb.addAction(self.act_fit)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, tb)
        self.tools_bar = tb
        lb = QToolBar("Layers")
        lb.setObjectName("layers")
        lb.setObjectName("layers")
        lb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        lb.setMovable(False)
        lb.addWidget(QLabel(" Show: "))
        for act in self.layer_actions.values():
            lb.addAction(act)
        lb.addWidget(QLabel("  Mask opacity "))
        lb.addWidget(self.opacity)
        lb.addSeparator()
        lb.addAction(self.act_accept)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, lb)
        self.layers_bar = lb

    def _connect(self) -> None:
        self.engine.progress.connect(self._on_progress)
        self.engine.finished.connect(self._on_digitized)
        self.engine.failed.connect(self._on_failed)
        self.worklist.activated.connect(self.open_row)
        self.scan_view.hint.connect(lambda text: self.statusBar().showMessage(text, 8000))
        self.scan_view.ask_lead = self._ask_lead
        #: Asks who signs pages off (gets the name last used, returns a name or None); tests set an answer.
        self.ask_reviewer: Callable[[str], str | None] = self._ask_reviewer
        self._reviewer_confirmed = False
        self.scan_view.zoomChanged.connect(lambda _: setattr(self.settings, "scan_zoom", self.scan_view.zoom_over_fit))
        self.scan_view.rulerMeasured.connect(self._on_ruler)
        self.scan_view.pulseMeasured.connect(self._on_pulse)
        self.signal_view.leadClicked.connect(self._on_lead_clicked)
        self.signal_view.cursorMoved.connect(self.cursor_label.setText)
        self.review_panel.acceptRequested.connect(self.accept_and_next)
        self.review_panel.reviewer.setText(self.settings.reviewer)
        self.review_panel.reviewerChanged.connect(self._set_reviewer)
        self.lead_panel.reextractRequested.connect(self.reextract_box)
        self.lead_panel.deleteRequested.connect(self.delete_box)
        self.calibration_panel.rulerRequested.connect(lambda: self.set_tool(Tool.RULER))
        self.calibration_panel.pulseRequested.connect(lambda: self.set_tool(Tool.PULSE))
        self.calibration_panel.rerunRequested.connect(self.rerun)
        self.act_finetune.setIconText("Fine-tune…")  # the worklist's buttons show the short text
        self.act_rerun_worklist.setIconText("Re-run model")
        self.worklist.add_action_buttons([self.act_finetune, self.act_rerun_worklist])
        self.finetune_runner.progress.connect(self._on_finetune_progress)
        self.finetune_runner.finished.connect(self._on_finetune_finished)
        self.finetune_runner.failed.connect(self._on_finetune_failed)
        self.finetune_status.clicked.connect(self.open_finetune)
        self.worklist_rerun.progress.connect(self._on_rerun_progress)
        self.worklist_rerun.replaced.connect(self._on_rerun_replaced)
        self.worklist_rerun.finished.connect(self._on_rerun_finished)
        self.rerun_stop.clicked.connect(self.worklist_rerun.stop)

    # ------------------------------------------------------------------ messages

    def show_banner(self, text: str, level: str = "error", *, below: bool = False) -> None:
        """A message across the top of the editor (errors, warnings) that stays until dismissed;
        ``below``: under the message shown now, if any, at the more serious of the two levels."""
        if below and self.banner_frame.isVisible() and self.banner.text():
            text = f"{self.banner.text()}\n\n{text}"
            level = min(level, self._banner_level, key=["error", "warning", "info"].index)
        self._banner_level = level
        colors = {
            "error": ("#fdecea", "#8a1c1c", "#e0a1a1"),
            "warning": ("#fff6e0", "#6b4a00", "#e6cf8f"),
            "info": ("#e8f1fd", "#173f73", "#a9c6ee"),
        }
        bg, fg, border = colors.get(level, colors["info"])
        self.banner_frame.setStyleSheet(
            f"QFrame {{ background: {bg}; border-bottom: 1px solid {border}; }}"
            f"QLabel {{ color: {fg}; font-size: 13px; border: none; }}"
        )
        self.banner.setText(text)
        self.banner_frame.show()
        self.statusBar().showMessage(text.split("\n")[0], 15000)
        log.info("%s: %s", level, text)

    def _show_assumptions(self, doc: PageDocument | None) -> None:
        """Say on the page what the engine assumed instead of measuring (also marked in the
        calibration panel), so a guess is never taken for a measurement."""
        if doc is None or not doc.assumptions:
            return
        lines = "\n".join(f"- {a.text}" for a in doc.assumptions)
        what = {a.what for a in doc.assumptions}
        todo = []
        if what - {"layout"}:
            todo.append("set the right value in the calibration panel if you know it")
        if "layout" in what:
            todo.append("where a printed name says another lead, select the box and rename it (F2)")
        self.show_banner(
            f"Some values of this page were assumed, not measured:\n{lines}\n"
            f"Check them against the paper; {'; '.join(todo)}.",
            "warning",
            below=True,
        )

    def clear_banner(self) -> None:
        self.banner.setText("")
        self.banner_frame.hide()

    def banner_text(self) -> str:
        return self.banner.text() if self.banner_frame.isVisibleTo(self) else ""

    def _show_labels_location(self, item: WorkItem | None) -> None:
        if item is None:
            self.labels_label.setText(f"Labels of single files go to {self.labels_root}")
        else:
            self.labels_label.setText(f"Labels: {item.label_path}")
        self.labels_label.setToolTip(self.labels_label.text())

    # ------------------------------------------------------------------ opening

    def choose_files(self) -> None:
        patterns = " ".join(f"*{s}" for s in sorted(SUPPORTED_SUFFIXES))
        files, _ = QFileDialog.getOpenFileNames(
            self, "Open ECG scans, photos or PDFs", "", f"ECG pages ({patterns});;All files (*)"
        )
        if files:
            self.open_paths(files)

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a folder of ECG scans")
        if folder:
            self.open_paths([folder])

    def open_sample(self) -> None:
        if not SAMPLE_SCAN.is_file():
            self.show_banner(f"The sample scan is not installed ({SAMPLE_SCAN}); open one of your own scans.")
            return
        self.open_paths([SAMPLE_SCAN])

    def open_paths(self, paths: Iterable[str | os.PathLike[str]]) -> bool:
        """Make a worklist of files and folders and open its first page; False if nothing opened."""
        paths = [Path(p) for p in paths]
        try:
            items = items_for_paths(paths, user_root=self.labels_root)
        except EcgStudioError as exc:
            self.show_banner(str(exc))
            self._show_editor(self.document is not None)
            return False
        if not items:
            self.show_banner(
                f"No scans, photos or PDFs found in {', '.join(str(p) for p in paths)} "
                f"(looked for {', '.join(sorted(SUPPORTED_SUFFIXES))}).",
                "warning",
            )
            return False
        self._flush()
        self.worklist_rerun.stop()  # its pages are no longer the worklist's
        for p in paths:
            self.settings.add_recent(p)
        self.worklist.model.set_items(items)
        self.worklist.update_summary()
        self.worklist_dock.setVisible(len(items) > 1 or any(p.is_dir() for p in paths))
        self.clear_banner()
        rows = self.worklist.visible_rows()
        self.open_row(rows[0] if rows else 0)
        return True

    def _read_pages(self, source: Path) -> list[Page]:
        if self._pages_cache is not None and self._pages_cache[0] == source:
            return self._pages_cache[1]
        pages = read_pages(source)
        self._pages_cache = (source, pages)
        return pages

    def open_row(self, row: int) -> None:
        """Open worklist item ``row``: its saved labels if any, else run the model on it."""
        model = self.worklist.model
        if not 0 <= row < len(model.items):
            return
        self._flush()
        self._cancel_job()
        self._set_document(None)
        self.clear_banner()
        self.current_row = row
        item = model.items[row]
        self.worklist.show_current(row)
        self._show_editor(True)
        self._show_labels_location(item)
        try:
            pages = self._read_pages(item.page.source)
        except EcgStudioError as exc:
            self.scan_view.set_image(None)
            self.review_panel.set_status_text("CANNOT READ", "error")
            self.show_banner(f"Cannot open {item.page.source.name}: {exc}")
            self._update_title()
            return
        if len(pages) > 1 and item.page.n_pages != len(pages):
            n = len(pages)
            model.replace_item(row, pages_of(item, n))
            item = model.items[row]
            self.worklist.show_current(row)
            self._show_labels_location(item)
        page = pages[min(item.page.page_index, len(pages) - 1)]
        zoom = self.settings.scan_zoom  # before the new page is fitted
        self.scan_view.set_image(page.image)
        self.scan_view.show_zoomed(zoom)
        self.scan_title.setText(f"Scan: {item.page.title}")
        identity = ImageIdentity.from_array(item.page.source, page.image)
        opening = self.session.open(item.label_path, identity)
        if opening.record is not None:
            record = opening.record
            self._open_document(
                PageDocument(item.page, page.image, record, label_path=item.label_path, reviewer=self.settings.reviewer)
            )
            r = record.review
            by = f" by {r.reviewer}" if r.reviewer else ""
            self.statusBar().showMessage(f"Opened the saved labels ({r.status.value}{by}).", 8000)
            self._show_assumptions(self.document)
            return
        if opening.message:
            self.show_banner(opening.message, opening.level)
        self._start_job(
            page.image,
            DigitizeOptions(fs=DEFAULT_FS),
            mode="open",
            row=row,
            page=item.page,
            identity=identity,
            label_path=item.label_path,
        )

    def _start_job(self, image, options: DigitizeOptions, **info: Any) -> None:
        job = self.engine.submit(image, options)
        self._job = {"id": job, "image": image, **info}
        self.progress.setValue(0)
        self.progress.setFormat("Digitizing… %p%")
        self.progress.show()
        if info["mode"] == "open":
            self.review_panel.set_status_text("DIGITIZING…", ReviewStatus.NEW.value)
        self.statusBar().showMessage("Running the model on the page…")
        self._update_enabled()

    def _cancel_job(self) -> None:
        if self._job is not None:
            self.engine.cancel(self._job["id"])
            self._job = None
            self.progress.hide()

    @property
    def busy(self) -> bool:
        """True while the model runs on the open page."""
        return self._job is not None

    def _on_progress(self, job: int, stage: str, fraction: float) -> None:
        if self._job is None or job != self._job["id"]:
            return
        self.progress.setValue(int(round(100 * fraction)))
        self.progress.setFormat(f"{STAGE_NAMES.get(stage, stage)}… %p%")
        self.statusBar().showMessage(f"{STAGE_NAMES.get(stage, stage)}…")

    def _on_digitized(self, job: int, result) -> None:
        if self._job is None or job != self._job["id"]:
            return
        info, self._job = self._job, None
        self.progress.hide()
        seconds = sum(result.timings_s.values())
        if info["mode"] == "rerun":
            if self.document is not None and self.document.page == info["page"]:
                self.document.replace_digitization(result)
                self.statusBar().showMessage(
                    f"New proposals from the model ({seconds:.1f} s); Ctrl+Z brings back the previous ones.", 10000
                )
            self._update_enabled()
            return
        doc = PageDocument.from_digitization(
            info["page"],
            info["image"],
            result,
            identity=info["identity"],
            label_path=info["label_path"],
            reviewer=self.settings.reviewer,
        )
        self._open_document(doc)
        self.save()
        self._show_assumptions(doc)
        low = sorted((c, lead) for lead, c in result.confidence.items())[:3]
        hint = ", ".join(f"{lead} {c:.2f}" for c, lead in low)
        self.statusBar().showMessage(f"Proposals ready in {seconds:.1f} s. Lowest confidence: {hint}.", 15000)

    def _on_failed(self, job: int, message: str) -> None:
        if self._job is None or job != self._job["id"]:
            return
        info, self._job = self._job, None
        self.progress.hide()
        name = info["page"].title
        if info["mode"] == "open":
            self.review_panel.set_status_text("NOT DIGITIZED", "error")
            self.show_banner(
                f"The model could not digitize {name}.\n{message}\n"
                "Nothing was saved for this page; other pages and saved labels are unaffected."
            )
        else:
            self.show_banner(f"Running the model again on {name} failed; your edits are unchanged.\n{message}")
        self._update_enabled()

    def _open_document(self, doc: PageDocument) -> None:
        self._set_document(doc)
        self._show_editor(True)

    def _show_editor(self, editor: bool) -> None:
        """The editor with its panels and tool bars, or the welcome panel alone."""
        if editor == (self.stack.currentWidget() is self.editor) and self._mode_set:
            return
        self._mode_set = True
        self.stack.setCurrentWidget(self.editor if editor else self.welcome)
        for widget in (self.review_dock, self.lead_dock, self.calibration_dock, self.tools_bar, self.layers_bar):
            widget.setVisible(editor)
        if editor:
            self.lead_dock.raise_()

    def _set_document(self, doc: PageDocument | None) -> None:
        old = self._bridge
        if old is not None:
            old.detach()
        self.document = doc
        self._bridge = bridge = None if doc is None else DocumentBridge(doc)
        if bridge is not None:
            self.scan_view.set_document(bridge)
            bridge.historyChanged.connect(self._on_edit)
            bridge.cleanChanged.connect(self._update_title)
            bridge.selectionChanged.connect(self._on_selection)
        elif old is not None:
            self.scan_view.set_document(None)
        for view in (self.signal_view, self.review_panel, self.lead_panel, self.calibration_panel):
            view.set_document(bridge)
        self._update_title()
        self._update_enabled()

    # ------------------------------------------------------------------ editing

    def _on_edit(self, _index: int = 0) -> None:
        self._update_title()
        self._update_enabled()
        if self.document is not None and self.document.dirty:
            self._autosave.start()

    def _on_selection(self, k: int) -> None:
        self._update_enabled()

    def set_tool(self, tool: Tool) -> None:
        self.tool_actions[tool].setChecked(True)
        self.scan_view.set_tool(tool)

    def show_completion(self, on: bool) -> None:
        """Draw (or not) every lead completed over the whole record in the signal view."""
        self.act_completed.setChecked(on)
        self.signal_view.show_completion(on)
        self.settings.set_layer("completed", on)

    def set_layer(self, name: str, on: bool) -> None:
        self.layer_actions[name].setChecked(on)
        self.scan_view.set_layer(name, on)
        self.settings.set_layer(name, on)

    def _opacity(self, value: int) -> None:
        self.scan_view.set_mask_opacity(value / 100)
        self.settings.mask_opacity = value / 100
        if value > 0 and not self.layer_actions["mask"].isChecked():
            self.set_layer("mask", True)

    def _ask_lead(self, leads: list[str]) -> str | None:
        """Which lead a new box shows, where every lead already has one (None: cancelled)."""
        lead, ok = QInputDialog.getItem(
            self,
            "Lead of the new box",
            "Every lead of this page already has a box.\nWhich lead does the new box show (e.g. a rhythm strip)?",
            leads,
            0,
            False,
        )
        return lead if ok else None

    def undo(self) -> None:
        if self.document is not None:
            self.document.history.undo()

    def redo(self) -> None:
        if self.document is not None:
            self.document.history.redo()

    def delete_box(self) -> None:
        doc = self.document
        if doc is not None and doc.selected >= 0:
            lead = doc.boxes[doc.selected].lead
            doc.delete_box(doc.selected)
            self.statusBar().showMessage(f"Deleted the {lead} box (Ctrl+Z brings it back).", 8000)

    def rename_lead(self) -> None:
        if self.document is not None and self.document.selected >= 0:
            self.lead_dock.show()
            self.lead_dock.raise_()
            self.lead_panel.lead.setFocus()
            self.lead_panel.lead.showPopup()

    def reextract_box(self) -> None:
        doc = self.document
        if doc is None or doc.selected < 0:
            self.statusBar().showMessage("Select a box first.", 5000)
            return
        try:
            doc.reextract_box(doc.selected)
        except ValueError as exc:
            self.show_banner(str(exc), "warning")

    def rerun(self, options: DigitizeOptions) -> None:
        doc = self.document
        if doc is None or self.busy:
            return
        self._start_job(doc.image, options, mode="rerun", page=doc.page)

    def step_lead(self, step: int) -> None:
        doc = self.document
        if doc is not None and doc.boxes:
            k = doc.selected
            doc.select((k + step) % len(doc.boxes) if k >= 0 else (0 if step > 0 else len(doc.boxes) - 1))

    def fit_views(self) -> None:
        self.scan_view.fit()
        self.signal_view.reset_view()

    def zoom_to_selected(self) -> None:
        if self.document is not None and self.document.selected >= 0:
            self.scan_view.zoom_to_box(self.document.selected)

    def _on_lead_clicked(self, lead: str) -> None:
        if self.document is not None:
            self.document.select_lead(lead)

    def _on_ruler(self, a: QPointF, b: QPointF) -> None:
        doc = self.document
        if doc is None:
            return
        mm = self.calibration_panel.ruler_mm.value()
        axis = self.calibration_panel.ruler_axis()
        if axis == "auto":
            axis = "x" if abs(b.x() - a.x()) >= abs(b.y() - a.y()) else "y"
        try:
            px = doc.apply_ruler((a.x(), a.y()), (b.x(), b.y()), mm, axis=axis)
        except ValueError as exc:
            self.statusBar().showMessage(str(exc), 8000)
            return
        which = {"both": "both axes", "x": "horizontal", "y": "vertical"}[axis]
        text = f"Ruler: {px * mm:.1f} px over {mm:g} mm = {px:.3f} px/mm ({which}). Signals updated."
        self.calibration_panel.show_result(text)
        self.calibration_dock.show()
        self.calibration_dock.raise_()
        self.statusBar().showMessage(text, 10000)

    def _on_pulse(self, a: QPointF, b: QPointF) -> None:
        doc = self.document
        if doc is None:
            return
        try:
            gain = doc.apply_pulse((a.x(), a.y()), (b.x(), b.y()))
        except ValueError as exc:
            self.statusBar().showMessage(str(exc), 8000)
            return
        text = f"Pulse: {abs(b.y() - a.y()):.1f} px tall = {gain:.2f} mm/mV. Signals updated."
        self.calibration_panel.show_result(text)
        self.calibration_dock.show()
        self.calibration_dock.raise_()
        self.statusBar().showMessage(text, 10000)

    def _confirm_reviewer(self) -> bool:
        """Who signs pages off, asked at the first sign-off of the session (the name last used
        offered), never taken silently from a field; False when the person cancels."""
        if self._reviewer_confirmed:
            return True
        name = self.ask_reviewer(self.settings.reviewer)
        if not name or not name.strip():
            self.statusBar().showMessage("Not signed off: a page is signed off under a reviewer's name.", 8000)
            return False
        self._set_reviewer(name.strip())
        self._reviewer_confirmed = True
        return True

    def _ask_reviewer(self, current: str) -> str | None:
        name, ok = QInputDialog.getText(
            self, "Who is signing off?", "Pages you accept are signed off under this name:", text=current
        )
        return name if ok else None

    def _set_reviewer(self, name: str) -> None:
        self.settings.reviewer = name
        name = self.settings.reviewer
        self.review_panel.reviewer.setText(name)
        if self.document is not None:
            self.document.reviewer = name

    # ------------------------------------------------------------------ review, saving, export

    def accept_and_next(self) -> None:
        doc = self.document
        if doc is None or not self._confirm_reviewer():
            return
        doc.accept()
        self.save()
        self.statusBar().showMessage(f"{doc.page.title}: {doc.review.status.value} by {doc.review.reviewer}.", 8000)
        self.step(+1)

    def step(self, step: int) -> None:
        row = self.worklist.neighbour(self.current_row, step)
        if row is None:
            self.statusBar().showMessage(
                "This is the last page of the worklist." if step > 0 else "This is the first page of the worklist.",
                5000,
            )
            return
        self.open_row(row)

    def save(self, explicit: bool = False) -> bool:
        """Write the open page's labels (atomically); True when saved or nothing needed saving."""
        self._autosave.stop()
        doc = self.document
        if doc is None:
            return True
        if doc.label_path is None:
            return False
        try:
            saved = self.session.save(doc, explicit=explicit)
        except LabelConflictError as exc:
            self.show_banner(
                f"Not saved: {exc}.\nYour edits are still here. Press Ctrl+S to save them anyway (the other "
                f"file is kept as {doc.label_path.name}.conflict-<time>), or open the page again to see the other.",
                "warning",
            )
            return False
        except (LabelFormatError, OSError) as exc:
            self.show_banner(
                f"Could not save the labels to {doc.label_path}: {exc}\n"
                "Your edits are still here; fix the problem (disk full? permissions?) and press Ctrl+S."
            )
            return False
        if saved is None:
            return True
        if saved.kept is not None:
            self.statusBar().showMessage(f"Kept the old label file as {saved.kept.name}", 8000)
        if 0 <= self.current_row < len(self.worklist.model.items):
            item = self.worklist.model.items[self.current_row]
            if item.page == doc.page:
                item.update_from(saved.record)
                self.worklist.model.item_changed(self.current_row)
        self.statusBar().showMessage(f"Saved to {doc.label_path}", 4000)
        self._update_title()
        return True

    def _flush(self) -> None:
        """Save pending edits of the open page now (before switching pages or closing)."""
        if self.document is not None and self.document.dirty:
            self.save()

    def choose_export(self) -> None:
        if self.document is None:
            return
        folder = QFileDialog.getExistingDirectory(self, "Export signals (WFDB, CSV, EDF+) to folder")
        if folder:
            self.export_to(Path(folder))

    def export_to(self, folder: Path) -> list[Path]:
        """Write the open page's signals as WFDB, CSV and EDF+ (and a JSON sidecar) into ``folder``:
        completed over the whole record while completed leads are shown, else as read."""
        doc = self.document
        if doc is None:
            return []
        completed = self.act_completed.isChecked()
        try:
            files = export_signals(doc, folder, completed=completed)
        except (ValueError, OSError, EcgStudioError) as exc:
            self.show_banner(f"Could not export to {folder}: {exc}")
            return []
        what = "completed leads (CSV and JSON say which samples were read)" if completed else "signals as read"
        self.statusBar().showMessage(f"Exported {len(files)} files of {what} to {folder}", 8000)
        return files

    def show_labels_folder(self) -> None:
        item = (
            self.worklist.model.items[self.current_row]
            if 0 <= self.current_row < len(self.worklist.model.items)
            else None
        )
        folder = item.labels_dir if item else self.labels_root
        folder.mkdir(parents=True, exist_ok=True)
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))

    # ------------------------------------------------------------------ the model: fine-tune, versions, re-run

    def finetune_selection(self) -> tuple[list[Path], int]:
        """``(label files of the reviewed and corrected pages, number of other pages)`` of the worklist.

        Pending edits are saved first and every page's status is read again from its label file.
        """
        self._flush()
        model = self.worklist.model
        labels = trainable_label_files(model.items)
        model.item_changed_all()
        return labels, len(model.items) - len(labels)

    def _finetune_precheck(self) -> list[Path] | None:
        """The label files to fine-tune on, or None after saying why there are too few."""
        if not self.worklist.model.items:
            self.show_banner(
                "Open a folder of reviewed pages first: a fine-tune learns from the reviewed and "
                "corrected pages of the open worklist.",
                "warning",
            )
            return None
        labels, _others = self.finetune_selection()
        if len(labels) < 2:
            have = "No page of this worklist is" if not labels else "Only 1 page of this worklist is"
            self.show_banner(
                f"{have} reviewed yet, and a fine-tune needs at least 2 (one to train on, one held out "
                "to check the new model). Review pages and accept them (Ctrl+Enter) first. "
                "The active model is unchanged.",
                "warning",
            )
            return None
        return labels

    def _finetune_dialog(self) -> FinetuneDialog:
        if self.finetune_dialog is None:
            dialog = FinetuneDialog(self, minutes=self.settings.finetune_minutes)
            dialog.startRequested.connect(self.start_finetune)
            dialog.cancelRequested.connect(self.cancel_finetune)
            dialog.rerunRequested.connect(self.rerun_worklist)
            dialog.versionsRequested.connect(self.show_versions)
            self.finetune_dialog = dialog
        return self.finetune_dialog

    def open_finetune(self) -> None:
        """The Fine-tune action: show the dialog (its progress when a fine-tune is running)."""
        if not self.finetune_runner.running:
            labels = self._finetune_precheck()
            if labels is None:
                return
            dialog = self._finetune_dialog()
            dialog.set_selection(labels, len(self.worklist.model.items) - len(labels), base=self._active_name())
        dialog = self._finetune_dialog()
        dialog.show()
        dialog.raise_()
        dialog.activateWindow()

    def start_finetune(self, minutes: float) -> bool:
        """Start fine-tuning on the worklist's reviewed pages within ``minutes``; False if it cannot start."""
        if self.finetune_runner.running:
            return False
        labels = self._finetune_precheck()
        dialog = self._finetune_dialog()
        if labels is None:
            dialog.show_result(self.banner_text() or "Too few reviewed pages to fine-tune.", "error")
            return False
        dialog.set_selection(labels, len(self.worklist.model.items) - len(labels), base=self._active_name())
        self.settings.finetune_minutes = minutes
        request = FinetuneRequest(tuple(labels), replace(self.finetune_config, minutes=float(minutes)), self.data_dir)
        dialog.set_running(True)
        self.finetune_runner.start(request)
        self.finetune_status.setText("Fine-tuning…")
        self.finetune_status.setVisible(self.finetune_runner.running)
        self.statusBar().showMessage(
            f"Fine-tuning on {len(labels)} reviewed pages (at most {minutes:g} minutes); you can keep working.", 8000
        )
        self._update_enabled()
        return True

    def cancel_finetune(self) -> None:
        if self.finetune_runner.running:
            self.finetune_runner.cancel()
            self.finetune_status.setText("Cancelling the fine-tune…")

    def _on_finetune_progress(self, p) -> None:
        if self.finetune_dialog is not None:
            self.finetune_dialog.show_progress(p)
        self.finetune_status.setText(f"Fine-tuning: {int(round(100 * p.fraction))} %")

    def _finetune_over(self) -> None:
        self.finetune_status.hide()
        self._update_enabled()

    def _on_finetune_finished(self, result) -> None:
        self._finetune_over()
        text = finetune_result_text(result)
        self._finetune_dialog().show_result(text, "ok" if result.activated else "info", can_rerun=result.activated)
        self.show_banner(text, "info")
        if result.activated:
            self._model_changed()
        if self.versions_dialog is not None and self.versions_dialog.isVisible():
            self.versions_dialog.refresh()

    def _on_finetune_failed(self, message: str, cancelled: bool) -> None:
        self._finetune_over()
        text = finetune_failure_text(message, cancelled)
        level = "warning" if cancelled else "error"
        self._finetune_dialog().show_result(text, level)
        self.show_banner(text, level)

    def show_versions(self) -> None:
        """The Model versions dialog: the versions, the active one, switch and roll back."""
        if self.versions_dialog is None:
            self.versions_dialog = ModelVersionsDialog(self.data_dir, self)
            self.versions_dialog.activeChanged.connect(self._on_version_switched)
        self.versions_dialog.refresh()
        self.versions_dialog.show()
        self.versions_dialog.raise_()
        self.versions_dialog.activateWindow()

    def _on_version_switched(self, version: registry.ModelVersion) -> None:
        self._model_changed()
        self.show_banner(
            f"Now using model {version.name} for new proposals. Pages already digitized keep their "
            "proposals: Model > Re-run model on worklist updates the new and proposed ones "
            "(reviewed pages are never overwritten).",
            "info",
        )

    def _model_changed(self) -> None:
        """The active model version changed: the digitizer is made again before the next page."""
        self.engine.reload()
        self._show_model()

    def _active_name(self) -> str:
        try:
            return registry.active_version(data_dir=self.data_dir).name
        except (EcgStudioError, OSError):
            return ""

    def _show_model(self) -> None:
        try:
            version = registry.active_version(data_dir=self.data_dir)
        except (EcgStudioError, OSError) as exc:
            self.model_label.setText("Model: unavailable")
            self.model_label.setToolTip(str(exc))
            return
        self.model_label.setText(f"Model: {version.name}")
        self.model_label.setToolTip(
            f"Active model version {version.name} ({version.card.version})\n{version.path}\n"
            "Model > Model versions to switch or roll back"
        )

    def rerun_worklist(self) -> None:
        """Run the active model again on the worklist's new and proposed pages and mark what changed."""
        if self.worklist_rerun.running:
            return
        if not self.worklist.model.items:
            self.show_banner(
                "Open a scan or a folder first: the model is re-run on the pages of the worklist.", "warning"
            )
            return
        self._flush()
        exclude = (self._job["row"],) if self._job is not None and self._job.get("row") is not None else ()
        self.worklist_rerun.start(exclude=exclude)
        self.worklist.show_changes(True)
        self.rerun_progress.setRange(0, max(1, self.worklist_rerun.summary.planned))
        self.rerun_progress.setValue(0)
        self.rerun_progress.setFormat("Re-running %v/%m")
        self.rerun_progress.show()
        self.rerun_stop.show()
        self._update_enabled()

    def _on_rerun_progress(self, done: int, total: int, title: str) -> None:
        self.rerun_progress.setRange(0, max(1, total))
        self.rerun_progress.setValue(done)
        self.statusBar().showMessage(f"Re-running the model on {title} ({done + 1} of {total})…", 5000)

    def _may_replace(self, row: int) -> bool:
        """False when the page of ``row`` is open with edits or a review (never overwrite people's work)."""
        doc = self.document
        items = self.worklist.model.items
        if doc is None or not 0 <= row < len(items) or doc.page != items[row].page:
            return True
        return not doc.dirty and doc.review.status in (ReviewStatus.NEW, ReviewStatus.PROPOSED)

    def _on_rerun_replaced(self, row: int) -> None:
        doc = self.document
        items = self.worklist.model.items
        if doc is not None and row == self.current_row and 0 <= row < len(items) and doc.page == items[row].page:
            banner = self.banner_text()
            self.open_row(row)  # the new proposal, from its label file
            if banner:
                self.show_banner(banner, "info")

    def _on_rerun_finished(self, summary: RerunSummary) -> None:
        self.rerun_progress.hide()
        self.rerun_stop.hide()
        self.worklist.model.item_changed_all()
        self.show_banner(summary.text(), "warning" if summary.failed else "info")
        self._update_enabled()

    # ------------------------------------------------------------------ misc

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        recent = self.settings.recent
        for path in recent:
            act = self.recent_menu.addAction(path)
            act.triggered.connect(lambda _=False, p=path: self.open_paths([p]))
        if not recent:
            self.recent_menu.addAction("(none yet)").setEnabled(False)
        else:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear the list").triggered.connect(self.settings.clear_recent)

    def _update_title(self, *_: object) -> None:
        doc = self.document
        if doc is None:
            self.setWindowTitle("ECG Studio")
            return
        star = " *" if doc.dirty else ""
        self.setWindowTitle(f"{doc.page.title} [{doc.review.status.value}]{star} - ECG Studio")

    def _update_enabled(self) -> None:
        doc = self.document
        has = doc is not None
        sel = has and doc.selected >= 0
        for act in (
            self.act_save,
            self.act_export,
            self.act_accept,
            self.act_rerun,
            self.act_next_lead,
            self.act_prev_lead,
        ):
            act.setEnabled(has)
        self.act_rerun.setEnabled(has and not self.busy)
        can_undo = has and doc.history.can_undo
        can_redo = has and doc.history.can_redo
        self.act_undo.setEnabled(can_undo)
        self.act_redo.setEnabled(can_redo)
        undo = f"Undo {doc.history.undo_text.lower()}" if can_undo else "Undo"
        redo = f"Redo {doc.history.redo_text.lower()}" if can_redo else "Redo"
        self.act_undo.setToolTip(f"{undo} (Ctrl+Z)")
        self.act_redo.setToolTip(f"{redo} (Ctrl+Shift+Z)")
        self.act_undo.setStatusTip(undo)
        self.act_redo.setStatusTip(redo)
        for act in (self.act_delete, self.act_rename, self.act_zoom_box):
            act.setEnabled(sel)
        self.act_reextract.setEnabled(sel and doc.masks is not None)
        n = len(self.worklist.model.items)
        self.act_next.setEnabled(n > 1)
        self.act_prev.setEnabled(n > 1)
        self.act_finetune.setEnabled(n > 0 or self.finetune_runner.running)
        self.act_rerun_worklist.setEnabled(n > 0 and not self.worklist_rerun.running)

    def show_shortcuts(self) -> None:
        rows = "".join(f"<tr><td>{what}</td><td><b>{keys}</b></td></tr>" for what, keys in SHORTCUTS)
        QMessageBox.information(self, "Keyboard shortcuts", f"<table cellspacing=4>{rows}</table>")

    def show_about(self) -> None:
        from .. import __version__

        QMessageBox.about(
            self,
            "About ECG Studio",
            f"ECG Studio {__version__}<br>Paper ECGs to calibrated 12-lead signals.<br>"
            f"Labels of single files: {self.labels_root}",
        )

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event) -> None:
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.open_paths(paths)

    def closeEvent(self, event) -> None:
        if self.finetune_runner.running and self.isVisible():
            answer = QMessageBox.question(
                self,
                "A fine-tune is running",
                "A fine-tune is running. Closing ECG Studio stops it; nothing of it is saved and the active "
                "model stays as it is. Close anyway?",
            )
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
        self._flush()
        self._cancel_job()
        self.worklist_rerun.stop()
        self.finetune_runner.shutdown()
        self._set_document(None)
        self.engine.shutdown()
        self.settings.set_window_layout(self.saveGeometry(), self.saveState())
        self.settings.sync()
        super().closeEvent(event)
