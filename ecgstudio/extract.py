"""Trace extraction: from the trace probability map to one sub-pixel polyline per row, and to mV.

Per column of a row's band the map is cut into *segments* (runs of probability above a
threshold).  A Viterbi path search picks one segment per column (or a gap) so that consecutive
segments touch, the path stays near its own row's baseline where rows overlap, and weak or
missing ink becomes a gap.  Each chosen segment is then turned into curve points: a short
segment is one point (sub-pixel peak); a tall one is a steep stroke whose entry and exit ends
follow from the neighbouring columns, so R-wave apices keep their full height.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.signal import butter, filtfilt, find_peaks

from .arrays import true_runs
from .layout import Pulse
from .paper import LEAD_NAMES
from .results import Calibration, LeadBox, Signals, Trace

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExtractConfig:
    """Path-search settings (pixels of the canonical page)."""

    threshold: float = 0.7  # probability that counts as ink
    max_segments: int = 6  # candidates per column
    jump_cost: float = 0.35  # per pixel of vertical gap between consecutive segments
    gap_cost: float = 3.0  # per column left empty
    enter_gap_cost: float = 4.0  # to start or end a gap
    baseline_weight: float = 6.0  # penalty per row spacing beyond half a spacing from the own baseline
    text_weight: float = 4.0  # penalty for a segment on non-signal ink (probability 1)
    reentry_cost: float = 0.15  # per pixel between where a gap began and where the trace resumes


@dataclass(frozen=True, eq=False)
class RowPath:
    """The chosen path through one row: per column, the segment ``(top, bottom, peak_y, prob)`` or NaN."""

    x0: int
    top: np.ndarray
    bottom: np.ndarray
    peak: np.ndarray
    prob: np.ndarray


def _band_segments(band: np.ndarray, y0: int, threshold: float, k: int
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


def trace_row(prob: np.ndarray, *, baseline_y: float, spacing: float, x_start: int, x_end: int,
              neighbours: tuple[float | None, float | None] = (None, None),
              text_prob: np.ndarray | None = None,
              config: ExtractConfig = ExtractConfig()) -> RowPath:
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
    tops, bottoms, peaks, probs = _band_segments(prob[y_lo:y_hi, x_start:x_end + 1], y_lo, config.threshold, k)
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
        gap = np.maximum(0.0, np.maximum(tops[1:, None, :] - bottoms[:-1, :, None],
                                         tops[:-1, :, None] - bottoms[1:, None, :]))
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


def drop_foreign_stretches(path: RowPath, baseline_y: float,
                           neighbours: tuple[float | None, float | None]) -> RowPath:
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


def path_polyline(path: RowPath, *, stroke_px: float = 1.5,
                  prob: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Curve points ``(n, 2)``, one per column (NaN rows at gaps) and more along steep strokes,
    and their confidence ``(n,)``.

    A segment more than ``stroke_px`` taller than the row's typical (flat-trace) segment holds
    a steep stroke.  If both neighbouring columns sit below its middle the column holds an
    apex and takes the segment's top; both above, a nadir and its bottom; otherwise the stroke
    passes through and the column takes the middle.  Half the ridge's own width is trimmed
    from the ends.  A tall stroke at most :data:`CROSSING_MAX_PX` columns wide between two
    flat columns at the same height is a vertical line crossing the trace (a dark grid line, a
    separator), not a QRS complex, whose strokes take several columns: it is bridged.

    Given the probability map ``prob`` the path was found in, the columns between two turning
    points of a steep stroke are replaced by points along the stroke (:func:`_stroke_points`):
    a stroke steeper than the line is wide sits in one or two columns, whose middles would
    smear it over the line's width (several ms of a QRS complex).
    """
    heights = path.bottom - path.top
    flat = float(np.nanmedian(heights)) if np.isfinite(heights).any() else 0.0
    mid = (path.top + path.bottom) / 2
    y = path.peak.copy()
    prev = np.r_[mid[:1], mid[:-1]]
    nxt = np.r_[mid[1:], mid[-1:]]
    prev = np.where(np.isfinite(prev), prev, mid)
    nxt = np.where(np.isfinite(nxt), nxt, mid)
    tall = heights > flat + stroke_px
    apex = _at_extreme(tall & (prev > mid) & (nxt > mid), tall, -path.top)
    nadir = _at_extreme(tall & (prev < mid) & (nxt < mid), tall & ~apex, path.bottom)
    through = tall & ~apex & ~nadir
    y[apex] = path.top[apex] + flat / 2
    y[nadir] = path.bottom[nadir] - flat / 2
    y[through] = mid[through]
    bridged = _bridge_crossing_lines(y, tall, heights, stroke_px)
    x = path.x0 + np.arange(len(y), dtype=float)
    x[~np.isfinite(y)] = np.nan
    xy, conf = np.column_stack([x, y]), path.prob.astype(np.float32)
    if prob is None:
        return xy, conf
    turns = ~tall | apex | nadir
    return _stroke_points(xy, conf, path, tall & ~bridged, turns, prob)


def _at_extreme(turn: np.ndarray, allowed: np.ndarray, reach: np.ndarray) -> np.ndarray:
    """Turning columns moved to a neighbouring ``allowed`` column whose ink ``reach`` goes
    further: a column that a stroke crosses on its way to the apex can hold the apex's middle
    while its neighbour holds the tip."""
    out = turn.copy()
    n = len(turn)
    for c in np.flatnonzero(turn):
        best = c
        for d in (c - 1, c + 1):
            if 0 <= d < n and allowed[d] and not turn[d] and reach[d] > reach[best] + 0.5:
                best = d
        out[c], out[best] = False, True
    return out


#: Least rise (px) between two turning points for their stroke to be followed row by row.
STROKE_MIN_RISE_PX = 4


def _stroke_points(xy: np.ndarray, conf: np.ndarray, path: RowPath, steep: np.ndarray, turns: np.ndarray,
                   prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The polyline with each steep stroke followed row by row instead of column by column.

    Between two turning points (flat columns, apices, nadirs) at least
    :data:`STROKE_MIN_RISE_PX` apart in height, every image row the stroke crosses gets one
    point on the stroke's centre line (:func:`_follow_stroke`), from the ink inside the path's
    chosen segments only, so a neighbouring row's trace does not count.
    """
    n = len(xy)
    xy = xy.copy()
    out_xy, out_conf, last = [], [], 0
    for a, b in true_runs(steep):
        if a == 0 or b >= n:
            continue
        anchors = [a - 1] + [i for i in range(a, b) if turns[i]] + [b]
        for c in anchors[1:-1]:  # apices and nadirs: the centre of the ink at their height
            if np.isfinite(xy[c, 1]):
                _, weights = _stroke_ink(path, prob, np.arange(c - 1, c + 2), np.round(xy[c, 1]) + np.arange(-1, 2))
                if weights.sum() > 1e-6:
                    xy[c, 0] = path.x0 + c - 1 + float(weights.sum(axis=0) @ np.arange(3) / weights.sum())
        for c1, c2 in zip(anchors[:-1], anchors[1:]):
            y1, y2 = xy[c1, 1], xy[c2, 1]
            if c2 - c1 < 2 or not (np.isfinite(y1) and np.isfinite(y2)) or abs(y2 - y1) < STROKE_MIN_RISE_PX:
                continue
            points = _follow_stroke(path, prob, xy[c1], xy[c2], c1, c2)
            if len(points) == 0:
                continue
            out_xy += [xy[last:c1 + 1], points]
            out_conf += [conf[last:c1 + 1], np.full(len(points), min(conf[c1], conf[c2]), np.float32)]
            last = c2
    if not out_xy:
        return xy, conf
    out_xy.append(xy[last:])
    out_conf.append(conf[last:])
    return np.concatenate(out_xy), np.concatenate(out_conf)


def _follow_stroke(path: RowPath, prob: np.ndarray, p1: np.ndarray, p2: np.ndarray, c1: int, c2: int
                   ) -> np.ndarray:
    """Points ``(x, y)`` along the stroke from point ``p1`` (in column ``c1``) to ``p2`` (column
    ``c2``): one per image row strictly between their heights, at the probability-weighted
    centre of the row's ink, x monotonic from one point to the other."""
    (x1, y1), (x2, y2) = p1, p2
    step = 1 if y2 > y1 else -1
    ys = np.arange(int(np.floor(y1)) + (1 if step > 0 else 0), int(np.ceil(y2)) + (0 if step > 0 else 1), step)
    ys = ys[((ys - y1) * step > 0.5) & ((y2 - ys) * step > 0.5)]
    cols = np.arange(c1, c2 + 1)
    ys, weights = _stroke_ink(path, prob, cols, ys)
    total = weights.sum(axis=1)
    keep = total > 1e-6
    if not keep.any():
        return np.zeros((0, 2))
    ys, x = ys[keep], (weights[keep] @ cols) / total[keep]
    # The core of a steep stroke saturates the map, so a row's centre moves in steps of half
    # a column and holds still in between: the centre line passes a step's value half way
    # along it, so each run of rows with one centre becomes one point.
    starts = np.flatnonzero(np.r_[True, np.abs(np.diff(x)) > 0.05])
    ends = np.r_[starts[1:], len(x)]
    ys = np.array([ys[a:b].mean() for a, b in zip(starts, ends)])
    x = np.clip(np.maximum.accumulate(x[starts] + path.x0), x1, x2)
    return np.column_stack([x, ys])


def _stroke_ink(path: RowPath, prob: np.ndarray, cols: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The map in image rows ``ys`` and path columns ``cols``, zero outside the path's chosen
    segments: ``(rows, weights)`` with the rows that lie on the page."""
    ys = ys.astype(int)
    ys = ys[(ys >= 0) & (ys < prob.shape[0])]
    weights = prob[ys[:, None], path.x0 + cols[None, :]].astype(float)
    inside = (ys[:, None] >= path.top[cols][None, :] - 0.5) & (ys[:, None] <= path.bottom[cols][None, :] + 0.5)
    return ys, np.where(inside, weights, 0.0)


#: Widest run of tall columns (px at the canonical scale) taken for a line crossing the trace ...
CROSSING_MAX_PX = 2
#: ... and how much taller than the columns either side (and than this many px) such a line is.
CROSSING_HEIGHT_RATIO = 3.0
CROSSING_MIN_PX = 24


def _bridge_crossing_lines(y: np.ndarray, tall: np.ndarray, heights: np.ndarray, stroke_px: float) -> np.ndarray:
    """Replace, in place, narrow tall runs that are lines crossing the trace by a straight line;
    returns the mask of the columns so bridged.

    A run of at most :data:`CROSSING_MAX_PX` tall columns is a crossing line when the columns
    either side are flat at one height, or when it is far taller (:data:`CROSSING_HEIGHT_RATIO`
    times, and over :data:`CROSSING_MIN_PX`) than they are: QRS strokes change height gradually
    from column to column.
    """
    bridged = np.zeros(len(y), bool)
    for a, b in true_runs(tall):
        if b - a > CROSSING_MAX_PX or a == 0 or b >= len(y):
            continue
        left, right = y[a - 1], y[b]
        if not (np.isfinite(left) and np.isfinite(right)):
            continue
        flat_sides = abs(left - right) <= 2 * stroke_px
        run_h = float(np.nanmax(heights[a:b]))
        towering = run_h >= CROSSING_MIN_PX and run_h >= CROSSING_HEIGHT_RATIO * max(heights[a - 1], heights[b])
        if flat_sides or towering:
            y[a:b] = np.linspace(left, right, b - a + 2)[1:-1]
            bridged[a:b] = True
    return bridged


#: A separator tick: a dark upright bar at least this tall (mm) and this wide (columns), whose
#: columns start and end together (within SEPARATOR_EVEN_PX), within 1 mm of a lead boundary.
SEPARATOR_MIN_MM, SEPARATOR_MIN_COLS, SEPARATOR_EVEN_PX = 2.5, 2, 2


def find_separators(ink: np.ndarray, boxes: Sequence[LeadBox], *, px_per_mm: float
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
            long = runs[runs[:, 1] - runs[:, 0] >= SEPARATOR_MIN_MM * mm] if len(runs) else runs
            spans.append(tuple(long[np.argmax(long[:, 1] - long[:, 0])]) if len(long) else None)
        best = None
        start = 0
        for i in range(1, len(spans) + 1):
            same = (i < len(spans) and spans[i] is not None and spans[i - 1] is not None
                    and abs(spans[i][0] - spans[i - 1][0]) <= SEPARATOR_EVEN_PX
                    and abs(spans[i][1] - spans[i - 1][1]) <= SEPARATOR_EVEN_PX)
            if not same:
                if spans[start] is not None and i - start >= SEPARATOR_MIN_COLS:
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


def pulse_regions(pulses: Sequence[Pulse]) -> list[tuple[int, int, int, int]]:
    """The calibration pulses above their foot ``(x0, y0, x1, y1)`` (end-exclusive, one pixel of
    margin): a pulse's falling edge is where its row's first lead begins, and a trace path that
    takes it starts on the bar's height, or runs on down into the lead name."""
    return [(p.x0 - 1, p.top_y - 1, p.x1 + 2, p.base_y - int(np.ceil(p.line_px)) - 1) for p in pulses]


def without_regions(prob: np.ndarray, regions: Sequence[tuple[float, float, float, float]]) -> np.ndarray:
    """The trace map with no trace in the rectangles ``(x0, y0, x1, y1)`` (end-exclusive): a copy,
    or ``prob`` itself if there are none."""
    if not regions:
        return prob
    out = prob.copy()
    for x0, y0, x1, y1 in regions:
        out[max(0, int(y0)):max(0, int(np.ceil(y1))), max(0, int(x0)):max(0, int(np.ceil(x1)))] = 0.0
    return out


#: A stroke that turns where printed text begins is followed along the ink at most this far (mm):
#: a deep S wave runs on through the lead name printed under it, while the network calls the
#: shared ink text and the path turns at the name's top.  Ink running on further is a ruled line.
THROUGH_TEXT_MAX_MM = 8.0
#: Only turns of strokes at least this tall (mm, prominence) are followed.
THROUGH_TEXT_MIN_STROKE_MM = 1.5
#: Half a printed trace line (mm): the ink ends this far beyond the stroke's centre line.
HALF_LINE_MM = 0.15


def through_text(xy: np.ndarray, ink: np.ndarray, text_prob: np.ndarray, *, px_per_mm: float) -> np.ndarray:
    """The polyline ``(n, 2)`` with its steep strokes' turns moved on along the ink where the path
    turned at printed text (:data:`THROUGH_TEXT_MAX_MM`): the network's trace map stops where it
    takes the ink for text, the ink itself does not.  Other points are unchanged."""
    out = xy.copy()
    y = xy[:, 1]
    finite = np.isfinite(y) & np.isfinite(xy[:, 0])
    if finite.sum() < 3:
        return out
    filled = np.interp(np.arange(len(y)), np.flatnonzero(finite), y[finite])
    h, w = ink.shape
    reach = int(np.ceil(THROUGH_TEXT_MAX_MM * px_per_mm))
    look = max(2, int(round(1.5 * px_per_mm)))
    half_line = HALF_LINE_MM * px_per_mm
    for d in (1, -1):  # nadirs (down the page), then apexes
        turns, _ = find_peaks(d * filled, prominence=THROUGH_TEXT_MIN_STROKE_MM * px_per_mm)
        for i in turns:
            if not finite[i]:
                continue
            x, y0 = int(round(xy[i, 0])), int(round(y[i]))
            cols = slice(max(0, x - 1), min(w, x + 2))
            lo, hi = sorted((y0 + d, y0 + d * look))
            ahead = text_prob[max(0, lo):min(h, hi + 1), cols]
            if not ahead.size or ahead.max() < 0.5:
                continue
            # Down (up) the ink a row at a time, following the stroke's column as it drifts.
            k, cx = y0, x
            while 0 <= k + d < h and abs(k + d - y0) <= reach:
                a = max(0, cx - 1)
                inked = a + np.flatnonzero(ink[k + d, a:min(w, cx + 2)])
                if not len(inked):
                    break
                k, cx = k + d, int(inked[np.argmin(np.abs(inked - cx))])
            if abs(k - y0) >= reach:
                continue  # a ruled line, not a stroke's end
            moved = k - d * half_line
            if d * (moved - y[i]) > half_line:
                left = xy[i - 1, 0] if i > 0 and np.isfinite(xy[i - 1, 0]) else xy[i, 0] - 1
                right = xy[i + 1, 0] if i + 1 < len(xy) and np.isfinite(xy[i + 1, 0]) else xy[i, 0] + 1
                out[i] = (float(np.clip(cx, left, right)), moved)
    return out


def cut_trace(xy: np.ndarray, confidence: np.ndarray, box: LeadBox) -> Trace:
    """The part of a row polyline inside a lead box's time span."""
    inside = (xy[:, 0] >= box.x0 - 0.5) & (xy[:, 0] <= box.x1 + 0.5)
    gap = ~np.isfinite(xy[:, 0])
    # keep gap rows that fall between kept points
    keep = inside.copy()
    idx = np.flatnonzero(inside)
    if len(idx):
        keep[idx[0]: idx[-1] + 1] |= gap[idx[0]: idx[-1] + 1]
    return Trace(box.lead, xy[keep], confidence[keep])


#: Paper (mm) either side of a boundary between two leads of a row that holds the value just inside.
LEAD_CHANGE_MM = 0.4


def trace_samples(trace: Trace, box: LeadBox, calibration: Calibration, *, fs: float,
                  baseline_y: float | None = None, band_limit_hz: float | None = None
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


#: Output samples finer than a traced trace (one point per pixel column) are smoothed above this
#: share of its point rate, the paper's pixels per second (:func:`traced_band_limit`): the straight
#: strokes between points a pixel apart, and the pixels' own steps, are not signal.  Traces a
#: person drew are left as drawn (their points may be far apart on purpose).
#: Chosen on pages rendered here (0.25-0.5 of the point rate tried; +0.1 to +0.2 dB at 150-300
#: dpi, 500 Hz output); outputs at rates under about twice the cut-off (100 Hz from a 200 dpi
#: page) are left alone.
BAND_LIMIT = 0.4


def traced_band_limit(calibration: Calibration) -> float:
    """The cut-off for signals from traces read one point per pixel column in ``calibration``'s frame."""
    return BAND_LIMIT * calibration.px_per_s


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


def assemble_signals(boxes: tuple[LeadBox, ...], traces: tuple[Trace, ...], calibration: Calibration, *,
                     fs: float, duration_s: float, page_boxes: Sequence[LeadBox] | None = None,
                     band_limit_hz: float | None = None) -> Signals:
    """12-lead signals at ``fs`` from aligned boxes and traces: each lead from its longest box
    (the rhythm strip wins); samples no box covers are NaN.

    Where two boxes of a row meet, the printout jumps from one lead to the next with a vertical
    stroke (often beside a separator tick); the :data:`LEAD_CHANGE_MM` of paper on either side
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
    guard = max(1, int(round(LEAD_CHANGE_MM / calibration.mm_per_s * fs)))
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
