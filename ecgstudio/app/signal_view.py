"""The 12 signals on ECG paper (pyqtgraph): pink 1 mm / 5 mm grid at 25 mm/s and 10 mm/mV.

Leads are stacked top to bottom in :data:`~ecgstudio.paper.LEAD_NAMES` order, each on its own
baseline, against time in seconds; the aspect ratio is locked so a grid square is square, as on
paper.  Blank stretches are samples the page does not show (or that were erased).  Red marks low
confidence: over the signal where the trace ink was faint, on the baseline where no trace was
found inside the lead's window.  With completion shown, every lead is drawn over the whole
record, the stretches not on the paper dashed in blue (:mod:`ecgstudio.restore`), with a legend.
Click a lead to select it.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QFont

from ..editing.calipers import Calipers, readout
from ..editing.document import Change, PageDocument
from ..restore import FILLED
from .document_bridge import DocumentBridge, follow

ROW_MV = 3.0  # vertical distance between lead baselines, mV
MIN_MINOR_PX = 4.0  # hide the 1 mm grid when its lines would be closer than this on screen
MM_PER_S, MM_PER_MV = 25.0, 10.0  # the look of the plot (not the page's calibration)
PAPER = QColor(255, 250, 250)
MINOR = QColor(250, 205, 215)
MAJOR = QColor(235, 140, 165)
INK = QColor(20, 20, 20)
SELECTED = QColor(0, 80, 200)
LOW = QColor(230, 30, 30, 120)
COMPLETED = QColor(40, 110, 200)


def _grid_lines(x1: float, y0: float, y1: float, dx: float, dy: float) -> tuple[np.ndarray, np.ndarray]:
    """Vertical and horizontal segments (``connect='pairs'``) every ``dx`` s and ``dy`` mV."""
    xs = np.arange(0.0, x1 + 1e-9, dx)
    ys = np.arange(np.floor(y0 / dy) * dy, y1 + 1e-9, dy)
    vx = np.repeat(xs, 2)
    vy = np.tile([y0, y1], len(xs))
    hx = np.tile([0.0, x1], len(ys))
    hy = np.repeat(ys, 2)
    return np.r_[vx, hx], np.r_[vy, hy]


class SignalView(pg.PlotWidget):
    """Stacked 12-lead plot of a :class:`~ecgstudio.editing.document.PageDocument`'s signals."""

    leadClicked = Signal(str)
    cursorMoved = Signal(str)  # the time and voltage under the cursor, as text

    def __init__(self, parent=None) -> None:
        super().__init__(parent, background=PAPER)
        self.document: PageDocument | None = None
        self._bridge: DocumentBridge | None = None
        plot = self.getPlotItem()
        plot.setMenuEnabled(False)
        plot.hideButtons()
        plot.showGrid(False, False)
        plot.setLabel("bottom", "time", units="s")
        vb = plot.getViewBox()
        vb.setAspectLocked(True, ratio=MM_PER_S / MM_PER_MV)
        vb.disableAutoRange()
        vb.setMouseEnabled(x=True, y=True)
        font = QFont()
        font.setPointSize(10)
        font.setBold(True)
        left = plot.getAxis("left")
        left.setStyle(tickFont=font, tickLength=0)
        left.setTextPen(pg.mkPen(INK))
        left.setPen(pg.mkPen(None))
        plot.getAxis("bottom").setTextPen(pg.mkPen(INK))
        self._minor = pg.PlotCurveItem(pen=pg.mkPen(MINOR, width=0.8), connect="pairs")
        self._major = pg.PlotCurveItem(pen=pg.mkPen(MAJOR, width=1.2), connect="pairs")
        for item in (self._minor, self._major):
            item.setZValue(-10)
            plot.addItem(item)
        self._selection = pg.LinearRegionItem(
            orientation="horizontal", movable=False, brush=pg.mkBrush(0, 80, 200, 22), pen=pg.mkPen(None)
        )
        self._selection.setZValue(-20)
        self._selection.hide()
        plot.addItem(self._selection)
        self._curves: dict[str, pg.PlotCurveItem] = {}
        self._lows: dict[str, pg.PlotCurveItem] = {}
        self._missing: dict[str, pg.PlotCurveItem] = {}
        self._names: tuple[str, ...] = ()
        self._duration = 0.0
        self._selected = ""
        # Calipers (K): two instants and two levels a person drags, read out in ms, bpm and mV;
        # and the time and voltage under the cursor.
        self._time_calipers = pg.LinearRegionItem(
            orientation="vertical", brush=pg.mkBrush(255, 170, 0, 40), pen=pg.mkPen(200, 110, 0, width=2)
        )
        self._level_calipers = pg.LinearRegionItem(
            orientation="horizontal", brush=pg.mkBrush(0, 160, 120, 30), pen=pg.mkPen(0, 130, 100, width=2)
        )
        self._caliper_text = pg.TextItem(color=(120, 60, 0), anchor=(0, 1))
        for item in (self._time_calipers, self._level_calipers, self._caliper_text):
            item.setZValue(5)
            item.hide()
            plot.addItem(item, ignoreBounds=True)
        self._time_calipers.sigRegionChanged.connect(self._show_calipers)
        self._level_calipers.sigRegionChanged.connect(self._show_calipers)
        self.cursor_text = ""  # what the cursor points at, for the status bar
        self.scene().sigMouseMoved.connect(self._moved)
        self.scene().sigMouseClicked.connect(self._clicked)
        vb.sigRangeChanged.connect(self._update_minor)
        vb.sigRangeChangedManually.connect(self._manual_range)
        self._auto_fit = True  # refit on resize until the person zooms or pans
        self._completed: dict[str, pg.PlotCurveItem] = {}
        self.completion_shown = False
        self._legend = pg.LegendItem(
            offset=(10, 10), brush=pg.mkBrush(255, 255, 255, 230), pen=pg.mkPen(MAJOR), labelTextColor=INK
        )
        self._legend.setParentItem(self.getPlotItem().vb)
        self._legend.addItem(pg.PlotDataItem(pen=pg.mkPen(INK, width=1.3)), "read from the page")
        self._legend.addItem(pg.PlotDataItem(pen=_completed_pen()), "completed: not on the paper")
        self._legend.hide()

    # ------------------------------------------------------------------ content

    def set_document(self, bridge: DocumentBridge | None) -> None:
        """Plot the document of ``bridge`` (None: nothing) and follow its changes."""
        self._bridge = follow(self._bridge, bridge, self._on_changed, self._on_selection)
        self.document = document = None if bridge is None else bridge.document
        plot = self.getPlotItem()
        for item in [*self._curves.values(), *self._lows.values(), *self._missing.values(), *self._completed.values()]:
            plot.removeItem(item)
        self._curves, self._lows, self._missing, self._completed = {}, {}, {}, {}
        self._selected = ""
        self._duration = 0.0
        self._selection.hide()
        if document is None:
            self._names = ()
            self._minor.setData([], [])
            self._major.setData([], [])
            return
        self._names = document.lead_names
        for name in self._names:
            curve = pg.PlotCurveItem(pen=pg.mkPen(INK, width=1.3), connect="finite", skipFiniteCheck=False)
            low = pg.PlotCurveItem(pen=pg.mkPen(LOW, width=5), connect="finite", skipFiniteCheck=False)
            gap = pg.PlotCurveItem(pen=pg.mkPen(LOW, width=5), connect="finite", skipFiniteCheck=False)
            completed = pg.PlotCurveItem(pen=_completed_pen(), connect="finite", skipFiniteCheck=False)
            low.setZValue(1)
            gap.setZValue(1)
            completed.setZValue(1.5)
            curve.setZValue(2)
            for item in (low, gap, completed, curve):
                plot.addItem(item)
            self._curves[name] = curve
            self._completed[name] = completed
            self._lows[name] = low
            self._missing[name] = gap
        left = plot.getAxis("left")
        left.setTicks([[(self.offset(n), n) for n in self._names], []])
        self._redraw_all()
        self.reset_view()

    def offset(self, lead: str) -> float:
        """Baseline of a lead on the plot, mV."""
        return -ROW_MV * self._names.index(lead)

    def _redraw_all(self) -> None:
        doc = self.document
        duration = doc.n_samples / doc.fs
        if duration != self._duration:
            first = self._duration == 0.0
            self._duration = duration
            n = len(self._names)
            y0, y1 = -ROW_MV * (n - 0.5), ROW_MV * 0.5
            self._minor.setData(*_grid_lines(duration, y0, y1, 1 / MM_PER_S, 1 / MM_PER_MV))
            self._major.setData(*_grid_lines(duration, y0, y1, 5 / MM_PER_S, 5 / MM_PER_MV))
            if not first:
                self.reset_view()
        for name in self._names:
            self.update_lead(name)
        self._update_completion()
        self._on_selection(doc.selected)

    def update_lead(self, lead: str) -> None:
        """Redraw one lead from the document."""
        doc = self.document
        col = doc.column(lead)
        t = doc.time_s()
        y = col + self.offset(lead)
        curve, low = self._curves[lead], self._lows[lead]
        if np.isfinite(y).sum() >= 2:
            curve.setData(t, y)
        else:
            curve.setData([], [])
        faint = doc.low_confidence_samples(lead)
        missing = doc.missing_samples(lead)
        low.setData(t, np.where(faint, y, np.nan)) if faint.sum() >= 2 else low.setData([], [])
        gap = self._missing[lead]  # no trace found: a bar on the lead's baseline
        gap.setData(t, np.where(missing, self.offset(lead), np.nan)) if missing.sum() >= 2 else gap.setData([], [])

    def show_completion(self, shown: bool) -> None:
        """Draw (or stop drawing) every lead completed over the whole record."""
        self.completion_shown = shown
        self._legend.setVisible(shown)
        self._update_completion()

    def _update_completion(self) -> None:
        doc = self.document
        if doc is None or not self.completion_shown:
            for curve in self._completed.values():
                curve.setData([], [])
            return
        done = doc.completion()
        t = doc.time_s()
        for j, lead in enumerate(done.signals.lead_names):
            if lead not in self._completed:
                continue
            # One read sample either side joins the dashes to the trace they continue.
            shown = done.source[:, j] >= FILLED  # filled or reconstructed: not on the paper
            shown = shown | np.r_[shown[1:], False] | np.r_[False, shown[:-1]]
            y = np.where(shown, done.signals.mv[:, j] + self.offset(lead), np.nan)
            self._completed[lead].setData(t, y) if np.isfinite(y).sum() >= 2 else self._completed[lead].setData([], [])

    def _on_changed(self, change: Change) -> None:
        if change.leads is None or self.document.n_samples / self.document.fs != self._duration:
            self._redraw_all()
            return
        leads = set(change.leads)
        if change.traces:  # low-confidence marks follow the trace, even without a signal change
            leads |= {self.document.boxes[k].lead for k in change.traces if k < len(self.document.boxes)}
        for lead in leads:
            if lead in self._curves:
                self.update_lead(lead)
        if leads:
            self._update_completion()  # one lead read anew changes what the others complete
        if change.boxes:
            self._on_selection(self.document.selected)

    def _on_selection(self, k: int) -> None:
        doc = self.document
        lead = doc.boxes[k].lead if doc is not None and 0 <= k < len(doc.boxes) else ""
        if self._selected in self._curves:
            self._curves[self._selected].setPen(pg.mkPen(INK, width=1.3))
        self._selected = lead
        if lead in self._curves:
            self._curves[lead].setPen(pg.mkPen(SELECTED, width=2.2))
            off = self.offset(lead)
            self._selection.setRegion((off - ROW_MV / 2, off + ROW_MV / 2))
            self._selection.show()
        else:
            self._selection.hide()

    def _update_minor(self, *_: object) -> None:
        """Show the 1 mm grid only where its lines are far enough apart to read."""
        px_per_s = self.getPlotItem().getViewBox().viewPixelSize()[0]
        self._minor.setVisible(px_per_s > 0 and (1 / MM_PER_S) / px_per_s >= MIN_MINOR_PX)

    def _manual_range(self, *_: object) -> None:
        self._auto_fit = False

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self.__dict__.get("_auto_fit"):  # pyqtgraph calls this from its constructor too
            self.reset_view()

    def reset_view(self) -> None:
        """Show every lead over the whole record."""
        self._auto_fit = True
        if not self._names:
            return
        n = len(self._names)
        self.getPlotItem().getViewBox().setRange(
            xRange=(0, max(self._duration, 0.1)), yRange=(-ROW_MV * (n - 0.5), ROW_MV * 0.5), padding=0.01
        )
        self._update_minor()

    @property
    def selected_lead(self) -> str:
        return self._selected

    # ------------------------------------------------------------------ calipers and cursor

    @property
    def calipers_shown(self) -> bool:
        return self._time_calipers.isVisible()

    def show_calipers(self, shown: bool) -> None:
        """Show the calipers over the selected lead (else the first), about one second wide."""
        if shown and self._names:
            lead = self._selected or self._names[0]
            vb = self.getPlotItem().getViewBox()
            (x0, x1), _ = vb.viewRange()
            t0 = max(0.0, x0 + 0.3 * (x1 - x0))
            self._time_calipers.setRegion((t0, t0 + min(1.0, 0.3 * (x1 - x0))))
            off = self.offset(lead)
            self._level_calipers.setRegion((off, off + 1.0))
        for item in (self._time_calipers, self._level_calipers, self._caliper_text):
            item.setVisible(shown and bool(self._names))
        self._show_calipers()

    def calipers(self) -> Calipers:
        """What the calipers measure now (levels relative to each other, so in mV of any lead)."""
        t0, t1 = self._time_calipers.getRegion()
        v0, v1 = self._level_calipers.getRegion()
        return Calipers(float(t0), float(t1), float(v0), float(v1))

    def _show_calipers(self, *_: object) -> None:
        if not self._time_calipers.isVisible():
            return
        c = self.calipers()
        self._caliper_text.setText(c.describe())
        self._caliper_text.setPos(min(c.t0_s, c.t1_s), max(c.v0_mv, c.v1_mv))

    def _moved(self, pos) -> None:
        doc = self.document
        vb = self.getPlotItem().getViewBox()
        if doc is None or not self._names or not vb.sceneBoundingRect().contains(pos):
            return
        p = vb.mapSceneToView(pos)
        row = int(round(-p.y() / ROW_MV))
        if 0 <= row < len(self._names):
            lead = self._names[row]
            self.cursor_text = readout(float(p.x()), lead, doc.column(lead), doc.fs)
            self.cursorMoved.emit(self.cursor_text)

    def _clicked(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton or not self._names or self.document is None:
            return
        vb = self.getPlotItem().getViewBox()
        if not vb.sceneBoundingRect().contains(event.scenePos()):
            return
        p = vb.mapSceneToView(event.scenePos())
        row = int(round(-p.y() / ROW_MV))
        if 0 <= row < len(self._names):
            self.leadClicked.emit(self._names[row])


def _completed_pen() -> pg.QtGui.QPen:
    pen = pg.mkPen(COMPLETED, width=1.3)
    pen.setStyle(Qt.PenStyle.DashLine)
    return pen
