"""Accuracy of digitized signals against ground truth, computed the same way every time.

The measure follows the field (PhysioNet Challenge 2024 and the Kaggle 2025 variant):

* **Per-lead SNR** ``10 log10(sum(ref**2) / sum(err**2))`` in dB, after removing the mean of
  the reference, aligning the estimate in time and removing a vertical offset.  Only the
  window in which the page plots a lead is scored.
* **Per-image SNR** (Kaggle 2025): the signal energy summed over the leads of an image divided
  by the error energy summed over them.  :func:`aggregate` averages these *linear* ratios over
  images and then takes dB, and also reports the plain mean of per-lead dB values.

Conventions (:func:`score_lead`)
--------------------------------
Time alignment
    Integer sample lags ``k`` with ``|k| <= round(max_lag_s * fs)`` (and at most half the
    window) are searched.  A positive lag means the estimate is *late*: ``est[i + k]`` is
    compared with ``ref[i]``.  At each lag only the **overlapping part** of the two windows is
    compared; nothing is padded.  Both energies are taken over exactly the compared samples,
    so a lag never trades signal energy for error energy.  The lag with the highest SNR wins;
    ties (within a relative 1e-9) go to the smallest ``|k|``.
Offset
    For a lag, the least-squares vertical offset ``mean(ref - est)`` over the compared samples
    is added to the estimate.  The reference mean is removed over the same samples, so the
    SNR does not depend on either signal's DC level.
Missing samples
    Non-finite estimate samples (NaN: not recovered) count as a flat line: they are set to 0
    before the offset fit, and the offset then sets the flat level.  A lead with no output at
    all therefore scores exactly 0 dB.  Non-finite reference samples are excluded from both
    energies.
Cap
    SNR is capped at :data:`SNR_CAP_DB` (100 dB) by flooring the error energy at
    ``signal energy * 1e-10``; identical signals score 100 dB, not infinity.  A reference with
    no energy (constant over the window) scores 0 dB.
Resampling (:func:`score_record`)
    A prediction at another rate is brought onto the truth's sample grid (time zero of the
    prediction is time zero of the truth) with :func:`resample_to_grid`: a polyphase FIR
    filter (``scipy.signal.resample_poly``) for rational rate ratios, linear interpolation in
    time otherwise.  NaN runs are bridged before filtering and put back by interpolating the
    missing-sample mask onto the new grid.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from scipy.signal import resample_poly

from .errors import LayoutError
from .paper import LEAD_NAMES, Layout, lead_index
from .results import Signals

logger = logging.getLogger(__name__)

#: Highest SNR reported, in dB; the error energy is floored at ``signal energy * 10**(-cap/10)``.
SNR_CAP_DB = 100.0
#: Default half-width of the lag search, in seconds (the Kaggle 2025 limit).
DEFAULT_MAX_LAG_S = 0.2

_ERROR_FLOOR = 10.0 ** (-SNR_CAP_DB / 10.0)
_TIE_RTOL = 1e-9
_MAX_RATIONAL_TERM = 1000


# --------------------------------------------------------------------------------------------
# results


@dataclass(frozen=True)
class LeadScore:
    """The accuracy of one lead over its plotted window, after alignment.

    Attributes
    ----------
    snr_db : float
        ``10 log10(signal_power / error_power)`` in dB, capped at :data:`SNR_CAP_DB`.
    pearson_r : float
        Pearson correlation of reference and aligned estimate; 0 where either is constant.
    rmse_mv : float
        Root-mean-square error in mV after alignment and offset removal.
    lag_s : float
        The chosen time shift in seconds; positive when the estimate is late.
    offset_mv : float
        The least-squares offset ``mean(ref - est)`` in mV that was added to the estimate.
    signal_power : float
        Sum of squares of the mean-removed reference over the compared samples, in mV^2
        (an energy: a sum over samples, not a mean).
    error_power : float
        Sum of squared errors over the compared samples, in mV^2 (not floored).
    n_samples : int
        Number of samples compared (the overlap at the chosen lag, valid reference only).
    """

    snr_db: float
    pearson_r: float
    rmse_mv: float
    lag_s: float
    offset_mv: float
    signal_power: float
    error_power: float
    n_samples: int

    @property
    def power_ratio(self) -> float:
        """Linear ``signal_power / error_power`` with the same cap as :attr:`snr_db`."""
        return power_ratio(self.signal_power, self.error_power)


@dataclass(frozen=True, eq=False)
class RecordScore:
    """The scores of the leads of one record (one image).

    Attributes
    ----------
    leads : Mapping[str, LeadScore]
        Per-lead scores keyed by lead name, in :data:`~ecgstudio.paper.LEAD_NAMES` order.
        Never empty.
    """

    leads: Mapping[str, LeadScore]

    def __post_init__(self) -> None:
        if not self.leads:
            raise ValueError("a RecordScore needs at least one lead score")

    @property
    def n_leads(self) -> int:
        return len(self.leads)

    @property
    def mean_snr_db(self) -> float:
        """Mean of the per-lead SNRs in dB (Challenge 2024 style)."""
        return float(np.mean([s.snr_db for s in self.leads.values()]))

    @property
    def signal_power(self) -> float:
        """Signal energy summed over the leads, mV^2."""
        return float(sum(s.signal_power for s in self.leads.values()))

    @property
    def error_power(self) -> float:
        """Error energy summed over the leads, mV^2."""
        return float(sum(s.error_power for s in self.leads.values()))

    @property
    def power_ratio(self) -> float:
        """Linear per-image ratio ``signal_power / error_power`` (capped like the dB values)."""
        return power_ratio(self.signal_power, self.error_power)

    @property
    def image_snr_db(self) -> float:
        """Per-image SNR in dB: summed signal energy over summed error energy (Kaggle 2025)."""
        return float(10.0 * math.log10(self.power_ratio))

    @property
    def mean_pearson_r(self) -> float:
        return float(np.mean([s.pearson_r for s in self.leads.values()]))

    @property
    def mean_rmse_mv(self) -> float:
        return float(np.mean([s.rmse_mv for s in self.leads.values()]))


@dataclass(frozen=True)
class Summary:
    """Aggregate accuracy over a set of records.

    Attributes
    ----------
    n_records : int
        Number of records (images) aggregated.
    n_leads : int
        Number of lead scores over all records.
    mean_snr_db : float
        Mean of the per-lead SNR in dB over all leads of all records (Challenge 2024).
    image_linear_snr_db : float
        The per-image linear power ratios averaged over images, then in dB (Kaggle 2025).
    mean_pearson_r : float
        Mean Pearson r over all leads of all records.
    mean_rmse_mv : float
        Mean RMSE in mV over all leads of all records.

    All means are NaN when ``n_records`` is 0.
    """

    n_records: int
    n_leads: int
    mean_snr_db: float
    image_linear_snr_db: float
    mean_pearson_r: float
    mean_rmse_mv: float


# --------------------------------------------------------------------------------------------
# the measure


def power_ratio(signal_power: float, error_power: float) -> float:
    """Linear SNR with the error floored at ``signal_power * 1e-10`` (100 dB cap).

    A zero signal energy gives 1 (0 dB): there was nothing to recover.
    """
    if not signal_power > 0:
        return 1.0
    return float(signal_power / max(error_power, signal_power * _ERROR_FLOOR))


def score_lead(ref: np.ndarray, est: np.ndarray, fs: float, *, max_lag_s: float = DEFAULT_MAX_LAG_S) -> LeadScore:
    """Score one lead over its plotted window.

    Parameters
    ----------
    ref : ndarray, shape (n,)
        Ground truth in mV over the plotted window only; NaN samples are excluded.
    est : ndarray, shape (n,)
        Estimate in mV over the same window; NaN samples count as a flat line.
    fs : float
        Sampling frequency of both, in Hz.
    max_lag_s : float, optional
        Half-width of the lag search in seconds (default 0.2 s).

    Returns
    -------
    LeadScore

    Raises
    ------
    ValueError
        Shapes differ or are not 1-D, ``fs``/``max_lag_s`` are invalid, or the reference has
        fewer than two valid samples.

    Notes
    -----
    See the module docstring for the conventions (overlap-only lag search, flat-line NaN,
    least-squares offset, 100 dB cap).
    """
    ref = np.asarray(ref, dtype=np.float64)
    est = np.asarray(est, dtype=np.float64)
    if ref.ndim != 1 or est.shape != ref.shape:
        raise ValueError(f"ref and est must be 1-D arrays of one length, got shapes {ref.shape} and {est.shape}")
    if not (math.isfinite(fs) and fs > 0):
        raise ValueError(f"fs must be a positive number of Hz, got {fs}")
    if not (math.isfinite(max_lag_s) and max_lag_s >= 0):
        raise ValueError(f"max_lag_s must be >= 0 seconds, got {max_lag_s}")
    valid = np.isfinite(ref)
    if np.count_nonzero(valid) < 2:
        raise ValueError("the reference has fewer than two valid (finite) samples in the window; nothing to score")
    est = np.where(np.isfinite(est), est, 0.0)

    n = ref.size
    max_lag = min(int(round(max_lag_s * fs)), n // 2)
    k = _best_lag(np.where(valid, ref, 0.0), valid, est, max_lag)

    lo, hi = max(0, -k), min(n, n - k)
    keep = valid[lo:hi]
    a = ref[lo:hi][keep]
    b = est[lo + k : hi + k][keep]
    offset = float(np.mean(a - b))
    a_c = a - a.mean()
    b_c = b - b.mean()
    err = a_c - b_c  # == a - (b + offset)
    sp = float(a_c @ a_c)
    ep = float(err @ err)
    denom = math.sqrt(sp * float(b_c @ b_c))
    r = float(a_c @ b_c) / denom if denom > 0 else 0.0
    return LeadScore(
        snr_db=float(10.0 * math.log10(power_ratio(sp, ep))),
        pearson_r=max(-1.0, min(1.0, r)),
        rmse_mv=math.sqrt(ep / a.size),
        lag_s=k / fs,
        offset_mv=offset,
        signal_power=sp,
        error_power=ep,
        n_samples=int(a.size),
    )


def _best_lag(a0: np.ndarray, valid: np.ndarray, b: np.ndarray, max_lag: int) -> int:
    """The lag maximising the capped SNR, from running sums over the overlap at every lag.

    ``a0`` is the reference with invalid samples zeroed, ``valid`` its mask, ``b`` the
    estimate (finite).  Entry ``j`` of each correlation is the sum over ``i`` of
    ``v[i] * padded[i + j]``, i.e. lag ``k = j - max_lag``.
    """
    if max_lag == 0:
        return 0
    n = a0.size
    m = valid.astype(np.float64)
    inside = np.pad(np.ones(n), max_lag)
    bp = np.pad(b, max_lag)
    b2p = np.pad(b * b, max_lag)
    cnt = np.correlate(inside, m, "valid")
    sa = np.correlate(inside, a0, "valid")
    saa = np.correlate(inside, a0 * a0, "valid")
    sb = np.correlate(bp, m, "valid")
    sbb = np.correlate(b2p, m, "valid")
    sab = np.correlate(bp, a0, "valid")
    usable = cnt >= 2
    c = np.where(usable, cnt, 1.0)
    sp = np.maximum(saa - sa * sa / c, 0.0)
    ep = np.maximum(sp + (sbb - sb * sb / c) - 2.0 * (sab - sa * sb / c), 0.0)
    ratio = np.where(sp > 0, sp / np.maximum(ep, sp * _ERROR_FLOOR), 1.0)
    ratio[~usable] = -np.inf
    lags = np.arange(-max_lag, max_lag + 1)
    best = ratio.max()
    near = np.nonzero(ratio >= best * (1.0 - _TIE_RTOL))[0]
    return int(lags[near[np.argmin(np.abs(lags[near]))]])


# --------------------------------------------------------------------------------------------
# records


def _canonical(name: str) -> str:
    """The standard spelling of a lead name (``AVR`` -> ``aVR``, ``MLII`` -> ``II``), else as given."""
    try:
        return LEAD_NAMES[lead_index(name.strip())]
    except LayoutError:
        return name.strip()


def score_record(
    truth: Signals,
    pred: Signals,
    *,
    layout: Layout | None = None,
    windows: Mapping[str, tuple[float, float]] | None = None,
    max_lag_s: float = DEFAULT_MAX_LAG_S,
) -> RecordScore:
    """Score every plotted lead of one record.

    Parameters
    ----------
    truth : Signals
        Ground truth in mV.  Its time zero is the start of the page.
    pred : Signals
        The digitized signals; resampled onto the truth's grid if its rate differs (time zero
        of ``pred`` is time zero of ``truth``).  A lead missing from ``pred``, all-NaN, or
        shorter than the truth counts as a flat line where it has no samples.
    layout : Layout, optional
        Scores each lead the layout shows over ``layout.plotted_window_s(lead)``; leads it does
        not show are skipped.
    windows : mapping of str to (float, float), optional
        Explicit plotted windows ``{lead: (t_start_s, t_end_s)}``; when given they replace the
        layout's, and leads not named are skipped.  With neither ``layout`` nor ``windows``
        every truth lead is scored over the whole record.
    max_lag_s : float, optional
        Half-width of the lag search, seconds.

    Returns
    -------
    RecordScore

    Raises
    ------
    LayoutError
        No plotted lead could be scored (the layout or windows name none of the truth's leads,
        or every window falls outside the record).
    """
    fs = float(truth.fs)
    n = truth.n_samples
    truth_cols = _columns_by_lead(truth.lead_names)
    pred_cols = _columns_by_lead(pred.lead_names)
    pred_mv = _on_grid(pred, fs, n)

    if windows is not None:
        plan = [(_canonical(lead), (float(t0), float(t1))) for lead, (t0, t1) in windows.items()]
    elif layout is not None:
        plan = [(lead, layout.plotted_window_s(lead)) for lead in layout.leads]
    else:
        plan = [(_canonical(lead), (0.0, truth.duration_s)) for lead in truth.lead_names]

    scores: dict[str, LeadScore] = {}
    for lead, (t0, t1) in plan:
        if lead in scores:
            continue
        if lead not in truth_cols:
            logger.warning("lead %s is plotted but the ground truth has no such lead; skipped", lead)
            continue
        i0 = max(0, int(round(t0 * fs)))
        i1 = min(n, int(round(t1 * fs)))
        if i1 - i0 < 2:
            logger.warning(
                "lead %s: window %.3f-%.3f s lies outside the %.3f s record; skipped", lead, t0, t1, truth.duration_s
            )
            continue
        ref = truth.mv[i0:i1, truth_cols[lead]]
        if np.count_nonzero(np.isfinite(ref)) < 2:
            logger.warning("lead %s: the ground truth is empty (NaN) over %.3f-%.3f s; skipped", lead, t0, t1)
            continue
        if lead in pred_cols:
            est = pred_mv[i0:i1, pred_cols[lead]]
        else:
            est = np.full(i1 - i0, np.nan)
        scores[lead] = score_lead(ref, est, fs, max_lag_s=max_lag_s)
    if not scores:
        raise LayoutError(
            f"no lead could be scored: the ground truth has leads {', '.join(truth.lead_names)} but the "
            f"plotted windows name {', '.join(lead for lead, _ in plan) or 'none'}; check the layout or windows"
        )
    order = {name: i for i, name in enumerate(LEAD_NAMES)}
    ordered = dict(sorted(scores.items(), key=lambda kv: order.get(kv[0], len(order))))
    return RecordScore(ordered)


def _columns_by_lead(names: Sequence[str]) -> dict[str, int]:
    """Canonical lead name -> column index; the first column wins where two map to one lead."""
    cols: dict[str, int] = {}
    for j, name in enumerate(names):
        key = _canonical(name)
        if key in cols:
            logger.warning("columns %r and %r are both lead %s; using the first", names[cols[key]], name, key)
            continue
        cols[key] = j
    return cols


def _on_grid(pred: Signals, fs: float, n: int) -> np.ndarray:
    """``pred.mv`` on the grid ``arange(n) / fs``: resampled if needed, NaN-padded or cut to ``n``."""
    if math.isclose(pred.fs, fs, rel_tol=1e-9):
        mv = np.asarray(pred.mv, dtype=np.float64)
    else:
        mv = resample_to_grid(pred.mv, pred.fs, fs)
    out = np.full((n, mv.shape[1]), np.nan)
    m = min(n, mv.shape[0])
    out[:m] = mv[:m]
    return out


def resample_to_grid(mv: np.ndarray, fs_in: float, fs_out: float) -> np.ndarray:
    """Resample signals with gaps from ``fs_in`` to ``fs_out``, keeping time zero.

    Parameters
    ----------
    mv : ndarray, shape (n_samples,) or (n_samples, n_leads)
        Signals in mV; NaN marks missing samples.
    fs_in, fs_out : float
        Sampling frequencies in Hz.

    Returns
    -------
    ndarray, float64
        Shape ``(ceil(n_samples * fs_out / fs_in), ...)``; sample ``i`` is at time ``i / fs_out``.
        NaN where the input was missing: output samples nearer (in linear interpolation of the
        0/1 mask) to missing input samples than to present ones.

    Notes
    -----
    Rational ratios ``up/down`` (terms up to 1000, exact to 1e-9) use
    ``scipy.signal.resample_poly`` with odd-reflection ends (``padtype="antireflect"``, the
    smallest edge error on smooth signals), which low-pass filters before decimating and keeps
    the phase; other ratios use linear interpolation in time.  Before
    filtering, gaps are bridged by linear interpolation and the ends held at the nearest valid
    value, so no gap rings into its neighbours.
    """
    x = np.asarray(mv, dtype=np.float64)
    squeeze = x.ndim == 1
    if squeeze:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"signals must be 1-D or 2-D (n_samples, n_leads), got shape {x.shape}")
    if not (fs_in > 0 and fs_out > 0):
        raise ValueError(f"sampling frequencies must be positive, got {fs_in} and {fs_out}")
    n_in = x.shape[0]
    ratio = Fraction(fs_out / fs_in).limit_denominator(_MAX_RATIONAL_TERM)
    rational = ratio.numerator <= _MAX_RATIONAL_TERM and math.isclose(float(ratio), fs_out / fs_in, rel_tol=1e-9)
    n_out = int(math.ceil(n_in * fs_out / fs_in - 1e-9))
    t_in = np.arange(n_in) / fs_in
    t_out = np.arange(n_out) / fs_out
    out = np.full((n_out, x.shape[1]), np.nan)
    for j in range(x.shape[1]):
        col = x[:, j]
        missing = ~np.isfinite(col)
        if missing.all() or n_in == 0:
            continue
        filled = col if not missing.any() else np.interp(t_in, t_in[~missing], col[~missing])
        if rational and n_in > 1 and ratio != 1:
            y = resample_poly(filled, ratio.numerator, ratio.denominator, padtype="antireflect")
        else:
            y = np.interp(t_out, t_in, filled)
        y = y[:n_out]
        if missing.any():
            gone = np.interp(t_out[: y.size], t_in, missing.astype(np.float64)) >= 0.5
            y = np.where(gone, np.nan, y)
        out[: y.size, j] = y
    return out[:, 0] if squeeze else out


# --------------------------------------------------------------------------------------------
# aggregation


def aggregate(scores: Sequence[RecordScore]) -> Summary:
    """Aggregate record scores the two ways the field reports them.

    Parameters
    ----------
    scores : sequence of RecordScore

    Returns
    -------
    Summary
        ``mean_snr_db`` is the mean of per-lead dB over every lead of every record;
        ``image_linear_snr_db`` is ``10 log10(mean over records of signal/error energy)``.
        By Jensen's inequality the linear mean is at least the mean of per-image dB, and it is
        dominated by the best images.  NaN fields for an empty input.
    """
    if not scores:
        nan = float("nan")
        return Summary(0, 0, nan, nan, nan, nan)
    leads = [s for rec in scores for s in rec.leads.values()]
    return Summary(
        n_records=len(scores),
        n_leads=len(leads),
        mean_snr_db=float(np.mean([s.snr_db for s in leads])),
        image_linear_snr_db=float(10.0 * math.log10(np.mean([rec.power_ratio for rec in scores]))),
        mean_pearson_r=float(np.mean([s.pearson_r for s in leads])),
        mean_rmse_mv=float(np.mean([s.rmse_mv for s in leads])),
    )
