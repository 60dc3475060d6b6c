"""Strokes: from a row's path to sub-pixel curve points, and each lead's trace cut from its row.

Each chosen segment of a path (:mod:`ecgstudio.path`) is turned into curve points: a short
segment is one point (sub-pixel peak); a tall one is a steep stroke whose entry and exit ends
follow from the neighbouring columns, so R-wave apices keep their full height.  Strokes that
turn where the network sees printed text are followed on along the ink (:func:`through_text`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.signal import find_peaks

from . import leadnames
from . import path as path_stage
from .arrays import true_runs
from .config import PathConfig, StrokesConfig
from .path import RowPath
from .results import LeadBox, Trace


def path_polyline(
    path: RowPath, *, prob: np.ndarray | None = None, config: StrokesConfig = StrokesConfig()
) -> tuple[np.ndarray, np.ndarray]:
    """Curve points ``(n, 2)``, one per column (NaN rows at gaps) and more along steep strokes,
    and their confidence ``(n,)``.

    A segment more than :attr:`StrokesConfig.stroke_px` taller than the row's typical (flat-trace) segment holds
    a steep stroke.  If both neighbouring columns sit below its middle the column holds an
    apex and takes the segment's top; both above, a nadir and its bottom; otherwise the stroke
    passes through and the column takes the middle.  Half the ridge's own width is trimmed
    from the ends.  A tall stroke at most :attr:`StrokesConfig.crossing_max_px` columns wide between two
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
    stroke_px = config.stroke_px
    tall = heights > flat + stroke_px
    apex = _at_extreme(tall & (prev > mid) & (nxt > mid), tall, -path.top)
    nadir = _at_extreme(tall & (prev < mid) & (nxt < mid), tall & ~apex, path.bottom)
    through = tall & ~apex & ~nadir
    y[apex] = path.top[apex] + flat / 2
    y[nadir] = path.bottom[nadir] - flat / 2
    y[through] = mid[through]
    bridged = _bridge_crossing_lines(y, tall, heights, config)
    x = path.x0 + np.arange(len(y), dtype=float)
    x[~np.isfinite(y)] = np.nan
    xy, conf = np.column_stack([x, y]), path.prob.astype(np.float32)
    if prob is None:
        return xy, conf
    turns = ~tall | apex | nadir
    return _stroke_points(xy, conf, path, tall & ~bridged, turns, prob, min_rise_px=config.min_rise_px)


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


def _stroke_points(
    xy: np.ndarray,
    conf: np.ndarray,
    path: RowPath,
    steep: np.ndarray,
    turns: np.ndarray,
    prob: np.ndarray,
    *,
    min_rise_px: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The polyline with each steep stroke followed row by row instead of column by column.

    Between two turning points (flat columns, apices, nadirs) at least
    ``min_rise_px`` apart in height, every image row the stroke crosses gets one
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
            if c2 - c1 < 2 or not (np.isfinite(y1) and np.isfinite(y2)) or abs(y2 - y1) < min_rise_px:
                continue
            points = _follow_stroke(path, prob, xy[c1], xy[c2], c1, c2)
            if len(points) == 0:
                continue
            out_xy += [xy[last : c1 + 1], points]
            out_conf += [conf[last : c1 + 1], np.full(len(points), min(conf[c1], conf[c2]), np.float32)]
            last = c2
    if not out_xy:
        return xy, conf
    out_xy.append(xy[last:])
    out_conf.append(conf[last:])
    return np.concatenate(out_xy), np.concatenate(out_conf)


def _follow_stroke(path: RowPath, prob: np.ndarray, p1: np.ndarray, p2: np.ndarray, c1: int, c2: int) -> np.ndarray:
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


def _bridge_crossing_lines(y: np.ndarray, tall: np.ndarray, heights: np.ndarray, config: StrokesConfig) -> np.ndarray:
    """Replace, in place, narrow tall runs that are lines crossing the trace by a straight line;
    returns the mask of the columns so bridged.

    A run of at most :attr:`~StrokesConfig.crossing_max_px` tall columns is a crossing line when the columns
    either side are flat at one height, or when it is far taller (``crossing_height_ratio``
    times, and over ``crossing_min_px``) than they are: QRS strokes change height gradually
    from column to column.
    """
    bridged = np.zeros(len(y), bool)
    for a, b in true_runs(tall):
        if b - a > config.crossing_max_px or a == 0 or b >= len(y):
            continue
        left, right = y[a - 1], y[b]
        if not (np.isfinite(left) and np.isfinite(right)):
            continue
        flat_sides = abs(left - right) <= 2 * config.stroke_px
        run_h = float(np.nanmax(heights[a:b]))
        towering = run_h >= config.crossing_min_px and run_h >= config.crossing_height_ratio * max(
            heights[a - 1], heights[b]
        )
        if flat_sides or towering:
            y[a:b] = np.linspace(left, right, b - a + 2)[1:-1]
            bridged[a:b] = True
    return bridged


#: Half a printed trace line (mm): the ink ends this far beyond the stroke's centre line.
HALF_LINE_MM = 0.15


def through_text(
    xy: np.ndarray, ink: np.ndarray, text_prob: np.ndarray, *, px_per_mm: float, config: StrokesConfig = StrokesConfig()
) -> np.ndarray:
    """The polyline ``(n, 2)`` with its steep strokes' turns moved on along the ink where the path
    turned at printed text (:attr:`StrokesConfig.through_text_max_mm`): the network's trace map stops where it
    takes the ink for text, the ink itself does not.  Other points are unchanged."""
    out = xy.copy()
    y = xy[:, 1]
    finite = np.isfinite(y) & np.isfinite(xy[:, 0])
    if finite.sum() < 3:
        return out
    filled = np.interp(np.arange(len(y)), np.flatnonzero(finite), y[finite])
    h, w = ink.shape
    reach = int(np.ceil(config.through_text_max_mm * px_per_mm))
    look = max(2, int(round(1.5 * px_per_mm)))
    half_line = HALF_LINE_MM * px_per_mm
    for d in (1, -1):  # nadirs (down the page), then apexes
        turns, _ = find_peaks(d * filled, prominence=config.through_text_min_stroke_mm * px_per_mm)
        for i in turns:
            if not finite[i]:
                continue
            x, y0 = int(round(xy[i, 0])), int(round(y[i]))
            cols = slice(max(0, x - 1), min(w, x + 2))
            lo, hi = sorted((y0 + d, y0 + d * look))
            ahead = text_prob[max(0, lo) : min(h, hi + 1), cols]
            if not ahead.size or ahead.max() < 0.5:
                continue
            # Down (up) the ink a row at a time, following the stroke's column as it drifts.
            k, cx = y0, x
            while 0 <= k + d < h and abs(k + d - y0) <= reach:
                a = max(0, cx - 1)
                inked = a + np.flatnonzero(ink[k + d, a : min(w, cx + 2)])
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
        keep[idx[0] : idx[-1] + 1] |= gap[idx[0] : idx[-1] + 1]
    return Trace(box.lead, xy[keep], confidence[keep])


Region = tuple[float, float, float, float]
RowLine = tuple[np.ndarray, np.ndarray]


def trace_rows(
    trace_prob: np.ndarray,
    text_prob: np.ndarray,
    baselines: tuple[float, ...],
    spacing: float,
    boxes: tuple[LeadBox, ...],
    *,
    rows: Sequence[int] | None = None,
    path_config: PathConfig = PathConfig(),
    config: StrokesConfig = StrokesConfig(),
) -> list[RowLine]:
    """Polyline ``(n, 2)`` and confidence ``(n,)`` of each row's trace (of ``rows``, default all)
    over the whole span of its boxes: faded stretches become gaps, not a shorter page."""
    width = trace_prob.shape[1]
    lines = []
    for k in range(len(baselines)) if rows is None else rows:
        row_boxes = [b for b in boxes if b.row == k]
        x_start = int(np.clip(np.floor(min(b.x0 for b in row_boxes)), 0, width - 1))
        x_end = int(np.clip(np.ceil(max(b.x1 for b in row_boxes)), x_start, width - 1))
        neighbours = path_stage.neighbour_baselines(list(baselines), k)
        path = path_stage.trace_row(
            trace_prob,
            baseline_y=baselines[k],
            spacing=spacing,
            x_start=x_start,
            x_end=x_end,
            neighbours=neighbours,
            text_prob=text_prob,
            config=path_config,
        )
        path = path_stage.drop_foreign_stretches(path, baselines[k], neighbours)
        lines.append(path_polyline(path, prob=trace_prob, config=config))
    return lines


def off_the_names(
    row_lines: list[RowLine],
    trace_prob: np.ndarray,
    text_prob: np.ndarray,
    baselines: tuple[float, ...],
    spacing: float,
    boxes: tuple[LeadBox, ...],
    names: tuple[Region, ...],
    *,
    px_per_mm: float,
    path_config: PathConfig = PathConfig(),
    config: StrokesConfig = StrokesConfig(),
) -> list[RowLine]:
    """Rows traced again without the lead names where their path met one just past its lead's
    start: a lead name is not signal, and there the path has come off the separator onto the name
    (further on, a deep S wave may run through a name stroke by stroke: left alone)."""
    starts = [(x0, y0, min(x1, x0 + 1.5 * px_per_mm), y1) for x0, y0, x1, y1 in names]
    crossed = [k for k, (xy, _) in enumerate(row_lines) if leadnames.enters(xy, starts)]
    if not crossed:
        return row_lines
    unnamed = path_stage.without_regions(trace_prob, names)
    again = trace_rows(
        unnamed, text_prob, baselines, spacing, boxes, rows=crossed, path_config=path_config, config=config
    )
    redone = dict(zip(crossed, again))
    return [redone.get(k, line) for k, line in enumerate(row_lines)]


def lead_traces(
    row_lines: list[RowLine],
    ink: np.ndarray,
    text_prob: np.ndarray,
    boxes: tuple[LeadBox, ...],
    *,
    px_per_mm: float,
    config: StrokesConfig = StrokesConfig(),
) -> tuple[Trace, ...]:
    """Each box's trace cut from its row's line, steep strokes followed on through printed text
    (:func:`through_text`)."""
    lines = [(through_text(xy, ink, text_prob, px_per_mm=px_per_mm, config=config), conf) for xy, conf in row_lines]
    return tuple(cut_trace(*lines[b.row], b) for b in boxes)


def trace_in_box(trace_mask: np.ndarray, box: LeadBox) -> Trace:
    """The trace inside one box of a page's trace mask ``(H, W)`` (nonzero where trace): the
    engine's path search and strokes on the mask cropped to the box, as a person who moved or
    drew the box expects (the studio's re-extraction of one lead)."""
    h, w = trace_mask.shape
    x0, x1 = max(0, int(math.floor(box.x0))), min(w - 1, int(math.ceil(box.x1)))
    y0, y1 = max(0, int(math.floor(box.y0))), min(h, int(math.ceil(box.y1)) + 1)
    if x1 - x0 < 2 or y1 - y0 < 3:
        return Trace(box.lead, np.zeros((0, 2)), np.zeros(0, np.float32))
    prob = (trace_mask[y0:y1, x0 : x1 + 1] > 0).astype(np.float32)
    baseline = min(max(box.baseline_y, y0), y1 - 1) - y0
    path = path_stage.trace_row(prob, baseline_y=baseline, spacing=max(4.0, box.height), x_start=0, x_end=x1 - x0)
    xy, conf = path_polyline(path, prob=prob)
    return cut_trace(xy + np.array([x0, y0], dtype=float), conf, box)
