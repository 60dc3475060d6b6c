"""Pulses and calibration: the calibration pulses printed at the rows' ends, and the gain and
speed of the page (:class:`~ecgstudio.results.Calibration`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from .arrays import true_runs
from .assumptions import assume
from .config import CalibrationConfig
from .layout import Row
from .model.speednet import SpeedNet, doubled_log_odds
from .results import Calibration, Signals

log = logging.getLogger(__name__)


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
        for a, b in (
            (row.x_start - 12 * px_per_mm, row.x_start + 8 * px_per_mm),
            (row.x_end - 8 * px_per_mm, row.x_end + 12 * px_per_mm),
        ):
            a, b = int(max(0, a)), int(min(dark.shape[1], b))
            if b - a >= 3 and bottom > top:
                found = _square_pulse(dark[top:bottom, a:b], y - top, px_per_mm)
                if found is not None:
                    pulses.append(
                        replace(
                            found,
                            row=k,
                            x0=a + found.x0,
                            rise_x1=a + found.rise_x1,
                            fall_x0=a + found.fall_x0,
                            x1=a + found.x1,
                            top_y=top + found.top_y,
                            base_y=top + found.base_y,
                        )
                    )
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
        bar = dark[top : top + line + 1, ref.rise_x1 + 1 : ref.fall_x0].any(axis=0).mean()
        rise = dark[top : base - line, ref.x0 : ref.rise_x1 + 1].any(axis=1).mean()
        fall = dark[top : base - line, ref.fall_x0 : ref.x1 + 1].any(axis=1).mean()
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
            if r1 - r0 >= 2.5 * px_per_mm and r0 > 0 and r1 < len(column) and abs(r1 - base_row) <= 2.0 * px_per_mm:
                if edges and edges[-1][1] >= x - 1 and abs(edges[-1][3] - r1) <= 2:
                    e = edges[-1]
                    edges[-1] = (e[0], x, min(e[2], r0), max(e[3], r1))
                else:
                    edges.append((x, x, r0, r1))
                break
    best = None
    for i, (a0, a1, at, ab) in enumerate(edges):
        for b0, b1, bt, bb in edges[i + 1 :]:
            gap = b0 - a1
            if not 1.5 * px_per_mm <= gap <= 12 * px_per_mm or abs(at - bt) > px_per_mm:
                continue
            ha, hb = ab - at, bb - bt
            if abs(ha - hb) > 0.15 * max(ha, hb):
                continue
            bar_top = min(at, bt)
            bar = region[bar_top : bar_top + int(px_per_mm) + 1, a1 + 1 : b0]
            if bar.shape[1] == 0 or bar.any(axis=0).mean() < 0.8:
                continue
            # The runs span bar and baseline ink; subtract one line width (the bar's).
            width = float(np.median(bar.sum(axis=0)))
            height = 0.5 * (ha + hb) - width
            if best is None or height > best.height_px:
                best = Pulse(0, a0, a1, b0, b1, bar_top, max(ab, bb), width, height)
    return best


def gain_from_pulse(height_mm: float | None, default: float, *, printed: float | None = None) -> float:
    """The standard gain (5, 10, 20 mm/mV) a pulse height matches within 15 %, else the gain
    ``printed`` on the page, else ``default``."""
    if height_mm is None:
        how = _fallback(default, printed)
        assume(log, "gain", f"no calibration pulse measured; {how} (give --gain if it is another)")
        return printed or default
    for gain in (5.0, 10.0, 20.0):
        if abs(height_mm - gain) <= 0.15 * gain:
            return gain
    assume(
        log,
        "gain",
        f"the calibration pulse of {height_mm:.1f} mm matches no standard gain; {_fallback(default, printed)}",
    )
    return printed or default


def _fallback(default: float, printed: float | None) -> str:
    return f"reading the printed {printed:g} mm/mV" if printed else f"assuming {default:g} mm/mV"


def pulse_regions(pulses: Sequence[Pulse]) -> list[tuple[int, int, int, int]]:
    """The calibration pulses above their foot ``(x0, y0, x1, y1)`` (end-exclusive, one pixel of
    margin): a pulse's falling edge is where its row's first lead begins, and a trace path that
    takes it starts on the bar's height, or runs on down into the lead name."""
    return [(p.x0 - 1, p.top_y - 1, p.x1 + 2, p.base_y - int(np.ceil(p.line_px)) - 1) for p in pulses]


def page_calibration(
    pulses: list[Pulse],
    n_rows: int,
    *,
    px_per_mm: float,
    source_px_per_mm: float | None = None,
    mm_per_mv: float | None = None,
    mm_per_s: float | None = None,
    printed_mm_per_mv: float | None = None,
    config: CalibrationConfig = CalibrationConfig(),
) -> Calibration:
    """The page's calibration in the frame of the pulses (``px_per_mm``): the gain given, else read
    from the pulses where the page as scanned (``source_px_per_mm``, default ``px_per_mm``) is fine
    enough to measure them, else the gain printed on the page, else the default; the speed
    given, else the default."""
    source = px_per_mm if source_px_per_mm is None else source_px_per_mm
    if not mm_per_mv and source < config.min_pulse_px_per_mm:
        assume(
            log,
            "gain",
            f"the page has {source:.1f} px per mm, too coarse to measure calibration pulses; "
            f"{_fallback(config.default_mm_per_mv, printed_mm_per_mv)} (give --gain if it is another)",
        )
        mm_per_mv = printed_mm_per_mv or config.default_mm_per_mv
    if not mm_per_mv:
        height_mm = pulse_height_mm(pulses, n_rows, px_per_mm=px_per_mm)
        mm_per_mv = gain_from_pulse(height_mm, config.default_mm_per_mv, printed=printed_mm_per_mv)
    return Calibration(px_per_mm, px_per_mm, mm_per_s or config.default_mm_per_s, mm_per_mv)


def double_speed(signals: Signals, reader: SpeedNet, *, config: CalibrationConfig = CalibrationConfig()) -> bool:
    """Whether a page read at the default speed was printed at twice that speed.

    At 50 mm/s read as 25 every wave lasts twice as long: slow beats, wide complexes, T waves
    far from them.  Each alone is also a disease or a blurred scan; the paper-speed network
    (:mod:`ecgstudio.model.speednet`) weighs them together, and its log-odds must pass
    :attr:`CalibrationConfig.min_double_speed_log_odds`.  Signals with no lead read for a second
    or more tell nothing.
    """
    read = np.isfinite(signals.mv).sum(axis=0)
    if not len(read) or read.max() < signals.fs:
        return False
    return doubled_log_odds(reader, signals) > config.min_double_speed_log_odds
