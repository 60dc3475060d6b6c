"""Rendered pages checked against their own ground truth."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from ecgstudio.cli import main
from ecgstudio.errors import LayoutError
from ecgstudio.io.signals import read_signals
from ecgstudio.labels import load_labels
from ecgstudio.paper import LEAD_NAMES
from ecgstudio.results import Signals
from ecgstudio.synth.batch import RecordPool, write_pages
from ecgstudio.synth.damage import DamageSettings
from ecgstudio.synth.render import PageStyle, render_page


def sinusoids(freq_hz: float = 1.0, amp_mv: float = 1.0, fs: float = 500.0, duration_s: float = 10.0) -> Signals:
    t = np.arange(int(duration_s * fs)) / fs
    return Signals(np.tile(amp_mv * np.sin(2 * np.pi * freq_hz * t)[:, None], (1, 12)), fs)


def ink_at(image: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Darkness (0 white .. 255 black) of the pixels under the points (within 1 px)."""
    pts = xy[np.isfinite(xy).all(axis=1)]
    dark = 255 - image.min(axis=2).astype(int)
    h, w = dark.shape
    best = np.zeros(len(pts), int)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            ys = np.clip(np.round(pts[:, 1]).astype(int) + dy, 0, h - 1)
            xs = np.clip(np.round(pts[:, 0]).astype(int) + dx, 0, w - 1)
            best = np.maximum(best, dark[ys, xs])
    return best


@pytest.mark.parametrize(
    "style",
    [
        PageStyle(),
        PageStyle(layout="6x2", dpi=100, grid_color="green", pulse="end"),
        PageStyle(layout="12x1", dpi=300, mm_per_mv=5, trace_width_mm=0.15, grid_color="none"),
        PageStyle(layout="cabrera-3x4+1", mm_per_s=50, paper="a4", trace_color=(20, 40, 160)),
    ],
)
def test_polylines_land_on_drawn_ink(style: PageStyle) -> None:
    page = render_page(style=style, seed=11)
    assert page.image.dtype == np.uint8 and page.image.ndim == 3
    assert len(page.traces) == len(page.layout.cells)
    for trace in page.traces:
        darkness = ink_at(page.image, trace.xy)
        # Trace ink is far darker than paper and grid lines.
        assert np.mean(darkness > 100) > 0.98, trace.lead


def test_known_sinusoid_measures_back_from_pixels() -> None:
    style = PageStyle(layout="12x1", dpi=200, grid_color="red", header=False, lead_labels=False, pulse="none")
    page = render_page(sinusoids(freq_hz=1.5, amp_mv=0.4), style=style, seed=3)
    box = page.boxes[0]
    cal = page.calibration
    ink = page.image.min(axis=2) < 80  # the trace, not the grid
    x0, x1 = int(np.ceil(box.x0)) + 2, int(np.floor(box.x1)) - 2
    band = ink[int(box.y0) : int(box.y1), x0:x1]
    ys = np.array([np.flatnonzero(col).mean() if col.any() else np.nan for col in band.T]) + int(box.y0)
    mv = (box.baseline_y - ys) / cal.px_per_mv
    amplitude = (np.nanmax(mv) - np.nanmin(mv)) / 2
    assert amplitude == pytest.approx(0.4, rel=0.03)
    t = (np.arange(x0, x1) - box.x0) / cal.px_per_s
    spectrum = np.abs(np.fft.rfft(np.nan_to_num(mv - np.nanmean(mv))))
    freqs = np.fft.rfftfreq(len(mv), d=np.mean(np.diff(t)))
    assert freqs[np.argmax(spectrum)] == pytest.approx(1.5, abs=1 / (t[-1] - t[0]))
    # Ground-truth polyline says the same thing exactly.
    truth = page.traces[0].xy
    assert ((box.baseline_y - truth[:, 1]) / cal.px_per_mv).max() == pytest.approx(0.4, abs=1e-3)


def test_calibration_matches_dpi_speed_and_gain() -> None:
    page = render_page(style=PageStyle(dpi=150, mm_per_s=50, mm_per_mv=20), seed=1)
    assert page.calibration.px_per_mm_x == pytest.approx(150 / 25.4)
    assert page.calibration.px_per_s == pytest.approx(150 / 25.4 * 50)
    assert page.calibration.px_per_mv == pytest.approx(150 / 25.4 * 20)
    # At 50 mm/s the same paper shows half the time.
    assert page.layout.duration_s == pytest.approx(5.0)


def test_same_seed_same_page_and_different_seeds_differ() -> None:
    a = render_page(seed=5, damage=DamageSettings.random(np.random.default_rng(0)))
    b = render_page(seed=5, damage=DamageSettings.random(np.random.default_rng(0)))
    c = render_page(seed=6)
    assert np.array_equal(a.image, b.image)
    assert not np.array_equal(a.image, c.image)


def test_masks_mark_trace_grid_and_text() -> None:
    page = render_page(style=PageStyle(grid_color="red"), seed=2)
    img = page.image.astype(int)
    trace = page.masks.trace > 0
    assert set(np.unique(page.masks.trace)) <= set(range(len(page.boxes) + 1))
    assert img[trace].min(axis=1).mean() < 60  # trace pixels are dark ink
    grid_only = page.masks.grid & ~trace & ~page.masks.text
    red = img[grid_only]
    assert (red[:, 0] - red[:, 1]).mean() > 30  # grid pixels are reddish
    assert page.masks.text.sum() > 0


def test_inverted_lead_is_drawn_upside_down() -> None:
    page = render_page(sinusoids(amp_mv=0.5), style=PageStyle(layout="cabrera-3x4+1"), seed=4)
    avr = next(b for b, t in zip(page.boxes, page.traces) if b.lead == "aVR")
    trace = next(t for b, t in zip(page.boxes, page.traces) if b.lead == "aVR")
    assert avr.inverted
    t = page.signals.time_s()
    first = int(np.ceil(avr.t_start_s * page.signals.fs))
    expected_y = avr.baseline_y + page.signals.lead("aVR")[first] * page.calibration.px_per_mv
    assert trace.xy[0, 1] == pytest.approx(expected_y, abs=1e-6)
    assert t[first] == pytest.approx(avr.t_start_s, abs=1 / page.signals.fs)


def test_geometric_damage_moves_polylines_with_the_ink() -> None:
    damage = replace(DamageSettings.none(), rotation=1.0, perspective=1.0, curl=1.0, crop=1.0)
    page = render_page(style=PageStyle(trace_width_mm=0.35), damage=damage, seed=9)
    assert page.image.shape[:2] == page.masks.trace.shape
    for trace in page.traces[:4]:
        inside = trace.xy[
            (trace.xy[:, 0] > 2)
            & (trace.xy[:, 0] < page.image.shape[1] - 3)
            & (trace.xy[:, 1] > 2)
            & (trace.xy[:, 1] < page.image.shape[0] - 3)
        ]
        assert np.mean(ink_at(page.image, inside) > 90) > 0.95


def test_every_damage_renders() -> None:
    page = render_page(damage=DamageSettings.all(), seed=1)
    assert page.image.dtype == np.uint8
    assert page.masks.trace.shape == page.image.shape[:2]
    assert len(page.boxes) == 13


def test_plotted_signals_are_nan_outside_each_window() -> None:
    page = render_page(seed=3)
    plotted = page.plotted_signals()
    t = plotted.time_s()
    v1 = plotted.lead("V1")
    assert np.isnan(v1[t < 5.0 - 1e-6]).all() and np.isfinite(v1[(t >= 5.0) & (t < 7.5 - 1e-6)]).all()
    assert np.isfinite(plotted.lead("II")).all()  # the rhythm strip shows lead II throughout


def test_bad_style_is_refused_with_the_choices() -> None:
    with pytest.raises(LayoutError, match="choose one of"):
        PageStyle(layout="5x5")
    with pytest.raises(LayoutError, match="grid colour"):
        PageStyle(grid_color="purple")


def test_random_styles_cover_the_options() -> None:
    rng = np.random.default_rng(0)
    styles = [PageStyle.random(rng) for _ in range(300)]
    assert {s.layout for s in styles} >= {"3x4+1", "6x2", "12x1", "cabrera-3x4+1"}
    assert {s.grid_color for s in styles} == {"red", "pink", "green", "blue", "grey", "dark", "none"}
    assert {s.mm_per_s for s in styles} == {25.0, 50.0}
    assert {s.pulse for s in styles} == {"start", "end", "none"}


def test_write_pages_round_trips_through_label_store_and_wfdb(tmp_path, shared_data) -> None:
    records = RecordPool.from_folders([shared_data / "signals" / "ludb"], simulate_share=0.0)
    paths = write_pages(tmp_path, 2, seed=1, layout="3x4+1", damage="random", records=records)
    assert [p.name for p in paths] == ["page_00000.png", "page_00001.png"]
    record = load_labels(tmp_path / "page_00000.labels.h5")
    assert record.digitization.layout == "3x4+1"
    assert len(record.digitization.boxes) == 13
    truth = read_signals(tmp_path / "page_00000.hea")
    assert truth.lead_names == LEAD_NAMES
    assert truth.fs == 500
    plotted = record.digitization.signals
    both = np.isfinite(plotted.mv)
    np.testing.assert_allclose(plotted.mv[both], truth.mv[: len(plotted.mv)][both], atol=1e-3)


def test_synth_command_writes_pages(tmp_path) -> None:
    assert main(["synth", "--count", "2", "--out", str(tmp_path), "--layout", "6x2", "--dpi", "100", "-q"]) == 0
    assert len(list(tmp_path.glob("*.png"))) == 2
    assert len(list(tmp_path.glob("*.labels.h5"))) == 2
