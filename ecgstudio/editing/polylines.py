"""Pure helpers of the pen and the eraser: strokes as one point per column, snapping, splicing.

Coordinates are input-image pixels; polylines are ``(n, 2)`` float arrays ordered by column,
with NaN rows at gaps, as :class:`~ecgstudio.results.Trace` points are.
"""

from __future__ import annotations

import math

import numpy as np

#: How far (image pixels) "snap to ink" looks above and below a drawn point.
SNAP_RADIUS_PX = 4


def stroke_to_columns(points: np.ndarray) -> np.ndarray:
    """A freehand stroke ``(m, 2)`` as one point per integer column between its ends ``(n, 2)``."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    p = p[np.isfinite(p).all(axis=1)]
    if len(p) < 2:
        return np.zeros((0, 2))
    order = np.argsort(p[:, 0], kind="stable")
    x, y = p[order, 0], p[order, 1]
    ux, inv = np.unique(x, return_inverse=True)
    uy = np.bincount(inv, weights=y) / np.bincount(inv)
    cols = np.arange(math.ceil(ux[0]), math.floor(ux[-1]) + 1, dtype=np.float64)
    if len(cols) < 2:
        return np.zeros((0, 2))
    return np.column_stack([cols, np.interp(cols, ux, uy)])


def snap_to_ink(ink: np.ndarray, xy: np.ndarray, *, radius: int = SNAP_RADIUS_PX, min_ink: float = 30.0) -> np.ndarray:
    """Move each point to the strongest pixel of ``ink`` within ``radius`` rows of its column (sub-pixel).

    ``ink`` is a map, higher where there is more trace ink (:meth:`PageDocument.trace_ink`: the
    darkness of the pixels the model took for trace, nothing elsewhere, so grid lines and text
    never attract a stroke).  A point stays where it is when its window holds less than
    ``min_ink``.
    """
    h, w = ink.shape[:2]
    out = xy.copy()
    for j, (x, y) in enumerate(xy):
        c = int(round(x))
        if not (0 <= c < w) or not np.isfinite(y):
            continue
        r0, r1 = max(0, int(round(y)) - radius), min(h, int(round(y)) + radius + 1)
        if r1 - r0 < 3:
            continue
        col = ink[r0:r1, c].astype(np.float64)
        i = int(np.argmax(col))
        if col[i] < min_ink:
            continue
        pos = float(i)
        if 0 < i < len(col) - 1:
            left, m, r = col[i - 1], col[i], col[i + 1]
            denom = left - 2 * m + r
            if denom < 0:
                pos = i + 0.5 * (left - r) / denom
        out[j, 1] = r0 + pos
    return out


def splice(
    xy: np.ndarray,
    confidence: np.ndarray | None,
    x_from: float,
    x_to: float,
    new_xy: np.ndarray | None,
    new_conf: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Replace the points of a polyline whose column lies in ``[x_from, x_to]``.

    ``new_xy`` (points ordered by column) takes their place; None erases the stretch, leaving
    a gap (a NaN row) where points remain on both sides.  Gaps of the polyline outside the
    stretch, and the parts of a gap the new points do not cover, stay gaps.  Returns the new
    ``(xy, confidence)``; the polyline is assumed ordered by column, as traces are.
    """
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    finite = np.isfinite(xy).all(axis=1)
    idx = np.flatnonzero(finite)
    pts = xy[finite]
    conf = None if confidence is None else np.asarray(confidence)
    pc = None if conf is None else conf[finite]
    # Original gaps: (x before, x after) for consecutive finite points with NaN rows between them.
    split = np.flatnonzero(np.diff(idx) > 1)
    gaps = [(pts[i, 0], pts[i + 1, 0]) for i in split]
    before, after = pts[:, 0] < x_from, pts[:, 0] > x_to
    mid = np.zeros((0, 2)) if new_xy is None else np.asarray(new_xy, dtype=np.float64).reshape(-1, 2)
    mid_c = np.ones(len(mid), np.float32) if new_conf is None else np.asarray(new_conf, np.float32)
    out = np.concatenate([pts[before], mid, pts[after]])
    is_new = np.r_[np.zeros(before.sum(), bool), np.ones(len(mid), bool), np.zeros(after.sum(), bool)]
    out_c = None if pc is None else np.concatenate([pc[before], mid_c.astype(pc.dtype), pc[after]])
    if len(out) < 2:
        return out, out_c
    px, qx = out[:-1, 0], out[1:, 0]
    gap_after = np.zeros(len(out) - 1, bool)
    both_new = is_new[:-1] & is_new[1:]
    apart = qx - px > 1.0 + 1e-6  # neighbouring columns are never a gap
    for a, b in gaps:
        gap_after |= (px >= a) & (qx <= b) & ~both_new & apart
    if new_xy is None:
        gap_after |= (px < x_from) & (qx > x_to)
    rows = np.insert(np.arange(len(out)), np.flatnonzero(gap_after) + 1, -1)
    result = np.where(rows[:, None] >= 0, out[np.maximum(rows, 0)], np.nan)
    result_c = None
    if out_c is not None:
        result_c = np.where(rows >= 0, out_c[np.maximum(rows, 0)], 0).astype(out_c.dtype)
    return result, result_c
