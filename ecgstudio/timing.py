"""Which seconds each column of a page shows, and where a record's samples fall on it.

A standard 3x4 or 6x2 printout shows consecutive windows of one recording: the second column
of a 3x4 page is 2.5-5 s.  Some printers and page generators instead start every column at
t = 0 (all twelve leads over the same first seconds).  Nothing printed says which; the rhythm
strip does.  Every lead has its QRS complexes at the same instants, so the beat pattern of a
column's leads matches the rhythm strip over the column's own window, and not (except by
chance) over the first seconds, or the other way round.

:func:`columns_start_at_zero` compares the two readings on assembled signals;
:func:`restart_columns` moves the boxes to the simultaneous reading.  A page without a rhythm
strip, or without clear evidence, keeps the standard reading.

A page printed from a digital record draws straight strokes between the record's samples.
When a sample spans a pixel or more (100 Hz at 25 mm/s is a quarter of a millimetre), the
trace's corners show where the samples were; :func:`align_to_samples` moves the time axis by
a fraction of a sample so that the output's samples fall on those corners, and the record's
own values come back instead of values interpolated between them.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np

from .results import LeadBox, Signals, Trace

log = logging.getLogger(__name__)

#: How the columns of a page follow each other in time (``DigitizeOptions.columns``).
COLUMN_READINGS = ("auto", "consecutive", "from-zero")

#: The simultaneous reading must match the rhythm strip at least this well (normalised
#: cross-correlation of beat envelopes) ...
MIN_MATCH = 0.5
#: ... and this much better than the consecutive reading.
MIN_MARGIN = 0.3
#: Residual misplacement searched either way when matching, seconds.
SEARCH_S = 0.05

#: Sample corners are looked for only where one sample spans at least this many pixels ...
MIN_SAMPLE_PX = 1.0
#: ... and trusted only where the best phase leaves at most this share of the typical phase's misfit.
MAX_CORNER_MISFIT = 0.8
#: Phases tried across one sample.
_PHASES = 24


def columns_start_at_zero(boxes: tuple[LeadBox, ...], signals: Signals) -> bool:
    """True when the page's columns all start at t = 0 rather than following each other.

    ``signals`` are those assembled from ``boxes`` in the standard reading (each box at its
    own ``t_start_s``).  Needs a rhythm strip: a box spanning more than one column's time.
    """
    if not boxes:
        return False
    strip = max(boxes, key=lambda b: b.duration_s)
    later = [b for b in boxes if b.t_start_s > 0 and b.duration_s < strip.duration_s and b.row != strip.row]
    if not later:
        return False
    fs = signals.fs
    reference = _beat_envelope(signals.mv[:, signals.lead_names.index(strip.lead)], fs)
    consecutive, simultaneous = [], []
    for box in later:
        a, n = int(round(box.t_start_s * fs)), int(round(box.duration_s * fs))
        segment = signals.mv[a:a + n, signals.lead_names.index(box.lead)]
        if len(segment) < n or np.isnan(segment).mean() > 0.3:
            continue
        envelope = _beat_envelope(segment, fs)
        consecutive.append(_best_match(envelope, reference, a, fs))
        simultaneous.append(_best_match(envelope, reference, 0, fs))
    if not consecutive:
        return False
    cons, sim = float(np.mean(consecutive)), float(np.mean(simultaneous))
    verdict = sim >= MIN_MATCH and sim - cons >= MIN_MARGIN
    log.log(logging.INFO if verdict else logging.DEBUG,
            "columns against the rhythm strip: consecutive windows %.2f, all from t = 0 %.2f%s", cons, sim,
            "; reading every column from t = 0" if verdict else "")
    return verdict


def restart_columns(boxes: tuple[LeadBox, ...]) -> tuple[LeadBox, ...]:
    """The boxes with every column but the rhythm strip starting at t = 0."""
    strip = max(boxes, key=lambda b: b.duration_s)
    return tuple(b if b.duration_s >= strip.duration_s else replace(b, t_start_s=0.0) for b in boxes)


def align_to_samples(boxes: tuple[LeadBox, ...], traces: tuple[Trace, ...], *, px_per_s: float,
                     fs: float) -> tuple[LeadBox, ...]:
    """Boxes moved by at most half a sample so that sample instants at ``fs`` fall on the
    corners of traces drawn from samples at that rate; unchanged where the traces show none.

    For each phase of the sample lattice, each box's trace is sampled at the lattice and drawn
    again with straight strokes between those samples; the misfit to the trace (relative to the
    box's median over phases, so every lead has one vote) is summed over the boxes of rows that
    share a time origin.  A trace drawn from samples at ``fs`` is reproduced exactly at its own
    phase and loses its corners at others; a trace drawn from finer samples, or by hand, fits
    every phase about alike and is left as it is (:data:`MAX_CORNER_MISFIT`).
    """
    step = px_per_s / fs
    if step < MIN_SAMPLE_PX or not boxes:
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
        found = misfit.any() and misfit.min() <= MAX_CORNER_MISFIT * np.median(misfit)
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


def _beat_envelope(x: np.ndarray, fs: float) -> np.ndarray:
    """Smoothed absolute slope: peaks at QRS complexes whatever the lead's polarity."""
    x = np.nan_to_num(x - np.nanmedian(x)) if np.isfinite(x).any() else np.zeros(len(x))
    slope = np.abs(np.gradient(x)) * fs
    k = max(1, int(0.03 * fs))
    return np.convolve(slope, np.ones(k) / k, mode="same")


def _best_match(envelope: np.ndarray, reference: np.ndarray, offset: int, fs: float) -> float:
    """Best normalised cross-correlation of ``envelope`` with ``reference`` near ``offset``."""
    n = len(envelope)
    e = envelope - envelope.mean()
    best = -1.0
    shift = int(SEARCH_S * fs)
    for lag in range(-shift, shift + 1):
        a = offset + lag
        if a < 0 or a + n > len(reference):
            continue
        r = reference[a:a + n] - reference[a:a + n].mean()
        denom = float(np.linalg.norm(e) * np.linalg.norm(r))
        if denom > 0:
            best = max(best, float(e @ r) / denom)
    return best
