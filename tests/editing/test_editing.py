"""The editing model without a toolkit: edits, undo and redo, merging, selection, saving policy.

No Qt here (and no ``qtbot``): a small synthetic page with exact traces and an exact ink mask
is edited the way the studio's tools edit it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from ecgstudio.editing import (
    EVERYTHING,
    Callbacks,
    Change,
    History,
    LabelSession,
    LabelSummary,
    PageDocument,
    PageRef,
    WorkItem,
    export_signals,
    open_label,
    read_label_summary,
    snap_to_ink,
    splice,
    stroke_to_columns,
    trainable_label_files,
)
from ecgstudio.editing.session import is_trainable
from ecgstudio.editing.worklist import UNREADABLE
from ecgstudio.labels import (
    ImageIdentity,
    LabelConflictError,
    LabelRecord,
    Provenance,
    Review,
    ReviewStatus,
    load_labels,
    save_labels,
)
from ecgstudio.paper import LEAD_NAMES
from ecgstudio.results import Assumption, Calibration, Digitization, LeadBox, PageMasks, Trace
from ecgstudio.signals import assemble_signals

H, W = 300, 700
PX_PER_MM = 4.0  # 100 px/s at 25 mm/s, 40 px/mV at 10 mm/mV
FS = 500.0
DURATION_S = 6.0
LEADS = ("I", "II", "III")
BASELINES = (60.0, 150.0, 240.0)
X0, X1 = 50.0, 650.0


def _trace_y(x: np.ndarray, baseline: float, k: int) -> np.ndarray:
    t = (x - X0) / 100.0
    return baseline - 20.0 * np.sin(2 * np.pi * (0.8 + 0.3 * k) * t)


def synthetic_digitization(*, model_version: str = "test-1", shift_px: float = 0.0) -> tuple[np.ndarray, Digitization]:
    """A 3-lead page: its image (H, W, 3) uint8 with black ink and its exact digitization."""
    cal = Calibration(PX_PER_MM, PX_PER_MM)
    image = np.full((H, W, 3), 255, np.uint8)
    labels = np.zeros((H, W), np.uint8)
    boxes, traces = [], []
    x = np.arange(X0, X1 + 1)
    for k, (lead, base) in enumerate(zip(LEADS, BASELINES, strict=True)):
        boxes.append(LeadBox(lead, X0, base - 45, X1, base + 45, base, 0.0, DURATION_S, row=k, col=0))
        y = _trace_y(x, base, k) + shift_px
        conf = np.full(len(x), 0.95, np.float32)
        conf[200:260] = 0.5  # one faint stretch
        traces.append(Trace(lead, np.column_stack([x, y]), conf))
        rows = np.round(y).astype(int)
        for j in range(len(x)):  # ink, one stroke per column between neighbouring rows
            lo, hi = sorted((rows[j], rows[j - 1] if j else rows[j]))
            image[lo : hi + 1, int(x[j])] = 0
            labels[lo : hi + 1, int(x[j])] = k + 1
    boxes, traces = tuple(boxes), tuple(traces)
    signals = assemble_signals(boxes, traces, cal, fs=FS, duration_s=DURATION_S, page_boxes=boxes)
    masks = PageMasks(labels, np.zeros((H, W), bool), np.zeros((H, W), bool))
    dig = Digitization(
        (H, W), "3x4", cal, boxes, traces, signals, {"I": 0.9, "II": 0.8, "III": 0.3}, masks, model_version
    )
    return image, dig


@pytest.fixture
def page(tmp_path) -> tuple[np.ndarray, Digitization, ImageIdentity]:
    image, dig = synthetic_digitization()
    cv2.imwrite(str(tmp_path / "page.png"), image)
    return image, dig, ImageIdentity.from_array(tmp_path / "page.png", image)


@pytest.fixture
def doc(page, tmp_path) -> PageDocument:
    image, dig, identity = page
    return PageDocument.from_digitization(
        PageRef(tmp_path / "page.png"),
        image,
        dig,
        identity=identity,
        label_path=tmp_path / "page.labels.h5",
        reviewer="me",
    )


# ---------------------------------------------------------------------- the document


def test_the_editing_model_imports_without_qt() -> None:
    code = "import sys; sys.modules['PySide6'] = None; sys.modules['pyqtgraph'] = None; import ecgstudio.editing"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_fresh_document_holds_the_digitization(doc, page) -> None:
    _image, dig, _identity = page
    np.testing.assert_array_equal(doc.signals.mv, dig.signals.mv)
    assert doc.boxes == dig.boxes and doc.review.status == ReviewStatus.PROPOSED
    assert not doc.dirty and len(doc.history) == 0 and not doc.history.can_undo
    assert doc.box_for_lead("II") == 1 and doc.box_for_lead("V1") == -1
    assert np.isnan(doc.column("V1")).all() and np.isfinite(doc.column("I")).mean() > 0.95
    assert doc.faint_points(0).sum() == 60 and doc.low_confidence_samples("I").any()
    assert not doc.missing_samples("II").any()


def _drag(d: PageDocument) -> None:
    d.move_point(1, 100, d.traces[1].xy[100, 1] - 10)


def _redraw(d: PageDocument, snap: bool) -> None:
    x = np.arange(150.0, 220.0)
    d.redraw_stretch(0, np.column_stack([x, np.full(len(x), BASELINES[0] + 2.0)]), snap=snap)


EDITS = {
    "drag point": _drag,
    "set trace": lambda d: d.set_trace(2, d.traces[2].xy[::2], None),
    "pen": lambda d: _redraw(d, False),
    "pen snapped": lambda d: _redraw(d, True),
    "eraser": lambda d: d.erase_stretch(0, 300, 360),
    "re-extract": lambda d: (d.erase_stretch(1, 100, 400), d.reextract_box(1)),
    "move box": lambda d: d.move_box(0, 12.0, -3.0),
    "resize box": lambda d: d.resize_box(2, 60.0, 200.0, 600.0, 280.0),
    "rename box": lambda d: d.rename_box(2, "aVF"),
    "box timing": lambda d: d.set_box_timing(0, t_start_s=0.5, duration_s=5.0),
    "invert": lambda d: d.set_inverted(1, True),
    "add box": lambda d: d.add_box(60, 100, 300, 190, lead="V1"),
    "delete box": lambda d: d.delete_box(1),
    "paper speed": lambda d: d.set_calibration(replace(d.calibration, mm_per_s=50.0), merge_key=None),
    "gain": lambda d: d.set_calibration(replace(d.calibration, mm_per_mv=20.0)),
    "ruler": lambda d: d.apply_ruler((100, 50), (150, 50), 10.0, axis="x"),
    "pulse": lambda d: d.apply_pulse((20, 100), (20, 20)),
    "accept": lambda d: d.accept(),
    "note": lambda d: d.set_note("noisy V1"),
    "new model result": lambda d: d.replace_digitization(synthetic_digitization(shift_px=1.5)[1]),
}


@pytest.mark.parametrize("name", list(EDITS))
def test_every_edit_undoes_and_redoes_exactly(doc, name) -> None:
    before = doc.record()
    EDITS[name](doc)
    after = doc.record()
    assert after != before and doc.dirty
    steps = doc.history.index
    for _ in range(steps):
        doc.history.undo()
    assert doc.record() == before and not doc.dirty
    for _ in range(steps):
        doc.history.redo()
    assert doc.record() == after and doc.dirty


def test_edits_rederive_only_the_leads_they_touch(doc) -> None:
    before = {lead: doc.column(lead) for lead in doc.lead_names}
    _drag(doc)
    changed = [lead for lead in doc.lead_names if doc.column(lead) is not before[lead]]
    assert changed == ["II"]
    assert np.nanmax(np.abs(doc.column("II") - before["II"])) == pytest.approx(10 / doc.calibration.px_per_mv, rel=0.1)
    assert doc.review.status == ReviewStatus.EDITED and doc.review.lead_status == {"II": ReviewStatus.EDITED}
    assert doc.review.reviewer == "" and doc.review.reviewed_at == ""  # edited is not signed off


@pytest.mark.parametrize("how", ["trim left edge", "trim right edge", "move right"])
def test_resizing_or_moving_a_box_never_shifts_its_lead_in_time(doc, how) -> None:
    """The samples a box keeps stay where the page's time axis puts them (trimming V5's left edge
    once moved its beats 0.24 s against V4 and V6)."""
    k = doc.box_for_lead("II")
    before = doc.column("II").copy()
    b = doc.boxes[k]
    if how == "trim left edge":
        doc.resize_box(k, b.x0 + 100, b.y0, b.x1, b.y1)
    elif how == "trim right edge":
        doc.resize_box(k, b.x0, b.y0, b.x1 - 100, b.y1)
    else:
        doc.move_box(k, 40.0, 0.0)
    after = doc.column("II")
    both = np.isfinite(before) & np.isfinite(after)
    assert both.sum() > 0.5 * FS  # seconds of the lead still shown
    if how == "move right":  # the box now covers other ink; its samples sit at that ink's times
        return
    np.testing.assert_allclose(after[both], before[both], atol=1e-9)
    assert np.isnan(after[np.isfinite(before) & ~both]).all()


def test_a_box_dragged_before_the_record_start_stops_at_zero(doc) -> None:
    k = doc.box_for_lead("I")
    b = doc.boxes[k]
    doc.resize_box(k, b.x0 - 30, b.y0, b.x1, b.y1)
    assert doc.boxes[k].t_start_s == 0.0 and doc.boxes[k].x0 == pytest.approx(b.origin_x)


def test_a_new_box_takes_a_missing_lead_or_must_be_named(doc) -> None:
    b = doc.boxes[doc.box_for_lead("II")]
    missing = doc.missing_leads()
    assert missing == [lead for lead in LEAD_NAMES if lead not in LEADS]
    for lead in missing:  # each new box takes the next lead the page lacks
        k = doc.add_box(b.x0, b.y0, b.x1, b.y1)
        assert doc.boxes[k].lead == lead
    with pytest.raises(ValueError, match="every lead of the page already has a box"):
        doc.add_box(b.x0, b.y0, b.x1, b.y1)  # never a silent second lead I
    k = doc.add_box(b.x0, b.y0, b.x1, b.y1, lead="II")  # named: a second II (a rhythm strip)
    assert doc.boxes[k].lead == "II" and doc.confidence["II"] > 0.5  # traced from the ink, measured


def test_confidence_follows_the_edits(doc) -> None:
    """Erased or emptied leads lose their confidence (sorting by it keeps its meaning); leads
    nobody touched keep the model's; undo brings the old values back."""
    before = dict(doc.confidence)
    k = doc.box_for_lead("I")
    b = doc.boxes[k]
    doc.erase_stretch(k, b.x0, b.x0 + 0.8 * b.width)
    assert doc.confidence["I"] < 0.3 < before["I"]
    assert doc.confidence["II"] == before["II"] and doc.confidence["III"] == before["III"]
    assert doc.record().digitization.confidence["I"] == doc.confidence["I"]
    doc.delete_box(doc.box_for_lead("III"))
    assert "III" not in doc.confidence
    doc.history.undo()
    doc.history.undo()
    assert doc.confidence == before


def test_edited_and_signed_off_are_kept_apart(doc) -> None:
    """An edit never signs a page off; Accept does, by whom and when; a later edit revokes it.
    Only signed-off pages are trainable."""
    _drag(doc)
    assert doc.review.status == ReviewStatus.EDITED and not is_trainable(doc.review.status.value)
    doc.accept()
    signed = doc.review
    assert signed.status == ReviewStatus.CORRECTED and signed.reviewer == "me" and signed.reviewed_at
    assert signed.lead_status["II"] == ReviewStatus.CORRECTED and signed.lead_status["I"] == ReviewStatus.REVIEWED
    assert is_trainable(signed.status.value)
    _drag(doc)
    assert doc.review.status == ReviewStatus.EDITED and doc.review.reviewer == "" and doc.review.reviewed_at == ""
    doc.history.undo()
    assert doc.review == signed  # undo brings the sign-off back with the page it was given for


def test_a_new_gain_scales_every_signal_and_a_new_speed_resamples(doc, page) -> None:
    _image, dig, _identity = page
    v = doc.column("I").copy()
    doc.set_calibration(replace(doc.calibration, mm_per_mv=20.0))
    np.testing.assert_allclose(doc.column("I"), v / 2, rtol=1e-12)
    doc.set_calibration(replace(doc.calibration, mm_per_s=50.0), merge_key=None)  # twice the speed
    assert doc.n_samples == pytest.approx(dig.signals.n_samples / 2, abs=1)
    assert doc.boxes[-1].duration_s == pytest.approx(dig.boxes[-1].duration_s / 2)
    with pytest.raises(ValueError, match="positive"):
        doc.set_calibration(replace(doc.calibration, mm_per_mv=0.0))


def test_document_edits_and_undo_of_everything(doc, page) -> None:
    """Moved from the studio tests: a script drives the same edits as the window."""
    _image, dig, _identity = page
    fresh = doc.record()
    doc.set_calibration(replace(doc.calibration, mm_per_s=50.0), merge_key=None)
    k = doc.box_for_lead("II")
    doc.delete_box(k)
    assert np.isnan(doc.column("II")).all()
    assert doc.masks.trace.max() == dig.masks.trace.max() - 1  # labels follow the boxes
    assert (doc.masks.trace == 2).sum() == (dig.masks.trace == 3).sum()
    doc.accept()
    assert doc.review.status == ReviewStatus.CORRECTED and doc.review.reviewer == "me"
    while doc.history.can_undo:
        doc.history.undo()
    assert doc.record() == fresh  # undo restores exactly, signals included


def test_accepting_an_unedited_page_marks_it_reviewed(doc) -> None:
    doc.accept()
    assert doc.review.status == ReviewStatus.REVIEWED and doc.review.reviewed_at
    assert doc.review.lead_status == dict.fromkeys(LEADS, ReviewStatus.REVIEWED)
    assert doc.history.undo_text == "Accept page"


def test_box_edits_check_their_input(doc) -> None:
    with pytest.raises(ValueError, match="unknown lead"):
        doc.rename_box(0, "X9")
    with pytest.raises(ValueError, match="at least a few pixels"):
        doc.add_box(10, 10, 12, 12)
    doc.move_box(0, 0.0, 0.0)  # no change: no undo step
    assert len(doc.history) == 0


def test_adding_a_box_traces_the_ink_inside_it(doc) -> None:
    k = doc.add_box(X0, BASELINES[1] - 45, 400, BASELINES[1] + 45)
    assert doc.boxes[k].lead == "aVR"  # the first lead without a box
    assert doc.boxes[k].row == 1 and doc.selected == k
    xy = doc.traces[k].xy
    ok = np.isfinite(xy).all(axis=1)
    assert ok.sum() > 0.8 * (400 - X0)
    np.testing.assert_allclose(xy[ok, 1], _trace_y(xy[ok, 0], BASELINES[1], 1), atol=1.5)


# ---------------------------------------------------------------------- re-extraction


def test_reextraction_restores_an_erased_lead_from_the_ink_mask(doc) -> None:
    original = doc.column("II").copy()
    doc.erase_stretch(1, 100, 500)
    assert np.isnan(doc.column("II")).mean() > 0.5
    doc.reextract_box(1)
    assert doc.history.undo_text == "Re-extract II"
    ok = np.isfinite(original)
    assert np.isfinite(doc.column("II")[ok]).mean() > 0.95
    np.testing.assert_allclose(doc.column("II")[ok], original[ok], atol=0.05, equal_nan=True)


def test_reextraction_follows_a_moved_box_and_needs_a_mask(doc, page, tmp_path) -> None:
    doc.move_box(0, 0.0, 90.0)  # box of I over the ink of II
    doc.reextract_box(0)
    xy = doc.traces[0].xy[np.isfinite(doc.traces[0].xy).all(axis=1)]
    np.testing.assert_allclose(xy[:, 1], _trace_y(xy[:, 0], BASELINES[1], 1), atol=1.5)

    image, dig, identity = page
    bare = PageDocument.from_digitization(
        PageRef(tmp_path / "p.png"), image, replace(dig, masks=None), identity=identity
    )
    with pytest.raises(ValueError, match="no trace mask"):
        bare.reextract_box(0)


# ---------------------------------------------------------------------- history


def test_one_drag_is_one_undo_step(doc) -> None:
    y0 = doc.traces[1].xy[100, 1]
    doc.move_point(1, 100, y0 - 5, merge_key="drag-1")
    doc.move_point(1, 100, y0 - 15, merge_key="drag-1")
    assert len(doc.history) == 1 and doc.traces[1].xy[100, 1] == pytest.approx(y0 - 15)
    doc.move_point(1, 100, y0 - 20, merge_key="drag-2")  # another drag
    assert len(doc.history) == 2
    doc.history.undo()
    doc.history.undo()
    assert doc.traces[1].xy[100, 1] == y0


def test_a_save_between_two_steps_of_a_drag_starts_a_new_undo_step(doc) -> None:
    y0 = doc.traces[1].xy[100, 1]
    doc.move_point(1, 100, y0 - 5, merge_key="drag")
    doc.mark_saved(doc.record().touched())
    doc.move_point(1, 100, y0 - 9, merge_key="drag")
    assert len(doc.history) == 2 and doc.dirty
    doc.history.undo()
    assert not doc.dirty and doc.traces[1].xy[100, 1] == pytest.approx(y0 - 5)


def test_spin_box_sweeps_of_the_calibration_merge(doc) -> None:
    for gain in (11.0, 12.0, 13.0):
        doc.set_calibration(replace(doc.calibration, mm_per_mv=gain))
    doc.set_box_timing(0, t_start_s=0.1)
    doc.set_box_timing(0, t_start_s=0.2)
    assert [doc.history.command(i).text for i in range(len(doc.history))] == [
        "Change calibration",
        "Change lead timing",
    ]
    doc.history.undo()
    doc.history.undo()
    assert doc.calibration.mm_per_mv == 10.0 and doc.boxes[0].t_start_s == 0.0


def test_dirty_and_clean_follow_the_saved_state(doc) -> None:
    heard: list[bool] = []
    doc.history.on_clean_changed.connect(heard.append)
    _drag(doc)
    assert doc.dirty
    doc.mark_saved(doc.record().touched())
    assert not doc.dirty and doc.history.clean_index == 1
    doc.history.undo()
    assert doc.dirty
    doc.history.redo()
    assert not doc.dirty
    doc.history.undo()
    doc.set_note("another edit")  # the saved state can no longer be reached
    assert doc.history.clean_index is None and doc.dirty
    assert heard == [False, True, False, True, False]


@dataclass(frozen=True)
class Step:
    """A command that appends to a log, for the history alone."""

    log: list
    value: int
    text: str = "Step"
    merge_key: str | None = None

    def redo(self) -> None:
        self.log.append(self.value)

    def undo(self) -> None:
        self.log.append(-self.value)

    def merged(self, later: Step) -> Step | None:
        return replace(self, value=self.value + later.value)


def test_history_push_undo_redo_and_texts() -> None:
    log: list[int] = []
    history = History()
    indices: list[int] = []
    history.on_index_changed.connect(indices.append)
    history.push(Step(log, 1, "First"))
    history.push(Step(log, 2, "Second"))
    assert log == [1, 2] and history.index == 2 and history.undo_text == "Second" and history.redo_text == ""
    history.undo()
    assert log == [1, 2, -2] and history.can_redo and history.redo_text == "Second"
    history.push(Step(log, 5, "Third"))  # drops what could have been redone
    assert len(history) == 2 and not history.can_redo and history.command(1).text == "Third"
    history.undo()
    history.undo()
    history.undo()  # nothing left: no-op
    assert not history.can_undo and history.undo_text == "" and history.index == 0
    history.redo()
    assert log[-1] == 1
    assert indices == [1, 2, 1, 2, 1, 0, 1]


def test_history_merges_only_equal_keys_and_keeps_a_limit() -> None:
    log: list[int] = []
    history = History(limit=2)
    history.push(Step(log, 1, merge_key="a"))
    history.push(Step(log, 2, merge_key="a"))
    history.push(Step(log, 4, merge_key="b"))
    history.push(Step(log, 8))
    history.push(Step(log, 16))
    assert len(history) == 2 and [history.command(i).value for i in range(2)] == [8, 16]
    assert history.index == 2 and history.clean_index is None  # the clean state was dropped
    history.set_clean()
    assert history.clean
    history.undo()
    history.undo()
    assert log[-2:] == [-16, -8] and not history.can_undo
    with pytest.raises(ValueError):
        History(limit=-1)


def test_history_merged_command_undoes_both() -> None:
    log: list[int] = []
    history = History()
    history.push(Step(log, 1, merge_key="a"))
    history.push(Step(log, 2, merge_key="a"))
    assert len(history) == 1 and history.command(0).value == 3
    history.undo()
    assert log == [1, 2, -3]
    history.clear()
    assert len(history) == 0 and history.clean


# ---------------------------------------------------------------------- selection and callbacks


def test_selection_and_its_callbacks(doc) -> None:
    heard: list[int] = []
    doc.on_selection_changed.connect(heard.append)
    doc.select(1)
    doc.select(1)  # no change: no callback
    doc.select(99)  # out of range: none
    doc.select_lead("III")
    assert heard == [1, -1, 2] and doc.selected == 2
    assert doc.boxes_at(100, BASELINES[2]) == [2]
    doc.delete_box(2)  # deleting the selected box clears the selection
    assert doc.selected == -1 and heard[-1] == -1
    k = doc.add_box(60, 200, 300, 290)
    assert doc.selected == k and heard[-1] == k
    doc.history.undo()  # the box goes away, and the selection with it
    assert doc.selected == -1 and heard[-1] == -1
    assert len(doc.history) == 2  # selecting is not an edit


def test_change_callbacks_say_what_changed(doc) -> None:
    changes: list[Change] = []
    doc.on_changed.connect(changes.append)
    _drag(doc)
    assert changes[-1] == Change(traces=frozenset({1}), leads=frozenset({"II"}), review=True)
    doc.move_box(0, 5, 0)
    assert changes[-1].boxes and changes[-1].leads == frozenset({"I"})
    doc.set_calibration(replace(doc.calibration, mm_per_mv=5.0))
    assert changes[-1].calibration and changes[-1].leads is None
    doc.history.undo()
    assert changes[-1].calibration  # undo says what it changes back
    doc.replace_digitization(synthetic_digitization()[1])
    assert changes[-1] == EVERYTHING
    doc.on_changed.disconnect(changes.append)
    doc.set_note("quiet")
    assert len(changes) == 5
    assert Change(traces=frozenset({1})) | Change(traces=None) == Change(traces=None)


def test_callbacks_list() -> None:
    calls: list[tuple] = []
    callbacks = Callbacks()

    def first(*args) -> None:
        calls.append(("first", *args))
        callbacks.connect(late)  # connected during an emit: called from the next one

    def late(*args) -> None:
        calls.append(("late", *args))

    callbacks.connect(first)
    callbacks.emit(1, 2)
    assert calls == [("first", 1, 2)] and len(callbacks) == 2
    callbacks.disconnect(first)
    callbacks.emit(3)
    assert calls[-1] == ("late", 3)
    with pytest.raises(ValueError):
        callbacks.disconnect(first)


# ---------------------------------------------------------------------- pen and eraser helpers


def test_splice_and_stroke_helpers() -> None:
    xy = np.column_stack([np.arange(10.0), np.arange(10.0) * 2])
    conf = np.full(10, 0.5, np.float32)
    out, c = splice(xy, conf, 3, 5, None, None)
    assert len(out) == 8 and np.isnan(out[3]).all() and c.dtype == np.float32
    again, _ = splice(
        out, c, 2.5, 6.5, np.array([[3.0, 0.0], [4.0, 0.0], [5.0, 0.0], [6.0, 0.0]]), np.ones(4, np.float32)
    )
    assert np.isfinite(again).all() and len(again) == 10 and (again[3:7, 1] == 0).all()
    end, _ = splice(xy, conf, 7, 20, None, None)
    assert len(end) == 7 and np.isfinite(end).all()  # no dangling gap at the end
    cols = stroke_to_columns(np.array([[5.2, 1.0], [2.0, 4.0], [3.6, 2.0]]))
    np.testing.assert_array_equal(cols[:, 0], [2, 3, 4, 5])


def test_snap_to_ink_moves_points_onto_ink_rows_only() -> None:
    ink = np.zeros((40, 10), np.uint8)
    ink[21, :5] = 250
    xy = np.column_stack([np.arange(10.0), np.full(10, 19.0)])
    out = snap_to_ink(ink, xy, radius=4)
    np.testing.assert_allclose(out[:5, 1], 21.0)
    np.testing.assert_array_equal(out[5:], xy[5:])  # no ink nearby: stays


def test_the_pen_snaps_to_the_trace_not_to_a_darker_grid_line(doc) -> None:
    """A stroke 2 px off a T wave, beside a ruled line darker than the trace: it goes onto the trace."""
    x = np.arange(150.0, 220.0)
    truth = _trace_y(x, BASELINES[0], 0)
    grid_row = int(round(float(np.mean(truth)))) - 3
    doc.image[grid_row, 100:300] = 0  # a grid line, as dark as ink can be, never in the trace mask
    ink = doc.trace_ink()
    assert ink[grid_row, 100:300].max() == 0 or (doc.masks.trace[grid_row, 100:300] > 0).any()
    doc.redraw_stretch(0, np.column_stack([x, truth - 2.0]), snap=True)
    xy = doc.traces[0].xy
    sel = (xy[:, 0] >= 150) & (xy[:, 0] <= 219)
    assert np.abs(xy[sel, 1] - truth).mean() < 1.0


def test_the_pen_gives_full_confidence_and_snaps_to_the_drawn_ink(doc) -> None:
    x = np.arange(150.0, 220.0)
    truth = _trace_y(x, BASELINES[0], 0)
    doc.redraw_stretch(0, np.column_stack([x, truth + 2.5]), snap=True)
    xy, conf = doc.traces[0].xy, doc.traces[0].confidence
    sel = (xy[:, 0] >= 150) & (xy[:, 0] <= 219)
    assert sel.sum() == len(x) and (conf[sel] == 1.0).all()
    assert np.abs(xy[sel, 1] - truth).mean() < 1.0  # pulled back onto the ink


# ---------------------------------------------------------------------- session: labels on disk


def test_opening_a_label_file(doc, page, tmp_path) -> None:
    _image, _dig, identity = page
    path = doc.label_path
    assert open_label(path, identity) == open_label(path, identity)  # no file: nothing to open
    assert open_label(path, identity).record is None
    save_labels(doc.record(), path)
    assert open_label(path, identity).record == doc.record()

    other = replace(identity, sha256="0" * 64)
    opening = open_label(path, other)
    assert opening.record is None and opening.level == "warning" and opening.set_aside.reason == "other-image"
    assert "describes another image" in opening.message

    path.write_bytes(b"this is not HDF5")
    opening = open_label(path, identity)
    assert opening.record is None and opening.set_aside.reason == "damaged" and opening.level == "error"
    assert "cannot be read" in opening.message and "not an HDF5 file" in opening.message


def test_a_damaged_label_file_is_set_aside_not_overwritten(doc, page) -> None:
    _image, _dig, identity = page
    path = doc.label_path
    path.write_bytes(b"this is not HDF5")
    session = LabelSession()
    assert session.open(path, identity).set_aside is not None
    saved = session.save(doc)
    kept = [p for p in path.parent.iterdir() if p.name.startswith(path.name + ".damaged-")]
    assert saved.kept == kept[0] and len(kept) == 1 and kept[0].read_bytes() == b"this is not HDF5"
    assert load_labels(path) == doc.record() == saved.record and not doc.dirty
    assert session.set_aside is None
    _drag(doc)
    session.save(doc)  # the next save writes over the new file; nothing more is set aside
    assert len([p for p in path.parent.iterdir() if ".damaged-" in p.name]) == 1
    assert load_labels(path) == doc.record()


def test_saving_only_when_needed_and_explicit_saves(doc, tmp_path) -> None:
    session = LabelSession()
    first = session.save(doc)  # no file yet: written though nothing was edited
    assert first is not None and first.path == doc.label_path and first.kept is None
    assert session.save(doc) is None  # clean and on disk: nothing to do
    again = session.save(doc, explicit=True)  # Ctrl+S writes anyway
    assert again is not None and load_labels(doc.label_path) == doc.record()
    unsaved = PageDocument(doc.page, doc.image, doc.record(), label_path=None)
    with pytest.raises(ValueError, match="no label file"):
        session.save(unsaved)


def test_two_sessions_on_one_page_lose_nothing(doc, page) -> None:
    """Two windows (or a window and a script) edit one page: the second to save is told, and
    saving explicitly keeps the other's file aside instead of replacing it."""
    _image, _dig, identity = page
    mine, theirs = LabelSession(), LabelSession()
    mine.save(doc)
    other_doc = PageDocument(doc.page, doc.image, load_labels(doc.label_path), label_path=doc.label_path)
    theirs.open(doc.label_path, identity)
    mine.open(doc.label_path, identity)
    _drag(other_doc)
    theirs.save(other_doc)  # the other window saves first
    _drag(doc)
    with pytest.raises(LabelConflictError, match="saved by somebody else"):
        mine.save(doc)  # an autosave: nothing written, the edits stay
    assert doc.dirty and load_labels(doc.label_path) == other_doc.record()
    saved = mine.save(doc, explicit=True)  # Ctrl+S: mine is written, theirs kept aside
    assert saved.kept is not None and saved.kept.name.startswith("page.labels.h5.conflict-")
    assert load_labels(saved.kept) == other_doc.record() and load_labels(doc.label_path) == doc.record()


def test_autosave_writes_atomically(doc, monkeypatch) -> None:
    session = LabelSession()
    session.save(doc)
    before = doc.label_path.read_bytes()
    _drag(doc)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    import ecgstudio.labels as labels

    monkeypatch.setattr(labels, "_write_record", broken)
    with pytest.raises(OSError, match="disk full"):
        session.save(doc)
    assert doc.label_path.read_bytes() == before and doc.dirty  # the old file is untouched
    assert sorted(p.name for p in doc.label_path.parent.iterdir()) == ["page.labels.h5", "page.png"]  # no debris
    monkeypatch.undo()
    saved = session.save(doc)
    assert saved is not None and load_labels(doc.label_path) == doc.record() and not doc.dirty
    assert saved.record.provenance.modified_at >= load_labels(doc.label_path).provenance.created_at


def test_export_writes_signals_and_a_sidecar(doc, tmp_path) -> None:
    doc.set_note("ST depression in V4-V6; check against the old trace")
    files = export_signals(doc, tmp_path / "out")
    suffixes = {p.suffix for p in files}
    assert {".hea", ".csv", ".edf", ".json"} <= suffixes
    sidecar = json.loads(next(p for p in files if p.suffix == ".json").read_text())
    assert "page.png" in json.dumps(sidecar) and sidecar["provenance"]["review_status"] == "proposed"
    assert sidecar["provenance"]["review_note"] == "ST depression in V4-V6; check against the old trace"
    assert "completion" not in sidecar


def test_export_of_completed_leads_says_which_samples_were_read(doc, tmp_path) -> None:
    from ecgstudio.io.signals import read_signals

    files = export_signals(doc, tmp_path / "out", completed=True)
    back = read_signals(tmp_path / "out" / doc.page.stem)
    read = np.isfinite(doc.signals.mv)
    assert np.isfinite(back.mv).sum() > read.sum()  # more than the page shows
    np.testing.assert_allclose(back.mv[read], doc.signals.mv[read], atol=1e-3)  # what was read, as read
    sidecar = json.loads(next(p for p in files if p.suffix == ".json").read_text())
    kinds = {run[0] for runs in sidecar["completion"].values() for run in runs}
    assert "measured" in kinds and kinds & {"filled", "reconstructed"}
    header = next(p for p in files if p.suffix == ".csv").read_text().splitlines()[0]
    assert "V1_source" in header


# ---------------------------------------------------------------------- session: the worklist's pages


def _labelled(tmp_path: Path, name: str, status: ReviewStatus, page) -> WorkItem:
    _image, dig, identity = page
    item = WorkItem(PageRef(tmp_path / f"{name}.png"), tmp_path / "labels")
    save_labels(LabelRecord(identity, dig, Review(status, reviewer="rev"), Provenance.now()), item.label_path)
    return item


def test_label_summaries_and_trainable_pages(tmp_path, page) -> None:
    items = [_labelled(tmp_path, s.value, s, page) for s in ReviewStatus]
    damaged = WorkItem(PageRef(tmp_path / "damaged.png"), tmp_path / "labels")
    damaged.label_path.write_bytes(b"junk")
    missing = WorkItem(PageRef(tmp_path / "missing.png"), tmp_path / "labels")
    reviewed, corrected = items[3], items[4]
    twin = WorkItem(reviewed.page, reviewed.labels_dir)  # the same page twice
    worklist = [*items, damaged, missing, twin]

    assert read_label_summary(reviewed.label_path) == LabelSummary("reviewed", 0.3, "rev")
    assert read_label_summary(damaged.label_path).status == UNREADABLE
    assert read_label_summary(missing.label_path) == LabelSummary()
    labels = trainable_label_files(worklist)
    assert labels == [reviewed.label_path, corrected.label_path]  # the signed-off pages, each once
    statuses = ["new", "proposed", "edited", "reviewed", "corrected", UNREADABLE, "new", "reviewed"]
    assert [i.status for i in worklist] == statuses
    assert reviewed.confidence == pytest.approx(0.3) and reviewed.reviewer == "rev"
    assert [is_trainable(s) for s in ("new", "proposed", "edited", "reviewed", "corrected", UNREADABLE)] == [
        False,
        False,
        False,
        True,
        True,
        False,
    ]


def test_a_work_item_shows_a_saved_record(doc) -> None:
    item = WorkItem(doc.page, doc.label_path.parent)
    assert item.label_path == doc.label_path
    item.update_from(doc.record())
    assert (item.status, item.confidence, item.reviewer) == ("proposed", pytest.approx(0.3), "")


def test_lead_names_are_the_papers(doc) -> None:
    assert doc.lead_names == LEAD_NAMES


def test_assumptions_travel_with_the_page_until_a_person_sets_the_value(page, tmp_path) -> None:
    image, dig, identity = page
    dig = replace(dig, assumptions=(Assumption("gain", "no calibration pulse measured; assuming 10 mm/mV"),))
    doc = PageDocument.from_digitization(PageRef(tmp_path / "page.png"), image, dig, identity=identity)
    assert doc.assumed("gain") and not doc.assumed("scale")
    assert doc.record().digitization.assumptions == dig.assumptions
    doc.set_calibration(replace(doc.calibration, mm_per_s=50.0))  # another value: the gain stays assumed
    assert doc.assumed("gain")
    doc.set_calibration(replace(doc.calibration, mm_per_mv=20.0))
    assert doc.assumptions == () and doc.record().digitization.assumptions == ()


def test_calipers_read_intervals_rates_and_amplitudes() -> None:
    from ecgstudio.editing.calipers import Calipers, readout

    rr = Calipers(1.20, 2.02, -0.3, 0.95)
    assert rr.interval_ms == pytest.approx(820) and rr.rate_bpm == pytest.approx(73.17, abs=0.01)
    assert rr.amplitude_mv == pytest.approx(1.25) and rr.describe() == "820 ms (73 bpm as RR) | 1.25 mV"
    assert "bpm" not in Calipers(1.0, 1.0).describe()
    signal = np.array([0.0, 0.5, np.nan, 1.0])
    assert readout(0.002, "II", signal, 500.0) == "II  t 0.002 s  0.50 mV"
    assert readout(0.004, "II", signal, 500.0).endswith("no sample")
