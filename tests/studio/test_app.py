"""The studio as a person uses it: open the sample, wait for proposals, edit, undo, save, reopen.

Headless (``QT_QPA_PLATFORM=offscreen``, set in conftest).  The real model digitizes the sample
once per session (``digitizer``); every window shares that result through a cache.
"""

from __future__ import annotations

import hashlib
import shutil
import threading

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtTest import QTest

from ecgstudio.app.scan_view import Tool
from ecgstudio.app.window import SAMPLE_SCAN, MainWindow
from ecgstudio.editing.document import PageDocument
from ecgstudio.errors import NotAnEcgError
from ecgstudio.labels import ReviewStatus, load_labels
from ecgstudio.pipeline import DigitizeOptions

WAIT_MS = 90_000  # digitizing the sample takes a few seconds, more on a loaded machine

pytestmark = pytest.mark.skipif(not SAMPLE_SCAN.is_file(), reason="the sample scan is not in this checkout")


class SharedDigitizer:
    """The real digitizer, run at most once per distinct page and options in the session."""

    def __init__(self, real) -> None:
        self._real = real
        self._cache: dict = {}
        self._lock = threading.Lock()
        self.runs = 0

    def digitize(self, image: np.ndarray, options: DigitizeOptions = DigitizeOptions(), *, progress=None):
        key = (hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest(), options)
        with self._lock:
            if key not in self._cache:
                self.runs += 1
                self._cache[key] = self._real.digitize(image, options, progress=progress)
            elif progress is not None:
                progress("done", 1.0)
            return self._cache[key]


@pytest.fixture(scope="session")
def cached_digitizer(digitizer) -> SharedDigitizer:
    return SharedDigitizer(digitizer)


@pytest.fixture
def make_window(studio_window, cached_digitizer):
    """Studio windows (see ``studio_window``) over the shared digitizer unless given a factory."""
    digitizer = cached_digitizer

    def make(factory=None, reviewer: str = "Dr Test") -> MainWindow:
        return studio_window(reviewer=reviewer, digitizer_factory=factory or (lambda: digitizer))

    return make


def open_and_wait(qtbot, window: MainWindow, paths) -> PageDocument:
    window.open_paths(paths)
    qtbot.waitUntil(lambda: window.document is not None or (not window.busy and window.banner_text()), timeout=WAIT_MS)
    assert window.document is not None, window.banner_text()
    return window.document


def view_point(view, x: float, y: float) -> QPoint:
    return view.mapFromScene(QPointF(x, y))


# ---------------------------------------------------------------------- the main story


def test_open_sample_edit_undo_save_reopen(qtbot, make_window, tmp_path) -> None:
    w = make_window()
    assert w.stack.currentWidget() is w.welcome
    doc = open_and_wait(qtbot, w, [SAMPLE_SCAN])

    # Proposals are shown in both views and saved as "proposed" in the user-data label folder.
    assert len(doc.boxes) >= 12 and len(w.scan_view._boxes) == len(doc.boxes)
    assert set(w.signal_view._curves) == set(doc.lead_names)
    label = doc.label_path
    assert label.is_relative_to(tmp_path / "labels") and str(label) in w.labels_label.text()
    qtbot.waitUntil(lambda: label.is_file(), timeout=5000)
    assert load_labels(label).review.status == ReviewStatus.PROPOSED
    assert not w.progress.isVisible()

    # 1. Drag a trace point through the document API: only that lead's signal changes.
    k = doc.box_for_lead("V2")
    xy0 = doc.traces[k].xy.copy()
    i = int(np.flatnonzero(np.isfinite(xy0).all(axis=1))[len(xy0) // 2])
    before = {lead: doc.column(lead).copy() for lead in doc.lead_names}
    doc.move_point(k, i, xy0[i, 1] - 15, merge_key="api-drag")
    doc.move_point(k, i, xy0[i, 1] - 25, merge_key="api-drag")  # same drag: one undo step
    assert doc.traces[k].xy[i, 1] == pytest.approx(xy0[i, 1] - 25)
    changed = [lead for lead in doc.lead_names if not np.array_equal(before[lead], doc.column(lead), equal_nan=True)]
    assert changed == ["V2"]
    assert np.nanmax(doc.column("V2") - before["V2"]) == pytest.approx(25 / doc.calibration.px_per_mv, rel=0.1)
    assert len(doc.history) == 1

    # 2. The same with the mouse: the "Drag points" tool (key D) on the scan view.
    QTest.keyClick(w, Qt.Key.Key_D)
    assert w.scan_view.tool == Tool.POINTS
    kb = doc.box_for_lead("V5")
    w.scan_view.zoom_to_box(kb)
    qtbot.wait(20)
    xy = doc.traces[kb].xy
    j = int(np.flatnonzero(np.isfinite(xy).all(axis=1))[len(xy) // 3])
    x, y = xy[j]
    vp = w.scan_view.viewport()
    start = view_point(w.scan_view, x, y)
    end = start + QPoint(0, -30)
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    QTest.mouseMove(vp, start + QPoint(0, -15))
    QTest.mouseMove(vp, end)
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, end)
    moved = doc.traces[kb].xy[:, 1] - xy[:, 1]
    expected = w.scan_view.mapToScene(end).y() - w.scan_view.mapToScene(start).y()
    assert np.nanmin(moved) == pytest.approx(expected, abs=1.5) and expected < -5
    assert doc.selected == kb and w.signal_view.selected_lead == "V5"
    assert len(doc.history) == 2

    # 3. Move a box with the mouse (Select tool, key V).
    QTest.keyClick(w, Qt.Key.Key_V)
    w.scan_view.fit()
    qtbot.wait(20)
    kv = doc.box_for_lead("V1")
    b = doc.boxes[kv]
    grab = view_point(w.scan_view, (b.x0 + b.x1) / 2, b.baseline_y + 0.2 * (b.y1 - b.baseline_y))
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, grab)
    QTest.mouseMove(vp, grab + QPoint(6, 3))
    QTest.mouseMove(vp, grab + QPoint(12, 6))
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, grab + QPoint(12, 6))
    nb = doc.boxes[kv]
    assert nb.x0 - b.x0 == pytest.approx(12 / w.scan_view.zoom, abs=1.0)
    assert nb.y0 - b.y0 == pytest.approx(6 / w.scan_view.zoom, abs=1.0)
    assert nb.origin_x == pytest.approx(b.origin_x) and nb.width == pytest.approx(b.width)  # the time axis stays
    assert nb.t_start_s == pytest.approx(b.t_start_s + (nb.x0 - b.x0) * b.duration_s / b.width)

    # 4. Change the gain in the calibration panel: every signal halves at once.
    v4 = doc.column("V4").copy()
    assert w.calibration_panel.gain.value() == pytest.approx(doc.calibration.mm_per_mv)
    gain0 = doc.calibration.mm_per_mv
    w.calibration_panel.gain.setValue(2 * gain0)
    assert doc.calibration.mm_per_mv == pytest.approx(2 * gain0)
    ok = np.isfinite(v4)
    np.testing.assert_allclose(doc.column("V4")[ok], v4[ok] / 2, rtol=1e-12)

    # 5. Undo everything, redo everything (keyboard), then one undo of the gain.
    edited = doc.record()
    n = len(doc.history)
    assert n == 4
    for _ in range(n):
        QTest.keyClick(w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert doc.traces[k].xy[i, 1] == xy0[i, 1] and doc.boxes[kv] == b
    assert doc.calibration.mm_per_mv == gain0
    for _ in range(n):
        QTest.keyClick(w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert doc.record() == edited

    # 6. Edited is not signed off: saved as edited, nobody's name on it, until Accept.
    QTest.keyClick(w, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    saved = load_labels(label)
    assert saved == doc.record()
    assert saved.review.status == ReviewStatus.EDITED and saved.review.reviewer == ""
    assert w.review_panel.status.text() == "EDITED, NOT SIGNED OFF" and "sign it off" in w.review_panel.who.text()
    qtbot.mouseClick(w.review_panel.accept_button, Qt.MouseButton.LeftButton)
    assert w.review_panel.status.text() == "ACCEPTED WITH CORRECTIONS"
    assert w.review_panel.who.text().startswith("Signed off by Dr Test, ")

    # 7. Save (Ctrl+S), close, reopen: exactly what was saved comes back, review included.
    QTest.keyClick(w, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    saved = load_labels(label)
    assert saved == doc.record()
    assert saved.review.status == ReviewStatus.CORRECTED and saved.review.reviewer == "Dr Test"
    assert saved.review.lead_status["V2"] == ReviewStatus.CORRECTED
    w.close()

    w2 = make_window()
    doc2 = open_and_wait(qtbot, w2, [SAMPLE_SCAN])
    assert doc2.record() == saved
    np.testing.assert_array_equal(doc2.signals.mv, saved.digitization.signals.mv)
    assert doc2.review.reviewer == "Dr Test" and w2.review_panel.status.text() == "ACCEPTED WITH CORRECTIONS"
    assert not doc2.dirty
    assert str(SAMPLE_SCAN.resolve()) in w2.settings.recent


def test_selecting_a_lead_in_one_view_selects_it_in_the_other(qtbot, make_window) -> None:
    w = make_window()
    doc = open_and_wait(qtbot, w, [SAMPLE_SCAN])
    sv = w.signal_view
    vb = sv.getPlotItem().getViewBox()
    target = sv.mapFromScene(vb.mapViewToScene(QPointF(1.2, sv.offset("III"))))
    QTest.mouseClick(sv.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, target)
    assert doc.selected == doc.box_for_lead("III")
    assert w.scan_view._boxes[doc.selected].pen().color() != w.scan_view._boxes[0].pen().color()

    kb = doc.box_for_lead("aVF")
    b = doc.boxes[kb]
    p = view_point(w.scan_view, (b.x0 + b.x1) / 2, (b.y0 + b.baseline_y) / 2)
    QTest.mouseClick(w.scan_view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, p)
    assert doc.selected == kb and sv.selected_lead == "aVF"
    assert len(doc.history) == 0  # a click selects; it does not move the box
    QTest.keyClick(w, Qt.Key.Key_BracketRight)
    assert doc.selected == (kb + 1) % len(doc.boxes)


def test_pen_eraser_snap_add_delete_rename_and_layers(qtbot, make_window) -> None:
    w = make_window()
    doc = open_and_wait(qtbot, w, [SAMPLE_SCAN])
    k = doc.box_for_lead("I")
    box = doc.boxes[k]
    t = doc.time_s()
    xa, xb = box.x0 + 0.3 * box.width, box.x0 + 0.5 * box.width
    s_per_px = box.duration_s / box.width
    ta, tb = box.t_start_s + (xa - box.x0) * s_per_px, box.t_start_s + (xb - box.x0) * s_per_px
    inside = (t > ta + 0.01) & (t < tb - 0.01)

    doc.erase_stretch(k, xa, xb)
    assert np.isnan(doc.column("I")[inside]).all()
    assert np.isfinite(doc.column("I")[(t > box.t_start_s + 0.05) & (t < ta - 0.05)]).any()

    # Redraw the stretch 3 px below the ink with the pen: snapping pulls it back onto the trace.
    original = doc.history.command(0).before.traces[k].xy
    original = original[np.isfinite(original).all(axis=1)]
    cols = np.arange(np.ceil(xa), np.floor(xb) + 1)
    stroke = np.column_stack([cols, np.interp(cols, original[:, 0], original[:, 1]) + 3])
    doc.redraw_stretch(k, stroke, snap=True)
    assert np.isfinite(doc.column("I")[inside]).all()
    drawn = doc.traces[k].xy
    sel = (drawn[:, 0] >= xa) & (drawn[:, 0] <= xb)
    assert sel.sum() == len(cols) and (doc.traces[k].confidence[sel] == 1.0).all()
    error = np.abs(drawn[sel, 1] - np.interp(drawn[sel, 0], original[:, 0], original[:, 1]))
    assert np.median(error) < 1.0  # from 3 px off to within a pixel of the model's trace

    # Add a box by dragging with the mouse: every lead has a box, so the studio asks which lead
    # (cancelled: no box, no duplicate of lead I); then rename it, delete it; undo brings it back.
    w.set_tool(Tool.ADD_BOX)
    n = len(doc.boxes)
    vp = w.scan_view.viewport()
    a = view_point(w.scan_view, box.x0, box.y0)
    c = view_point(w.scan_view, box.x1, box.y1)
    asked: list[list[str]] = []
    for answer in (None, "II"):
        w.scan_view.ask_lead = lambda leads, answer=answer: asked.append(leads) or answer
        QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, a)
        QTest.mouseMove(vp, (a + c) / 2)
        QTest.mouseMove(vp, c)
        QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, c)
        assert len(doc.boxes) == (n if answer is None else n + 1)
    assert len(asked) == 2 and asked[0] == list(doc.lead_names)
    assert doc.selected == n and doc.boxes[n].lead == "II"
    assert np.isfinite(doc.traces[n].xy).all(axis=1).sum() > 0.8 * box.width  # traced from the ink mask
    doc.rename_box(n, "V6")
    assert doc.boxes[n].lead == "V6" and doc.traces[n].lead == "V6"
    QTest.keyClick(w, Qt.Key.Key_Delete)
    assert len(doc.boxes) == n
    doc.history.undo()
    assert len(doc.boxes) == n + 1 and doc.boxes[n].lead == "V6"

    # Layers toggle from the keyboard; the mask opacity slider drives the mask item.
    QTest.keyClick(w, Qt.Key.Key_2, Qt.KeyboardModifier.ControlModifier)
    assert not w.scan_view._mask.isVisible() and not w.settings.layer("mask")
    QTest.keyClick(w, Qt.Key.Key_2, Qt.KeyboardModifier.ControlModifier)
    assert w.scan_view._mask.isVisible()
    w.opacity.setValue(70)
    assert w.scan_view._mask.opacity() == pytest.approx(0.7)


def test_ruler_and_pulse_set_calibration(qtbot, make_window) -> None:
    w = make_window()
    doc = open_and_wait(qtbot, w, [SAMPLE_SCAN])
    cal = doc.calibration
    QTest.keyClick(w, Qt.Key.Key_R)
    assert w.scan_view.tool == Tool.RULER
    w.calibration_panel.ruler_mm.setValue(20.0)
    vp = w.scan_view.viewport()
    p1 = view_point(w.scan_view, 300, 300)
    p2 = view_point(w.scan_view, 300 + 20 * cal.px_per_mm_x * 1.1, 300)
    QTest.mouseClick(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, p1)
    QTest.mouseMove(vp, (p1 + p2) / 2)  # a line follows the cursor while the ruler measures
    rubber = w.scan_view._rubber.line()
    assert rubber.p1() == w.scan_view.mapToScene(p1) and rubber.p2() == w.scan_view.mapToScene((p1 + p2) / 2)
    QTest.mouseClick(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, p2)
    measured = (w.scan_view.mapToScene(p2).x() - w.scan_view.mapToScene(p1).x()) / 20
    assert doc.calibration.px_per_mm_x == pytest.approx(measured)
    assert doc.calibration.px_per_mm_y == pytest.approx(measured)  # "same scale both ways"
    assert w.calibration_panel.px_x.value() == pytest.approx(measured, abs=1e-3)
    assert "px/mm" in w.calibration_panel.result.text()
    # A coarser scale shortens every box's time window and the record with it.
    assert doc.n_samples < len(doc.history.command(0).before.columns[0])

    doc.history.undo()
    doc.apply_pulse((100, 500), (100, 500 - 20 * cal.px_per_mm_y))
    assert doc.calibration.mm_per_mv == pytest.approx(20.0)
    # The model re-runs with what the panel says, column timing included.
    panel = w.calibration_panel
    assert panel.options(doc.fs).columns == "auto"
    panel.columns_combo.setCurrentIndex(panel.columns_combo.findData("from-zero"))
    options = panel.options(doc.fs)
    assert (options.columns, options.mm_per_mv) == ("from-zero", pytest.approx(20.0))


# ---------------------------------------------------------------------- failures


def test_corrupt_label_file_shows_a_message_and_is_kept(qtbot, make_window, tmp_path) -> None:
    w = make_window()
    doc = open_and_wait(qtbot, w, [SAMPLE_SCAN])
    label = doc.label_path
    w.close()
    label.write_bytes(b"this is not HDF5")
    w2 = make_window()
    doc2 = open_and_wait(qtbot, w2, [SAMPLE_SCAN])
    assert "cannot be read" in w2.banner_text() and "not an HDF5 file" in w2.banner_text()
    assert "Traceback" not in w2.banner_text()
    # The proposals are saved as usual; the damaged file is set aside, never overwritten or deleted.
    kept = [p for p in label.parent.iterdir() if p.name.startswith(label.name + ".damaged-")]
    assert len(kept) == 1 and kept[0].read_bytes() == b"this is not HDF5"
    assert load_labels(label) == doc2.record()
    doc2.move_point(0, 5, doc2.traces[0].xy[5, 1] + 3)
    qtbot.waitUntil(lambda: not doc2.dirty, timeout=5000)  # autosaved
    assert load_labels(label) == doc2.record()


def test_model_failure_shows_a_message_and_keeps_saved_work(qtbot, make_window, tmp_path) -> None:
    class Failing:
        def __init__(self, exc: Exception) -> None:
            self.exc = exc

        def digitize(self, image, options, *, progress=None):
            if progress:
                progress("geometry", 0.2)
            raise self.exc

    w = make_window(factory=lambda: Failing(NotAnEcgError("no ECG traces found; is this an ECG page?")))
    w.open_paths([SAMPLE_SCAN])
    qtbot.waitUntil(lambda: bool(w.banner_text()), timeout=10_000)
    assert "no ECG traces found" in w.banner_text() and w.document is None
    assert not any((tmp_path / "labels").rglob("*.h5"))  # nothing saved for a failed page

    w2 = make_window(factory=lambda: Failing(RuntimeError("boom")))
    w2.open_paths([SAMPLE_SCAN])
    qtbot.waitUntil(lambda: bool(w2.banner_text()), timeout=10_000)
    assert "failed unexpectedly" in w2.banner_text() and "Traceback" not in w2.banner_text()
    assert w2.review_panel.status.text() == "NOT DIGITIZED"


# ---------------------------------------------------------------------- worklist, export, CLI


def test_folder_worklist_filter_sort_accept_and_next(qtbot, make_window, tmp_path) -> None:
    folder = tmp_path / "scans"
    (folder / "ward").mkdir(parents=True)
    shutil.copy(SAMPLE_SCAN, folder / "a_first.jpg")
    shutil.copy(SAMPLE_SCAN, folder / "ward" / "b_second.jpg")
    w = make_window()
    doc = open_and_wait(qtbot, w, [folder])
    panel = w.worklist
    assert [i.page.source.name for i in panel.model.items] == ["a_first.jpg", "b_second.jpg"]
    assert doc.label_path == folder / "labels" / "a_first.labels.h5"
    assert w.worklist_dock.isVisible()

    QTest.keyClick(w, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)  # accept, go to next
    qtbot.waitUntil(lambda: w.document is not None and w.document.page.source.name == "b_second.jpg", timeout=WAIT_MS)
    first = load_labels(folder / "labels" / "a_first.labels.h5")
    assert first.review.status == ReviewStatus.REVIEWED and first.review.reviewer == "Dr Test"
    assert w.document.label_path == folder / "labels" / "ward" / "b_second.labels.h5"
    qtbot.waitUntil(lambda: panel.model.items[1].status == "proposed", timeout=5000)
    assert [i.status for i in panel.model.items] == ["reviewed", "proposed"]

    panel.status_combo.setCurrentIndex(panel.status_combo.findData("reviewed"))
    assert panel.visible_rows() == [0]
    panel.status_combo.setCurrentIndex(0)
    panel.model.items[0].confidence = 0.9  # pretend the first page was the surer one
    panel.model.items[1].confidence = 0.4
    panel.sort_combo.setCurrentText("Lowest confidence first")
    assert panel.visible_rows() == [1, 0]
    panel.search.setText("b_sec")
    assert panel.visible_rows() == [1]
    panel.search.setText("")
    QTest.keyClick(w, Qt.Key.Key_PageDown)  # the next in this order is a, opened from its labels
    assert w.document.page.source.name == "a_first.jpg" and w.document.review.status == ReviewStatus.REVIEWED
    QTest.keyClick(w, Qt.Key.Key_PageDown)  # a is the last: stays
    assert w.document.page.source.name == "a_first.jpg" and "last page" in w.statusBar().currentMessage()


def test_export_and_drop_and_cli(qtbot, make_window, tmp_path, monkeypatch) -> None:
    w = make_window()
    doc = open_and_wait(qtbot, w, [SAMPLE_SCAN])
    files = w.export_to(tmp_path / "out")
    suffixes = {f.suffix for f in files}
    assert {".hea", ".dat", ".csv", ".edf", ".json"} <= suffixes
    from ecgstudio.io.signals import read_signals

    back = read_signals(tmp_path / "out" / "sample_scan")
    np.testing.assert_allclose(back.mv, doc.signals.mv, atol=1e-3)

    # Dropping a file onto the window opens it.
    other = tmp_path / "dropped.jpg"
    shutil.copy(SAMPLE_SCAN, other)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(other))])
    drop = QDropEvent(
        QPointF(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier
    )
    w.dropEvent(drop)
    qtbot.waitUntil(lambda: w.document is not None and w.document.page.source == other, timeout=WAIT_MS)

    # `ecgstudio` with no arguments and `ecgstudio gui PATH` open the window.
    import ecgstudio.app.main as app_main
    from ecgstudio.cli import main

    calls = []
    monkeypatch.setattr(app_main, "run", lambda paths=(): calls.append(list(paths)) or 0)
    assert main([]) == 0 and main(["gui", str(other)]) == 0
    assert calls == [[], [str(other)]]


def test_multi_page_pdf_becomes_one_item_per_page(qtbot, make_window, tmp_path) -> None:
    from PIL import Image

    class NoEcg:
        def digitize(self, image, options, *, progress=None):
            raise NotAnEcgError("no ECG traces found on this page")

    page = Image.new("RGB", (800, 600), "white")
    pdf = tmp_path / "two_pages.pdf"
    page.save(pdf, save_all=True, append_images=[page])
    w = make_window(factory=NoEcg)
    w.open_paths([pdf])
    qtbot.waitUntil(lambda: bool(w.banner_text()), timeout=10_000)
    items = w.worklist.model.items
    assert [i.page.title for i in items] == ["two_pages.pdf (page 1/2)", "two_pages.pdf (page 2/2)"]
    assert [i.label_path.name for i in items] == ["two_pages_p1.labels.h5", "two_pages_p2.labels.h5"]
    assert "no ECG traces found" in w.banner_text()
    QTest.keyClick(w, Qt.Key.Key_PageDown)
    assert w.current_row == 1 and "page 2/2" in w.scan_title.text()


def test_guesses_are_shown_on_the_page_not_only_in_the_terminal(qtbot, make_window) -> None:
    from ecgstudio.app.worklist import ASSUMED_MARK

    """What the engine assumed (here: the sample's gain, no pulse measured) is in a banner, marked
    in the calibration panel and in the worklist; setting the value by hand clears the mark."""
    w = make_window()
    doc = open_and_wait(qtbot, w, [SAMPLE_SCAN])
    assert [a.what for a in doc.assumptions] == ["gain"]
    assert "assumed, not measured" in w.banner_text() and "10 mm/mV" in w.banner_text()
    panel = w.calibration_panel
    assert panel.gain.styleSheet() and "Assumed, not measured" in panel.gain.toolTip()
    assert not panel.speed.styleSheet() and panel.assumed.isVisible()
    item = w.worklist.model.items[w.current_row]
    assert item.assumed == ("gain",)
    status = w.worklist.model.index(w.current_row, 1).data()
    assert status.endswith(ASSUMED_MARK)
    tip = w.worklist.model.index(w.current_row, 1).data(Qt.ItemDataRole.ToolTipRole)
    assert "assumed, not measured: gain" in tip
    panel.gain.setValue(20.0)  # the person reads 20 mm/mV on the paper
    assert doc.assumptions == () and not panel.gain.styleSheet() and not panel.assumed.isVisible()
    doc.history.undo()
    assert doc.assumed("gain") and panel.gain.styleSheet()


def test_a_page_whose_printed_names_disagree_with_its_leads_says_so(qtbot, make_window, shared_data) -> None:
    """ecg-image-kit-dev damaged/02153: the engine gives the box the name "aVR" is printed beside
    lead I; the page says so, I's confidence falls, and the worklist flags the page."""
    page = shared_data / "ecg-image-kit-dev" / "damaged" / "02153_hr-0.png"
    if not page.is_file():
        pytest.skip(f"{page} is not in this checkout's data")
    w = make_window()
    doc = open_and_wait(qtbot, w, [page])
    assert "the name printed at lead I (row 1) reads aVR" in w.banner_text()
    assert "rename it (F2)" in w.banner_text()
    assert doc.confidence["I"] < 0.5
    assert "layout" in w.worklist.model.items[w.current_row].assumed


def test_completed_leads_are_drawn_dashed_with_a_legend_and_can_be_hidden(qtbot, make_window, tmp_path) -> None:
    from ecgstudio.restore import RECONSTRUCTED

    w = make_window()
    doc = open_and_wait(qtbot, w, [SAMPLE_SCAN])
    view = w.signal_view
    assert not view.completion_shown and not view._legend.isVisible()
    assert all(len(c.xData if c.xData is not None else []) == 0 for c in view._completed.values())
    w.act_completed.trigger()  # Ctrl+5
    assert view.completion_shown and view._legend.isVisible() and w.settings.layer("completed", False)
    done = doc.completion()
    v1 = list(doc.lead_names).index("V1")
    placed = done.source[:, v1] == RECONSTRUCTED
    assert placed.mean() > 0.5  # V1 is printed for a quarter of the record; the rest is completed
    y = view._completed["V1"].getData()[1]
    drawn = np.isfinite(y)
    assert drawn.sum() >= placed.sum() and np.isnan(doc.column("V1")[placed]).all()  # the page's signal stays as read
    view.grab().save(str(tmp_path / "completed.png"))  # what a person sees (looked at)
    # An edit redraws what the completion makes of it; hiding it clears the dashes.
    before = view._completed["aVF"].getData()[1].copy()
    k = doc.box_for_lead("I")
    doc.erase_stretch(k, doc.boxes[k].x0, doc.boxes[k].x1)  # lead I gone: aVF is completed otherwise
    assert not np.array_equal(view._completed["aVF"].getData()[1], before, equal_nan=True)
    w.act_completed.trigger()
    assert not view._legend.isVisible() and not w.settings.layer("completed", True)
    assert len(view._completed["V1"].getData()[0] if view._completed["V1"].getData()[0] is not None else []) == 0


def test_window_size_and_docks_are_remembered(qtbot, make_window) -> None:
    from PySide6.QtCore import Qt

    w = make_window()
    w.resize(760, 560)  # within the offscreen screen, which clamps a restored geometry
    w.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, w.review_dock)  # the person moved a panel
    w.close()
    w2 = make_window()
    assert (w2.width(), w2.height()) == (760, 560)
    assert w2.dockWidgetArea(w2.review_dock) == Qt.DockWidgetArea.LeftDockWidgetArea


def test_the_scan_zoom_is_kept_from_page_to_page_and_session_to_session(qtbot, make_window) -> None:
    w = make_window()
    open_and_wait(qtbot, w, [SAMPLE_SCAN])
    view = w.scan_view
    view.zoom_by(1.15**3)  # three wheel steps in
    assert view.zoom_over_fit == pytest.approx(1.15**3)
    w.close()
    w2 = make_window()
    open_and_wait(qtbot, w2, [SAMPLE_SCAN])
    assert w2.scan_view.zoom_over_fit == pytest.approx(1.15**3)
    w2.fit_views()  # F: the whole page again, and so on the next start
    assert w2.settings.scan_zoom == 1.0


def test_the_reviewer_is_asked_once_per_session(qtbot, make_window) -> None:
    """A sign-off carries a name the person confirmed in this session, not one left in a field."""
    w = make_window(reviewer="Dr Left In Settings")
    asked: list[str] = []
    answers = iter([None, "Dr Present"])
    w.ask_reviewer = lambda offered: asked.append(offered) or next(answers)
    doc = open_and_wait(qtbot, w, [SAMPLE_SCAN])
    w.accept_and_next()  # cancelled: nothing signed off
    assert asked == ["Dr Left In Settings"] and not doc.review.status.signed_off
    w.accept_and_next()
    assert doc.review.reviewer == "Dr Present" and doc.review.status.signed_off
    assert w.settings.reviewer == "Dr Present"
    doc.move_point(0, 5, doc.traces[0].xy[5, 1] + 3)
    w.accept_and_next()  # the same session: not asked again
    assert len(asked) == 2 and doc.review.reviewer == "Dr Present"


def test_f1_lists_every_shortcut_the_window_has(qtbot, make_window) -> None:
    from PySide6.QtGui import QAction, QKeySequence

    from ecgstudio.app.window import SHORTCUTS

    w = make_window()
    listed = " ".join(keys for _what, keys in SHORTCUTS)
    missing = []
    for action in w.findChildren(QAction):
        for seq in action.shortcuts():
            text = seq.toString(QKeySequence.SequenceFormat.PortableText)
            if text and text not in listed:
                missing.append(f"{action.text()}: {text}")
    assert missing == [], "; ".join(missing)
    assert "Pan the page" in " ".join(what for what, _keys in SHORTCUTS)


def test_calipers_and_the_cursor_readout(qtbot, make_window) -> None:
    """K shows calipers on the signals; dragging an edge to one RR interval reads its ms and bpm;
    the status bar shows the time and mV under the cursor."""
    from PySide6.QtCore import QPointF

    w = make_window()
    doc = open_and_wait(qtbot, w, [SAMPLE_SCAN])
    view = w.signal_view
    QTest.keyClick(w, Qt.Key.Key_K)
    assert view.calipers_shown and w.act_calipers.isChecked()
    view._time_calipers.setRegion((1.0, 1.8))  # as a drag of the bands' edges leaves them
    view._level_calipers.setRegion((0.0, 1.5))
    assert view._caliper_text.toPlainText() == "800 ms (75 bpm as RR) | 1.50 mV"
    vb = view.getPlotItem().getViewBox()
    scene_pos = vb.mapViewToScene(QPointF(2.0, view.offset("II")))
    view.scene().sigMouseMoved.emit(scene_pos)
    assert w.cursor_label.text().startswith("II  t 2.0") and w.cursor_label.text().endswith("mV")
    QTest.keyClick(w, Qt.Key.Key_K)
    assert not view.calipers_shown
    assert doc is w.document


def test_ctrl_z_undoes_the_page_while_a_field_just_edited_has_the_focus(qtbot, make_window) -> None:
    w = make_window()
    doc = open_and_wait(qtbot, w, [SAMPLE_SCAN])
    w.lead_dock.hide()
    w.calibration_dock.show()
    w.calibration_dock.raise_()
    gain = w.calibration_panel.gain
    before = doc.calibration.mm_per_mv
    gain.setFocus()
    gain.selectAll()
    QTest.keyClicks(gain, "20")
    QTest.keyClick(gain, Qt.Key.Key_Return)
    assert doc.calibration.mm_per_mv == 20.0 and gain.hasFocus()
    QTest.keyClick(gain, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert doc.calibration.mm_per_mv == before and gain.value() == pytest.approx(before)
