"""Path search: the Viterbi path of one row's trace through the trace probability map.

Per column of a row's band the map is cut into *segments* (runs of probability above a
threshold).  A Viterbi path search picks one segment per column (or a gap) so that consecutive
segments touch, the path stays near its own row's baseline where rows overlap, and weak or
missing ink becomes a gap.  Before the search, what is not signal is taken out of the map:
separator ticks between leads, calibration pulses (:func:`without_regions`).  The path becomes
curve points in :mod:`ecgstudio.strokes`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from .arrays import polyline_runs, true_runs
from .config import PathConfig
from .results import LeadBox, Trace


@dataclass(frozen=True, eq=False)
class RowPath:
    """The chosen path through one row: per column, the segment ``(top, bottom, peak_y, prob)`` or NaN."""

    x0: int
    top: np.ndarray
    bottom: np.ndarray
    peak: np.ndarray
    prob: np.ndarray


def _band_segments(
    band: np.ndarray, y0: int, threshold: float, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Runs above ``threshold`` in every column of ``band`` (rows ``y0...``), vectorised.

    Returns ``(tops, bottoms, peaks, probs)``, each ``(n_columns, k)``: per column the ``k``
    strongest runs' sub-pixel top and bottom threshold crossings, sub-pixel peak row and peak
    probability; empty slots are NaN (probability 0).
    """
    h, w = band.shape
    tops = np.full((w, k), np.nan)
    bottoms = np.full((w, k), np.nan)
    peaks = np.full((w, k), np.nan)
    probs = np.zeros((w, k))
    cols_major = np.ascontiguousarray(band.T)  # (w, h): each column contiguous
    above = cols_major > threshold
    edges = np.diff(np.pad(above, ((0, 0), (1, 1))).astype(np.int8), axis=1)
    col, start = np.nonzero(edges == 1)
    _, end = np.nonzero(edges == -1)  # exclusive; same order as the starts
    if len(col) == 0:
        return tops, bottoms, peaks, probs
    flat = cols_major.ravel()
    lengths = end - start
    run = np.repeat(np.arange(len(col)), lengths)
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    index = np.repeat(col * h + start, lengths) + offsets
    order = np.lexsort((-flat[index], run))
    first = np.r_[0, np.cumsum(lengths)[:-1]]
    best = index[order[first]]  # flat index of each run's maximum
    i = best - col * h  # row of the maximum within its column
    value = flat[best]
    left = np.where(i > 0, flat[best - (i > 0)], value)
    right = np.where(i < h - 1, flat[np.minimum(best + 1, flat.size - 1)], value)
    denom = left - 2 * value + right
    shift = np.where(denom < 0, 0.5 * (left - right) / np.where(denom < 0, denom, -1.0), 0.0)
    peak = i + shift

    def crossing(inside_row: np.ndarray, step: int) -> np.ndarray:
        outside_row = inside_row + step
        ok = (outside_row >= 0) & (outside_row < h)
        inside = flat[col * h + inside_row]
        outside = np.where(ok, flat[col * h + np.clip(outside_row, 0, h - 1)], inside)
        frac = np.clip((inside - threshold) / np.maximum(1e-6, inside - outside), 0.0, 1.0)
        return inside_row + step * np.where(ok, frac, 0.0)

    top = crossing(start, -1)
    bottom = crossing(end - 1, +1)
    # Rank the runs of each column by peak probability; keep the k strongest.
    rank_order = np.lexsort((-value, col))
    sorted_col = col[rank_order]
    group_start = np.r_[0, np.flatnonzero(np.diff(sorted_col)) + 1]
    rank = np.arange(len(col)) - np.repeat(group_start, np.diff(np.r_[group_start, len(col)]))
    keep = rank < k
    sel, slot = rank_order[keep], rank[keep]
    tops[col[sel], slot] = y0 + top[sel]
    bottoms[col[sel], slot] = y0 + bottom[sel]
    peaks[col[sel], slot] = y0 + peak[sel]
    probs[col[sel], slot] = value[sel]
    return tops, bottoms, peaks, probs


def trace_row(
    prob: np.ndarray,
    *,
    baseline_y: float,
    spacing: float,
    x_start: int,
    x_end: int,
    neighbours: tuple[float | None, float | None] = (None, None),
    text_prob: np.ndarray | None = None,
    config: PathConfig = PathConfig(),
) -> RowPath:
    """Viterbi search for one row's trace between columns ``x_start`` and ``x_end`` (inclusive).

    ``neighbours`` are the baselines of the rows above and below.  Simultaneous leads have
    their QRS complexes in the same columns, so a neighbour's tall stroke can merge with this
    row's ink into one segment; a segment reaching a neighbour's baseline is cut at the
    midline between the two rows.  Where ``text_prob`` (non-signal ink: lead names, pulses,
    printed text) is high at a segment's peak, the segment is penalised.
    """
    h = prob.shape[0]
    y_lo = int(max(0, baseline_y - 1.6 * spacing))
    y_hi = int(min(h, baseline_y + 1.6 * spacing))
    k = config.max_segments
    tops, bottoms, peaks, probs = _band_segments(prob[y_lo:y_hi, x_start : x_end + 1], y_lo, config.threshold, k)
    n = len(peaks)
    above, below = neighbours
    if above is not None:
        mid = (above + baseline_y) / 2
        merged = tops <= above
        tops[merged] = mid
        peaks[merged] = np.maximum(peaks[merged], mid)
    if below is not None:
        mid = (below + baseline_y) / 2
        merged = bottoms >= below
        bottoms[merged] = mid
        peaks[merged] = np.minimum(peaks[merged], mid)
    valid = np.isfinite(peaks)
    emission = np.where(valid, -np.log(np.clip(probs, 1e-4, 1.0)), np.inf)
    near = np.minimum(np.abs(tops - baseline_y), np.abs(bottoms - baseline_y))
    inside = (tops <= baseline_y) & (bottoms >= baseline_y)
    near = np.where(inside, 0.0, near)
    excess = np.nan_to_num(np.maximum(0.0, near / spacing - 0.5), nan=0.0)  # empty slots stay at inf
    emission = emission + config.baseline_weight * excess
    if text_prob is not None:
        cols = np.arange(x_start, x_end + 1)[:, None].repeat(k, axis=1)
        rows_ = np.clip(np.nan_to_num(np.round(peaks), nan=0).astype(int), 0, h - 1)
        emission = emission + config.text_weight * np.where(valid, text_prob[rows_, cols], 0.0)

    # States 0..k-1: segments; state k: gap.  Transition costs for all columns at once:
    # the vertical gap between consecutive segments (0 where they touch).
    with np.errstate(invalid="ignore"):
        gap = np.maximum(
            0.0, np.maximum(tops[1:, None, :] - bottoms[:-1, :, None], tops[:-1, :, None] - bottoms[1:, None, :])
        )
    trans = np.where(np.isfinite(gap), config.jump_cost * gap, np.inf)  # (n-1, prev k, cur k)
    # The gap state remembers the height where the trace left it, so that it comes back near
    # there after a faded stretch instead of on a neighbouring row's trace.
    centre = np.where(np.isfinite(peaks), peaks, baseline_y)
    cost = np.empty(k + 1)
    cost[:k] = emission[0]
    cost[k] = config.gap_cost
    gap_y = baseline_y
    back = np.zeros((n, k + 1), np.int16)
    cols = np.arange(k)
    for i in range(1, n):
        from_seg = cost[:k, None] + trans[i - 1]
        best_prev = from_seg.argmin(axis=0)
        best = from_seg[best_prev, cols]
        from_gap = cost[k] + config.enter_gap_cost + config.reentry_cost * np.abs(centre[i] - gap_y)
        use_gap = from_gap < best
        back[i, :k] = np.where(use_gap, k, best_prev)
        last_seg = int(cost[:k].argmin())
        stay = cost[k] + config.gap_cost
        leave = cost[last_seg] + config.enter_gap_cost + config.gap_cost
        if stay <= leave:
            back[i, k] = k
        else:
            back[i, k] = last_seg
            gap_y = centre[i - 1, last_seg]
        cost[k] = min(stay, leave)
        cost[:k] = np.where(use_gap, from_gap, best) + emission[i]
    state = int(np.argmin(cost))
    chosen = np.empty(n, np.int16)
    for i in range(n - 1, -1, -1):
        chosen[i] = state
        state = back[i, state]
    sel = chosen < k
    idx = np.where(sel, chosen, 0)
    rows = np.arange(n)
    pick = lambda a: np.where(sel, a[rows, idx], np.nan)  # noqa: E731
    return RowPath(x_start, pick(tops), pick(bottoms), pick(peaks), np.where(sel, probs[rows, idx], 0.0))


def drop_foreign_stretches(path: RowPath, baseline_y: float, neighbours: tuple[float | None, float | None]) -> RowPath:
    """Clear stretches (between gaps) that lie nearer a neighbouring row's baseline than this
    row's: after a faded stretch the path may have resumed on the neighbour's trace."""
    found = np.isfinite(path.peak)
    keep = found.copy()
    for a, b in true_runs(found):
        level = float(np.median(path.peak[a:b]))
        own = abs(level - baseline_y)
        if any(other is not None and abs(level - other) < own for other in neighbours):
            keep[a:b] = False
    if keep.all() or (keep == found).all():
        return path
    clear = lambda a: np.where(keep, a, np.nan)  # noqa: E731
    return RowPath(path.x0, clear(path.top), clear(path.bottom), clear(path.peak), np.where(keep, path.prob, 0.0))


def neighbour_baselines(baselines: list[float], k: int) -> tuple[float | None, float | None]:
    """Baselines of the rows above and below row ``k`` (None at the page's top or bottom)."""
    return (baselines[k - 1] if k > 0 else None, baselines[k + 1] if k + 1 < len(baselines) else None)


def find_separators(
    ink: np.ndarray, boxes: Sequence[LeadBox], *, px_per_mm: float, config: PathConfig = PathConfig()
) -> list[tuple[int, int, int, int]]:
    """Separator ticks ``(x0, y0, x1, y1)`` (end-exclusive, one pixel of margin) where one lead of
    a row gives way to the next.

    The network often takes a tick for trace; the path then runs down it, or on from its end
    into the lead name, and misses a QRS complex just beside it.  A QRS stroke is as tall but
    slanted: its columns do not start and end together.
    """
    h, w = ink.shape
    mm = px_per_mm
    found = []
    for box in boxes:
        if not any(b.row == box.row and abs(b.x1 - box.x0) < 1.0 for b in boxes):
            continue
        xa, xb = int(max(0, box.x0 - mm)), int(min(w, box.x0 + mm + 1))
        ya, yb = int(max(0, box.baseline_y - 5 * mm)), int(min(h, box.baseline_y + 5 * mm))
        spans = []
        for x in range(xa, xb):
            runs = true_runs(ink[ya:yb, x])
            long = runs[runs[:, 1] - runs[:, 0] >= config.separator_min_mm * mm] if len(runs) else runs
            spans.append(tuple(long[np.argmax(long[:, 1] - long[:, 0])]) if len(long) else None)
        best = None
        start = 0
        for i in range(1, len(spans) + 1):
            same = (
                i < len(spans)
                and spans[i] is not None
                and spans[i - 1] is not None
                and abs(spans[i][0] - spans[i - 1][0]) <= config.separator_even_px
                and abs(spans[i][1] - spans[i - 1][1]) <= config.separator_even_px
            )
            if not same:
                if spans[start] is not None and i - start >= config.separator_min_cols:
                    centre = xa + (start + i) / 2
                    if best is None or abs(centre - box.x0) < abs(best[0] - box.x0):
                        best = (centre, start, i)
                start = i
        if best is not None:
            _, a, b = best
            top = min(spans[j][0] for j in range(a, b))
            bottom = max(spans[j][1] for j in range(a, b))
            found.append((max(0, xa + a - 1), max(0, ya + top - 1), min(w, xa + b + 1), min(h, ya + bottom + 1)))
    return found


def without_regions(prob: np.ndarray, regions: Sequence[tuple[float, float, float, float]]) -> np.ndarray:
    """The trace map with no trace in the rectangles ``(x0, y0, x1, y1)`` (end-exclusive): a copy,
    or ``prob`` itself if there are none."""
    if not regions:
        return prob
    out = prob.copy()
    for x0, y0, x1, y1 in regions:
        out[max(0, int(y0)) : max(0, int(np.ceil(y1))), max(0, int(x0)) : max(0, int(np.ceil(x1)))] = 0.0
    return out


def near_traces(
    trace_prob: np.ndarray,
    traces: Sequence[Trace],
    *,
    scale: float,
    px_per_mm: float,
    config: PathConfig = PathConfig(),
) -> np.ndarray:
    """The trace map of a page read again more finely (``scale`` times the frame ``traces`` were
    read in), kept only within :attr:`PathConfig.retrace_reach_mm` of those traces: the new maps
    refine the traces already read; they do not start new ones (a ruled line the finer view half
    believes, a trace where the first reading found a gap)."""
    near = np.zeros(trace_prob.shape, np.uint8)
    for trace in traces:
        runs = polyline_runs((trace.xy + 0.5) * scale - 0.5, shift=4)
        if runs:
            cv2.polylines(near, runs, False, 1, 1, cv2.LINE_8, 4)
    reach = int(round(config.retrace_reach_mm * px_per_mm))
    return trace_prob * cv2.dilate(near, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1,) * 2))
