"""Lead boxes: the one place a :class:`~ecgstudio.results.LeadBox` is made and changed.

A box is made for every cell of the page's layout on its row (:func:`lead_boxes`), its start
moved onto the grid's major line where printing put it (:func:`snap_to_major_lines`), its lead
taken from the name printed on the page (:func:`assign_leads`), its time axis aligned to the
samples the traces show (:func:`align_to_samples`) or restarted at 0 s where every column does
(:func:`restart_columns`), and finally scaled to the analysis's pixel frame (:func:`scaled`).
:func:`ecgstudio.pipeline.analyse_maps` calls them in that order; the box type itself carries a
box to another frame (:meth:`~ecgstudio.results.LeadBox.mapped`, used for the input image and by
the page renderer).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
from scipy.optimize import linear_sum_assignment

from .config import BoxesConfig
from .geometry.grid import major_line_near
from .layout import Row, row_spacing
from .leadnames import NameRead
from .paper import LEAD_NAMES, Layout
from .results import Calibration, LeadBox, Trace

log = logging.getLogger(__name__)

#: Phases of the sample lattice tried across one sample.
_PHASES = 24


def lead_boxes(
    rows: list[Row], layout: Layout, calibration: Calibration, *, config: BoxesConfig = BoxesConfig()
) -> tuple[LeadBox, ...]:
    """Boxes for every cell of ``layout`` on the matched rows.

    The grid fixes the time scale: the page spans ``duration_s * px_per_s`` pixels.  Where it
    starts is the consensus (median) of every row's start and of every row's end minus that
    span (the value most of them agree on), so one row's faded start or stray mark does not
    move the others.  A row whose own width matches the span within 2 mm starts at its own
    first point (on photos, residual perspective shifts rows a little; its end is one sample
    short of the span, and the page does not tell how long a sample is; the 2 mm are
    :attr:`BoxesConfig.own_width_mm`), still at the grid's
    scale: a 1 % error of scale moves the end of a 10 s row by 0.1 s.  Where all such rows
    start within 1 mm of each other they were printed from one time origin, and share the
    median of their starts: each is a noisy reading of it (about half a pixel), and at 25 mm/s
    a 100 Hz sample is a quarter of a millimetre.
    """
    baselines = [r.baseline_y for r in rows]
    spacing = row_spacing(baselines, px_per_mm=calibration.px_per_mm_y)
    span = layout.duration_s * calibration.px_per_s
    tolerance = 2.0 * calibration.px_per_mm_x
    page_start = _time_origin(rows, span, tolerance)
    own = [abs((r.x_end - r.x_start) - span) <= config.own_width_mm * calibration.px_per_mm_x for r in rows]
    full = [r.x_start for r, o in zip(rows, own) if o]
    common = float(np.median(full)) if len(full) > 1 and np.ptp(full) <= calibration.px_per_mm_x else None
    boxes = []
    for cell in layout.cells:
        row = rows[cell.row]
        x_start = (row.x_start if common is None else common) if own[cell.row] else page_start
        px_per_s = calibration.px_per_s
        y = baselines[cell.row]
        boxes.append(
            LeadBox(
                lead=cell.lead,
                x0=x_start + cell.t_start_s * px_per_s,
                x1=x_start + cell.t_end_s * px_per_s,
                y0=y - 0.6 * spacing,
                y1=y + 0.4 * spacing,
                baseline_y=y,
                t_start_s=cell.t_start_s,
                duration_s=cell.duration_s,
                row=cell.row,
                col=cell.col,
                inverted=cell.inverted,
            )
        )
    return tuple(boxes)


def _time_origin(rows: list[Row], span: float, tolerance: float) -> float:
    """Pixel x of time 0: the value most of the rows' starts and (ends - span) agree on."""
    starts = np.array([r.x_start for r in rows])
    candidates = np.r_[starts, np.array([r.x_end for r in rows]) - span]
    support = np.array([(np.abs(candidates - c) <= tolerance).sum() for c in candidates])
    # Most support wins; among equals a start (listed first) wins, since a trace's start is
    # rarely cut while its end often runs into the page edge.
    best = candidates[np.abs(candidates - candidates[int(np.argmax(support))]) <= tolerance]
    return float(np.median(best))


def snap_to_major_lines(
    boxes: tuple[LeadBox, ...],
    image: np.ndarray,
    *,
    px_per_mm: float,
    exclude: np.ndarray | None = None,
    config: BoxesConfig = BoxesConfig(),
) -> tuple[LeadBox, ...]:
    """Boxes whose rows start on the 5 mm grid line just at their start, where there is one.

    Printing software lays the time axis on the grid: time 0 of a row falls on a major line
    (ecg-image-kit, the renderer behind the public benchmarks, always does so).  The start read
    from the trace map is a fraction of a millimetre off: the stroke's cap begins half a line
    width early.  So when a major line lies within :attr:`BoxesConfig.origin_snap_mm` of that start, the
    line is the better reading.  Rows that start together (within 1 mm) share the median of
    their lines; a row with no major line there (no grid, or major lines no heavier than minor
    ones) is left as it is.
    """
    origins = {b.row: min(c.origin_x for c in boxes if c.row == b.row) for b in boxes}
    lines: dict[int, float] = {}
    for r, x in origins.items():
        band = [b for b in boxes if b.row == r]
        line = major_line_near(
            image,
            x,
            rows=(min(b.y0 for b in band), max(b.y1 for b in band)),
            px_per_mm=px_per_mm,
            exclude=exclude,
            min_emphasis=config.min_major_emphasis,
        )
        if line is not None:
            lines[r] = line
    shift: dict[int, float] = {}
    for r, x in origins.items():
        group = [q for q, xq in origins.items() if abs(xq - x) <= px_per_mm and q in lines]
        if not group:
            continue
        line = float(np.median([lines[q] for q in group]))
        low, high = config.origin_snap_mm
        if low * px_per_mm <= line - x <= high * px_per_mm:
            shift[r] = line - x
    return tuple(replace(b, x0=b.x0 + shift[b.row], x1=b.x1 + shift[b.row]) if b.row in shift else b for b in boxes)


def assign_leads(boxes: Sequence[LeadBox], reads: Sequence[NameRead | None]) -> tuple[LeadBox, ...]:
    """Boxes with the leads their printed names say, where the names are legible.

    Boxes of one duration form a group; within it each box gets a different lead (any of the
    twelve), by an assignment that maximises the product of per-box probabilities: 0.9 for the
    template's lead, a little for the group's other leads, less for the rest, and where a name
    was read confidently (:attr:`~ecgstudio.leadnames.NameRead.confident`), the reader's probabilities outweigh the
    template's (0.98 to 0.02).  So one misread cannot take a lead another box reads clearly, and
    a page that follows its template is left as it is.
    """
    out = list(boxes)
    groups: dict[float, list[int]] = {}
    for i, box in enumerate(boxes):
        groups.setdefault(round(box.duration_s, 2), []).append(i)
    n_leads = len(LEAD_NAMES)
    for members in groups.values():
        template = {LEAD_NAMES.index(boxes[i].lead) for i in members if boxes[i].lead in LEAD_NAMES}
        q = np.empty((len(members), n_leads))
        for r, i in enumerate(members):
            prior = np.full(n_leads, 0.02 / max(1, n_leads - len(template)))
            for k in template:
                prior[k] = 0.08 / max(1, len(template) - 1)
            if boxes[i].lead in LEAD_NAMES:
                prior[LEAD_NAMES.index(boxes[i].lead)] = 0.9
            read = reads[i]
            if read is not None and read.confident:
                q[r] = 0.02 * prior + 0.98 * read.lead_probs()
            else:
                q[r] = prior
        rows, cols = linear_sum_assignment(-np.log(q + 1e-9))
        for r, k in zip(rows, cols):
            i = members[r]
            read = reads[i]
            inverted = boxes[i].inverted and LEAD_NAMES[k] == boxes[i].lead
            if read is not None and read.confident and LEAD_NAMES[k] == "aVR":
                inverted = read.name == "-aVR"
            if LEAD_NAMES[k] != boxes[i].lead or inverted != boxes[i].inverted:
                log.info(
                    "box at row %d, column %d reads %s (template: %s)",
                    boxes[i].row,
                    boxes[i].col,
                    ("-" if inverted else "") + LEAD_NAMES[k],
                    boxes[i].lead,
                )
            out[i] = replace(boxes[i], lead=LEAD_NAMES[k], inverted=inverted)
    return tuple(out)


def align_to_samples(
    boxes: tuple[LeadBox, ...],
    traces: tuple[Trace, ...],
    *,
    px_per_s: float,
    fs: float,
    config: BoxesConfig = BoxesConfig(),
) -> tuple[LeadBox, ...]:
    """Boxes moved by at most half a sample so that sample instants at ``fs`` fall on the
    corners of traces drawn from samples at that rate; unchanged where the traces show none.

    For each phase of the sample lattice, each box's trace is sampled at the lattice and drawn
    again with straight strokes between those samples; the misfit to the trace (relative to the
    box's median over phases, so every lead has one vote) is summed over the boxes of rows that
    share a time origin.  A trace drawn from samples at ``fs`` is reproduced exactly at its own
    phase and loses its corners at others; a trace drawn from finer samples, or by hand, fits
    every phase about alike and is left as it is (:attr:`BoxesConfig.max_corner_misfit`).
    """
    step = px_per_s / fs
    if step < config.min_sample_px or not boxes:
        return boxes
    origin = {b.row: min(c.origin_x for c in boxes if c.row == b.row) for b in boxes}
    phases = (np.arange(_PHASES) / _PHASES - 0.5) * step
    shift: dict[int, float] = {}
    for row in sorted(origin):
        if row in shift:
            continue
        group = [r for r in origin if abs(origin[r] - origin[row]) < 0.05 * step]
        misfit = np.zeros(_PHASES)
        for box, trace in zip(boxes, traces):
            if box.row in group:
                misfit += _corner_misfit(trace.xy, origin[box.row] + phases, step)
        found = misfit.any() and misfit.min() <= config.max_corner_misfit * np.median(misfit)
        best = _refined_minimum(phases, misfit) if found else 0.0
        shift.update((r, best) for r in group)
    if any(shift.values()):
        log.debug("sample corners found: time axis moved by %s px", sorted({round(v, 2) for v in shift.values()}))
    return tuple(replace(b, x0=b.x0 + shift[b.row], x1=b.x1 + shift[b.row]) if shift[b.row] else b for b in boxes)


def _corner_misfit(xy: np.ndarray, lattice_origins: np.ndarray, step: float) -> np.ndarray:
    """Mean squared distance between a polyline and its redrawing through samples taken every
    ``step`` px from each of ``lattice_origins``, over the box's median (zeros if too short)."""
    ok = np.isfinite(xy).all(axis=1) if len(xy) else np.zeros(0, bool)
    if ok.sum() < 20:
        return np.zeros(len(lattice_origins))
    order = np.argsort(xy[ok, 0], kind="stable")
    x, y = xy[ok, 0][order], xy[ok, 1][order]
    out = np.empty(len(lattice_origins))
    for i, x0 in enumerate(lattice_origins):
        knots = x0 + np.arange(np.ceil((x[0] - x0) / step), np.floor((x[-1] - x0) / step) + 1) * step
        inside = (x >= knots[0]) & (x <= knots[-1])
        redrawn = np.interp(x[inside], knots, np.interp(knots, x, y))
        out[i] = np.mean((y[inside] - redrawn) ** 2)
    median = float(np.median(out))
    return out / median if median > 0 else np.zeros(len(lattice_origins))


def _refined_minimum(phases: np.ndarray, misfit: np.ndarray) -> float:
    """Where the periodic misfit curve is lowest, refined by a parabola through its neighbours."""
    k = int(np.argmin(misfit))
    a, b, c = misfit[k - 1], misfit[k], misfit[(k + 1) % len(misfit)]
    denom = a - 2 * b + c
    offset = 0.5 * (a - c) / denom if denom > 0 else 0.0
    return float(phases[k] + offset * (phases[1] - phases[0]))


def restart_columns(boxes: tuple[LeadBox, ...]) -> tuple[LeadBox, ...]:
    """The boxes with every column but the rhythm strips starting at t = 0."""
    strips = rhythm_strips(boxes)
    return tuple(b if b in strips else replace(b, t_start_s=0.0) for b in boxes)


def rhythm_strips(boxes: Sequence[LeadBox]) -> list[LeadBox]:
    """The boxes that plot more time than the page's columns (none where every box plots the same)."""
    shortest = min((b.duration_s for b in boxes), default=0.0)
    return [b for b in boxes if b.duration_s > shortest + 1e-6]


def scaled(boxes: tuple[LeadBox, ...], scale: float) -> tuple[LeadBox, ...]:
    """The boxes in the frame of the page resampled by ``scale`` (``cv2.resize`` keeps pixel
    centres: ``x -> (x + 0.5) * scale - 0.5``)."""

    def px(v: float) -> float:
        return (v + 0.5) * scale - 0.5

    return tuple(
        replace(b, x0=px(b.x0), x1=px(b.x1), y0=px(b.y0), y1=px(b.y1), baseline_y=px(b.baseline_y)) for b in boxes
    )
