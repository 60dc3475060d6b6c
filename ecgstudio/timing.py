"""Which seconds each column of a page shows, and where a record's samples fall on it.

A standard 3x4 or 6x2 printout shows consecutive windows of one recording: the second column
of a 3x4 page is 2.5-5 s.  Some printers and page generators instead start every column at
t = 0 (all twelve leads over the same first seconds).  Nothing printed says which; the rhythm
strip does.  Every lead has its QRS complexes at the same instants, so the beat pattern of a
column's leads matches the rhythm strip over the column's own window, and not (except by
chance) over the first seconds, or the other way round.

:func:`columns_start_at_zero` compares the two readings on assembled signals;
:func:`ecgstudio.boxes.restart_columns` moves the boxes to the simultaneous reading.  A page without a rhythm
strip, or without clear evidence, keeps the standard reading.

A page printed from a digital record draws straight strokes between the record's samples.
When a sample spans a pixel or more (100 Hz at 25 mm/s is a quarter of a millimetre), the
trace's corners show where the samples were; :func:`ecgstudio.boxes.align_to_samples` moves the time axis by
a fraction of a sample so that the output's samples fall on those corners, and the record's
own values come back instead of values interpolated between them.
"""

from __future__ import annotations

import logging

import numpy as np

from .config import TimingConfig
from .paper import COLUMN_ORDERS
from .results import LeadBox, Signals

log = logging.getLogger(__name__)

#: How the columns of a page follow each other in time (``DigitizeOptions.columns``).
COLUMN_READINGS = ("auto", *COLUMN_ORDERS)


def columns_start_at_zero(
    boxes: tuple[LeadBox, ...], signals: Signals, *, config: TimingConfig = TimingConfig()
) -> bool:
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
        segment = signals.mv[a : a + n, signals.lead_names.index(box.lead)]
        if len(segment) < n or np.isnan(segment).mean() > 0.3:
            continue
        envelope = _beat_envelope(segment, fs)
        consecutive.append(_best_match(envelope, reference, a, fs, config.search_s))
        simultaneous.append(_best_match(envelope, reference, 0, fs, config.search_s))
    if not consecutive:
        return False
    cons, sim = float(np.mean(consecutive)), float(np.mean(simultaneous))
    verdict = sim >= config.min_match and sim - cons >= config.min_margin
    log.log(
        logging.INFO if verdict else logging.DEBUG,
        "columns against the rhythm strip: consecutive windows %.2f, all from t = 0 %.2f%s",
        cons,
        sim,
        "; reading every column from t = 0" if verdict else "",
    )
    return verdict


def _beat_envelope(x: np.ndarray, fs: float) -> np.ndarray:
    """Smoothed absolute slope: peaks at QRS complexes whatever the lead's polarity."""
    x = np.nan_to_num(x - np.nanmedian(x)) if np.isfinite(x).any() else np.zeros(len(x))
    slope = np.abs(np.gradient(x)) * fs
    k = max(1, int(0.03 * fs))
    return np.convolve(slope, np.ones(k) / k, mode="same")


def _best_match(envelope: np.ndarray, reference: np.ndarray, offset: int, fs: float, search_s: float) -> float:
    """Best normalised cross-correlation of ``envelope`` with ``reference`` near ``offset``."""
    n = len(envelope)
    e = envelope - envelope.mean()
    best = -1.0
    shift = int(search_s * fs)
    for lag in range(-shift, shift + 1):
        a = offset + lag
        if a < 0 or a + n > len(reference):
            continue
        r = reference[a : a + n] - reference[a : a + n].mean()
        denom = float(np.linalg.norm(e) * np.linalg.norm(r))
        if denom > 0:
            best = max(best, float(e @ r) / denom)
    return best
