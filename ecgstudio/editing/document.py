"""The editable model of one ECG page: a digitization plus the person's edits, with undo.

A :class:`PageDocument` holds the page image and an immutable :class:`PageState` (calibration,
lead boxes, pixel traces, signal columns, review, masks).  Every edit builds a new state from
the current one and pushes a :class:`StateCommand` on the document's
:class:`~ecgstudio.editing.history.History`; undo and redo swap whole states, so they restore
exactly what was there, and a state shares every unchanged array with its predecessor.

Signals are re-derived with :func:`ecgstudio.signals.assemble_signals` (each box maps its own
columns to its own time window) for the leads an edit touches only; the other leads keep the
columns they had (for a fresh page, the engine's own output).  Nothing here draws and nothing
needs a toolkit: listeners connect to :attr:`PageDocument.on_changed` and
:attr:`PageDocument.on_selection_changed` (the studio re-emits them as Qt signals), and a
script can drive the same edits the window does.

Coordinates are input-image pixels, as in :class:`~ecgstudio.results.Digitization`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from ..arrays import true_runs
from ..io.images import page_stem
from ..labels import ImageIdentity, LabelRecord, Provenance, Review, ReviewStatus, utc_now
from ..paper import LEAD_NAMES
from ..restore import Completion, plotted_windows, restore
from ..results import Assumption, Calibration, Digitization, LeadBox, PageMasks, Signals, Trace
from ..signals import assemble_signals, lead_confidence
from ..strokes import trace_in_box
from .callbacks import Callbacks
from .history import History
from .polylines import SNAP_RADIUS_PX, snap_to_ink, splice, stroke_to_columns

log = logging.getLogger(__name__)

#: Lead confidence (``Digitization.confidence``) below which a lead is flagged.
LOW_LEAD_CONFIDENCE = 0.4
#: Point confidence below which a stretch of trace is highlighted.  The extractor keeps only ink
#: above 0.7 probability (``ExtractConfig.threshold``), so points under 0.8 are the faint ones.
LOW_POINT_CONFIDENCE = 0.8
#: Shortest faint stretch, in seconds, that is highlighted (1 mm at 25 mm/s).
MIN_FAINT_S = 0.04
#: Shortest stretch without a trace, in seconds, that is highlighted as missing (2 mm at 25 mm/s).
MIN_MISSING_S = 0.08
#: Confidence given to points a person placed or redrew.
USER_CONFIDENCE = 1.0
#: Default falloff radius, in image pixels, of a dragged trace point.
DRAG_RADIUS_PX = 3.0


@dataclass(frozen=True)
class PageRef:
    """One page of an input file: the worklist's item and the document's identity."""

    source: Path
    page_index: int = 0
    n_pages: int = 1

    @property
    def stem(self) -> str:
        return page_stem(self.source, self.page_index, self.n_pages)

    @property
    def title(self) -> str:
        name = self.source.name
        return name if self.n_pages == 1 else f"{name} (page {self.page_index + 1}/{self.n_pages})"


@dataclass(frozen=True)
class Change:
    """What an edit (or its undo) changed, so views redraw only that.

    ``traces`` holds box indices whose trace changed (``None``: all of them); ``leads`` the
    signal columns that changed (``None``: all); ``boxes`` is True when box geometry, names
    or their number changed.
    """

    boxes: bool = False
    traces: frozenset[int] | None = frozenset()
    leads: frozenset[str] | None = frozenset()
    calibration: bool = False
    review: bool = False

    def __or__(self, other: Change) -> Change:
        def union(a, b):
            return None if a is None or b is None else a | b

        return Change(
            self.boxes or other.boxes,
            union(self.traces, other.traces),
            union(self.leads, other.leads),
            self.calibration or other.calibration,
            self.review or other.review,
        )


EVERYTHING = Change(boxes=True, traces=None, leads=None, calibration=True, review=True)


@dataclass(frozen=True, eq=False)
class PageState:
    """One immutable version of the editable part of a page.

    Attributes
    ----------
    calibration : Calibration
        In input-image pixels.
    boxes, traces : tuple
        Aligned, as in :class:`~ecgstudio.results.Digitization`.
    columns : tuple of ndarray
        One read-only float64 ``(n_samples,)`` column per name in :data:`LEAD_NAMES`, mV.
    review : Review
    masks : PageMasks or None
        The model's masks; trace labels follow the boxes when boxes are added or deleted.
    confidence : dict of str to float
        Per lead, 0..1: the model's, until an edit touches the lead; then measured again from
        its trace (:func:`ecgstudio.signals.lead_confidence`).  A lead without a box has none.
    assumptions : tuple of Assumption
        What the engine assumed rather than measured; a value a person sets is no longer assumed.
    """

    calibration: Calibration
    boxes: tuple[LeadBox, ...]
    traces: tuple[Trace, ...]
    columns: tuple[np.ndarray, ...]
    review: Review
    masks: PageMasks | None = None
    n_samples: int = field(default=0)
    confidence: dict[str, float] = field(default_factory=dict)
    assumptions: tuple[Assumption, ...] = ()


@dataclass(frozen=True, eq=False)
class StateCommand:
    """One edit: replace the document's state with ``after`` (redo) or ``before`` (undo).

    Consecutive commands with the same ``merge_key`` (one drag, one spin-box sweep) merge into
    one undo step that goes back to the first command's ``before``.
    """

    document: PageDocument
    before: PageState
    after: PageState
    change: Change
    text: str
    merge_key: str | None = None

    def redo(self) -> None:
        self.document._apply(self.after, self.change)

    def undo(self) -> None:
        self.document._apply(self.before, self.change)

    def merged(self, later: StateCommand) -> StateCommand | None:
        same = isinstance(later, StateCommand) and later.document is self.document
        if not same or later.merge_key != self.merge_key:
            return None
        return replace(self, after=later.after, change=self.change | later.change)


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a, dtype=np.float64)
    a.flags.writeable = False
    return a


class PageDocument:
    """An editable digitized page.  Calls :attr:`on_changed` after every edit, undo and redo.

    Parameters
    ----------
    page : PageRef
        Which file and page.
    image : ndarray, shape (H, W, 3), uint8
        The page as read by :func:`ecgstudio.io.images.read_pages`.
    record : LabelRecord
        The digitization, review and provenance to start from (a fresh one for model output).
    label_path : Path or None
        Where the label file goes; None when this page must not be saved automatically.
    reviewer : str
        Name stamped on edits and acceptance.

    Attributes
    ----------
    history : History
        The undo history of the page's edits; clean while the label file holds the state.
    on_changed : Callbacks
        Called with a :class:`Change` after every edit, undo and redo.
    on_selection_changed : Callbacks
        Called with the selected box index (-1 for none) when the selection changes.
    """

    def __init__(
        self,
        page: PageRef,
        image: np.ndarray,
        record: LabelRecord,
        *,
        label_path: Path | None = None,
        reviewer: str = "",
    ) -> None:
        dig = record.digitization
        self.page = page
        self.image = image
        self.identity = record.image
        self.provenance = record.provenance
        self.label_path = label_path
        self.reviewer = reviewer
        self.fs = float(dig.signals.fs)
        self.layout = dig.layout
        self.image_size = tuple(dig.image_size)
        self.model_version = dig.model_version
        self.timings_s = dict(dig.timings_s)
        self.lead_names = tuple(dig.signals.lead_names)
        self.history = History()
        self.on_changed = Callbacks()
        self.on_selection_changed = Callbacks()
        self._ink: tuple[PageMasks | None, np.ndarray] | None = None
        self._selected = -1
        self._state = PageState(
            dig.calibration,
            tuple(dig.boxes),
            tuple(dig.traces),
            tuple(_frozen(dig.signals.mv[:, i]) for i in range(dig.signals.mv.shape[1])),
            record.review,
            dig.masks,
            dig.signals.n_samples,
            dict(dig.confidence),
            tuple(dig.assumptions),
        )

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_digitization(
        cls,
        page: PageRef,
        image: np.ndarray,
        digitization: Digitization,
        *,
        identity: ImageIdentity,
        label_path: Path | None = None,
        reviewer: str = "",
    ) -> PageDocument:
        """A document of fresh model output (status ``proposed``)."""
        record = LabelRecord(identity, digitization, Review(ReviewStatus.PROPOSED), Provenance.now())
        return cls(page, image, record, label_path=label_path, reviewer=reviewer)

    # ------------------------------------------------------------------ reading

    @property
    def state(self) -> PageState:
        return self._state

    @property
    def assumptions(self) -> tuple[Assumption, ...]:
        """What the engine assumed on this page and nobody has set by hand since."""
        return self._state.assumptions

    def assumed(self, what: str) -> str:
        """Why ``what`` (``scale``, ``gain``, ``speed``, ``layout``) is assumed; "" when it is not."""
        return "; ".join(a.text for a in self._state.assumptions if a.what == what)

    @property
    def confidence(self) -> dict[str, float]:
        """Per-lead confidence (0..1) as the page now stands (see :class:`PageState`)."""
        return self._state.confidence

    @property
    def calibration(self) -> Calibration:
        return self._state.calibration

    @property
    def boxes(self) -> tuple[LeadBox, ...]:
        return self._state.boxes

    @property
    def traces(self) -> tuple[Trace, ...]:
        return self._state.traces

    @property
    def review(self) -> Review:
        return self._state.review

    @property
    def masks(self) -> PageMasks | None:
        return self._state.masks

    @property
    def n_samples(self) -> int:
        return self._state.n_samples

    def column(self, lead: str) -> np.ndarray:
        """The signal of one lead, mV, read-only ``(n_samples,)``."""
        return self._state.columns[self.lead_names.index(lead)]

    def time_s(self) -> np.ndarray:
        return np.arange(self.n_samples) / self.fs

    @property
    def signals(self) -> Signals:
        return Signals(np.column_stack(self._state.columns), self.fs, self.lead_names)

    def completion(self) -> Completion:
        """Every lead completed over the whole record from what the page shows
        (:func:`ecgstudio.restore.restore`), each sample saying whether it was read, filled or
        reconstructed; the page's signals themselves stay as read."""
        return restore(self.signals, windows=plotted_windows(self.boxes))

    def digitization(self) -> Digitization:
        s = self._state
        return Digitization(
            image_size=self.image_size,
            layout=self.layout,
            calibration=s.calibration,
            boxes=s.boxes,
            traces=s.traces,
            signals=self.signals,
            confidence=dict(self.confidence),
            masks=s.masks,
            model_version=self.model_version,
            timings_s=dict(self.timings_s),
            assumptions=self.assumptions,
        )

    def record(self) -> LabelRecord:
        """The label record of the page as it is now (provenance as last saved or loaded)."""
        return LabelRecord(self.identity, self.digitization(), self._state.review, self.provenance)

    def mark_saved(self, record: LabelRecord) -> None:
        """Note that ``record`` (from :meth:`record`, touched) is what the label file now holds."""
        self.provenance = record.provenance
        self.history.set_clean()

    @property
    def dirty(self) -> bool:
        """True when the page has edits (or undos) the label file does not hold."""
        return not self.history.clean

    def box_for_lead(self, lead: str) -> int:
        """Index of the box a lead's signal comes from (its longest box), or -1."""
        best = -1
        for k, box in enumerate(self.boxes):
            if box.lead == lead and (best < 0 or box.duration_s > self.boxes[best].duration_s):
                best = k
        return best

    def boxes_at(self, x: float, y: float) -> list[int]:
        """Indices of the boxes containing a point, the selected one first."""
        hits = [k for k, b in enumerate(self.boxes) if b.x0 <= x <= b.x1 and b.y0 <= y <= b.y1]
        hits.sort(key=lambda k: (k != self._selected, abs(self.boxes[k].baseline_y - y)))
        return hits

    def nearest_point(self, x: float, y: float, *, max_dist: float, only: int | None = None) -> tuple[int, int] | None:
        """``(box index, point index)`` of the trace point nearest to ``(x, y)`` within ``max_dist`` px."""
        best, best_d = None, max_dist
        for k, trace in enumerate(self.traces):
            if only is not None and k != only:
                continue
            xy = trace.xy
            if len(xy) == 0:
                continue
            near = np.flatnonzero(np.abs(xy[:, 0] - x) <= best_d)
            if len(near) == 0:
                continue
            d = np.hypot(xy[near, 0] - x, xy[near, 1] - y)
            i = int(np.nanargmin(d)) if np.isfinite(d).any() else -1
            if i >= 0 and d[i] <= best_d:
                best, best_d = (k, int(near[i])), float(d[i])
        return best

    def faint_points(self, k: int) -> np.ndarray:
        """Boolean per point of trace ``k``: runs of points below :data:`LOW_POINT_CONFIDENCE`
        spanning at least :data:`MIN_FAINT_S` (isolated faint points are noise, not a stretch)."""
        trace, box = self.traces[k], self.boxes[k]
        n = len(trace.xy)
        out = np.zeros(n, bool)
        if trace.confidence is None or n < 2 or box.duration_s <= 0:
            return out
        low = (trace.confidence < LOW_POINT_CONFIDENCE) & np.isfinite(trace.xy).all(axis=1)
        shortest_px = MIN_FAINT_S * box.width / box.duration_s
        for a, b in true_runs(low):
            if trace.xy[b - 1, 0] - trace.xy[a, 0] >= shortest_px:
                out[a:b] = True
        return out

    def low_confidence_samples(self, lead: str) -> np.ndarray:
        """Boolean ``(n_samples,)``: samples of a lead that come from faint stretches of its trace
        (see :meth:`faint_points`)."""
        out = np.zeros(self.n_samples, bool)
        k = self.box_for_lead(lead)
        if k < 0:
            return out
        faint = self.faint_points(k)
        if faint.sum() < 2:
            return out
        trace, box = self.traces[k], self.boxes[k]
        t = box.t_start_s + (trace.xy[:, 0] - box.x0) * (box.duration_s / max(box.width, 1e-9))
        ok = np.isfinite(t) & np.isfinite(trace.xy[:, 1])
        order = np.argsort(t[ok], kind="stable")
        mark = np.interp(self.time_s(), t[ok][order], faint[ok].astype(float)[order], left=0.0, right=0.0) > 0.5
        return mark & np.isfinite(self.column(lead))

    def missing_samples(self, lead: str) -> np.ndarray:
        """Boolean ``(n_samples,)``: runs of at least :data:`MIN_MISSING_S` inside the lead's time
        window where no trace was found (or it was erased)."""
        out = np.zeros(self.n_samples, bool)
        k = self.box_for_lead(lead)
        if k < 0:
            return out
        box = self.boxes[k]
        n0 = max(0, int(np.ceil(box.t_start_s * self.fs - 1e-9)))
        n1 = min(self.n_samples, int(np.ceil((box.t_start_s + box.duration_s) * self.fs - 1e-9)))
        blank = np.isnan(self.column(lead)[n0:n1])
        shortest = MIN_MISSING_S * self.fs
        for a, b in true_runs(blank):
            if b - a >= shortest:
                out[n0 + a : n0 + b] = True
        return out

    def missing_spans(self, k: int) -> list[tuple[float, float, float]]:
        """Stretches of box ``k`` with no trace, as ``(x_from, x_to, y)`` px (``y``: the trace's level).

        Only stretches of at least :data:`MIN_MISSING_S` count, including those at the box's ends.
        """
        box, trace = self.boxes[k], self.traces[k]
        xy = trace.xy[np.isfinite(trace.xy).all(axis=1)]
        shortest = MIN_MISSING_S * box.width / box.duration_s if box.duration_s > 0 else np.inf
        if len(xy) == 0:
            return [(box.x0, box.x1, box.baseline_y)]
        level = float(np.median(xy[:, 1]))
        xs = np.sort(xy[:, 0])
        xs = xs[(xs >= box.x0) & (xs <= box.x1)]
        bounds = np.r_[box.x0, xs, box.x1]
        gaps = np.flatnonzero(np.diff(bounds) >= shortest)
        return [(float(bounds[i]), float(bounds[i + 1]), level) for i in gaps]

    def low_confidence_runs(self, k: int) -> list[np.ndarray]:
        """The faint stretches of trace ``k`` as polylines (each ``(m, 2)``, ``m >= 2``)."""
        faint = self.faint_points(k)
        return [self.traces[k].xy[a:b] for a, b in true_runs(faint) if b - a >= 2]

    # ------------------------------------------------------------------ selection

    @property
    def selected(self) -> int:
        return self._selected

    def select(self, k: int) -> None:
        k = k if 0 <= k < len(self.boxes) else -1
        if k != self._selected:
            self._selected = k
            self.on_selection_changed.emit(k)

    def select_lead(self, lead: str) -> None:
        self.select(self.box_for_lead(lead))

    # ------------------------------------------------------------------ state machinery

    def _apply(self, state: PageState, change: Change) -> None:
        """Install a state (called by the undo commands only)."""
        self._state = state
        if self._selected >= len(state.boxes):
            self._selected = -1
            self.on_selection_changed.emit(-1)
        self.on_changed.emit(change)

    def _push(self, state: PageState, change: Change, text: str, merge_key: str | None = None) -> None:
        self.history.push(StateCommand(self, self._state, state, change, text, merge_key))

    def _columns(
        self,
        calibration: Calibration,
        boxes: Sequence[LeadBox],
        traces: Sequence[Trace],
        n_samples: int,
        leads: Iterable[str] | None,
        base: tuple[np.ndarray, ...],
    ) -> tuple[np.ndarray, ...]:
        """Signal columns with ``leads`` (None: all) re-derived from boxes and traces."""
        if leads is None or any(len(c) != n_samples for c in base):
            wanted = set(self.lead_names)
        else:
            wanted = {lead for lead in leads if lead in self.lead_names}
        if not wanted:
            return base
        pick = [k for k, b in enumerate(boxes) if b.lead in wanted]
        sig = assemble_signals(
            tuple(boxes[k] for k in pick),
            tuple(traces[k] for k in pick),
            calibration,
            fs=self.fs,
            duration_s=n_samples / self.fs,
            page_boxes=boxes,
        )
        cols = list(base) if all(len(c) == n_samples for c in base) else [None] * len(self.lead_names)
        for i, name in enumerate(self.lead_names):
            if name in wanted or cols[i] is None:
                src = sig.mv[:, LEAD_NAMES.index(name)] if name in LEAD_NAMES else np.full(n_samples, np.nan)
                cols[i] = _frozen(src.copy())
        return tuple(cols)

    def _edited_review(self, leads: Iterable[str] = ()) -> Review:
        """The review after an edit: ``edited``, and no longer signed off (an acceptance was of
        what the page showed then); the leads touched are ``edited`` too."""
        r = self.review
        lead_status = dict(r.lead_status)
        for lead in leads:
            lead_status[lead] = ReviewStatus.EDITED
        return Review(ReviewStatus.EDITED, lead_status, "", "", r.note)

    def _edit(
        self,
        text: str,
        *,
        boxes: tuple[LeadBox, ...] | None = None,
        traces: tuple[Trace, ...] | None = None,
        calibration: Calibration | None = None,
        masks: PageMasks | bool | None = False,
        n_samples: int | None = None,
        changed_traces: frozenset[int] | None = frozenset(),
        leads: Iterable[str] | None = (),
        boxes_changed: bool = False,
        merge_key: str | None = None,
        columns: tuple[np.ndarray, ...] | None = None,
    ) -> None:
        """Build the next state from the current one and push it as one undoable edit."""
        s = self._state
        boxes = s.boxes if boxes is None else boxes
        traces = s.traces if traces is None else traces
        calibration = s.calibration if calibration is None else calibration
        n = s.n_samples if n_samples is None else n_samples
        leads = None if leads is None else frozenset(leads)
        if columns is None:
            columns = self._columns(calibration, boxes, traces, n, leads, s.columns)
        review = self._edited_review(() if leads is None else leads)
        confidence = _confidence_after_edit(s.confidence, boxes, traces, leads)
        masks = s.masks if masks is False else masks
        set_by_hand = _calibration_fields_changed(s.calibration, calibration)
        assumptions = tuple(a for a in s.assumptions if a.what not in set_by_hand)
        state = PageState(calibration, boxes, traces, columns, review, masks, n, confidence, assumptions)
        change = Change(
            boxes=boxes_changed,
            traces=changed_traces,
            leads=leads,
            calibration=calibration is not s.calibration,
            review=True,
        )
        self._push(state, change, text, merge_key)

    # ------------------------------------------------------------------ calibration

    def set_calibration(self, calibration: Calibration, *, merge_key: str | None = "calibration") -> None:
        """Replace the calibration; signals of every lead follow.

        A new gain or vertical scale scales every signal exactly.  A new horizontal scale (px/mm
        or mm/s) keeps each box where it is on the page and rescales its time window, so the
        record gets longer or shorter and every lead is resampled from its trace.
        """
        old = self.calibration
        if calibration == old:
            return
        if not (
            calibration.px_per_mm_x > 0
            and calibration.px_per_mm_y > 0
            and calibration.mm_per_s > 0
            and calibration.mm_per_mv > 0
        ):
            raise ValueError(f"calibration values must be positive, got {calibration}")
        factor = old.px_per_s / calibration.px_per_s
        boxes = self.boxes
        n = self.n_samples
        columns = None
        if not math.isclose(factor, 1.0, rel_tol=1e-12):
            boxes = tuple(replace(b, t_start_s=b.t_start_s * factor, duration_s=b.duration_s * factor) for b in boxes)
            n = max(1, int(round(n * factor)))
        else:  # values are (baseline - y) / px_per_mv: a new gain only rescales them
            ratio = old.px_per_mv / calibration.px_per_mv
            columns = tuple(_frozen(c * ratio) for c in self._state.columns)
        self._edit(
            "Change calibration",
            boxes=boxes,
            calibration=calibration,
            n_samples=n,
            leads=None,
            boxes_changed=boxes is not self.boxes,
            merge_key=merge_key,
            columns=columns,
        )

    def apply_ruler(self, p1: tuple[float, float], p2: tuple[float, float], mm: float, *, axis: str = "both") -> float:
        """Set px/mm from two points ``mm`` millimetres apart; returns the measured px/mm.

        ``axis`` is ``both``, ``x`` or ``y``.
        """
        dist = math.hypot(p2[0] - p1[0], p2[1] - p1[1])
        if not mm > 0 or dist < 2:
            raise ValueError("click two distinct points on the grid and give their distance in mm (> 0)")
        px_per_mm = dist / mm
        cal = self.calibration
        if axis == "x":
            cal = replace(cal, px_per_mm_x=px_per_mm)
        elif axis == "y":
            cal = replace(cal, px_per_mm_y=px_per_mm)
        else:
            cal = replace(cal, px_per_mm_x=px_per_mm, px_per_mm_y=px_per_mm)
        self.set_calibration(cal, merge_key=None)
        return px_per_mm

    def apply_pulse(self, p1: tuple[float, float], p2: tuple[float, float], *, mv: float = 1.0) -> float:
        """Set the gain from the calibration pulse: its foot and top, ``mv`` (1 mV) apart; returns mm/mV."""
        height_px = abs(p2[1] - p1[1])
        if height_px < 2:
            raise ValueError("click the foot and then the top of the calibration pulse")
        mm_per_mv = height_px / self.calibration.px_per_mm_y / mv
        self.set_calibration(replace(self.calibration, mm_per_mv=mm_per_mv), merge_key=None)
        return mm_per_mv

    # ------------------------------------------------------------------ boxes

    def set_box(self, k: int, box: LeadBox, *, text: str = "Move box", merge_key: str | None = None) -> None:
        """Replace box ``k`` (move, resize, rename, retime); its trace stays as it is on the page."""
        old = self.boxes[k]
        if box == old:
            return
        if not (box.x1 > box.x0 and box.y1 > box.y0 and box.duration_s > 0):
            raise ValueError("a lead box needs a positive width, height and duration")
        if box.lead not in self.lead_names:
            raise ValueError(f"unknown lead {box.lead!r}; choose one of {', '.join(self.lead_names)}")
        boxes = self.boxes[:k] + (box,) + self.boxes[k + 1 :]
        traces = self.traces
        if box.lead != old.lead:
            traces = traces[:k] + (replace(traces[k], lead=box.lead),) + traces[k + 1 :]
        self._edit(
            text,
            boxes=boxes,
            traces=traces,
            leads={old.lead, box.lead},
            changed_traces=frozenset({k}),
            boxes_changed=True,
            merge_key=merge_key,
        )

    def move_box(self, k: int, dx: float, dy: float) -> None:
        """Move box ``k`` by ``(dx, dy)`` px over the page's time axis: its time window moves with
        it (:meth:`~ecgstudio.results.LeadBox.spanning`), so its lead keeps its timing."""
        b = self.boxes[k].spanning(self.boxes[k].x0 + dx, self.boxes[k].x1 + dx)
        self.set_box(k, replace(b, y0=b.y0 + dy, y1=b.y1 + dy, baseline_y=b.baseline_y + dy))

    def resize_box(self, k: int, x0: float, y0: float, x1: float, y1: float) -> None:
        """New corners for box ``k``, on the page's time axis: trimming an edge trims the lead's
        time window there and moves none of its samples in time
        (:meth:`~ecgstudio.results.LeadBox.spanning`)."""
        b = self.boxes[k]
        x0, x1 = sorted((x0, x1))
        y0, y1 = sorted((y0, y1))
        baseline = min(max(b.baseline_y, y0), y1)
        self.set_box(k, replace(b.spanning(x0, x1), y0=y0, y1=y1, baseline_y=baseline), text="Resize box")

    def rename_box(self, k: int, lead: str) -> None:
        self.set_box(k, replace(self.boxes[k], lead=lead), text=f"Rename lead to {lead}")

    def set_box_timing(self, k: int, *, t_start_s: float | None = None, duration_s: float | None = None) -> None:
        b = self.boxes[k]
        new = replace(
            b,
            t_start_s=b.t_start_s if t_start_s is None else float(t_start_s),
            duration_s=b.duration_s if duration_s is None else float(duration_s),
        )
        self.set_box(k, new, text="Change lead timing", merge_key=f"timing:{k}")

    def set_inverted(self, k: int, inverted: bool) -> None:
        self.set_box(k, replace(self.boxes[k], inverted=bool(inverted)), text="Invert lead")

    def add_box(self, x0: float, y0: float, x1: float, y1: float, *, lead: str | None = None) -> int:
        """Add a lead box over a rectangle and extract its trace from the model's ink mask.

        The lead defaults to the first lead with no box (:meth:`missing_leads`); where every lead
        has one, the caller must say which (a second box of a lead is a rhythm strip or a second
        segment, never a guess).  The start time is guessed from the left edge of the other boxes
        (edit it in the lead panel).  Returns the new index.

        Raises
        ------
        ValueError
            The box is too small, or ``lead`` is None and every lead has a box.
        """
        x0, x1 = sorted((float(x0), float(x1)))
        y0, y1 = sorted((float(y0), float(y1)))
        if x1 - x0 < 4 or y1 - y0 < 4:
            raise ValueError("draw a box at least a few pixels wide and tall")
        if lead is None:
            missing = self.missing_leads()
            if not missing:
                raise ValueError("every lead of the page already has a box; say which lead this box shows")
            lead = missing[0]
        px_per_s = self.calibration.px_per_s
        left = min((b.x0 for b in self.boxes), default=x0)
        t_start = max(0.0, round((x0 - left) / px_per_s, 2))
        rows = sorted({(round(b.baseline_y), b.row) for b in self.boxes})
        row = min(rows, key=lambda r: abs(r[0] - (y0 + y1) / 2))[1] if rows else 0
        box = LeadBox(
            lead,
            x0,
            y0,
            x1,
            y1,
            baseline_y=(y0 + y1) / 2,
            t_start_s=t_start,
            duration_s=(x1 - x0) / px_per_s,
            row=row,
            col=0,
        )
        k = len(self.boxes)
        trace = (
            trace_in_box(self.masks.trace, box)
            if self.masks is not None
            else Trace(lead, np.zeros((0, 2)), np.zeros(0, np.float32))
        )
        self._edit(
            f"Add box {lead}",
            boxes=self.boxes + (box,),
            traces=self.traces + (trace,),
            leads={lead},
            changed_traces=frozenset({k}),
            boxes_changed=True,
        )
        self.select(k)
        return k

    def missing_leads(self) -> list[str]:
        """The page's leads that have no box, in lead order."""
        present = {b.lead for b in self.boxes}
        return [name for name in self.lead_names if name not in present]

    def delete_box(self, k: int) -> None:
        """Delete box ``k`` and its trace (its ink in the mask becomes unassigned)."""
        lead = self.boxes[k].lead
        masks = self.masks
        if masks is not None:
            labels = masks.trace.copy()
            labels[labels == k + 1] = 0
            labels[labels > k + 1] -= 1
            masks = PageMasks(labels, masks.grid, masks.text)
        if self._selected == k:
            self.select(-1)
        self._edit(
            f"Delete box {lead}",
            boxes=self.boxes[:k] + self.boxes[k + 1 :],
            traces=self.traces[:k] + self.traces[k + 1 :],
            masks=masks,
            leads={lead},
            changed_traces=None,
            boxes_changed=True,
        )

    # ------------------------------------------------------------------ traces

    def _with_trace(self, k: int, trace: Trace, text: str, merge_key: str | None = None) -> None:
        traces = self.traces[:k] + (trace,) + self.traces[k + 1 :]
        self._edit(text, traces=traces, leads={self.boxes[k].lead}, changed_traces=frozenset({k}), merge_key=merge_key)

    def set_trace(
        self,
        k: int,
        xy: np.ndarray,
        confidence: np.ndarray | None = None,
        *,
        text: str = "Edit trace",
        merge_key: str | None = None,
    ) -> None:
        """Replace the points of trace ``k`` outright (``(n, 2)`` px, NaN rows for gaps)."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        conf = None if confidence is None else np.asarray(confidence, dtype=np.float32)
        self._with_trace(k, Trace(self.boxes[k].lead, xy, conf), text, merge_key)

    def move_point(
        self, k: int, i: int, y: float, *, radius_px: float = DRAG_RADIUS_PX, merge_key: str | None = None
    ) -> None:
        """Drag point ``i`` of trace ``k`` to row ``y``; neighbours within ``radius_px`` columns follow.

        Points keep their columns (a trace is one value per column).  Moved points get full
        confidence.  Repeated calls with one ``merge_key`` form a single undo step.
        """
        trace = self.traces[k]
        xy = trace.xy.copy()
        if not np.isfinite(xy[i]).all() or not np.isfinite(y):
            return
        dy = float(y) - xy[i, 1]
        d = np.abs(xy[:, 0] - xy[i, 0])
        w = np.where(d <= radius_px, 0.5 * (1 + np.cos(np.pi * d / (radius_px + 1.0))), 0.0)
        w = np.nan_to_num(w)
        w[i] = 1.0
        xy[:, 1] += w * dy
        conf = None if trace.confidence is None else trace.confidence.copy()
        if conf is not None:
            conf[w > 0.05] = USER_CONFIDENCE
        self._with_trace(k, Trace(trace.lead, xy, conf), "Drag trace point", merge_key)

    def redraw_stretch(self, k: int, points: np.ndarray, *, snap: bool = False) -> None:
        """Replace the stretch of trace ``k`` under a pen stroke (``(m, 2)`` px) with the stroke.

        The stroke becomes one point per pixel column between its ends; with ``snap`` each
        point moves onto the trace ink within :data:`SNAP_RADIUS_PX` rows (:meth:`trace_ink`).
        """
        new = stroke_to_columns(points)
        if len(new) < 2:
            return
        if snap:
            new = snap_to_ink(self.trace_ink(), new, radius=SNAP_RADIUS_PX)
        trace = self.traces[k]
        conf = np.full(len(new), USER_CONFIDENCE, np.float32)
        xy, c = splice(trace.xy, trace.confidence, new[0, 0], new[-1, 0], new, conf)
        self._with_trace(k, Trace(trace.lead, xy, c), "Redraw stretch" + (" (snapped)" if snap else ""))

    def erase_stretch(self, k: int, x_from: float, x_to: float) -> None:
        """Erase trace ``k`` between two columns: those samples become NaN."""
        a, b = sorted((float(x_from), float(x_to)))
        trace = self.traces[k]
        xy, c = splice(trace.xy, trace.confidence, a, b, None, None)
        self._with_trace(k, Trace(trace.lead, xy, c), "Erase stretch")

    def reextract_box(self, k: int) -> None:
        """Run the engine's trace extraction again inside box ``k`` on the model's ink mask.

        Uses :func:`ecgstudio.strokes.trace_in_box` (the pipeline's path search and strokes) on
        the page's trace mask cropped to the box, so a moved or resized box gets the ink inside it.
        """
        if self.masks is None:
            raise ValueError("this page has no trace mask to extract from; run the model on it again")
        self._with_trace(k, trace_in_box(self.masks.trace, self.boxes[k]), f"Re-extract {self.boxes[k].lead}")

    # ------------------------------------------------------------------ review

    def accept(self) -> None:
        """Sign the page off as :attr:`reviewer`, now: ``reviewed`` when nobody edited it,
        ``corrected`` when somebody did (its edited leads ``corrected``, the others ``reviewed``)."""
        r = self.review
        was_edited = (ReviewStatus.EDITED, ReviewStatus.CORRECTED)
        edited = r.status in was_edited or any(s in was_edited for s in r.lead_status.values())
        lead_status = {b.lead: ReviewStatus.REVIEWED for b in self.boxes}
        lead_status.update({lead: ReviewStatus.CORRECTED for lead, s in r.lead_status.items() if s in was_edited})
        review = Review(
            ReviewStatus.CORRECTED if edited else ReviewStatus.REVIEWED, lead_status, self.reviewer, utc_now(), r.note
        )
        self._push(replace(self._state, review=review), Change(review=True), "Accept page")

    def set_note(self, note: str) -> None:
        if note == self.review.note:
            return
        self._push(replace(self._state, review=replace(self.review, note=note)), Change(review=True), "Edit note")

    def replace_digitization(self, digitization: Digitization) -> None:
        """Take a new model result for the page (undoable); the review goes back to ``proposed``."""
        d = digitization
        self.layout, self.model_version = d.layout, d.model_version
        self.timings_s = dict(d.timings_s)
        cols = tuple(_frozen(d.signals.mv[:, i]) for i in range(d.signals.mv.shape[1]))
        if d.signals.fs != self.fs or tuple(d.signals.lead_names) != self.lead_names:
            self.fs = float(d.signals.fs)
            self.lead_names = tuple(d.signals.lead_names)
        state = PageState(
            d.calibration,
            tuple(d.boxes),
            tuple(d.traces),
            cols,
            Review(ReviewStatus.PROPOSED, {}, "", "", self.review.note),
            d.masks,
            d.signals.n_samples,
            dict(d.confidence),
            tuple(d.assumptions),
        )
        self.select(-1)
        self._push(state, EVERYTHING, "Run the model again")

    # ------------------------------------------------------------------ image helpers

    def trace_ink(self) -> np.ndarray:
        """Where the pen snaps to (uint8, H x W): the darkness of the pixels the model took for
        trace (``masks.trace``), zero elsewhere: grid lines and text never attract a stroke.
        Without masks (labels saved without them) there is nothing to snap to: all zero."""
        masks = self.masks
        if self._ink is None or self._ink[0] is not masks:
            if masks is None:
                ink = np.zeros(self.image.shape[:2], np.uint8)
            else:
                img = self.image
                gray = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
                ink = np.where(masks.trace > 0, 255 - gray, 0).astype(np.uint8)
            self._ink = (masks, ink)
        return self._ink[1]


def _confidence_after_edit(
    before: dict[str, float], boxes: tuple[LeadBox, ...], traces: tuple[Trace, ...], leads: frozenset[str] | None
) -> dict[str, float]:
    """Lead confidences once ``leads`` (None: all) were edited: those measured again from their
    traces (points without a confidence were given by a person or a tool: full), the others as
    they were; leads left without a box have none."""
    given = tuple(
        t if t.confidence is not None else replace(t, confidence=np.ones(len(t.xy), np.float32)) for t in traces
    )
    measured = lead_confidence(boxes, given)
    return {
        lead: measured[lead] if leads is None or lead in leads or lead not in before else before[lead]
        for lead in measured
    }


def _calibration_fields_changed(old: Calibration, new: Calibration) -> set[str]:
    """Which assumption fields a change of calibration from ``old`` to ``new`` set by hand."""
    changed = set()
    if (old.px_per_mm_x, old.px_per_mm_y) != (new.px_per_mm_x, new.px_per_mm_y):
        changed.add("scale")
    if old.mm_per_mv != new.mm_per_mv:
        changed.add("gain")
    if old.mm_per_s != new.mm_per_s:
        changed.add("speed")
    return changed
