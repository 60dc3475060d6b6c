"""Layout finding and trace extraction on exact heat maps rasterised from rendered pages.

These check the stages after the network: given a perfect trace map, rows, layout, boxes and
signals must come back right.  The network's own quality is measured by the benchmark.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ecgstudio import boxes as box_stage
from ecgstudio import calibration, layout, signals, strokes
from ecgstudio import path as path_stage
from ecgstudio.config import RowsConfig
from ecgstudio.metrics import score_record
from ecgstudio.model.net import CANONICAL_PX_PER_MM
from ecgstudio.paper import get_layout
from ecgstudio.pipeline import DigitizeOptions, analyse_maps
from ecgstudio.results import Signals
from ecgstudio.synth.render import PageStyle, render_page
from ecgstudio.synth.simulate import simulate_ecg
from ecgstudio.training.data import trace_heatmap

DPI = 25.4 * CANONICAL_PX_PER_MM


def oracle_digitize(page, requested: str = "auto") -> tuple[Signals, object]:
    """Run the post-network stages on the page's exact trace heat map and text mask."""
    prob = trace_heatmap(page.traces, page.image.shape[:2])
    options = DigitizeOptions(layout=requested, mm_per_s=page.style.mm_per_s, mm_per_mv=page.style.mm_per_mv)
    result = analyse_maps(prob, page.masks.text.astype(np.float32), page.image, options)
    return result.signals, result.layout


@pytest.mark.parametrize("name", ["3x4+1", "3x4", "6x2", "6x2+1", "12x1", "2x1"])
def test_layout_is_found_from_rows(name: str) -> None:
    page = render_page(style=PageStyle(layout=name, dpi=DPI, mm_per_mv=5 if name == "12x1" else 10), seed=2)
    _, found = oracle_digitize(page)
    assert found.name == name


def test_exact_map_gives_high_snr_on_a_real_record(shared_data) -> None:
    from ecgstudio.io.signals import read_signals

    record = read_signals(shared_data / "signals" / "ptb-xl" / "00100_hr")
    page = render_page(record, style=PageStyle(layout="3x4+1", dpi=DPI), seed=3)
    signals, found = oracle_digitize(page)
    score = score_record(page.signals, signals, layout=found)
    assert score.mean_snr_db > 14.0
    assert min(s.snr_db for s in score.leads.values()) > 8.0


def test_simulated_pages_recover_timing() -> None:
    rng = np.random.default_rng(1)
    record = simulate_ecg(rng, duration_s=10.5, fs=500.0, heart_rate_bpm=70.0)
    page = render_page(record, style=PageStyle(layout="6x2", dpi=DPI), seed=4, t_offset_s=0.0)
    signals, found = oracle_digitize(page)
    score = score_record(page.signals, signals, layout=found)
    assert score.mean_snr_db > 14.0
    assert all(abs(s.lag_s) <= 0.02 for s in score.leads.values())


def test_smooth_signal_comes_back_at_its_amplitude() -> None:
    t = np.arange(5250) / 500.0
    wave = 0.8 * np.sin(2 * np.pi * 1.3 * t) + 0.3 * np.sin(2 * np.pi * 3.1 * t)
    page = render_page(
        Signals(np.tile(wave[:, None], (1, 12)), 500.0),
        style=PageStyle(layout="3x4+1", dpi=DPI),
        seed=4,
        t_offset_s=0.0,
    )
    signals, _found = oracle_digitize(page)
    ii, est = page.signals.lead("II"), signals.lead("II")[: len(page.signals.mv)]
    ok = np.isfinite(est)
    assert ok.mean() > 0.98
    assert np.std(est[ok]) == pytest.approx(np.std(ii[ok]), rel=0.02)


def test_overlapping_rows_keep_each_trace_on_its_own_lead() -> None:
    rng = np.random.default_rng(7)
    record = simulate_ecg(
        rng,
        duration_s=10.5,
        fs=500.0,
        heart_rate_bpm=80.0,
        r_amplitude_mv=1.4,
        noise_mv=0.0,
        mains_mv=0.0,
        baseline_wander_mv=0.0,
    )
    # At 20 mm/mV the QRS complexes (28 mm R, plus S) reach towards the neighbouring rows (45 mm apart).
    page = render_page(record, style=PageStyle(layout="3x4+1", dpi=DPI, mm_per_mv=20), seed=5, t_offset_s=0.0)
    signals, found = oracle_digitize(page, "3x4+1")
    score = score_record(page.signals, signals, layout=found)
    assert score.mean_snr_db > 10.0


def test_inverted_lead_is_read_back_with_its_sign(shared_data) -> None:
    from ecgstudio.io.signals import read_signals

    record = read_signals(shared_data / "signals" / "ptb-xl" / "00100_hr")
    page = render_page(record, style=PageStyle(layout="cabrera-3x4+1", dpi=DPI), seed=6)
    signals, found = oracle_digitize(page, "cabrera-3x4+1")
    score = score_record(page.signals, signals, layout=found)
    assert score.leads["aVR"].pearson_r > 0.8


def test_gaps_become_nan_with_low_confidence() -> None:
    page = render_page(style=PageStyle(layout="3x4+1", dpi=DPI), seed=8)
    prob = trace_heatmap(page.traces, page.image.shape[:2])
    rows = layout.find_rows(prob, px_per_mm=CANONICAL_PX_PER_MM)
    row = rows[0]
    a = int(row.x_start + 200)
    prob[:, a : a + 60] = 0.0  # a faded stretch
    path = path_stage.trace_row(
        prob, baseline_y=row.baseline_y, spacing=150.0, x_start=int(row.x_start), x_end=int(row.x_end)
    )
    xy, conf = strokes.path_polyline(path)
    gap = (xy[:, 0] >= a + 2) | ~np.isfinite(xy[:, 0])
    missing = ~np.isfinite(xy[:, 1])
    assert missing.sum() >= 55
    assert np.all(conf[missing] == 0)
    assert gap.any()


def test_a_row_partly_hidden_stays_a_row_where_it_continues_the_others() -> None:
    """Drawn lead boxes hide a third of a row (the network loses the trace where a box edge runs
    along it): the row is still one of the page's, while a wavy line of header text as broken,
    a row's pitch above the first but over other columns, is not."""
    page = render_page(style=PageStyle(layout="3x4+1", dpi=DPI), seed=8)
    prob = trace_heatmap(page.traces, page.image.shape[:2])
    rows = layout.find_rows(prob, px_per_mm=CANONICAL_PX_PER_MM)
    assert len(rows) == 4
    first, hidden, span = rows[0], rows[1], rows[1].x_end - rows[1].x_start
    band = slice(int(hidden.baseline_y - 12 * CANONICAL_PX_PER_MM), int(hidden.baseline_y + 12 * CANONICAL_PX_PER_MM))
    for k in range(5):  # five hidden stretches, 7 % of the row each
        a = int(hidden.x_start + (0.1 + 0.18 * k) * span)
        prob[band, a : a + int(0.07 * span)] = 0.0
    header_y = int(first.baseline_y - (rows[3].baseline_y - rows[2].baseline_y))
    x = np.arange(int(0.45 * span))
    wiggle = (header_y + 4 * np.sin(x / 3.0)).round().astype(int)
    keep = (x // 40) % 3 != 2  # broken like words
    for dy in (-1, 0, 1):
        prob[wiggle[keep] + dy, x[keep]] = 1.0
    found = layout.find_rows(prob, px_per_mm=CANONICAL_PX_PER_MM)
    assert [round(r.baseline_y) for r in found] == [round(r.baseline_y) for r in rows]
    assert found[1].coverage < RowsConfig().min_coverage_share * max(r.coverage for r in found)
    assert found[1].x_end - found[1].x_start > 0.95 * span


def test_a_short_unbroken_stroke_is_not_a_row() -> None:
    """A handwritten note or a stamp's edge above the first row: unbroken and wavy like a trace,
    but under a third of the page wide, where every row of traces runs across it."""
    page = render_page(style=PageStyle(layout="3x4", dpi=DPI), seed=8)
    prob = trace_heatmap(page.traces, page.image.shape[:2])
    rows = layout.find_rows(prob, px_per_mm=CANONICAL_PX_PER_MM)
    assert len(rows) == 3
    y = int(rows[0].baseline_y - 0.7 * (rows[1].baseline_y - rows[0].baseline_y))
    x = np.arange(int(rows[0].x_start), int(rows[0].x_start + 0.3 * (rows[0].x_end - rows[0].x_start)))
    for dy in (-1, 0, 1):
        prob[(y + 3 * np.sin(x / 5.0)).round().astype(int) + dy, x] = 1.0
    found = layout.find_rows(prob, px_per_mm=CANONICAL_PX_PER_MM)
    assert [round(r.baseline_y) for r in found] == [round(r.baseline_y) for r in rows]


def test_rows_without_a_peak_between_overlapping_rows_are_put_back_on_the_lattice() -> None:
    """Where tall waves of neighbouring rows overlap the row profile has no peak for some rows:
    the rows found lie on a lattice of 12 and the two missing ones come back at their slots; a
    slot with no trace (a blank gap) is left empty."""
    page = render_page(style=PageStyle(layout="12x1", dpi=DPI, mm_per_mv=5), seed=2)
    prob = trace_heatmap(page.traces, page.image.shape[:2])
    rows = layout.find_rows(prob, px_per_mm=CANONICAL_PX_PER_MM)
    assert len(rows) == 12
    found = [r for k, r in enumerate(rows) if k not in (4, 7)]
    filled = layout.fill_lattice(found, prob, px_per_mm=CANONICAL_PX_PER_MM)
    pitch = rows[1].baseline_y - rows[0].baseline_y
    assert len(filled) == 12
    assert all(abs(a.baseline_y - b.baseline_y) < 0.1 * pitch for a, b in zip(filled, rows))
    assert filled[4].x_end - filled[4].x_start > 0.95 * (rows[4].x_end - rows[4].x_start)

    blank = prob.copy()
    blank[int(rows[4].baseline_y - 0.4 * pitch) : int(rows[4].baseline_y + 0.4 * pitch)] = 0.0
    eleven = [r for k, r in enumerate(rows) if k != 4]
    assert layout.fill_lattice(eleven, blank, px_per_mm=CANONICAL_PX_PER_MM) == eleven
    assert layout.fill_lattice(eleven, prob, px_per_mm=CANONICAL_PX_PER_MM, requested="3x4") == eleven


@pytest.mark.parametrize("case", ["text", "no text", "ruled line"])
def test_a_stroke_turning_at_a_lead_name_is_followed_through_it_along_the_ink(case: str) -> None:
    """An S wave runs down through the name printed under its lead; the network calls that ink
    text and the path turns at the name's top (y 50), while the stroke's ink goes on to y 70.
    Without text there the turn is left; ink running on past 8 mm is a ruled line, also left."""
    mm = CANONICAL_PX_PER_MM
    xs = np.arange(40.0)
    ys = np.full(40, 20.0)
    ys[18:23] = [30.0, 40.0, 50.0, 40.0, 30.0]  # the path: down to the name's top and back
    ink = np.zeros((200, 40), bool)
    ink[20, :] = True
    bottom = 150 if case == "ruled line" else 70
    for y in range(20, bottom + 1):  # the stroke's ink, a pixel wide, drifting right by one
        ink[y, 20 + (y > 60)] = True
    text = np.zeros((200, 40), np.float32)
    if case != "no text":
        text[53:75, 14:30] = 1.0
    out = strokes.through_text(np.column_stack([xs, ys]), ink, text, px_per_mm=mm)
    if case == "text":
        assert out[20, 1] == pytest.approx(70 - strokes.HALF_LINE_MM * mm)
        assert out[20, 0] == 21.0
        assert np.array_equal(np.delete(out, 20, 0), np.delete(np.column_stack([xs, ys]), 20, 0))
    else:
        assert np.array_equal(out, np.column_stack([xs, ys]))


def test_no_traces_is_not_an_ecg() -> None:
    from ecgstudio.errors import NotAnEcgError

    with pytest.raises(NotAnEcgError, match="^no ECG found: no traces"):
        layout.find_rows(np.zeros((600, 900), np.float32), px_per_mm=CANONICAL_PX_PER_MM)


def test_pulse_height_sets_the_gain() -> None:
    for gain in (5.0, 10.0, 20.0):
        page = render_page(style=PageStyle(layout="3x4+1", dpi=DPI, mm_per_mv=gain, pulse="start"), seed=9)
        prob = trace_heatmap(page.traces, page.image.shape[:2])
        rows = layout.match_rows(layout.find_rows(prob, px_per_mm=CANONICAL_PX_PER_MM), get_layout("3x4+1"))
        dark = layout.ink_mask(page.image)
        pulses = calibration.find_pulses(dark, rows, px_per_mm=CANONICAL_PX_PER_MM)
        height = calibration.pulse_height_mm(pulses, len(rows), px_per_mm=CANONICAL_PX_PER_MM)
        assert calibration.gain_from_pulse(height, 10.0) == gain


def test_every_row_pulse_is_found_and_taken_out_of_the_trace_map() -> None:
    """Four rows with a 10 mm pulse each; on the last the first QRS rises above the pulse's bar
    at its falling edge (the strict square-wave check fails there), and it is still found."""
    mm = CANONICAL_PX_PER_MM
    dark = np.zeros((int(100 * mm), int(120 * mm)), np.uint8)
    rows = []
    for k in range(4):
        base = int((20 + 22 * k) * mm)
        x0, x1, top = int(5 * mm), int(10 * mm), base - int(10 * mm)
        cv2.polylines(
            dark,
            [np.array([[0, base], [x0, base], [x0, top], [x1, top], [x1, base], [dark.shape[1] - 1, base]], np.int32)],
            False,
            1,
            2,
        )
        if k == 3:  # a QRS drawn from the falling edge: up past the bar, down to the baseline
            cv2.polylines(
                dark, [np.array([[x1, base], [x1, top - int(4 * mm)], [x1 + int(mm), base]], np.int32)], False, 1, 2
            )
        rows.append(layout.Row(baseline_y=float(base), x_start=float(x1), x_end=float(dark.shape[1] - 1), strength=1.0))
    pulses = calibration.find_pulses(dark.astype(bool), rows, px_per_mm=mm)
    assert sorted(p.row for p in pulses) == [0, 1, 2, 3]
    assert calibration.gain_from_pulse(calibration.pulse_height_mm(pulses, 4, px_per_mm=mm), 5.0) == 10.0
    cleared = path_stage.without_regions(dark.astype(np.float32), calibration.pulse_regions(pulses))
    for p, row in zip(sorted(pulses, key=lambda p: p.row), rows):
        edge = cleared[p.top_y : p.base_y - int(np.ceil(p.line_px)) - 1, p.x0 - 1 : p.x1 + 2]
        assert edge.sum() == 0 or p.row == 3  # the QRS beside the last edge stays ...
        base = int(row.baseline_y)
        assert cleared[base, int(20 * mm)] == 1.0  # ... and so does the trace
    above_bar = slice(int(rows[3].baseline_y - 14 * mm), int(rows[3].baseline_y - 11 * mm))
    assert cleared[above_bar, : int(11 * mm)].sum() > 0  # the QRS above the bar is left too


@pytest.mark.parametrize("name", ["6x2", "3x4+3"])
def test_six_rows_are_told_apart_by_where_leads_change(name: str) -> None:
    page = render_page(style=PageStyle(layout=name, dpi=DPI, lead_labels=True), seed=12)
    prob = trace_heatmap(page.traces, page.image.shape[:2])
    rows = layout.find_rows(prob, px_per_mm=CANONICAL_PX_PER_MM)
    assert len(rows) == 6
    text = page.masks.text.astype(np.float32)
    evidence = layout.boundary_evidence(text, rows, px_per_mm=CANONICAL_PX_PER_MM)
    assert layout.refine_layout(get_layout("6x2"), evidence).name == name


def test_a_vertical_line_crossing_the_trace_is_bridged_but_a_qrs_is_kept() -> None:
    n = 60
    top = np.full(n, 99.0)
    bottom = np.full(n, 101.0)
    top[10] = 60.0  # a grid line crossing: one column, flat on both sides
    top[20:22], bottom[20:22] = 0.0, 300.0  # a line crossing where the trace steps down 5 px
    top[22:28], bottom[22:28] = 104.0, 106.0
    top[30:34] = [90.0, 70.0, 75.0, 92.0]  # an R wave: rise and fall over four columns
    bottom[30:34] = [101.0, 90.0, 91.0, 101.0]
    path = path_stage.RowPath(0, top, bottom, (top + bottom) / 2, np.ones(n))
    xy, _ = strokes.path_polyline(path)
    assert xy[10, 1] == pytest.approx(100.0)
    assert 100.0 < xy[20, 1] < xy[21, 1] < 105.0
    assert xy[31:33, 1].min() < 75.0


def test_a_steep_stroke_is_followed_row_by_row() -> None:
    """An R wave whose strokes cross fewer columns than the line is wide: the downstroke is
    found where the line's centre crosses each height, not smeared over the line's width."""
    import cv2

    prob = np.zeros((200, 120), np.float32)
    centre = np.array([[0, 150], [50, 150], [55, 20], [59, 180], [62, 150], [119, 150]])  # (x, y)
    cv2.polylines(
        prob,
        [np.round(centre * 16).astype(np.int32).reshape(-1, 1, 2)],
        False,
        1.0,
        thickness=3,
        shift=4,
        lineType=cv2.LINE_AA,
    )
    prob = cv2.GaussianBlur(prob, (0, 0), 0.7)
    prob /= prob.max()
    path = path_stage.trace_row(prob, baseline_y=150.0, spacing=150.0, x_start=0, x_end=119)

    def x_at(xy: np.ndarray, y: float) -> float:
        """Where the polyline first comes down through height ``y`` after the apex."""
        ok = np.isfinite(xy[:, 1])
        xy = xy[ok]
        top = int(np.argmin(xy[:, 1]))
        after = xy[top:]
        k = int(np.flatnonzero(after[:, 1] >= y)[0])
        (xa, ya), (xb, yb) = after[k - 1], after[k]
        return float(xa + (y - ya) / (yb - ya) * (xb - xa))

    levels = np.arange(40.0, 165.0, 5.0)
    true_x = 55 + (levels - 20) / (180 - 20) * 4  # the centre line on its way down
    by_columns, _ = strokes.path_polyline(path)
    by_rows, conf = strokes.path_polyline(path, prob=prob)
    error_rows = np.abs([x_at(by_rows, y) for y in levels] - true_x)
    error_columns = np.abs([x_at(by_columns, y) for y in levels] - true_x)
    assert error_rows.max() < 1.0 and error_rows.mean() < 0.5 * error_columns.mean()
    assert len(conf) == len(by_rows) and np.all(np.diff(by_rows[np.isfinite(by_rows[:, 0]), 0]) >= 0)


def test_rows_start_and_end_at_their_first_and_last_points() -> None:
    """The first point of a row sets its lead boxes' time zero: found to a sixth of a mm."""
    page = render_page(style=PageStyle(layout="3x4+1", dpi=DPI), seed=3)
    prob = trace_heatmap(page.traces, page.image.shape[:2])
    rows = layout.find_rows(prob, px_per_mm=CANONICAL_PX_PER_MM)
    assert len(rows) == 4
    for row in rows:
        mine = [t.xy for t in page.traces if abs(np.nanmedian(t.xy[:, 1]) - row.baseline_y) < 40]
        first = min(float(np.nanmin(xy[:, 0])) for xy in mine)
        last = max(float(np.nanmax(xy[:, 0])) for xy in mine)
        assert row.x_start == pytest.approx(first, abs=1.0)
        assert row.x_end == pytest.approx(last, abs=1.5)


def test_rows_that_start_together_share_one_time_origin_and_rows_that_do_not_keep_their_own() -> None:
    from ecgstudio.results import Calibration

    cal = Calibration(CANONICAL_PX_PER_MM, CANONICAL_PX_PER_MM, 25.0, 10.0)
    span = 10.0 * cal.px_per_s

    def starts(*x: float) -> list[float]:
        rows = [
            layout.Row(baseline_y=100.0 * (k + 1), x_start=v, x_end=v + span - 1.5, strength=1.0)
            for k, v in enumerate(x)
        ]
        boxes = box_stage.lead_boxes(rows, get_layout("3x4+1"), cal)
        return [b.x0 for b in boxes if b.col == 0]

    assert starts(89.3, 88.9, 90.0, 89.1) == pytest.approx([89.2] * 4)  # within 1 mm: their median
    assert starts(89.0, 89.0, 110.0, 89.0) == pytest.approx([89.0, 89.0, 110.0, 89.0])  # a photo's shifted row


def test_a_row_starts_where_its_pulse_comes_down() -> None:
    """The network took the side of a drawn box beside the pulse for trace on one row: it starts
    at its pulse's falling edge, where a row whose map starts on that edge is left; a pulse at
    a row's end stops the row there."""
    rows = [
        layout.Row(100.0, 89.0, 1600.0, 1.0),
        layout.Row(300.0, 119.5, 1600.0, 1.0),
        layout.Row(500.0, 125.0, 1640.0, 1.0),
    ]
    pulse = {"top_y": 0, "base_y": 10, "line_px": 3.0, "height_px": 60.0}
    pulses = [
        calibration.Pulse(0, 89, 92, 121, 123, **pulse),
        calibration.Pulse(1, 89, 92, 121, 123, **pulse),
        calibration.Pulse(2, 1610, 1612, 1640, 1643, **pulse),
    ]
    out = calibration.rows_beside_pulses(rows, pulses)
    assert [(r.x_start, r.x_end) for r in out] == [(121.0, 1600.0), (119.5, 1600.0), (125.0, 1612.0)]


@pytest.mark.parametrize("separators", [True, False])
def test_separator_ticks_are_found_at_lead_boundaries_and_qrs_strokes_are_not(separators: bool) -> None:
    record = simulate_ecg(np.random.default_rng(8), duration_s=10.5, fs=500.0, heart_rate_bpm=95.0)
    style = PageStyle(layout="3x4+1", dpi=DPI, separators=separators, trace_width_mm=0.5)
    page = render_page(record, style=style, seed=8)
    found = path_stage.find_separators(layout.ink_mask(page.image), page.boxes, px_per_mm=CANONICAL_PX_PER_MM)
    starts = [b for b in page.boxes if b.col > 0]
    if not separators:
        assert found == []
        return
    assert len(found) == len(starts)
    for x0, y0, x1, y1 in found:
        box = min(starts, key=lambda b: abs(b.x0 - (x0 + x1) / 2) + abs(b.baseline_y - (y0 + y1) / 2))
        assert abs((x0 + x1) / 2 - box.x0) < CANONICAL_PX_PER_MM  # within 1 mm of the boundary
        assert y0 < box.baseline_y < y1
    prob = path_stage.without_regions(np.ones(page.image.shape[:2], np.float32), found)
    assert prob[int(found[0][1]) + 1, int(found[0][0]) + 1] == 0.0 and prob.mean() > 0.99


def test_samples_finer_than_the_trace_are_smoothed_above_its_resolution() -> None:
    """A trace read one point per pixel column carries the pixels' steps: sampled at 500 Hz
    from a 200 dpi page, they are noise above what the page resolves and are filtered out; at
    100 Hz the samples are the trace's own, and a trace given no band limit (one a person drew)
    is sampled as drawn."""
    from ecgstudio.results import Calibration, LeadBox, Trace

    cal = Calibration(7.87, 7.87, 25.0, 10.0)
    x = np.arange(int(2.5 * cal.px_per_s) + 1, dtype=float)

    def mv(t: np.ndarray) -> np.ndarray:
        return 0.6 * np.sin(2 * np.pi * 1.3 * t) + 0.3 * np.sin(2 * np.pi * 11.0 * t + 1.0)

    baseline = 200.0
    trace = Trace("I", np.column_stack([x, np.round(baseline - mv(x / cal.px_per_s) * cal.px_per_mv)]))
    box = LeadBox("I", 0.0, 100.0, 2.5 * cal.px_per_s, 300.0, baseline, 0.0, 2.5)
    limit = signals.traced_band_limit(cal)
    assert limit == pytest.approx(0.4 * 25.0 * 7.87)

    def error(fs: float, band: float | None) -> tuple[float, np.ndarray]:
        idx, values = signals.trace_samples(trace, box, cal, fs=fs, baseline_y=baseline, band_limit_hz=band)
        ok = np.isfinite(values)
        return float(np.sqrt(np.mean((values[ok] - mv(idx[ok] / fs)) ** 2))), values

    smoothed, raw = error(500.0, limit)[0], error(500.0, None)[0]
    assert smoothed < 0.95 * raw  # the steps above 79 Hz gone, the 11 Hz wave kept
    np.testing.assert_array_equal(error(100.0, limit)[1], error(100.0, None)[1])


def test_limb_leads_read_in_their_places_agree_and_leads_read_elsewhere_do_not() -> None:
    truth = simulate_ecg(np.random.default_rng(11), duration_s=10.0, fs=500.0)
    noisy = truth.mv + np.random.default_rng(12).normal(0, 0.01, truth.mv.shape)
    assert signals.limb_disagreement(Signals(noisy, truth.fs)) < 0.1
    # A Cabrera page read in the standard order: I shows aVL, II shows I, III shows -aVR, ...
    order = ["aVL", "I", "aVR", "II", "aVF", "III"]
    swapped = noisy.copy()
    for k, lead in enumerate(order):
        sign = -1.0 if lead == "aVR" else 1.0
        swapped[:, k] = sign * noisy[:, truth.lead_names.index(lead)]
    assert signals.limb_disagreement(Signals(swapped, truth.fs)) > 0.5
    # Three limb leads at once are needed for a check: two determine the rest.
    two = noisy.copy()
    two[:, 2:6] = np.nan
    assert signals.limb_disagreement(Signals(two, truth.fs)) is None
