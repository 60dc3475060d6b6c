"""Signal restoration: fill what the page hides and complete every lead over the whole record,
saying of every sample where it came from (:data:`SOURCES`).

A 3x4 page shows each lead for 2.5 of its 10 s; digital-ECG models want 10 s of 12 leads.
:func:`restore` completes exact first:

1. **Exact relations.**  At any moment two limb leads determine the other four (Einthoven and
   Goldberger: III = II - I, aVR = -(I + II)/2, aVL = I - II/2, aVF = II - I/2), so wherever two
   or more limb leads were read (the rhythm strip and the column's limb leads, on a standard
   page), every limb lead is known (:func:`complete_limb_leads`).
2. **Beats placed.**  A lead read for 2.5 s shows two or three of its beats; the rhythm strip,
   or without one the leads read at each moment, show when every beat of the record happened
   (:func:`beat_times`).  A lead's median beat (aligned on those complexes) is placed at each beat
   where the lead was not read (:func:`place_beats`); for the limb leads, leads I and II are
   placed and the other four follow from them exactly (:func:`placed_beats`).
3. **A restoration network** (optional: :class:`Restorer`, :mod:`ecgstudio.model.restorenet`,
   ``ecgstudio train-restorer``), given what was read and the placed beats, estimates the whole
   record and replaces step 2; with ``refine`` its estimate replaces what was read too.  The
   networks trained so far do not beat step 2 (BENCHMARKS.md), so none ships and the studio and
   ``--complete`` use steps 1 and 2.

A sample not read inside the window the page plots its lead in is *filled*; outside it,
*reconstructed*.  Leads with nothing read are only ever completed exactly; records with fewer
than two leads read or shorter than :data:`MIN_RECORD_S` get only the exact relations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.signal import butter, find_peaks, sosfiltfilt

from .results import LeadBox, Signals
from .signals import LIMB_LEADS, limb_fit

#: Where a sample of a restored record came from: not known (NaN), read off the page, read and
#: then corrected by the network, not read inside its lead's plotted window, or outside it.
SOURCES = ("none", "measured", "refined", "filled", "reconstructed")
NONE, MEASURED, REFINED, FILLED, RECONSTRUCTED = range(5)
#: Records shorter than this get only the exact relations, s.
MIN_RECORD_S = 2.0


@dataclass(frozen=True, eq=False)
class Completion:
    """A completed record and where each of its samples came from.

    Attributes
    ----------
    signals : Signals
        ``(n_samples, n_leads)`` mV: the measured samples as read, others completed or NaN.
    source : ndarray, shape (n_samples, n_leads), uint8
        Index into :data:`SOURCES` per sample.
    """

    signals: Signals
    source: np.ndarray

    def intervals(self, lead: str) -> list[tuple[str, float, float]]:
        """``(source, start s, end s)`` of each run of samples of one kind in ``lead``, none-runs left out."""
        j = list(self.signals.lead_names).index(lead)
        col = self.source[:, j]
        edges = np.flatnonzero(np.diff(col)) + 1
        starts, ends = np.r_[0, edges], np.r_[edges, len(col)]
        fs = self.signals.fs
        return [
            (SOURCES[col[a]], float(a / fs), float(b / fs)) for a, b in zip(starts, ends, strict=True) if col[a] != NONE
        ]

    def runs(self) -> dict[str, list[list]]:
        """Per lead, ``[source, start s, end s]`` of each run (the JSON sidecar's ``completion``)."""
        return {
            lead: [[kind, round(a, 4), round(b, 4)] for kind, a, b in self.intervals(lead)]
            for lead in self.signals.lead_names
        }


def complete_limb_leads(signals: Signals) -> Completion:
    """Every limb lead wherever at least two limb leads were read at the same moment.

    At each sample the limb leads read give equations in (I, II); with two or more, (I, II) is
    their least-squares solution and each limb lead not read is computed from it.  Chest leads and
    moments with fewer than two limb leads read are left as they are.
    """
    mv = np.array(signals.mv, dtype=np.float64, copy=True)
    source = np.where(np.isfinite(mv), MEASURED, NONE).astype(np.uint8)
    cols, x, _ = limb_fit(signals)
    known = np.isfinite(x[:, 0])
    for j in cols:
        fill = known & ~np.isfinite(mv[:, j])
        mv[fill, j] = x[fill] @ np.asarray(LIMB_LEADS[signals.lead_names[j]])
        source[fill, j] = RECONSTRUCTED
    return Completion(Signals(mv, signals.fs, signals.lead_names), source)


#: Beats are placed only by a lead read over at least this share of the record (a rhythm strip).
MIN_TIMING_SHARE = 0.8
#: A beat spans this share of the median RR interval before its QRS complex, the rest after it.
_BEAT_BEFORE = 0.4


def restore(
    signals: Signals,
    *,
    windows: Mapping[str, Sequence[tuple[float, float]]] | None = None,
    restorer: Restorer | None = None,
    complete: bool = True,
    refine: bool = False,
) -> Completion:
    """Every lead over the whole record where it can honestly be done, and (``refine``) what was
    read corrected by the network (see the module docstring).

    Parameters
    ----------
    signals : Signals
        What was read (NaN where nothing was).
    windows : mapping, optional
        Per lead, the ``(start s, end s)`` windows the page plots it in
        (:func:`plotted_windows`); by default each lead's span from its first to its last
        sample read.  Samples not read inside them are ``filled``, outside ``reconstructed``.
    restorer : Restorer, optional
        A restoration network; without it each lead's beats are placed (:func:`placed_beats`).
    complete : bool
        Fill and reconstruct what was not read; False leaves it NaN (refine alone).
    refine : bool
        Replace what was read with the network's estimate (needs ``restorer``).
    """
    mv = np.asarray(signals.mv, dtype=np.float64)
    measured = np.isfinite(mv)
    exact = complete_limb_leads(signals).signals.mv
    placed = placed_beats(signals)
    usable = measured.any(axis=0).sum() >= 2 and signals.duration_s >= MIN_RECORD_S
    estimate = restorer.estimate(signals, placed) if restorer is not None and usable else None
    guess = (estimate if estimate is not None else placed) if usable else np.full_like(mv, np.nan)
    guess = np.where(measured.any(axis=0), guess, np.nan)  # a lead never read is only derived exactly
    out = np.where(measured, mv, np.where(np.isfinite(exact), exact, guess))
    source = np.where(measured, MEASURED, np.where(_inside(signals, windows), FILLED, RECONSTRUCTED))
    if not complete:
        out[~measured] = np.nan
    source[~np.isfinite(out)] = NONE
    if refine and estimate is not None:
        out[measured] = estimate[measured]
        source[measured] = REFINED
    return Completion(Signals(out, signals.fs, signals.lead_names), source.astype(np.uint8))


def placed_beats(signals: Signals) -> np.ndarray:
    """Steps 1 and 2 of the module docstring: ``(n_samples, n_leads)`` mV, the read samples as
    they are, the exact relations, then each lead's beats placed at the record's
    (:func:`beat_times`); NaN where none of these gives a value (fewer than two beats found, a
    lead never read)."""
    exact = complete_limb_leads(signals)
    mv = np.array(exact.signals.mv, copy=True)
    peaks = beat_times(exact.signals)
    if len(peaks) < 2:
        return mv
    names = list(signals.lead_names)
    basis = [names.index(lead) for lead in ("I", "II") if lead in names]
    for j in basis:
        mv[:, j] = place_beats(mv[:, j], peaks)
    if len(basis) == 2:  # the other limb leads follow from I and II exactly
        mv = np.array(complete_limb_leads(Signals(mv, signals.fs, signals.lead_names)).signals.mv, copy=True)
    for j in range(mv.shape[1]):
        if j not in basis:
            mv[:, j] = place_beats(mv[:, j], peaks)
    return mv


def plotted_windows(boxes: Sequence[LeadBox]) -> dict[str, list[tuple[float, float]]]:
    """Per lead, the ``(start s, end s)`` of each box the page plots it in."""
    windows: dict[str, list[tuple[float, float]]] = {}
    for box in boxes:
        windows.setdefault(box.lead, []).append((box.t_start_s, box.t_start_s + box.duration_s))
    return windows


def _inside(signals: Signals, windows: Mapping[str, Sequence[tuple[float, float]]] | None) -> np.ndarray:
    """``(n_samples, n_leads)``: whether each sample lies inside its lead's plotted windows."""
    n = signals.n_samples
    inside = np.zeros(signals.mv.shape, bool)
    for j, lead in enumerate(signals.lead_names):
        if windows is None:
            read = np.flatnonzero(np.isfinite(signals.mv[:, j]))
            spans = [(read[0], read[-1] + 1)] if len(read) else []
        else:
            spans = [(round(a * signals.fs), round(b * signals.fs)) for a, b in windows.get(lead, ())]
        for a, b in spans:
            inside[max(0, a) : min(n, b), j] = True
    return inside


class Restorer:
    """A restoration network, loaded once from weights ``path`` (``ecgstudio train-restorer``)."""

    def __init__(self, path: str | Path) -> None:
        from .model.restorenet import load_restorer

        self.net, self.card = load_restorer(path)

    def estimate(self, signals: Signals, placed: np.ndarray) -> np.ndarray:
        """The network's estimate of the whole record, ``(n_samples, n_leads)`` mV, from what was
        read and :func:`placed_beats`; leads the network does not know are NaN.  The record is
        resampled to the network's rate and cut into windows of its length, the last one ending
        at the record's end."""
        import torch

        from .model.restorenet import FS, LEADS, LENGTH, network_input
        from .paper import LEAD_NAMES

        names = list(signals.lead_names)
        cols = [names.index(lead) if lead in names else None for lead in LEAD_NAMES]
        mv = np.asarray(signals.mv, np.float64)
        n = signals.n_samples
        t = np.arange(n) / signals.fs
        m = max(1, int(round(n / signals.fs * FS)))
        grid = np.arange(m) / FS

        def to_net(a: np.ndarray) -> np.ndarray:
            out = np.full((m, LEADS), np.nan)
            for k, j in enumerate(cols):
                if j is not None:
                    out[:, k] = _resample(a[:, j], t, grid)
            return out

        # Windows of the length the network was trained on (a shorter record padded as unread),
        # the last one ending at the record's end; overlaps averaged.
        size = max(m, LENGTH)
        read, prior = (np.pad(to_net(a), ((0, size - m), (0, 0)), constant_values=np.nan) for a in (mv, placed))
        starts = list(range(0, size - LENGTH + 1, LENGTH))
        if starts[-1] + LENGTH < size:
            starts.append(size - LENGTH)
        total, count = np.zeros((size, LEADS)), np.zeros((size, 1))
        with torch.no_grad():
            for a in starts:
                x = network_input(read[a : a + LENGTH], prior[a : a + LENGTH], multiple=self.net.config.multiple)
                total[a : a + LENGTH] += self.net(torch.from_numpy(x)[None])[0].numpy().T[:LENGTH]
                count[a : a + LENGTH] += 1
        estimate = (total / count)[:m]
        out = np.full(signals.mv.shape, np.nan)
        for k, j in enumerate(cols):
            if j is not None:
                out[:, j] = _resample(estimate[:, k], grid, t)
        return out


def _resample(y: np.ndarray, t: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """``y`` sampled at ``t``, at ``grid`` (linear; NaN where either neighbour is NaN)."""
    if len(t) == len(grid) and np.allclose(t, grid):
        return np.array(y, np.float64)
    finite = np.isfinite(y)
    values = np.interp(grid, t, np.where(finite, y, 0.0))
    known = np.interp(grid, t, finite.astype(np.float64)) > 0.999
    return np.where(known, values, np.nan)


def timing_lead(signals: Signals) -> int | None:
    """The lead read over the most of the record, where that is at least :data:`MIN_TIMING_SHARE` of it."""
    share = np.isfinite(signals.mv).mean(axis=0)
    j = int(np.argmax(share))
    return j if share[j] >= MIN_TIMING_SHARE else None


def r_peaks(x: np.ndarray, fs: float) -> np.ndarray:
    """Sample indices of the QRS complexes of one lead (NaN where not read).

    The lead is band-passed (8-25 Hz, where QRS complexes hold their energy and P and T waves
    little); the peaks of its smoothed slope, at least 0.25 s apart and at least a third of the
    strongest, are the complexes, each placed on the largest band-passed deflection within 50 ms.
    """
    if np.isfinite(x).sum() < fs:
        return np.zeros(0, int)
    energy, band = _qrs_energy(x, fs)
    return _peaks(np.nan_to_num(energy), np.abs(band), fs)


def beat_times(signals: Signals) -> np.ndarray:
    """Sample indices of the record's QRS complexes.

    Every lead has its QRS complexes at the same instants, so where no lead was read over most of
    the record (no rhythm strip: a 3x4 page, a 6x2), the leads read at each moment tell them: each
    lead's QRS energy (as in :func:`r_peaks`, scaled by its own 99th percentile) is averaged over
    the leads read at that moment; each complex is where that energy rises through half its peak
    (on 40 validation records printed 3x4 or 6x2, the columns' complexes so found fall at the
    same point of the complex within 3 ms in half the records and 8 ms in nine of ten; the
    energy's peaks, 8 and 14 ms).  With a rhythm strip, its lead alone (the same lead all
    along places every beat at the same point of its complex).
    """
    timing = timing_lead(signals)
    if timing is not None:
        return r_peaks(signals.mv[:, timing], signals.fs)
    fs = signals.fs
    energies = []
    for column in np.asarray(signals.mv, np.float64).T:
        if np.isfinite(column).sum() >= 0.5 * fs:
            energy = _qrs_energy(column, fs)[0]
            scale = np.nanpercentile(energy, 99)
            if scale > 0:
                energies.append(energy / scale)
    read = np.isfinite(energies).any(axis=0) if energies else np.zeros(0, bool)
    if read.sum() < fs:
        return np.zeros(0, int)
    energy = np.nanmean(np.where(read, energies, 0.0), axis=0, where=np.isfinite(energies) | ~read)
    # Each complex where its energy rises through half its peak: the leads' largest deflections
    # and energy peaks fall at different points of a complex, its start much less so.
    rises = []
    for p in _peaks(energy, energy, fs):
        a = max(0, p - round(0.1 * fs))
        below = np.flatnonzero(energy[a : p + 1] < 0.5 * energy[p])
        rises.append(a + int(below[-1]) + 1 if len(below) else p)
    return np.array(rises, dtype=int)


def _qrs_energy(x: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """A lead's smoothed QRS slope energy (NaN where it was not read) and its 8-25 Hz band; the
    stretches not read are bridged by straight lines first, so a window's edges make no slope."""
    finite = np.isfinite(x)
    at = np.flatnonzero(finite)
    y = np.interp(np.arange(len(x)), at, x[at] - np.median(x[at]))
    band = sosfiltfilt(butter(2, (8.0, min(25.0, 0.45 * fs)), btype="band", fs=fs, output="sos"), y)
    width = max(1, round(0.05 * fs))
    energy = np.convolve(np.abs(np.gradient(band)), np.ones(width) / width, mode="same")
    return np.where(finite, energy, np.nan), band


def _peaks(energy: np.ndarray, deflection: np.ndarray, fs: float) -> np.ndarray:
    """Peaks of ``energy`` at least 0.25 s apart and a third of its 99th percentile, each moved
    to the largest ``deflection`` within 50 ms."""
    peaks, _ = find_peaks(energy, distance=max(1, round(0.25 * fs)), height=np.percentile(energy, 99) / 3)
    reach = max(1, round(0.05 * fs))
    starts = [max(0, p - reach) for p in peaks]
    return np.array(
        [a + int(np.argmax(deflection[a : p + reach + 1])) for a, p in zip(starts, peaks, strict=True)], dtype=int
    )


def place_beats(column: np.ndarray, peaks: np.ndarray) -> np.ndarray:
    """``column`` with its missing samples taken from its median beat, placed at each of ``peaks``.

    A beat runs from :data:`_BEAT_BEFORE` of the median RR interval before its QRS complex to the
    rest of the interval after it; the median beat is taken over every beat of the column read in
    at least half of its samples.  A sample belongs to the beat whose span holds it (held at the
    median beat's ends where an interval is longer than usual).  Where the column shows no beat,
    it is returned as it is.
    """
    known = np.isfinite(column)
    if known.all() or not known.any():
        return column
    rr = int(np.median(np.diff(peaks)))
    before = round(_BEAT_BEFORE * rr)
    offsets = np.arange(-before, rr - before)
    n = len(column)
    beats = []
    for p in peaks:
        at = p + offsets
        inside = (at >= 0) & (at < n)
        beat = np.full(len(offsets), np.nan)
        beat[inside] = column[at[inside]]
        if np.isfinite(beat).mean() >= 0.5:
            beats.append(beat)
    if not beats:
        return column
    stack = np.array(beats)
    seen = np.isfinite(stack).any(axis=0)  # some of it: each beat kept is half read at least
    median = np.full(len(offsets), np.nan)
    median[seen] = np.nanmedian(stack[:, seen], axis=0)
    median = np.interp(np.arange(len(offsets)), np.flatnonzero(seen), median[seen])
    # Each sample's beat: the peak whose span [p - before, p + rr - before) holds it, or the nearest.
    t = np.flatnonzero(~known)
    k = np.clip(np.searchsorted(peaks, t + before, side="right") - 1, 0, len(peaks) - 1)
    offset = np.clip(t - peaks[k] + before, 0, len(offsets) - 1)
    out = column.copy()
    out[t] = median[offset]
    return out
