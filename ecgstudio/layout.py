"""Layout analysis: rows of traces, the layout they form, lead boxes and calibration pulses.

Works on the trace probability map of a page at the canonical scale.  Rows are found where
traces spend their time (their isoelectric baselines), the horizontal extent of the plotted
traces gives the time axis, and the layout's cells are laid onto the rows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter1d, uniform_filter1d
from scipy.signal import find_peaks

from .arrays import true_runs
from .errors import LayoutError, NotAnEcgError
from .geometry.grid import major_line_near
from .paper import LAYOUTS, Layout, get_layout
from .results import Calibration, LeadBox

log = logging.getLogger(__name__)

#: Layout chosen for a given number of rows when ``layout="auto"``.
LAYOUT_BY_ROWS = {1: "12x1", 2: "2x1", 3: "3x4", 4: "3x4+1", 6: "6x2", 7: "6x2+1", 12: "12x1"}


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


#: A candidate row with more of its trace mass than this within 3 px of one line is a ruled line.
MAX_STRAIGHT_SHARE = 0.6
#: A candidate row drawn along less than this share of the best row's coverage is a broken line.
MIN_COVERAGE_SHARE = 0.75
#: A straight candidate row is kept only if unbroken: at least this share of the best coverage.
UNBROKEN_SHARE = 0.97
#: A broken (not straight) candidate row is kept after all where it continues the kept rows'
#: lattice: one pitch from a kept row within this share of the pitch ...
LATTICE_TOLERANCE = 0.12
#: ... drawn along at least this share of the kept rows' common columns ...
MIN_LATTICE_OVERLAP = 0.8
#: ... and covering at least this share of the best coverage.
MIN_LATTICE_COVERAGE = 0.5


def find_rows(trace_prob: np.ndarray, *, px_per_mm: float, threshold: float = 0.3) -> list[Row]:
    """Rows of traces from the trace probability map ``(H, W)`` in [0, 1].

    Candidate rows are peaks of the map's row profile.  Ruled lines the model half believes
    (dark grid lines on black-and-white scans) are told apart by shape: a trace's mass spreads
    over its waves (:data:`MAX_STRAIGHT_SHARE`; a quiet lead may be as straight but is then
    unbroken, :data:`UNBROKEN_SHARE`) and covers its row almost without a break
    (:data:`MIN_COVERAGE_SHARE`).  A row partly hidden (by drawn boxes, stamps, fading) is
    broken too; it is kept where it continues the lattice of the other rows over their columns
    (:func:`_on_the_lattice`).

    Raises
    ------
    NotAnEcgError
        When no row with a trace long enough to be an ECG is found.
    """
    h, w = trace_prob.shape
    ink = trace_prob > threshold
    ends_ink = _without_flat_pieces(ink, px_per_mm)
    profile = gaussian_filter1d(trace_prob.sum(axis=1), sigma=1.0 * px_per_mm)
    if profile.max() <= 0:
        raise NotAnEcgError("no ECG found: no traces on this page; check that it is an ECG and that the whole page is visible")
    peaks, _ = find_peaks(profile, distance=max(1, int(6 * px_per_mm)), prominence=0.15 * profile.max())
    candidates = []
    for k, y in enumerate(peaks):
        # Half way to the neighbouring rows (at most 15 mm): a trace wanders far from its baseline.
        up = min(15 * px_per_mm, (y - peaks[k - 1]) / 2 if k > 0 else 15 * px_per_mm)
        down = min(15 * px_per_mm, (peaks[k + 1] - y) / 2 if k + 1 < len(peaks) else 15 * px_per_mm)
        rows_ = slice(max(0, int(y - up)), int(y + down) + 1)
        # Columns in a stretch of sustained trace (60 % of any 3 mm), so specks are ignored.
        raw = ink[rows_].any(axis=0)
        full = _row_extent(raw, px_per_mm)
        if full is None:
            continue  # too little of the page to be a trace
        # Shape and coverage over everything the model drew along the row; the ends without
        # flat bits of grid line, which would stretch the row into the margins.
        a, b = full
        mass = trace_prob[rows_, a:b + 1].sum(axis=1)
        straight = float(np.convolve(mass, np.ones(3), mode="same").max() / max(float(mass.sum()), 1e-6))
        coverage = float(raw[a:b + 1].mean())
        x_start, x_end = _row_extent(ends_ink[rows_].any(axis=0), px_per_mm) or full
        strength = float(trace_prob[max(0, y - 2): y + 3, x_start:x_end + 1].max(axis=0).mean())
        column_peak = trace_prob[rows_].max(axis=0)
        candidates.append(Row(_refine_peak(profile, int(y)), _line_end(column_peak, x_start, px_per_mm, -1),
                              _line_end(column_peak, x_end, px_per_mm, +1), strength, coverage, straight))
    # A trace is drawn almost everywhere along its row, while a dashed grid line the model half
    # believes is not; and a trace wanders, while a ruled line puts its mass within 3 px of one
    # line (only an unbroken trace of a quiet lead can do that too).
    best = max(r.coverage for r in candidates) if candidates else 0.0
    rows = [r for r in candidates if r.coverage >= MIN_COVERAGE_SHARE * best
            and (r.straightness <= MAX_STRAIGHT_SHARE or r.coverage >= UNBROKEN_SHARE * best)]
    rows = _on_the_lattice(rows, [r for r in candidates if r not in rows and r.straightness <= MAX_STRAIGHT_SHARE
                                  and r.coverage >= MIN_LATTICE_COVERAGE * best])
    if len(rows) < len(candidates):
        log.info("ignored %d straight or broken line(s) among %d candidate rows", len(candidates) - len(rows),
                 len(candidates))
    if not rows:
        raise NotAnEcgError("no ECG found: no traces on this page; check that it is an ECG and that the whole page is visible")
    return rows


def _without_flat_pieces(ink: np.ndarray, px_per_mm: float) -> np.ndarray:
    """``ink`` without pieces no taller than 0.5 mm: bits of grid line the model half believes
    (a stretch of trace is joined to its waves, so its piece is taller).  They would otherwise
    stretch a row into the margins and move its time axis."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(ink.astype(np.uint8), connectivity=8)
    flat = np.zeros(n, bool)
    flat[1:] = stats[1:, cv2.CC_STAT_HEIGHT] <= max(2, int(round(0.5 * px_per_mm)))
    return ink & ~flat[labels]


def _on_the_lattice(rows: list[Row], broken: list[Row]) -> list[Row]:
    """``rows`` with those of ``broken`` that continue their lattice, in page order.

    The kept rows' pitch is the smallest gap between neighbours (two rows at least: a hidden row
    between two kept ones doubles a gap, never halves one).  A broken row one pitch (within
    :data:`LATTICE_TOLERANCE`) from a kept row, drawn along most of the columns the kept rows
    share (:data:`MIN_LATTICE_OVERLAP`), is a row of traces partly hidden, not a line of header
    text or a strip of grid."""
    if len(rows) < 2 or not broken:
        return rows
    ys = sorted(r.baseline_y for r in rows)
    pitch = float(np.min(np.diff(ys)))
    x0 = float(np.median([r.x_start for r in rows]))
    x1 = float(np.median([r.x_end for r in rows]))
    rescued = [r for r in broken
               if min(abs(abs(r.baseline_y - y) - pitch) for y in ys) <= LATTICE_TOLERANCE * pitch
               and min(r.x_end, x1) - max(r.x_start, x0) >= MIN_LATTICE_OVERLAP * (x1 - x0)]
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
    near_start = np.flatnonzero(covered[max(0, x_start - window):x_start + 1])
    near_end = np.flatnonzero(covered[x_end:x_end + window + 1])
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


def row_spacing(baselines: list[float], *, px_per_mm: float) -> float:
    """Median distance between neighbouring rows' baselines in pixels (40 mm for a single row)."""
    return float(np.median(np.diff(baselines))) if len(baselines) > 1 else 40 * px_per_mm


def choose_layout(rows: list[Row], requested: str = "auto") -> Layout:
    """The layout for the rows found (``requested`` other than ``auto`` is checked and used)."""
    if requested != "auto":
        layout = get_layout(requested)
        if layout.n_rows != len(rows):
            log.warning("layout %s has %d rows but %d were found on the page", layout.name, layout.n_rows, len(rows))
        return layout
    n = len(rows)
    if n in LAYOUT_BY_ROWS:
        return get_layout(LAYOUT_BY_ROWS[n])
    # Extra rows are usually text or a stray mark: take the largest layout that fits, and
    # match_rows keeps its strongest rows.
    fits = max(k for k in LAYOUT_BY_ROWS if k <= n)
    log.warning("%d rows found; no standard layout has that many, using %s", n, LAYOUT_BY_ROWS[fits])
    return get_layout(LAYOUT_BY_ROWS[fits])


def boundary_evidence(text_prob: np.ndarray, rows: list[Row], *, px_per_mm: float,
                      fractions: tuple[float, ...] = (0.25, 0.5, 0.75)) -> np.ndarray:
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


def match_rows(rows: list[Row], layout: Layout) -> list[Row]:
    """Pick ``layout.n_rows`` rows: the most trace-like (:attr:`Row.trace_likeness`: a line of
    header text can be dark but is short, a grid line is straight), in top-to-bottom order."""
    if len(rows) < layout.n_rows:
        raise LayoutError(f"layout {layout.name} needs {layout.n_rows} rows but only {len(rows)} were found; "
                          f"try --layout auto or one of: {', '.join(LAYOUTS)}")
    keep = sorted(sorted(rows, key=lambda r: -r.trace_likeness)[: layout.n_rows],
                  key=lambda r: r.baseline_y)
    return keep


def page_duration_s(rows: list[Row], calibration: Calibration, *, nominal_s: float = 10.0) -> float:
    """Seconds shown across the page: 10 s of paper at 25 mm/s (5 s at 50 mm/s).

    The paper speed, not the traces' extent, decides: faded or cropped traces are often
    shorter than the page.  A clear disagreement is logged, since it may mean another speed.
    """
    expected = nominal_s * 25.0 / calibration.mm_per_s
    measured = float(np.median([r.x_end - r.x_start for r in rows])) / calibration.px_per_s
    if abs(measured - expected) > 0.1 * expected:
        log.warning("traces span %.2f s, not the %.1f s of the page at %g mm/s; check --speed if this is wrong",
                    measured, expected, calibration.mm_per_s)
    return expected


def _time_origin(rows: list[Row], span: float, tolerance: float) -> float:
    """Pixel x of time 0: the value most of the rows' starts and (ends - span) agree on."""
    starts = np.array([r.x_start for r in rows])
    candidates = np.r_[starts, np.array([r.x_end for r in rows]) - span]
    support = np.array([(np.abs(candidates - c) <= tolerance).sum() for c in candidates])
    # Most support wins; among equals a start (listed first) wins, since a trace's start is
    # rarely cut while its end often runs into the page edge.
    best = candidates[np.abs(candidates - candidates[int(np.argmax(support))]) <= tolerance]
    return float(np.median(best))


def lead_boxes(rows: list[Row], layout: Layout, calibration: Calibration) -> tuple[LeadBox, ...]:
    """Boxes for every cell of ``layout`` on the matched rows.

    The grid fixes the time scale: the page spans ``duration_s * px_per_s`` pixels.  Where it
    starts is the consensus (median) of every row's start and of every row's end minus that
    span (the value most of them agree on), so one row's faded start or stray mark does not
    move the others.  A row whose own width matches the span within 2 mm starts at its own
    first point (on photos, residual perspective shifts rows a little; its end is one sample
    short of the span, and the page does not tell how long a sample is), still at the grid's
    scale: a 1 % error of scale moves the end of a 10 s row by 0.1 s.  Where all such rows
    start within 1 mm of each other they were printed from one time origin, and share the
    median of their starts: each is a noisy reading of it (about half a pixel), and at 25 mm/s
    a 100 Hz sample is a quarter of a millimetre.
    """
    baselines = [r.baseline_y for r in rows]
    spacing = float(np.median(np.diff(baselines))) if len(baselines) > 1 else 40.0
    span = layout.duration_s * calibration.px_per_s
    tolerance = 2.0 * calibration.px_per_mm_x
    page_start = _time_origin(rows, span, tolerance)
    own = [abs((r.x_end - r.x_start) - span) <= tolerance for r in rows]
    full = [r.x_start for r, o in zip(rows, own) if o]
    common = float(np.median(full)) if len(full) > 1 and np.ptp(full) <= calibration.px_per_mm_x else None
    boxes = []
    for cell in layout.cells:
        row = rows[cell.row]
        x_start = (row.x_start if common is None else common) if own[cell.row] else page_start
        px_per_s = calibration.px_per_s
        y = baselines[cell.row]
        boxes.append(LeadBox(
            lead=cell.lead, x0=x_start + cell.t_start_s * px_per_s, x1=x_start + cell.t_end_s * px_per_s,
            y0=y - 0.6 * spacing, y1=y + 0.4 * spacing, baseline_y=y, t_start_s=cell.t_start_s,
            duration_s=cell.duration_s, row=cell.row, col=cell.col, inverted=cell.inverted,
        ))
    return tuple(boxes)


#: Where a row's first sample may lie relative to the start read from its trace map, in mm: the
#: ink (and so the map) begins half a stroke before the first sample, under round or square caps.
ORIGIN_SNAP_MM = (-0.2, 0.5)


def snap_to_major_lines(boxes: tuple[LeadBox, ...], image: np.ndarray, *, px_per_mm: float,
                        exclude: np.ndarray | None = None) -> tuple[LeadBox, ...]:
    """Boxes whose rows start on the 5 mm grid line just at their start, where there is one.

    Printing software lays the time axis on the grid: time 0 of a row falls on a major line
    (ecg-image-kit, the renderer behind the public benchmarks, always does so).  The start read
    from the trace map is a fraction of a millimetre off: the stroke's cap begins half a line
    width early.  So when a major line lies within :data:`ORIGIN_SNAP_MM` of that start, the
    line is the better reading.  Rows that start together (within 1 mm) share the median of
    their lines; a row with no major line there (no grid, or major lines no heavier than minor
    ones) is left as it is.
    """
    origins = {b.row: min(c.origin_x for c in boxes if c.row == b.row) for b in boxes}
    lines: dict[int, float] = {}
    for r, x in origins.items():
        band = [b for b in boxes if b.row == r]
        line = major_line_near(image, x, rows=(min(b.y0 for b in band), max(b.y1 for b in band)),
                               px_per_mm=px_per_mm, exclude=exclude)
        if line is not None:
            lines[r] = line
    shift: dict[int, float] = {}
    for r, x in origins.items():
        group = [q for q, xq in origins.items() if abs(xq - x) <= px_per_mm and q in lines]
        if not group:
            continue
        line = float(np.median([lines[q] for q in group]))
        if ORIGIN_SNAP_MM[0] * px_per_mm <= line - x <= ORIGIN_SNAP_MM[1] * px_per_mm:
            shift[r] = line - x
    return tuple(replace(b, x0=b.x0 + shift[b.row], x1=b.x1 + shift[b.row]) if b.row in shift else b
                 for b in boxes)


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


@dataclass(frozen=True)
class Pulse:
    """A calibration pulse at one end of a row (pixels of the analysed page).

    Attributes
    ----------
    row : int
        Index of the row it stands on.
    x0, x1 : int
        First column of its rising edge and last column of its falling edge.
    rise_x1, fall_x0 : int
        Last column of the rising edge and first column of the falling edge.
    top_y : int
        Top row of its bar.
    base_y : int
        Bottom row of its foot (the baseline's ink under it).
    line_px : float
        Thickness of its bar.
    height_px : float
        Bar centre to baseline centre: 1 mV at the page's gain.
    """

    row: int
    x0: int
    rise_x1: int
    fall_x0: int
    x1: int
    top_y: int
    base_y: int
    line_px: float
    height_px: float


def find_pulses(dark: np.ndarray, rows: list[Row], *, px_per_mm: float) -> list[Pulse]:
    """The calibration pulses at either end of the rows.

    ``dark`` is a boolean ink map of the page.  A pulse is a square wave within 12 mm of a
    row's trace start (or end): two vertical edges of the same height, 1.5-12 mm
    apart, standing on the row's baseline and joined at the top by a horizontal bar.  Grid
    lines (which run past the baseline), lead names and stray marks fail that shape check.
    """
    pulses = []
    for k, row in enumerate(rows):
        y = int(round(row.baseline_y))
        top = max(0, y - int(25 * px_per_mm))
        bottom = min(dark.shape[0], y + int(3 * px_per_mm))
        # The model may take the pulse for trace, so the row's ends may include it.
        for a, b in ((row.x_start - 12 * px_per_mm, row.x_start + 8 * px_per_mm),
                     (row.x_end - 8 * px_per_mm, row.x_end + 12 * px_per_mm)):
            a, b = int(max(0, a)), int(min(dark.shape[1], b))
            if b - a >= 3 and bottom > top:
                found = _square_pulse(dark[top:bottom, a:b], y - top, px_per_mm)
                if found is not None:
                    pulses.append(replace(found, row=k, x0=a + found.x0, rise_x1=a + found.rise_x1,
                                          fall_x0=a + found.fall_x0, x1=a + found.x1,
                                          top_y=top + found.top_y, base_y=top + found.base_y))
    # A pulse whose edge merged with a QRS complex or a grid line fails the strict check; pages
    # print every row's pulse alike, so one is looked for where another row has one.
    with_pulse = {p.row for p in pulses}
    references = list({(p.x0, p.x1): p for p in pulses}.values())
    for k, row in enumerate(rows):
        if k in with_pulse:
            continue
        for ref in references:
            found = _pulse_like(dark, ref, row.baseline_y - rows[ref.row].baseline_y, px_per_mm)
            if found is not None:
                pulses.append(replace(found, row=k))
                break
    return pulses


def _pulse_like(dark: np.ndarray, ref: Pulse, shift: float, px_per_mm: float) -> Pulse | None:
    """``ref`` moved down by about ``shift`` px (within 1.5 mm) where the page has its bar and
    both edges inked over at least 80 % of their length."""
    line = int(np.ceil(ref.line_px))
    best, best_score = None, 0.8
    for dy in range(int(round(shift - 1.5 * px_per_mm)), int(round(shift + 1.5 * px_per_mm)) + 1):
        top, base = ref.top_y + dy, ref.base_y + dy
        if top < 0 or base > dark.shape[0] or ref.x0 < 0 or ref.x1 >= dark.shape[1]:
            continue
        bar = dark[top:top + line + 1, ref.rise_x1 + 1:ref.fall_x0].any(axis=0).mean()
        rise = dark[top:base - line, ref.x0:ref.rise_x1 + 1].any(axis=1).mean()
        fall = dark[top:base - line, ref.fall_x0:ref.x1 + 1].any(axis=1).mean()
        score = min(bar, rise, fall)
        if score >= best_score:
            best, best_score = replace(ref, top_y=top, base_y=base), score
    return best


def rows_beside_pulses(rows: list[Row], pulses: list[Pulse]) -> list[Row]:
    """Rows that do not run over their calibration pulses.

    The network sometimes takes a pulse's edges, or a drawn box's side standing beside it, for
    trace; the row then starts (ends) on the pulse, and its first point, the time origin, is a
    pulse's width early.  A row that starts before its pulse's middle starts where the pulse
    comes down instead (one that ends after it ends where the pulse goes up); a row whose map
    starts at the falling edge already is left as read."""
    out = list(rows)
    for p in pulses:
        row, middle = out[p.row], (p.rise_x1 + p.fall_x0) / 2
        if p.x1 < (row.x_start + row.x_end) / 2:
            if row.x_start < middle:
                out[p.row] = replace(row, x_start=float(p.fall_x0))
        elif row.x_end > middle:
            out[p.row] = replace(row, x_end=float(p.rise_x1))
    return out


def pulse_height_mm(pulses: list[Pulse], n_rows: int, *, px_per_mm: float) -> float | None:
    """Median height in mm of the pulses, or None unless at least half the rows show one."""
    if not pulses or len(pulses) < max(1, n_rows // 2):
        return None
    return float(np.median([p.height_px for p in pulses])) / px_per_mm


def _square_pulse(region: np.ndarray, base_row: int, px_per_mm: float) -> Pulse | None:
    """The tallest square pulse in ``region`` standing on row ``base_row`` (in the region's
    pixels, row index 0)."""
    edges = []  # (first column, last column, top row, bottom row) of each vertical edge
    for x, column in enumerate(region.T):
        for r0, r1 in true_runs(column):
            if (r1 - r0 >= 2.5 * px_per_mm and r0 > 0 and r1 < len(column)
                    and abs(r1 - base_row) <= 2.0 * px_per_mm):
                if edges and edges[-1][1] >= x - 1 and abs(edges[-1][3] - r1) <= 2:
                    e = edges[-1]
                    edges[-1] = (e[0], x, min(e[2], r0), max(e[3], r1))
                else:
                    edges.append((x, x, r0, r1))
                break
    best = None
    for i, (a0, a1, at, ab) in enumerate(edges):
        for b0, b1, bt, bb in edges[i + 1:]:
            gap = b0 - a1
            if not 1.5 * px_per_mm <= gap <= 12 * px_per_mm or abs(at - bt) > px_per_mm:
                continue
            ha, hb = ab - at, bb - bt
            if abs(ha - hb) > 0.15 * max(ha, hb):
                continue
            bar_top = min(at, bt)
            bar = region[bar_top: bar_top + int(px_per_mm) + 1, a1 + 1: b0]
            if bar.shape[1] == 0 or bar.any(axis=0).mean() < 0.8:
                continue
            # The runs span bar and baseline ink; subtract one line width (the bar's).
            width = float(np.median(bar.sum(axis=0)))
            height = 0.5 * (ha + hb) - width
            if best is None or height > best.height_px:
                best = Pulse(0, a0, a1, b0, b1, bar_top, max(ab, bb), width, height)
    return best


def gain_from_pulse(height_mm: float | None, default: float) -> float:
    """The standard gain (5, 10, 20 mm/mV) a pulse height matches within 15 %, else ``default``."""
    if height_mm is None:
        return default
    for gain in (5.0, 10.0, 20.0):
        if abs(height_mm - gain) <= 0.15 * gain:
            return gain
    log.warning("calibration pulse of %.1f mm matches no standard gain; using %g mm/mV", height_mm, default)
    return default
