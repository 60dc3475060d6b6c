"""Which seconds each column of a page shows, and where a record's samples fall on it.

A standard 3x4 or 6x2 printout shows consecutive windows of one recording: the second column
of a 3x4 page is 2.5-5 s.  Some printers and page generators instead start every column at
t = 0 (all twelve leads over the same first seconds).  Nothing printed says which; the beats
do.  Every lead has its QRS complexes at the same instants, so the beat pattern of a column's
leads matches the rhythm strip over the column's own window, and not (except by chance) over
the first seconds, or the other way round.  Without a rhythm strip, columns printed from t = 0
have their beats where the first column has them (and a QRS complex's width away, they do not);
consecutive columns by chance, or where a regular rhythm fits a whole number of beats in the time
between the columns' starts (such columns are not counted).

:func:`columns_start_at_zero` compares the readings on assembled signals;
:func:`ecgstudio.boxes.restart_columns` moves the boxes to the simultaneous reading.  A page without
clear evidence keeps the standard reading.

Time runs left to right, and a page read upside down runs it backwards (and turns every wave
over).  A beat's T wave follows its QRS complex, larger and further from it than the P wave
before it: :func:`time_direction` weighs the waves after each complex against those before.

A page printed from a digital record draws straight strokes between the record's samples.
When a sample spans a pixel or more (100 Hz at 25 mm/s is a quarter of a millimetre), the
trace's corners show where the samples were; :func:`ecgstudio.boxes.align_to_samples` moves the time axis by
a fraction of a sample so that the output's samples fall on those corners, and the record's
own values come back instead of values interpolated between them.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy.signal import butter, find_peaks, sosfiltfilt

from .arrays import true_runs
from .boxes import rhythm_strips
from .config import TimingConfig
from .paper import COLUMN_ORDERS
from .restore import r_peaks
from .results import LeadBox, Signals

log = logging.getLogger(__name__)

#: How the columns of a page follow each other in time (``DigitizeOptions.columns``).
COLUMN_READINGS = ("auto", *COLUMN_ORDERS)


def columns_start_at_zero(
    boxes: tuple[LeadBox, ...], signals: Signals, *, config: TimingConfig = TimingConfig()
) -> bool:
    """True when the page's columns all start at t = 0 rather than following each other.

    ``signals`` are those assembled from ``boxes`` in the standard reading (each box at its
    own ``t_start_s``).  With a rhythm strip (a box spanning more than one column's time), each
    later column's beats are matched against the strip at both readings' instants; without one,
    against the first column's at the same instant and a QRS complex's width either way.
    """
    if not boxes:
        return False
    strips = rhythm_strips(boxes)
    later = [b for b in boxes if b.t_start_s > 0 and all(b.row != s.row for s in strips)]
    if not later:
        return False
    fs = signals.fs

    def envelope(lead: str, a: int, n: int) -> np.ndarray | None:
        segment = signals.mv[a : a + n, signals.lead_names.index(lead)]
        return None if len(segment) < n or np.isnan(segment).mean() > 0.3 else _beat_envelope(segment, fs)

    if strips:
        reference = _beat_envelope(signals.mv[:, signals.lead_names.index(strips[0].lead)], fs)
        what = "the rhythm strip"
    else:
        firsts = [envelope(b.lead, 0, int(round(b.duration_s * fs))) for b in boxes if b.t_start_s == 0]
        firsts = [e / (np.linalg.norm(e) or 1.0) for e in firsts if e is not None]
        if not firsts:
            return False
        reference = np.sum(firsts, axis=0)
        what = "the first column"
        # A regular rhythm puts a consecutive column's beats where the first column has them when
        # the column starts a whole number of beats later: such columns tell nothing.
        rr = _beat_period(reference, fs)
        if rr is None:
            return False
        later = [b for b in later if abs(b.t_start_s - rr * round(b.t_start_s / rr)) >= config.min_phase_s]
    consecutive, simultaneous = [], []
    for box in later:
        a, n = int(round(box.t_start_s * fs)), int(round(box.duration_s * fs))
        e = envelope(box.lead, a, n)
        if e is None or len(reference) < n:
            continue
        simultaneous.append(_best_match(e, reference, 0, fs, config.search_s))
        if strips:
            consecutive.append(_best_match(e, reference, a, fs, config.search_s))
        else:
            consecutive.append(_off_beat_match(e, reference, int(config.search_s * fs)))
    if not consecutive:
        return False
    cons, sim = float(np.mean(consecutive)), float(np.mean(simultaneous))
    verdict = sim >= config.min_match and sim - cons >= config.min_margin
    log.log(
        logging.INFO if verdict else logging.DEBUG,
        "columns against %s: consecutive windows %.2f, all from t = 0 %.2f%s",
        what,
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


def _beat_period(envelope: np.ndarray, fs: float) -> float | None:
    """The median interval between the beats of a beat envelope, seconds (None under two beats)."""
    peaks, _ = find_peaks(envelope, distance=max(1, round(0.25 * fs)), height=envelope.max() / 3)
    return float(np.median(np.diff(peaks))) / fs if len(peaks) >= 2 else None


def _correlation(e: np.ndarray, r: np.ndarray) -> float:
    e, r = e - e.mean(), r - r.mean()
    denom = float(np.linalg.norm(e) * np.linalg.norm(r))
    return float(e @ r) / denom if denom > 0 else -1.0


def _best_match(envelope: np.ndarray, reference: np.ndarray, offset: int, fs: float, search_s: float) -> float:
    """Best normalised cross-correlation of ``envelope`` with ``reference`` within ``search_s`` of ``offset``."""
    n = len(envelope)
    shift = int(search_s * fs)
    lags = range(max(0, offset - shift), min(len(reference) - n, offset + shift) + 1)
    return max((_correlation(envelope, reference[a : a + n]) for a in lags), default=-1.0)


def _off_beat_match(envelope: np.ndarray, reference: np.ndarray, shift: int) -> float:
    """Best correlation of ``envelope`` with ``reference`` moved 3 to 6 times ``shift`` samples
    either way (about a QRS complex's width, less than a beat), over their overlap."""
    n = min(len(envelope), len(reference))
    lags = range(3 * shift, 6 * shift + 1)
    later = (_correlation(envelope[lag:n], reference[: n - lag]) for lag in lags)
    earlier = (_correlation(envelope[: n - lag], reference[lag:n]) for lag in lags)
    return max([*later, *earlier], default=-1.0)


def time_direction(signals: Signals) -> float:
    """Evidence that the signals run forward in time: positive forward, negative backwards (a
    page read upside down), near 0 undecided.

    For each stretch of a lead read for a second or more, the waves (0.7-12 Hz, about their
    median) from 80 to 400 ms after each QRS complex (the T wave) are weighed against those as
    far before it (the P wave, smaller and nearer), both windows at most 0.45 RR intervals; the
    log of their ratio is summed over stretches.  Reversing the signals negates the sum.  On 237
    training records drawn as 3x4 + 1 pages it is above 0 for 99 % of them and above 2 for all
    but one; on the simulator's records, below -1 for one in ten (their P waves run large).
    """
    fs = signals.fs
    total = 0.0
    for column in np.asarray(signals.mv, np.float64).T:
        for a, b in true_runs(np.isfinite(column)):
            if b - a >= fs:
                total += _lead_direction(column[a:b], fs)
    return total


def _lead_direction(x: np.ndarray, fs: float) -> float:
    peaks = r_peaks(x, fs)
    if len(peaks) < 2:
        return 0.0
    rr = float(np.median(np.diff(peaks))) / fs
    waves = sosfiltfilt(butter(2, (0.7, min(12.0, 0.45 * fs)), btype="band", fs=fs, output="sos"), x - np.median(x))
    waves -= np.median(waves)
    near, far = round(0.08 * fs), round(min(0.4, 0.45 * rr) * fs)
    if far <= near:
        return 0.0
    t_wave = p_wave = 0.0
    for p in peaks:
        if p - far >= 0 and p + far <= len(waves):
            t_wave += float(np.mean(np.abs(waves[p + near : p + far])))
            p_wave += float(np.mean(np.abs(waves[p - far : p - near])))
    if t_wave + p_wave == 0:
        return 0.0
    return float(np.log((t_wave + 1e-6) / (p_wave + 1e-6)))
