"""Which seconds each column shows: consecutive windows (the standard) or all from t = 0."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from ecgstudio import timing
from ecgstudio.io.signals import read_signals
from ecgstudio.metrics import score_record
from ecgstudio.model.net import CANONICAL_PX_PER_MM
from ecgstudio.pipeline import DigitizeOptions, analyse_maps
from ecgstudio.results import Signals
from ecgstudio.synth.render import PageStyle, render_page
from ecgstudio.training.data import trace_heatmap

DPI = 25.4 * CANONICAL_PX_PER_MM
RECORD = Path(__file__).resolve().parents[2] / "resources" / "sample_scan_truth.hea"


def _analyse(page, columns: str = "auto"):
    prob = trace_heatmap(page.traces, page.image.shape[:2])
    options = DigitizeOptions(mm_per_s=25.0, mm_per_mv=10.0, columns=columns)
    return analyse_maps(prob, page.masks.text.astype(np.float32), page.image, options)


@pytest.mark.parametrize("name", ["3x4+1", "6x2+1", "3x4", "6x2"])
@pytest.mark.parametrize("seed", [3, 4])
def test_columns_are_read_from_the_beats(name: str, seed: int) -> None:
    """From the rhythm strip where there is one; from the first column's beats where not."""
    for from_zero in (False, True):
        page = render_page(style=PageStyle(layout=name, dpi=DPI, columns_from_zero=from_zero), seed=seed)
        result = _analyse(page)
        starts = {b.t_start_s for b in result.boxes}
        assert (starts == {0.0}) == from_zero, (name, seed, from_zero, starts)
        # scored against what the page really shows
        assert score_record(page.signals, result.signals, layout=page.layout).mean_snr_db > 8


def test_columns_from_zero_leave_later_seconds_empty_and_can_be_forced() -> None:
    page = render_page(style=PageStyle(layout="3x4+1", dpi=DPI, columns_from_zero=True), seed=5)
    signals = _analyse(page).signals
    avr = signals.lead("aVR")
    t = signals.time_s()
    assert np.isfinite(avr[t < 2.4]).mean() > 0.95
    assert np.isnan(avr[t > 2.6]).all()
    forced = _analyse(page, columns="consecutive")
    assert sorted({b.t_start_s for b in forced.boxes}) == [0.0, 2.5, 5.0, 7.5]
    # and the other way, on a page without a rhythm strip too
    page = render_page(style=PageStyle(layout="3x4", dpi=DPI), seed=5)
    assert {b.t_start_s for b in _analyse(page, columns="from-zero").boxes} == {0.0}
    with pytest.raises(ValueError, match="columns must be one of"):
        DigitizeOptions(columns="sideways")


def _drawn_from_samples(rng: np.random.Generator, step: float, origin: float, n: int = 250) -> np.ndarray:
    """A polyline through random ECG-like samples every ``step`` px from ``origin``, seen at
    every pixel column (as a trace map gives it)."""
    knots_x = origin + step * np.arange(n)
    knots_y = 100 + np.cumsum(rng.normal(0, 1, n)) + 15 * (rng.random(n) < 0.08) * rng.normal(0, 1, n)
    x = np.arange(np.ceil(knots_x[0]), np.floor(knots_x[-1]) + 1)
    return np.column_stack([x, np.interp(x, knots_x, knots_y)])


@pytest.mark.parametrize("offset", [-0.45, -0.2, 0.3])
def test_samples_are_put_on_the_corners_of_a_trace_drawn_from_them(offset: float) -> None:
    from ecgstudio.boxes import align_to_samples
    from ecgstudio.results import LeadBox, Trace

    rng = np.random.default_rng(11)
    px_per_s, fs = 150.0, 100.0  # 6 px/mm at 25 mm/s: a 100 Hz sample spans 1.5 px
    step = px_per_s / fs
    boxes, traces = [], []
    for row in range(3):
        xy = _drawn_from_samples(rng, step, 40.0)
        # the box's time origin is read a fraction of a sample away from the first sample
        box = LeadBox(
            "II", 40.0 + offset * step, 10.0, 40.0 + offset * step + 2.5 * px_per_s, 190.0, 100.0, 0.0, 2.5, row=row
        )
        boxes.append(box)
        traces.append(Trace("II", xy, np.ones(len(xy))))
    aligned = align_to_samples(tuple(boxes), tuple(traces), px_per_s=px_per_s, fs=fs)
    for box in aligned:
        assert box.x0 == pytest.approx(40.0, abs=0.05 * step)
        assert box.width == pytest.approx(2.5 * px_per_s)


def test_traces_without_sample_corners_keep_their_time_axis() -> None:
    from ecgstudio.boxes import align_to_samples
    from ecgstudio.results import LeadBox, Trace

    # an analog trace (or one drawn from far finer samples), seen at every pixel column:
    # smooth P-QRS-T shapes, no corners a 100 Hz lattice could find
    x = np.arange(40.0, 416.0)
    y = (
        100
        + 5 * np.sin(x / 37)
        + sum(
            30 * np.exp(-0.5 * ((x - c) / 1.2) ** 2) - 10 * np.exp(-0.5 * ((x - c - 3) / 1.5) ** 2)
            for c in range(60, 415, 118)
        )
    )
    box = LeadBox("II", 40.3, 10.0, 40.3 + 375.0, 190.0, 100.0, 0.0, 2.5)
    trace = Trace("II", np.column_stack([x, y]), np.ones(len(x)))
    assert align_to_samples((box,), (trace,), px_per_s=150.0, fs=100.0) == (box,)
    # and at 500 Hz a sample spans a third of a pixel: nothing to look for
    corners = Trace("II", _drawn_from_samples(np.random.default_rng(12), 1.5, 40.0), np.ones(336))
    assert align_to_samples((box,), (corners,), px_per_s=150.0, fs=500.0) == (box,)


def test_a_page_drawn_from_a_100_hz_record_gives_the_record_back() -> None:

    from ecgstudio.config import BoxesConfig, EngineConfig
    from ecgstudio.results import Signals
    from ecgstudio.synth.simulate import simulate_ecg

    rng = np.random.default_rng(21)
    record = simulate_ecg(rng, duration_s=10.5, fs=500.0)
    record = Signals(record.mv[::5], 100.0)
    page = render_page(record, style=PageStyle(layout="3x4+1", dpi=DPI), seed=21, t_offset_s=0.0)
    prob = trace_heatmap(page.traces, page.image.shape[:2])
    options = DigitizeOptions(mm_per_s=25.0, mm_per_mv=10.0, fs=100.0)
    aligned = analyse_maps(prob, page.masks.text.astype(np.float32), page.image, options)
    step = aligned.calibration.px_per_s / 100.0
    truth = {(b.row, b.col): b.x0 for b in page.boxes}
    for box in aligned.boxes:
        phase = (box.x0 - truth[(box.row, box.col)]) / step
        assert abs(phase - round(phase)) < 0.1, (box.lead, phase)
    snr = score_record(page.signals, aligned.signals, layout=page.layout).mean_snr_db
    no_alignment = EngineConfig(boxes=BoxesConfig(min_sample_px=np.inf))
    unaligned = analyse_maps(prob, page.masks.text.astype(np.float32), page.image, options, config=no_alignment)
    before = score_record(page.signals, unaligned.signals, layout=page.layout).mean_snr_db
    assert snr > before + 1.0, (before, snr)
    assert snr > 17


@pytest.mark.parametrize("seed", [31, 32])
def test_rows_that_start_on_a_major_grid_line_start_there(seed: int) -> None:
    page = render_page(style=PageStyle(layout="3x4+1", dpi=DPI, origin_on_grid=True), seed=seed)
    result = _analyse(page)
    truth = {(b.row, b.col): b.x0 for b in page.boxes}
    errors_mm = [(b.x0 - truth[(b.row, b.col)]) / CANONICAL_PX_PER_MM for b in result.boxes]
    assert np.abs(errors_mm).max() < 0.05, errors_mm


def test_major_lines_are_found_where_the_grid_shows_them() -> None:
    from ecgstudio.geometry.grid import major_line_near

    page = render_page(style=PageStyle(layout="3x4+1", dpi=DPI, origin_on_grid=True), seed=33)
    box = page.boxes[0]
    line = major_line_near(
        page.image, box.x0 + 3.0, rows=(box.y0, box.y1), px_per_mm=CANONICAL_PX_PER_MM, exclude=page.masks.trace
    )
    assert line == pytest.approx(box.x0, abs=0.3)
    # the nearest line, wherever the search starts
    shifted = major_line_near(page.image, box.x0 + 20.0, rows=(box.y0, box.y1), px_per_mm=CANONICAL_PX_PER_MM)
    assert shifted == pytest.approx(box.x0 + 5 * CANONICAL_PX_PER_MM, abs=0.3)
    # a band of rows thinner than a page may be (a 12x1 page's rows are 7 mm apart)
    mid = (box.y0 + box.y1) / 2
    thin = major_line_near(
        page.image, box.x0 + 3.0, rows=(mid - 20, mid + 20), px_per_mm=CANONICAL_PX_PER_MM, exclude=page.masks.trace
    )
    assert thin == pytest.approx(box.x0, abs=1.0)
    # no major lines: plain paper, or a grid whose 5 mm lines are no heavier than the others
    plain = render_page(style=PageStyle(layout="3x4+1", dpi=DPI, grid_color="none"), seed=33)
    assert major_line_near(plain.image, box.x0, rows=(box.y0, box.y1), px_per_mm=CANONICAL_PX_PER_MM) is None
    x = np.arange(600)
    even = np.full((200, 600, 3), 255, np.uint8)
    even[:, x % 6 == 0] = 120
    assert major_line_near(even, 300.0, rows=(0, 200), px_per_mm=CANONICAL_PX_PER_MM) is None


def _read_at_half_speed(truth):
    """What a page printed at 50 mm/s gives when read at 25: every wave twice as long."""
    from ecgstudio.results import Signals

    n = len(truth.mv)
    t = np.arange(2 * n) / 2.0
    return Signals(np.stack([np.interp(t, np.arange(n), col) for col in truth.mv.T], axis=1), truth.fs)


#: Of the 85 validation records' truth shown at 50 mm/s, at least this share is found (measured 84);
#: of those shown at 25, at most this share taken for 50 (measured none, the surest -4.3 for a
#: bound of 2.0).
FAST_SHARE, SLOW_SHARE = 0.95, 0.02


@pytest.fixture(scope="module")
def speed_reader():
    from ecgstudio.model.speednet import load_speed_reader

    return load_speed_reader()[0]


@pytest.mark.parametrize("heart_rate", [55.0, 75.0, 110.0])
def test_a_page_printed_at_50_mm_s_is_told_from_a_slow_heart(heart_rate: float, speed_reader) -> None:
    from ecgstudio.calibration import double_speed
    from ecgstudio.synth.simulate import simulate_ecg

    rng = np.random.default_rng(int(heart_rate))
    truth = simulate_ecg(rng, duration_s=5.0, fs=500.0, heart_rate_bpm=heart_rate, noise_mv=0.0)
    assert double_speed(_read_at_half_speed(truth), speed_reader)
    assert not double_speed(simulate_ecg(rng, duration_s=10.0, fs=500.0, heart_rate_bpm=heart_rate), speed_reader)
    # A slow heart at 25 mm/s keeps its sharp waves: bradycardia is not read as a faster paper.
    assert not double_speed(simulate_ecg(rng, duration_s=10.0, fs=500.0, heart_rate_bpm=42.0), speed_reader)


def test_real_records_at_50_mm_s_are_told_from_those_at_25(shared_data, speed_reader) -> None:
    """On the validation records (kept out of the network's training), nearly all shown at
    50 mm/s and read at 25 are recognised, and hardly any shown at 25 mm/s are taken for 50: a page
    read at the wrong speed is lost either way, and most paper runs at 25 mm/s."""
    from ecgstudio.calibration import double_speed
    from ecgstudio.synth.batch import is_validation_record

    heads = sorted((shared_data / "signals").glob("*/*.hea"))
    records = [read_signals(h.with_suffix("")) for h in heads if is_validation_record(h.stem)]
    fast = slow = 0
    for record in records:
        shown = int(10 * record.fs)
        at_25 = replace(record, mv=np.nan_to_num(record.mv[:shown]))
        at_50 = _read_at_half_speed(replace(record, mv=np.nan_to_num(record.mv[: shown // 2])))
        fast += double_speed(at_50, speed_reader)
        slow += double_speed(at_25, speed_reader)
    assert len(records) > 60
    assert fast >= FAST_SHARE * len(records)
    assert slow <= SLOW_SHARE * len(records)


def test_a_page_at_50_mm_s_is_read_at_50_and_says_so(digitizer) -> None:
    from ecgstudio.synth.simulate import simulate_ecg

    rng = np.random.default_rng(5)
    record = simulate_ecg(rng, duration_s=10.0, fs=500.0, heart_rate_bpm=65.0)
    style = PageStyle.random(rng, layout="3x4+1", dpi=150.0, mm_per_s=50.0)
    page = render_page(record, style=replace(style, header=False), seed=5)  # nothing printed says 50 mm/s
    result = digitizer.digitize(page.image)
    assert result.calibration.mm_per_s == 50.0
    assert [a.what for a in result.assumptions if "twice as long" in a.text] == ["speed"]
    assert score_record(page.signals, result.signals, layout=page.layout).mean_snr_db > 8.0
    # Given a speed, the engine takes it as it is.
    told = digitizer.digitize(page.image, DigitizeOptions(mm_per_s=25.0))
    assert told.calibration.mm_per_s == 25.0 and not any("twice as long" in a.text for a in told.assumptions)


def test_time_runs_forward_in_real_records_and_backwards_upside_down() -> None:
    truth = read_signals(RECORD)
    assert timing.time_direction(truth) > 1.0
    upside_down = Signals(-truth.mv[::-1].copy(), truth.fs, truth.lead_names)
    assert timing.time_direction(upside_down) < -1.0
    assert timing.time_direction(Signals(np.full((5000, 12), np.nan), 500.0)) == 0.0
