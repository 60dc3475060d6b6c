"""Layout analysis: rows of traces, the layout they form, lead boxes and calibration pulses.

Works on the trace probability map of a page at the canonical scale.  Rows are found where
traces spend their time (their isoelectric baselines), the horizontal extent of the plotted
traces gives the time axis, and the layout's cells are laid onto the rows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter1d, uniform_filter1d
from scipy.signal import find_peaks

from .assumptions import assume
from .config import RowsConfig
from .errors import LayoutError, NotAnEcgError
from .paper import LAYOUTS, Layout, get_layout
from .results import Calibration

log = logging.getLogger(__name__)

#: Width of the traces on paper (mm): 10 s at 25 mm/s, or 5 s at 50 mm/s.
TRACE_WIDTH_MM = 250.0

#: Layout chosen for a given number of rows when ``layout="auto"``.
LAYOUT_BY_ROWS = {2: "2x1", 3: "3x4", 4: "3x4+1", 6: "6x2", 7: "6x2+1", 12: "12x1"}


@dataclass(frozen=True)
class Row:
    """One row of traces on the page (pixel units of the analysed image).

    Attributes
    ----------
    baseline_y : float
        The row's isoelectric level (where its traces spend most time).
    x_start, x_end : float
        Horizontal extent of the plotted trace (without the calibration pulse).
    strength : float
        Mean trace probability along the row, a confidence.
    coverage : float
        Share of the row's columns where a trace is drawn.
    straightness : float
        Share of the row's trace mass within 3 px of one line (near 1 for a ruled line).
    """

    baseline_y: float
    x_start: float
    x_end: float
    strength: float
    coverage: float = 1.0
    straightness: float = 0.0

    @property
    def trace_likeness(self) -> float:
        """Strong, long, unbroken and wandering: how much this row looks like a lead's trace."""
        return self.strength * (self.x_end - self.x_start) * self.coverage * (1.0 - self.straightness)


def find_rows(trace_prob: np.ndarray, *, px_per_mm: float, config: RowsConfig = RowsConfig()) -> list[Row]:
    """Rows of traces from the trace probability map ``(H, W)`` in [0, 1].

    Candidate rows are peaks of the map's row profile.  Ruled lines the model half believes
    (dark grid lines on black-and-white scans) are told apart by shape: a trace's mass spreads
    over its waves (:attr:`RowsConfig.max_straight_share`; a quiet lead may be as straight but is then
    unbroken, :attr:`~RowsConfig.unbroken_share`) and covers its row almost without a break
    (:attr:`~RowsConfig.min_coverage_share`) across most of the page's width
    (:attr:`~RowsConfig.min_width_share`).  A row partly hidden (by drawn boxes, stamps, fading) is
    broken too; it is kept where it continues the lattice of the other rows over their columns
    (:func:`_on_the_lattice`).

    Raises
    ------
    NotAnEcgError
        When no row with a trace long enough to be an ECG is found.
    """
    _h, _w = trace_prob.shape
    ink = trace_prob > config.threshold
    ends_ink = _without_flat_pieces(ink, px_per_mm)
    profile = gaussian_filter1d(trace_prob.sum(axis=1), sigma=1.0 * px_per_mm)
    if profile.max() <= 0:
        raise NotAnEcgError(
            "no ECG found: no traces on this page; check that it is an ECG and that the whole page is visible"
        )
    peaks, _ = find_peaks(profile, distance=max(1, int(6 * px_per_mm)), prominence=0.15 * profile.max())
    candidates = []
    for k, y in enumerate(peaks):
        # Half way to the neighbouring rows (at most 15 mm): a trace wanders far from its baseline.
        up = min(15 * px_per_mm, (y - peaks[k - 1]) / 2 if k > 0 else 15 * px_per_mm)
        down = min(15 * px_per_mm, (peaks[k + 1] - y) / 2 if k + 1 < len(peaks) else 15 * px_per_mm)
        row = _row_at(trace_prob, ink, ends_ink, int(y), up, down, px_per_mm, baseline=_refine_peak(profile, int(y)))
        if row is not None:
            candidates.append(row)
    # A trace is drawn almost everywhere along its row, while a dashed grid line the model half
    # believes is not; and a trace wanders, while a ruled line puts its mass within 3 px of one
    # line (only an unbroken trace of a quiet lead can do that too).
    # And a row of traces runs across the page: a line of text, a stamp or a piece of paper edge
    # is shorter.
    best = max(r.coverage for r in candidates) if candidates else 0.0
    widest = max(r.x_end - r.x_start for r in candidates) if candidates else 0.0
    rows = [
        r
        for r in candidates
        if r.coverage >= config.min_coverage_share * best
        and r.x_end - r.x_start >= config.min_width_share * widest
        and (r.straightness <= config.max_straight_share or r.coverage >= config.unbroken_share * best)
    ]
    rows = _on_the_lattice(
        rows,
        [
            r
            for r in candidates
            if r not in rows
            and r.straightness <= config.max_straight_share
            and r.coverage >= config.min_lattice_coverage * best
        ],
        config,
    )
    if len(rows) < len(candidates):
        log.info(
            "ignored %d straight or broken line(s) among %d candidate rows",
            len(candidates) - len(rows),
            len(candidates),
        )
    if not rows:
        raise NotAnEcgError(
            "no ECG found: no traces on this page; check that it is an ECG and that the whole page is visible"
        )
    return rows


def _row_at(
    trace_prob: np.ndarray,
    ink: np.ndarray,
    ends_ink: np.ndarray,
    y: int,
    up: float,
    down: float,
    px_per_mm: float,
    *,
    baseline: float,
) -> Row | None:
    """The row at ``baseline`` (near row ``y``), measured over the band ``up`` above and ``down``
    below ``y``, or None where too little of the page along it is trace."""
    rows_ = slice(max(0, int(y - up)), int(y + down) + 1)
    # Columns in a stretch of sustained trace (60 % of any 3 mm), so specks are ignored.
    raw = ink[rows_].any(axis=0)
    full = _row_extent(raw, px_per_mm)
    if full is None:
        return None
    # Shape and coverage over everything the model drew along the row; the ends without flat
    # bits of grid line, which would stretch the row into the margins.
    a, b = full
    mass = trace_prob[rows_, a : b + 1].sum(axis=1)
    straight = float(np.convolve(mass, np.ones(3), mode="same").max() / max(float(mass.sum()), 1e-6))
    coverage = float(raw[a : b + 1].mean())
    x_start, x_end = _row_extent(ends_ink[rows_].any(axis=0), px_per_mm) or full
    strength = float(trace_prob[max(0, y - 2) : y + 3, x_start : x_end + 1].max(axis=0).mean())
    column_peak = trace_prob[rows_].max(axis=0)
    return Row(
        baseline,
        _line_end(column_peak, x_start, px_per_mm, -1),
        _line_end(column_peak, x_end, px_per_mm, +1),
        strength,
        coverage,
        straight,
    )


def fill_lattice(
    rows: list[Row],
    trace_prob: np.ndarray,
    *,
    px_per_mm: float,
    requested: str = "auto",
    config: RowsConfig = RowsConfig(),
) -> list[Row]:
    """``rows`` with the rows missing from their evenly spaced lattice put back, where that makes
    the rows of the layout ``requested`` (with ``auto``, of a standard layout) and there are fewer
    (with ``auto``, not a standard number already).

    Where tall waves of neighbouring rows overlap (12 rows on a page, large precordial QRS), the
    row profile is flat over several rows and has no peak for some of them.  The rows found fit a
    lattice of ``k`` rows when each lies within :attr:`RowsConfig.fill_tolerance` of a pitch of
    its slot; an empty slot is a row where the page carries trace there (the profile at least
    :attr:`~RowsConfig.min_fill_mass` of its median at the rows found), not a blank gap.  The
    smallest such ``k`` is taken; rows that fit no lattice are returned as they are.
    """
    n = len(rows)
    sizes = list(LAYOUT_BY_ROWS) if requested == "auto" else [get_layout(requested).n_rows]
    if n < 3 or n in sizes:
        return rows
    ys = np.array([r.baseline_y for r in rows])
    profile = gaussian_filter1d(trace_prob.sum(axis=1), sigma=1.0 * px_per_mm)
    at_rows = float(np.median(np.interp(ys, np.arange(len(profile)), profile)))
    for k in sorted(size for size in sizes if size > n):
        pitch = (ys[-1] - ys[0]) / (k - 1)
        if pitch < 6 * px_per_mm:
            break
        slots = np.round((ys - ys[0]) / pitch).astype(int)
        if len(set(slots.tolist())) < n:
            continue
        # Least-squares lattice through the rows found; every row within tolerance of its slot.
        step, origin = np.polyfit(slots, ys, 1)
        if np.abs(origin + step * slots - ys).max() > config.fill_tolerance * step:
            continue
        holes = origin + step * np.setdiff1d(np.arange(k), slots)
        if np.interp(holes, np.arange(len(profile)), profile).min() < config.min_fill_mass * at_rows:
            continue
        ink = trace_prob > config.threshold
        ends_ink = _without_flat_pieces(ink, px_per_mm)
        h = 0.5 * step
        filled = [_row_at(trace_prob, ink, ends_ink, round(y), h, h, px_per_mm, baseline=float(y)) for y in holes]
        if any(r is None for r in filled):
            continue
        log.info("%d rows found lie on a lattice of %d; the %d rows between them put back", n, k, k - n)
        return sorted(rows + filled, key=lambda r: r.baseline_y)
    return rows


def _without_flat_pieces(ink: np.ndarray, px_per_mm: float) -> np.ndarray:
    """``ink`` without pieces no taller than 0.5 mm: bits of grid line the model half believes
    (a stretch of trace is joined to its waves, so its piece is taller).  They would otherwise
    stretch a row into the margins and move its time axis."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(ink.astype(np.uint8), connectivity=8)
    flat = np.zeros(n, bool)
    flat[1:] = stats[1:, cv2.CC_STAT_HEIGHT] <= max(2, int(round(0.5 * px_per_mm)))
    return ink & ~flat[labels]


def _on_the_lattice(rows: list[Row], broken: list[Row], config: RowsConfig) -> list[Row]:
    """``rows`` with those of ``broken`` that continue their lattice, in page order.

    The kept rows' pitch is the smallest gap between neighbours (two rows at least: a hidden row
    between two kept ones doubles a gap, never halves one).  A broken row one pitch (within
    :attr:`RowsConfig.lattice_tolerance`) from a kept row, drawn along most of the columns the kept rows
    share (:attr:`~RowsConfig.min_lattice_overlap`), is a row of traces partly hidden, not a line of header
    text or a strip of grid."""
    if len(rows) < 2 or not broken:
        return rows
    ys = sorted(r.baseline_y for r in rows)
    pitch = float(np.min(np.diff(ys)))
    x0 = float(np.median([r.x_start for r in rows]))
    x1 = float(np.median([r.x_end for r in rows]))
    rescued = [
        r
        for r in broken
        if min(abs(abs(r.baseline_y - y) - pitch) for y in ys) <= config.lattice_tolerance * pitch
        and min(r.x_end, x1) - max(r.x_start, x0) >= config.min_lattice_overlap * (x1 - x0)
    ]
    if rescued:
        log.info("kept %d broken row(s) on the other rows' lattice (pitch %.0f px)", len(rescued), pitch)
    return sorted(rows + rescued, key=lambda r: r.baseline_y)


def _row_extent(covered: np.ndarray, px_per_mm: float) -> tuple[int, int] | None:
    """First and last column of a row's trace from its per-column coverage, or None when it
    covers too little of the page to be a trace.

    Columns count in a stretch of sustained trace (60 % of any 3 mm), so specks are ignored;
    gaps up to 30 mm (faded stretches) are bridged; the ends are then taken back from the raw
    coverage, which the smoothing trims.
    """
    window = max(3, int(3 * px_per_mm))
    cols = np.flatnonzero(uniform_filter1d(covered.astype(np.float32), size=window) > 0.6)
    if len(cols) < 0.15 * len(covered):
        return None
    x_start, x_end = _extent(cols, gap=int(30 * px_per_mm))
    near_start = np.flatnonzero(covered[max(0, x_start - window) : x_start + 1])
    near_end = np.flatnonzero(covered[x_end : x_end + window + 1])
    x_start = max(0, x_start - window) + int(near_start[0]) if len(near_start) else x_start
    x_end = x_end + int(near_end[-1]) if len(near_end) else x_end
    return x_start, x_end


def _line_end(column_peak: np.ndarray, x: int, px_per_mm: float, direction: int) -> float:
    """Sub-pixel position of a trace's end near column ``x`` (``direction`` -1: its start, +1:
    its end): where the map's per-column peak crosses half the level it holds along the first
    (last) millimetre of the trace.  The map is a ridge blurred along the line as well as
    across, so the line's last point sits at half its height."""
    inward = np.arange(x, x - direction * int(max(2, px_per_mm)), -direction)
    inward = inward[(inward >= 0) & (inward < len(column_peak))]
    if len(inward) == 0:
        return float(x)
    half = 0.5 * float(np.median(column_peak[inward]))
    k = x
    # Walk outwards while still above half, then back to the crossing.
    while 0 <= k + direction < len(column_peak) and column_peak[k + direction] >= half and abs(k - x) < 3:
        k += direction
    while column_peak[k] < half and k != inward[-1]:
        k -= direction
    outer = k + direction
    if not 0 <= outer < len(column_peak):
        return float(k)
    inner_v, outer_v = float(column_peak[k]), float(column_peak[outer])
    if inner_v <= outer_v:
        return float(k)
    return k + direction * (inner_v - half) / (inner_v - outer_v)


def _extent(cols: np.ndarray, *, gap: int) -> tuple[int, int]:
    """The longest run of columns allowing gaps up to ``gap`` (faded stretches)."""
    breaks = np.flatnonzero(np.diff(cols) > gap)
    starts = np.r_[0, breaks + 1]
    ends = np.r_[breaks, len(cols) - 1]
    k = int(np.argmax(cols[ends] - cols[starts]))
    return int(cols[starts[k]]), int(cols[ends[k]])


def _refine_peak(profile: np.ndarray, y: int) -> float:
    if 0 < y < len(profile) - 1:
        a, b, c = profile[y - 1], profile[y], profile[y + 1]
        denom = a - 2 * b + c
        if denom < 0:
            return y + 0.5 * (a - c) / denom
    return float(y)


def width_scale(rows: list[Row]) -> float:
    """Pixels per mm of a page from its rows' width, which electrocardiographs print as
    :data:`TRACE_WIDTH_MM` (the median of the rows at least 80 % as wide as the widest: text
    lines are shorter)."""
    widths = np.array([r.x_end - r.x_start for r in rows])
    return float(np.median(widths[widths >= 0.8 * widths.max()])) / TRACE_WIDTH_MM


def row_spacing(baselines: list[float], *, px_per_mm: float) -> float:
    """Median distance between neighbouring rows' baselines in pixels (40 mm for a single row)."""
    return float(np.median(np.diff(baselines))) if len(baselines) > 1 else 40 * px_per_mm


def choose_layout(rows: list[Row], requested: str = "auto") -> Layout:
    """The layout for the rows found (``requested`` other than ``auto`` is checked and used)."""
    if requested != "auto":
        layout = get_layout(requested)
        if layout.n_rows != len(rows):
            assume(
                log, "layout", f"layout {layout.name} has {layout.n_rows} rows but {len(rows)} were found on the page"
            )
        return layout
    n = len(rows)
    if n in LAYOUT_BY_ROWS:
        return get_layout(LAYOUT_BY_ROWS[n])
    if n < min(LAYOUT_BY_ROWS):
        raise LayoutError(
            f"only {n} row of trace was found, fewer than any layout has; the page may be faint, damaged or "
            f"scanned too coarsely (rescan at 150 dpi or more), or, if you know its layout, name it with "
            f"--layout (one of: {', '.join(LAYOUTS)})"
        )
    # Extra rows are usually text or a stray mark: take the largest layout that fits, and
    # match_rows keeps its strongest rows.
    fits = max(k for k in LAYOUT_BY_ROWS if k <= n)
    assume(log, "layout", f"{n} rows found; no standard layout has that many, assuming {LAYOUT_BY_ROWS[fits]}")
    return get_layout(LAYOUT_BY_ROWS[fits])


def boundary_evidence(
    text_prob: np.ndarray, rows: list[Row], *, px_per_mm: float, fractions: tuple[float, ...] = (0.25, 0.5, 0.75)
) -> np.ndarray:
    """How strongly each row shows a lead change (a lead name or separator) at each fraction of
    its width: ``(n_rows, n_fractions)`` in [0, 1], the text probability near that point."""
    h, w = text_prob.shape
    out = np.zeros((len(rows), len(fractions)))
    for i, row in enumerate(rows):
        y0 = int(max(0, row.baseline_y - 12 * px_per_mm))
        y1 = int(min(h, row.baseline_y + 8 * px_per_mm))
        for j, f in enumerate(fractions):
            x = row.x_start + f * (row.x_end - row.x_start)
            x0, x1 = int(max(0, x - 1.5 * px_per_mm)), int(min(w, x + 8 * px_per_mm))
            if x1 > x0 and y1 > y0:
                out[i, j] = float(text_prob[y0:y1, x0:x1].max())
    return out


def refine_layout(layout: Layout, evidence: np.ndarray, fractions: tuple[float, ...] = (0.25, 0.5, 0.75)) -> Layout:
    """Among standard layouts with as many rows as ``layout``, the one whose lead changes best
    match the ``evidence`` of :func:`boundary_evidence` (e.g. 6x2 against 3x4+3)."""
    candidates = [lay for lay in LAYOUTS.values() if lay.n_rows == layout.n_rows and not lay.name.startswith("cabrera")]
    if len(candidates) < 2:
        return layout

    def agreement(lay: Layout) -> float:
        expected = np.zeros_like(evidence)
        for cell in lay.cells:
            for j, f in enumerate(fractions):
                if cell.col > 0 and abs(cell.t_start_s / lay.duration_s - f) < 0.01:
                    expected[cell.row, j] = 1.0
        return float(-np.abs(expected - evidence).sum())

    best = max(candidates, key=agreement)
    if best.name != layout.name:
        log.info("lead changes on the page fit %s better than %s", best.name, layout.name)
    return best


def match_rows(rows: list[Row], layout: Layout, *, requested: str = "auto") -> list[Row]:
    """Pick ``layout.n_rows`` rows: the most trace-like (:attr:`Row.trace_likeness`: a line of
    header text can be dark but is short, a grid line is straight), in top-to-bottom order.
    ``requested``: the layout asked for (``auto`` or a name), for the message when rows lack."""
    if len(rows) < layout.n_rows:
        others = ["auto", *(name for name in LAYOUTS if name != layout.name)] if requested != "auto" else list(LAYOUTS)
        raise LayoutError(
            f"layout {layout.name} needs {layout.n_rows} rows but only {len(rows)} were found; the page may be "
            f"faint or damaged, or has another layout: name it with --layout (one of: {', '.join(others)})"
        )
    keep = sorted(sorted(rows, key=lambda r: -r.trace_likeness)[: layout.n_rows], key=lambda r: r.baseline_y)
    return keep


def page_duration_s(rows: list[Row], calibration: Calibration, *, nominal_s: float = 10.0) -> float:
    """Seconds shown across the page: 10 s of paper at 25 mm/s (5 s at 50 mm/s).

    The paper speed, not the traces' extent, decides: faded or cropped traces are often
    shorter than the page.  A clear disagreement is logged, since it may mean another speed.
    """
    expected = nominal_s * 25.0 / calibration.mm_per_s
    measured = float(np.median([r.x_end - r.x_start for r in rows])) / calibration.px_per_s
    if abs(measured - expected) > 0.1 * expected:
        assume(
            log,
            "speed",
            f"traces span {measured:.2f} s, not the {expected:.1f} s of the page at {calibration.mm_per_s:g} mm/s; "
            "check --speed if this is wrong",
        )
    return expected


def ink_mask(image: np.ndarray) -> np.ndarray:
    """Dark ink of an RGB page: darker than half way between the paper and the darkest ink.

    The level adapts to faint printers and scans (thin light traces resampled to the canonical
    scale) but stays within luminance 100-180; coloured grid lines, lighter than the traces they
    carry, rarely reach it, and those that do fail the pulse's shape check.
    """
    luminance = image[..., 0] * 0.299 + image[..., 1] * 0.587 + image[..., 2] * 0.114
    sample = luminance[::4, ::4]
    level = float(np.clip(0.5 * (np.median(sample) + np.percentile(sample, 1)), 100.0, 180.0))
    return luminance < level
