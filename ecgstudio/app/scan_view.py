"""The scan with the model's proposals on top, and the tools that edit them.

A ``QGraphicsView`` over the page pixmap.  Layers (each can be hidden): the trace mask (a
tinted image with adjustable opacity), the extracted traces (one path item per box, drawn in
scan coordinates), low-confidence stretches (red) and the lead boxes with their names.  Zoom
with the wheel (about the cursor), pan by dragging the background or with the middle button.

Tools (:class:`Tool`): select, move and resize boxes; drag trace points; redraw a stretch with
a pen (optionally snapped to the ink); erase a stretch; add a box; a two-click ruler and a
two-click calibration-pulse measurement.  Every edit goes through the
:class:`~ecgstudio.editing.document.PageDocument`; the view only draws what the document holds
(and hears of its changes through a :class:`~ecgstudio.app.document_bridge.DocumentBridge`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from enum import StrEnum

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QCursor, QFont, QFontMetricsF, QImage, QPainter, QPainterPath, QPen, QPixmap
from PySide6.QtWidgets import (
    QGraphicsEllipseItem,
    QGraphicsItem,
    QGraphicsLineItem,
    QGraphicsPathItem,
    QGraphicsPixmapItem,
    QGraphicsRectItem,
    QGraphicsScene,
    QGraphicsView,
)

from ..editing.document import DRAG_RADIUS_PX, Change, PageDocument
from .document_bridge import DocumentBridge, follow


class Tool(StrEnum):
    SELECT = "select"
    POINTS = "points"
    PEN = "pen"
    ERASER = "eraser"
    ADD_BOX = "add_box"
    RULER = "ruler"
    PULSE = "pulse"


TOOL_HINTS = {
    Tool.SELECT: "Click a box to select it; drag it to move it, drag an edge or corner to resize it. "
    "Drag the background to pan, wheel to zoom.",
    Tool.POINTS: "Drag a point of a trace up or down; its neighbours follow.",
    Tool.PEN: "Draw over the trace to replace that stretch (snapped to the ink when 'Snap to ink' is on).",
    Tool.ERASER: "Drag across a stretch of a trace to erase it (those samples become blank).",
    Tool.ADD_BOX: "Drag a rectangle around a lead to add a box; its trace is extracted from the ink.",
    Tool.RULER: "Click two points on the grid, the distance set in the Calibration panel apart.",
    Tool.PULSE: "Click the foot, then the top of the 1 mV calibration pulse.",
}

BOX_COLOR = QColor(30, 110, 230)
SELECTED_COLOR = QColor(255, 130, 0)
TRACE_COLOR = QColor(0, 160, 60)
SELECTED_TRACE_COLOR = QColor(0, 90, 200)
LOW_COLOR = QColor(230, 30, 30, 150)
MASK_RGB = (0, 190, 255)
TOOL_COLOR = QColor(200, 0, 160)

_Z_MASK, _Z_TRACE, _Z_LOW, _Z_BOX, _Z_LABEL, _Z_TOOL = 1, 2, 3, 4, 5, 10
_EDGE_GRAB_PX = 6  # screen pixels from a box edge that grab the edge
_POINT_GRAB_PX = 10  # screen pixels from a trace point that grab it


def _pen(color: QColor, width: float, style: Qt.PenStyle = Qt.PenStyle.SolidLine) -> QPen:
    pen = QPen(color, width, style)
    pen.setCosmetic(True)
    pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
    pen.setCapStyle(Qt.PenCapStyle.RoundCap)
    return pen


def rgb_to_qimage(image: np.ndarray) -> QImage:
    """An RGB (or grey) uint8 array as a QImage that owns a copy of the pixels."""
    a = np.ascontiguousarray(image)
    if a.ndim == 2:
        h, w = a.shape
        return QImage(a.data, w, h, a.strides[0], QImage.Format.Format_Grayscale8).copy()
    h, w = a.shape[:2]
    return QImage(a.data, w, h, a.strides[0], QImage.Format.Format_RGB888).copy()


def mask_to_qimage(mask: np.ndarray, rgb: tuple[int, int, int] = MASK_RGB) -> QImage:
    """Ink pixels (``mask > 0``) tinted ``rgb``, transparent elsewhere."""
    h, w = mask.shape
    rgba = np.zeros((h, w, 4), np.uint8)
    ink = mask > 0
    rgba[ink] = (*rgb, 255)
    return QImage(rgba.data, w, h, 4 * w, QImage.Format.Format_RGBA8888).copy()


def polyline_path(xy: np.ndarray) -> QPainterPath:
    """A path through ``(n, 2)`` points, broken at NaN rows."""
    if len(xy) < 2:
        return QPainterPath()
    return pg.arrayToQPath(np.ascontiguousarray(xy[:, 0]), np.ascontiguousarray(xy[:, 1]), connect="finite")


class _Label(QGraphicsItem):
    """A lead name on a white tag; keeps its size on screen at any zoom."""

    def __init__(self, text: str, parent: QGraphicsItem | None = None) -> None:
        super().__init__(parent)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
        self.font = QFont()
        self.font.setPointSizeF(10.5)
        self.font.setBold(True)
        self.color = BOX_COLOR
        self.set_text(text)

    def set_text(self, text: str) -> None:
        self.prepareGeometryChange()
        self.text = text
        fm = QFontMetricsF(self.font)
        self._rect = QRectF(0, 0, fm.horizontalAdvance(text) + 8, fm.height() + 2)

    def boundingRect(self) -> QRectF:
        return self._rect

    def paint(self, painter: QPainter, option, widget=None) -> None:
        painter.setPen(QPen(self.color, 1))
        painter.setBrush(QBrush(QColor(255, 255, 255, 225)))
        painter.drawRoundedRect(self._rect, 3, 3)
        painter.setFont(self.font)
        painter.setPen(self.color)
        painter.drawText(self._rect, Qt.AlignmentFlag.AlignCenter, self.text)


class ScanView(QGraphicsView):
    """The page and its proposals; see the module docstring."""

    rulerMeasured = Signal(QPointF, QPointF)
    pulseMeasured = Signal(QPointF, QPointF)
    hint = Signal(str)
    zoomChanged = Signal(float)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.SmoothPixmapTransform)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.SmartViewportUpdate)
        self.setBackgroundBrush(QColor(70, 72, 76))
        self.setMouseTracking(True)
        self.setAcceptDrops(False)  # the window takes dropped files
        self.document: PageDocument | None = None
        self._bridge: DocumentBridge | None = None
        self.tool = Tool.SELECT
        self.snap = True
        self.drag_radius_px = DRAG_RADIUS_PX
        #: Asked for the lead of a new box when every lead has one: gets the leads, returns one or
        #: None (cancel).  The window sets a dialog here; tests set an answer.
        self.ask_lead: Callable[[list[str]], str | None] = lambda leads: None
        self.layers = {"boxes": True, "mask": True, "traces": True, "low": True}
        self.mask_opacity = 0.35
        self._pixmap = QGraphicsPixmapItem()
        self._pixmap.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self.scene().addItem(self._pixmap)
        self._mask = QGraphicsPixmapItem()
        self._mask.setZValue(_Z_MASK)
        self.scene().addItem(self._mask)
        self._mask_source: object = None
        self._boxes: list[QGraphicsRectItem] = []
        self._labels: list[_Label] = []
        self._traces: list[QGraphicsPathItem] = []
        self._lows: list[QGraphicsPathItem] = []
        self._tool_items: list[QGraphicsItem] = []
        self._drag: dict | None = None
        self._clicks: list[QPointF] = []
        self._rubber: QGraphicsLineItem | None = None  # the ruler's line between its first click and the cursor
        self._drag_ids = itertools.count(1)
        self._fitted = False
        self._fit_zoom = 1.0  # the zoom that shows the whole page

    # ------------------------------------------------------------------ content

    def set_image(self, image: np.ndarray | None) -> None:
        """Show a page (before or without proposals); None clears the view."""
        self.set_document(None)
        if image is None:
            self._pixmap.setPixmap(QPixmap())
            self.scene().setSceneRect(QRectF())
            return
        self._pixmap.setPixmap(QPixmap.fromImage(rgb_to_qimage(image)))
        h, w = image.shape[:2]
        self.scene().setSceneRect(QRectF(-0.05 * w, -0.05 * h, 1.1 * w, 1.1 * h))
        self._fitted = False
        self.fit()

    def set_document(self, bridge: DocumentBridge | None) -> None:
        """Show the document of ``bridge`` (None: no document) and follow its changes."""
        self._bridge = follow(self._bridge, bridge, self._on_changed, self._on_selection)
        self.document = None if bridge is None else bridge.document
        self._cancel_tool()
        self._mask_source = None
        self._rebuild()

    def _on_changed(self, change: Change) -> None:
        if change.boxes or change.traces is None:
            self._rebuild()
            return
        for k in change.traces:
            self._update_trace(k)

    def _on_selection(self, k: int) -> None:
        self._restyle()

    def _rebuild(self) -> None:
        scene = self.scene()
        for item in self._boxes + self._traces + self._lows:
            scene.removeItem(item)
        self._boxes, self._labels, self._traces, self._lows = [], [], [], []
        doc = self.document
        if doc is None:
            self._mask.setPixmap(QPixmap())
            return
        if doc.masks is not None and self._mask_source is not doc.masks:
            self._mask.setPixmap(QPixmap.fromImage(mask_to_qimage(doc.masks.trace)))
            self._mask_source = doc.masks
        elif doc.masks is None:
            self._mask.setPixmap(QPixmap())
            self._mask_source = None
        for k, box in enumerate(doc.boxes):
            rect = QGraphicsRectItem(QRectF(box.x0, box.y0, box.width, box.height))
            rect.setZValue(_Z_BOX)
            rect.setData(0, k)
            label = _Label(f"-{box.lead}" if box.inverted else box.lead, rect)
            label.setPos(box.x0 + 2, box.y0 + 2)
            label.setZValue(_Z_LABEL)
            scene.addItem(rect)
            self._boxes.append(rect)
            self._labels.append(label)
            path = QGraphicsPathItem()
            path.setZValue(_Z_TRACE)
            scene.addItem(path)
            self._traces.append(path)
            low = QGraphicsPathItem()
            low.setZValue(_Z_LOW)
            low.setPen(_pen(LOW_COLOR, 5.0))
            scene.addItem(low)
            self._lows.append(low)
            self._update_trace(k)
        self._restyle()
        self._apply_layers()

    def _update_trace(self, k: int) -> None:
        doc = self.document
        if doc is None or k >= len(self._traces):
            return
        self._traces[k].setPath(polyline_path(doc.traces[k].xy))
        low = QPainterPath()
        for run in doc.low_confidence_runs(k):
            low.addPath(polyline_path(run))
        for x0, x1, y in doc.missing_spans(k):  # no trace found: a red bar at the trace's level
            low.moveTo(x0, y)
            low.lineTo(x1, y)
        self._lows[k].setPath(low)

    def _restyle(self) -> None:
        sel = self.document.selected if self.document else -1
        for k, (rect, label, trace) in enumerate(zip(self._boxes, self._labels, self._traces)):
            on = k == sel
            rect.setPen(
                _pen(
                    SELECTED_COLOR if on else BOX_COLOR,
                    2.5 if on else 1.3,
                    Qt.PenStyle.SolidLine if on else Qt.PenStyle.DashLine,
                )
            )
            rect.setZValue(_Z_BOX + (0.5 if on else 0))
            label.color = SELECTED_COLOR if on else BOX_COLOR
            label.update()
            trace.setPen(_pen(SELECTED_TRACE_COLOR if on else TRACE_COLOR, 2.2 if on else 1.5))

    # ------------------------------------------------------------------ layers and zoom

    def set_layer(self, name: str, visible: bool) -> None:
        self.layers[name] = bool(visible)
        self._apply_layers()

    def set_mask_opacity(self, opacity: float) -> None:
        self.mask_opacity = float(opacity)
        self._mask.setOpacity(self.mask_opacity)

    def _apply_layers(self) -> None:
        self._mask.setVisible(self.layers["mask"])
        self._mask.setOpacity(self.mask_opacity)
        for item in self._boxes:
            item.setVisible(self.layers["boxes"])
        for item in self._traces:
            item.setVisible(self.layers["traces"])
        for item in self._lows:
            item.setVisible(self.layers["low"])

    def fit(self) -> None:
        """Show the whole page.

        A fitted page needs no scroll bars, so they are turned off first: coming and going as
        the page fitted, they resized the view, which fitted the page again, for ever (a portrait
        photo in a wide window froze the studio)."""
        rect = self._pixmap.boundingRect()
        if rect.isEmpty():
            return
        self._scroll_bars(False)
        self.fitInView(rect.adjusted(-10, -10, 10, 10), Qt.AspectRatioMode.KeepAspectRatio)
        self._fitted = True
        self._fit_zoom = self.zoom
        self.zoomChanged.emit(self.zoom)

    def _scroll_bars(self, shown: bool) -> None:
        policy = Qt.ScrollBarPolicy.ScrollBarAsNeeded if shown else Qt.ScrollBarPolicy.ScrollBarAlwaysOff
        self.setHorizontalScrollBarPolicy(policy)
        self.setVerticalScrollBarPolicy(policy)

    def zoom_by(self, factor: float) -> None:
        new = self.zoom * factor
        if 0.02 <= new <= 40:
            self._scroll_bars(True)
            self.scale(factor, factor)
            self._fitted = False
            self.zoomChanged.emit(self.zoom)

    @property
    def zoom(self) -> float:
        return float(self.transform().m11())

    @property
    def zoom_over_fit(self) -> float:
        """The zoom as a multiple of the one showing the whole page (1: fitted)."""
        return 1.0 if self._fitted else self.zoom / self._fit_zoom

    def show_zoomed(self, over_fit: float) -> None:
        """Fit the page, then zoom to ``over_fit`` times that, about the page's top left corner
        (where a page's first lead and its calibration pulse are)."""
        self.fit()
        if abs(over_fit - 1.0) > 1e-3:
            self.zoom_by(over_fit)
            self.ensureVisible(QRectF(0, 0, 1, 1), 10, 10)

    def zoom_to_box(self, k: int) -> None:
        if self.document is None or not 0 <= k < len(self.document.boxes):
            return
        b = self.document.boxes[k]
        self._scroll_bars(True)
        self.fitInView(
            QRectF(b.x0, b.y0, b.width, b.height).adjusted(-40, -40, 40, 40), Qt.AspectRatioMode.KeepAspectRatio
        )
        self._fitted = False
        self.zoomChanged.emit(self.zoom)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self._fitted:
            self.fit()

    def wheelEvent(self, event) -> None:
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.zoom_by(1.15**steps)
        event.accept()

    # ------------------------------------------------------------------ tools

    def set_tool(self, tool: Tool | str) -> None:
        self._cancel_tool()
        self.tool = Tool(tool)
        cursors = {Tool.SELECT: Qt.CursorShape.ArrowCursor, Tool.POINTS: Qt.CursorShape.PointingHandCursor}
        self.viewport().setCursor(QCursor(cursors.get(self.tool, Qt.CursorShape.CrossCursor)))
        self.hint.emit(TOOL_HINTS[self.tool])

    def _cancel_tool(self) -> None:
        for item in self._tool_items:
            self.scene().removeItem(item)
        self._tool_items = []
        self._drag = None
        self._clicks = []
        self._rubber = None

    def _add_tool_item(self, item: QGraphicsItem) -> QGraphicsItem:
        item.setZValue(_Z_TOOL)
        self.scene().addItem(item)
        self._tool_items.append(item)
        return item

    def _px(self) -> float:
        """Scene pixels per screen pixel."""
        return 1.0 / max(self.zoom, 1e-6)

    def _edge_hit(self, p: QPointF) -> tuple[int, str] | None:
        """``(box, edges)`` whose edge or corner is under the cursor; ``edges`` a subset of ``lrtb``."""
        doc = self.document
        if doc is None or not self.layers["boxes"]:
            return None
        tol = _EDGE_GRAB_PX * self._px()
        order = sorted(range(len(doc.boxes)), key=lambda k: k != doc.selected)
        for k in order:
            b = doc.boxes[k]
            if not (b.x0 - tol <= p.x() <= b.x1 + tol and b.y0 - tol <= p.y() <= b.y1 + tol):
                continue
            edges = ""
            if abs(p.x() - b.x0) <= tol:
                edges += "l"
            elif abs(p.x() - b.x1) <= tol:
                edges += "r"
            if abs(p.y() - b.y0) <= tol:
                edges += "t"
            elif abs(p.y() - b.y1) <= tol:
                edges += "b"
            if edges and (k == doc.selected or len(edges) == 2 or doc.selected < 0):
                return k, edges
        return None

    def _box_at(self, p: QPointF) -> int:
        doc = self.document
        if doc is None or not self.layers["boxes"]:
            return -1
        hits = doc.boxes_at(p.x(), p.y())
        return hits[0] if hits else -1

    def mousePressEvent(self, event) -> None:
        p = self.mapToScene(event.position().toPoint())
        if event.button() == Qt.MouseButton.MiddleButton or (
            event.button() == Qt.MouseButton.LeftButton and self._begin(p) == "pan"
        ):
            self._drag = {"mode": "pan", "last": event.position()}
            self.viewport().setCursor(QCursor(Qt.CursorShape.ClosedHandCursor))
            event.accept()
            return
        event.accept()

    def _begin(self, p: QPointF) -> str:
        """Start the current tool's gesture at scene point ``p``; returns ``pan`` to pan instead."""
        doc = self.document
        tool = self.tool
        if tool in (Tool.RULER, Tool.PULSE):
            self._click(p)
            return "click"
        if doc is None:
            return "pan"
        if tool == Tool.SELECT:
            hit = self._edge_hit(p)
            if hit is not None:
                k, edges = hit
                doc.select(k)
                self._drag = {"mode": "resize", "k": k, "edges": edges, "start": p}
                return "resize"
            k = self._box_at(p)
            if k >= 0:
                doc.select(k)
                self._drag = {"mode": "move", "k": k, "start": p}
                return "move"
            doc.select(-1)
            return "pan"
        if tool == Tool.POINTS:
            near = doc.nearest_point(p.x(), p.y(), max_dist=_POINT_GRAB_PX * self._px())
            if near is None:
                self.hint.emit("No trace point here: press on a trace (zoom in for precision).")
                return "pan"
            k, i = near
            doc.select(k)
            marker = self._add_tool_item(QGraphicsEllipseItem(-5, -5, 10, 10))
            marker.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
            marker.setPen(_pen(TOOL_COLOR, 2))
            marker.setPos(QPointF(*doc.traces[k].xy[i]))
            self._drag = {
                "mode": "point",
                "k": k,
                "i": i,
                "key": f"point-drag-{next(self._drag_ids)}",
                "marker": marker,
            }
            return "point"
        if tool in (Tool.PEN, Tool.ERASER):
            hits = doc.boxes_at(p.x(), p.y())
            k = hits[0] if hits else doc.selected
            if k < 0:
                self.hint.emit("Start inside a lead box (or select one first).")
                return "none"
            doc.select(k)
            item = self._add_tool_item(QGraphicsPathItem() if tool == Tool.PEN else QGraphicsRectItem())
            if tool == Tool.PEN:
                item.setPen(_pen(TOOL_COLOR, 2.0, Qt.PenStyle.DashLine))
            else:
                item.setPen(_pen(QColor(200, 0, 0), 1.0))
                item.setBrush(QBrush(QColor(255, 0, 0, 50)))
            self._drag = {"mode": tool.value, "k": k, "points": [(p.x(), p.y())], "item": item}
            return tool.value
        if tool == Tool.ADD_BOX:
            item = self._add_tool_item(QGraphicsRectItem(QRectF(p, p)))
            item.setPen(_pen(SELECTED_COLOR, 2.0, Qt.PenStyle.DashLine))
            self._drag = {"mode": "add", "start": p, "item": item}
            return "add"
        return "none"

    def mouseMoveEvent(self, event) -> None:
        p = self.mapToScene(event.position().toPoint())
        drag = self._drag
        if drag is None:
            if self._rubber is not None and len(self._clicks) == 1:  # the ruler follows the cursor
                a = self._clicks[0]
                self._rubber.setLine(a.x(), a.y(), p.x(), p.y())
            self._hover(p)
            super().mouseMoveEvent(event)
            return
        doc = self.document
        mode = drag["mode"]
        if mode == "pan":
            delta = event.position() - drag["last"]
            drag["last"] = event.position()
            self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() - int(delta.x()))
            self.verticalScrollBar().setValue(self.verticalScrollBar().value() - int(delta.y()))
        elif mode in ("move", "resize"):
            rect = self._drag_rect(drag, p)
            self._boxes[drag["k"]].setRect(rect)
            self._labels[drag["k"]].setPos(rect.left() + 2, rect.top() + 2)
        elif mode == "point" and doc is not None:
            doc.move_point(drag["k"], drag["i"], p.y(), radius_px=self.drag_radius_px, merge_key=drag["key"])
            drag["marker"].setPos(QPointF(*doc.traces[drag["k"]].xy[drag["i"]]))
        elif mode == "pen":
            drag["points"].append((p.x(), p.y()))
            path = QPainterPath(QPointF(*drag["points"][0]))
            for x, y in drag["points"][1:]:
                path.lineTo(x, y)
            drag["item"].setPath(path)
        elif mode == "eraser" and doc is not None:
            drag["points"].append((p.x(), p.y()))
            b = doc.boxes[drag["k"]]
            x0 = drag["points"][0][0]
            drag["item"].setRect(QRectF(min(x0, p.x()), b.y0, abs(p.x() - x0), b.height))
        elif mode == "add":
            drag["item"].setRect(QRectF(drag["start"], p).normalized())
        event.accept()

    def _drag_rect(self, drag: dict, p: QPointF) -> QRectF:
        b = self.document.boxes[drag["k"]]
        dx, dy = p.x() - drag["start"].x(), p.y() - drag["start"].y()
        x0, y0, x1, y1 = b.x0, b.y0, b.x1, b.y1
        if drag["mode"] == "move":
            return QRectF(x0 + dx, y0 + dy, b.width, b.height)
        edges = drag["edges"]
        if "l" in edges:
            x0 = min(x0 + dx, x1 - 4)
        if "r" in edges:
            x1 = max(x1 + dx, x0 + 4)
        if "t" in edges:
            y0 = min(y0 + dy, y1 - 4)
        if "b" in edges:
            y1 = max(y1 + dy, y0 + 4)
        return QRectF(QPointF(x0, y0), QPointF(x1, y1))

    def mouseReleaseEvent(self, event) -> None:
        p = self.mapToScene(event.position().toPoint())
        drag, self._drag = self._drag, None
        doc = self.document
        if drag is None:
            event.accept()
            return
        mode = drag["mode"]
        try:
            if mode == "pan":
                self.set_tool(self.tool) if self.tool != Tool.SELECT else self.viewport().setCursor(
                    QCursor(Qt.CursorShape.ArrowCursor)
                )
            elif mode in ("move", "resize") and doc is not None:
                rect = self._drag_rect(drag, p)
                moved = (p - drag["start"]).manhattanLength() * self.zoom >= 3
                if not moved:
                    self._rebuild_box(drag["k"])
                elif mode == "move":
                    doc.move_box(drag["k"], p.x() - drag["start"].x(), p.y() - drag["start"].y())
                else:
                    doc.resize_box(drag["k"], rect.left(), rect.top(), rect.right(), rect.bottom())
            elif mode == "point":
                pass  # every move was already an (merged) edit
            elif mode == "pen" and doc is not None:
                drag["points"].append((p.x(), p.y()))
                pts = np.array(drag["points"])
                if np.ptp(pts[:, 0]) >= 2:
                    doc.redraw_stretch(drag["k"], pts, snap=self.snap)
            elif mode == "eraser" and doc is not None:
                x0 = drag["points"][0][0]
                if abs(p.x() - x0) >= 1:
                    doc.erase_stretch(drag["k"], x0, p.x())
            elif mode == "add" and doc is not None:
                r = QRectF(drag["start"], p).normalized()
                if r.width() >= 4 and r.height() >= 4:
                    lead = None if doc.missing_leads() else self.ask_lead(list(doc.lead_names))
                    if lead is not None or doc.missing_leads():
                        doc.add_box(r.left(), r.top(), r.right(), r.bottom(), lead=lead)
        except ValueError as exc:
            self.hint.emit(str(exc))
        finally:
            for key in ("item", "marker"):
                if key in drag and drag[key] in self._tool_items:
                    self._tool_items.remove(drag[key])
                    self.scene().removeItem(drag[key])
        event.accept()

    def _rebuild_box(self, k: int) -> None:
        b = self.document.boxes[k]
        self._boxes[k].setRect(QRectF(b.x0, b.y0, b.width, b.height))
        self._labels[k].setPos(b.x0 + 2, b.y0 + 2)

    def _hover(self, p: QPointF) -> None:
        if self.tool != Tool.SELECT or self.document is None:
            return
        hit = self._edge_hit(p)
        shape = Qt.CursorShape.ArrowCursor
        if hit is not None:
            edges = hit[1]
            if edges in ("lt", "rb"):
                shape = Qt.CursorShape.SizeFDiagCursor
            elif edges in ("rt", "lb"):
                shape = Qt.CursorShape.SizeBDiagCursor
            elif edges in ("l", "r"):
                shape = Qt.CursorShape.SizeHorCursor
            else:
                shape = Qt.CursorShape.SizeVerCursor
        elif self._box_at(p) >= 0:
            shape = Qt.CursorShape.SizeAllCursor
        self.viewport().setCursor(QCursor(shape))

    def _click(self, p: QPointF) -> None:
        """One click of the ruler or pulse tool; the second click emits the measurement."""
        if len(self._clicks) >= 2:
            self._cancel_tool()
        self._clicks.append(p)
        dot = self._add_tool_item(QGraphicsEllipseItem(-4, -4, 8, 8))
        dot.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
        dot.setPen(_pen(TOOL_COLOR, 2))
        dot.setBrush(QBrush(TOOL_COLOR))
        dot.setPos(p)
        if len(self._clicks) == 2:
            a, b = self._clicks
            self._rubber.setLine(a.x(), a.y(), b.x(), b.y())
            self._rubber = None
            (self.rulerMeasured if self.tool == Tool.RULER else self.pulseMeasured).emit(a, b)
        else:
            self._rubber = self._add_tool_item(QGraphicsLineItem(p.x(), p.y(), p.x(), p.y()))
            self._rubber.setPen(_pen(TOOL_COLOR, 2))
            self.hint.emit(
                "Now click the second point." if self.tool == Tool.RULER else "Now click the top of the pulse."
            )

    def keyPressEvent(self, event) -> None:
        if event.key() == Qt.Key.Key_Escape:
            self._cancel_tool()
            if self.document is not None and self.tool == Tool.SELECT:
                self.document.select(-1)
            event.accept()
            return
        super().keyPressEvent(event)
