"""Signals: from each lead's trace and time axis to samples in mV, band-limited to what was traced."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
from scipy.signal import butter, filtfilt

from .arrays import true_runs
from .config import SignalsConfig
from .paper import LEAD_NAMES
from .results import Calibration, LeadBox, Signals, Trace

log = logging.getLogger(__name__)


def trace_samples(
    trace: Trace,
    box: LeadBox,
    calibration: Calibration,
    *,
    fs: float,
    baseline_y: float | None = None,
    band_limit_hz: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Sample indices and mV values of one box's trace at ``fs``.

    The box is the time axis: its left edge ``x0`` is ``t_start_s`` and its right edge ``x1``
    is ``t_start_s + duration_s``.  A point's value is ``(baseline - y) / px_per_mv`` (negated
    for inverted leads) with the baseline at the trace's median level unless given.  Sample
    times inside a gap of the polyline, or more than 0.75 px beyond its ends, are NaN.  With
    ``band_limit_hz`` the values are smoothed above that frequency (:func:`traced_band_limit`).
    """
    n0 = int(np.ceil(box.t_start_s * fs - 1e-9))
    n1 = int(np.ceil((box.t_start_s + box.duration_s) * fs - 1e-9))
    idx = np.arange(n0, n1)
    values = np.full(len(idx), np.nan)
    xy = trace.xy
    s_per_px = box.duration_s / box.width if box.width > 0 else 0.0
    t_pts = box.t_start_s + (xy[:, 0] - box.x0) * s_per_px if len(xy) else np.zeros(0)
    finite = np.isfinite(t_pts) & np.isfinite(xy[:, 1]) if len(xy) else np.zeros(0, bool)
    if finite.sum() < 2 or s_per_px <= 0:
        return idx, values
    base = baseline_y if baseline_y is not None else float(np.nanmedian(xy[finite, 1]))
    v_pts = (base - xy[:, 1]) / calibration.px_per_mv
    if box.inverted:
        v_pts = -v_pts
    t = idx / fs
    tf, vf = t_pts[finite], v_pts[finite]
    order = np.argsort(tf, kind="stable")
    tf, vf = tf[order], vf[order]
    values = np.interp(t, tf, vf)
    for a, b in _gap_spans(t_pts):
        values[(t > a) & (t < b)] = np.nan
    edge = 0.75 * s_per_px
    values[(t < tf[0] - edge) | (t > tf[-1] + edge)] = np.nan
    if band_limit_hz is not None:
        values = _band_limited(values, band_limit_hz, fs)
    return idx, values


def traced_band_limit(calibration: Calibration, config: SignalsConfig = SignalsConfig()) -> float:
    """The cut-off (Hz) for signals from traces read one point per pixel column in ``calibration``'s frame."""
    return config.band_limit * calibration.px_per_s


def _band_limited(values: np.ndarray, cutoff: float, fs: float) -> np.ndarray:
    """``values`` (NaN in gaps) low-passed at ``cutoff`` Hz with a zero-phase second-order
    Butterworth filter, each stretch between gaps on its own; unchanged where the cut-off is
    near or above the Nyquist rate of ``fs``."""
    if cutoff >= 0.45 * fs:
        return values
    b, a = butter(2, cutoff / (fs / 2))
    out = values.copy()
    for start, end in true_runs(np.isfinite(values)):
        if end - start > 3 * len(a):
            out[start:end] = filtfilt(b, a, values[start:end])
    return out


def _gap_spans(t_pts: np.ndarray) -> list[tuple[float, float]]:
    """Time spans between the last finite point before a NaN run and the first after it."""
    finite = np.isfinite(t_pts)
    spans = []
    i, n = 0, len(t_pts)
    while i < n:
        if not finite[i]:
            j = i
            while j < n and not finite[j]:
                j += 1
            if i > 0 and j < n:
                spans.append((float(t_pts[i - 1]), float(t_pts[j])))
            i = j
        else:
            i += 1
    return spans


def assemble_signals(
    boxes: tuple[LeadBox, ...],
    traces: tuple[Trace, ...],
    calibration: Calibration,
    *,
    fs: float,
    duration_s: float,
    page_boxes: Sequence[LeadBox] | None = None,
    band_limit_hz: float | None = None,
    config: SignalsConfig = SignalsConfig(),
) -> Signals:
    """12-lead signals at ``fs`` from aligned boxes and traces: each lead from its longest box
    (the rhythm strip wins); samples no box covers are NaN.

    Where two boxes of a row meet, the printout jumps from one lead to the next with a vertical
    stroke (often beside a separator tick); the :attr:`SignalsConfig.lead_change_mm` of paper on either side
    of such a boundary hold the value just inside instead.  ``page_boxes`` are all the boxes
    of the page, when ``boxes`` are only some of them (default: ``boxes``).  ``band_limit_hz``
    smooths each lead above that frequency (:func:`traced_band_limit` for traces read from a map).
    """
    n = int(round(duration_s * fs))
    mv = np.full((n, len(LEAD_NAMES)), np.nan)
    best: dict[str, int] = {}
    for k, box in enumerate(boxes):
        if box.lead not in best or box.duration_s > boxes[best[box.lead]].duration_s:
            best[box.lead] = k
    guard = max(1, int(round(config.lead_change_mm / calibration.mm_per_s * fs)))
    for lead, k in best.items():
        box = boxes[k]
        idx, values = trace_samples(traces[k], box, calibration, fs=fs, band_limit_hz=band_limit_hz)
        if len(values) > 2 * guard + 1:
            neighbours = [b for b in (boxes if page_boxes is None else page_boxes) if b.row == box.row and b != box]
            if any(abs(b.x1 - box.x0) < 1.0 for b in neighbours):
                values[:guard] = values[guard]
            if any(abs(b.x0 - box.x1) < 1.0 for b in neighbours):
                values[-guard:] = values[-guard - 1]
        ok = (idx >= 0) & (idx < n)
        mv[idx[ok], LEAD_NAMES.index(lead)] = values[ok]
    return Signals(mv, fs)


def traced_signals(
    boxes: tuple[LeadBox, ...],
    traces: tuple[Trace, ...],
    cal: Calibration,
    *,
    fs: float,
    duration_s: float,
    config: SignalsConfig = SignalsConfig(),
) -> Signals:
    """Signals of traces read from a map, one point per pixel column (band-limited to that)."""
    band_limit_hz = traced_band_limit(cal, config)
    return assemble_signals(
        boxes, traces, cal, fs=fs, duration_s=duration_s, band_limit_hz=band_limit_hz, config=config
    )


def lead_confidence(
    boxes: tuple[LeadBox, ...], traces: tuple[Trace, ...], *, caps: Mapping[str, float] | None = None
) -> dict[str, float]:
    """Per lead: mean point confidence times the share of the box's columns with a trace, at
    most its ``caps`` value (a lead in doubt, :func:`ecgstudio.leadnames.name_doubts`)."""
    out: dict[str, float] = {}
    for box, trace in zip(boxes, traces):
        if trace.confidence is None or len(trace.xy) == 0:
            value = 0.0
        else:
            found = np.isfinite(trace.xy[:, 1])
            coverage = min(1.0, found.sum() / max(1.0, box.width))
            value = float(np.mean(trace.confidence[found])) * coverage if found.any() else 0.0
        out[box.lead] = float(max(out.get(box.lead, 0.0), value))
    for lead, cap in (caps or {}).items():
        if lead in out:
            out[lead] = min(out[lead], cap)
    return out


#: The limb leads as combinations of leads I and II (Einthoven's and Goldberger's relations).
LIMB_LEADS: dict[str, tuple[float, float]] = {
    "I": (1.0, 0.0),
    "II": (0.0, 1.0),
    "III": (-1.0, 1.0),
    "aVR": (-0.5, -0.5),
    "aVL": (1.0, -0.5),
    "aVF": (-0.5, 1.0),
}


def limb_fit(signals: Signals) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Leads I and II at each sample, least squares over the limb leads read there.

    Returns the columns of the limb leads in ``signals``, ``(n_samples, 2)`` (I, II) (NaN where
    fewer than two limb leads were read) and how many were read at each sample.
    """
    cols = [j for j, name in enumerate(signals.lead_names) if name in LIMB_LEADS]
    n = signals.n_samples
    if len(cols) < 2:
        return cols, np.full((n, 2), np.nan), np.zeros(n, dtype=int)
    c = np.array([LIMB_LEADS[signals.lead_names[j]] for j in cols])  # (m, 2)
    y = signals.mv[:, cols]
    w = np.isfinite(y).astype(np.float64)
    y0 = np.nan_to_num(y)
    # Normal equations per sample: (C^T W C) x = C^T W y.
    a = np.einsum("nm,mi,mj->nij", w, c, c)
    b = np.einsum("nm,mi,nm->ni", w, c, y0)
    det = a[:, 0, 0] * a[:, 1, 1] - a[:, 0, 1] * a[:, 1, 0]
    known = (w.sum(axis=1) >= 2) & (np.abs(det) > 1e-9)
    safe = np.where(known, det, 1.0)
    x = np.stack([a[:, 1, 1] * b[:, 0] - a[:, 0, 1] * b[:, 1], a[:, 0, 0] * b[:, 1] - a[:, 1, 0] * b[:, 0]], -1)
    x = np.where(known[:, None], x / safe[:, None], np.nan)
    return cols, x, w.sum(axis=1).astype(int)


def limb_disagreement(signals: Signals, *, lag_s: float = 0.01, min_s: float = 0.5) -> float | None:
    """How far the limb leads read at the same moments are from the exact relations between them.

    Wherever three or more limb leads were read at once, leads I and II are fitted to their
    slopes (changes over ``lag_s``, which ignore each lead's baseline) and the misfit is summed;
    the result is that misfit as a share of what unrelated signals would leave: about 0 for a
    page read right, about 1 where leads were read in the wrong places (a layout or lead order
    taken for another).  None where fewer than ``min_s`` seconds show three limb leads at once.
    """
    k = max(1, int(round(lag_s * signals.fs)))
    if signals.n_samples <= k:
        return None
    slopes = Signals(signals.mv[k:] - signals.mv[:-k], signals.fs, signals.lead_names)
    cols, x, m = limb_fit(slopes)
    over = m >= 3
    if over.sum() < min_s * signals.fs:
        return None
    c = np.array([LIMB_LEADS[signals.lead_names[j]] for j in cols])
    y = slopes.mv[over][:, cols]
    residual = np.nansum((y - x[over] @ c.T) ** 2)
    # Unrelated signals leave (m - 2) / m of their energy after fitting two unknowns.
    chance = np.sum((m[over] - 2) / m[over] * np.nansum(y**2, axis=1))
    return float(residual / chance) if chance > 0 else None
