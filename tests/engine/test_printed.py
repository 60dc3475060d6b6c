"""Settings printed on the page: the speed and gain most carts print beside the traces."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from ecgstudio.errors import ModelError
from ecgstudio.metrics import score_record
from ecgstudio.model.namenet import load_reader, reader_accuracy, train_reader
from ecgstudio.model.net import CANONICAL_PX_PER_MM
from ecgstudio.model.settingsnet import SETTING_CLASSES, SETTINGS
from ecgstudio.printed import read_settings, word_starts
from ecgstudio.synth.render import PageStyle, render_page
from ecgstudio.synth.simulate import simulate_ecg
from ecgstudio.training.data import trace_heatmap

DPI = 25.4 * CANONICAL_PX_PER_MM


def test_words_start_where_their_line_has_a_gap_before_them() -> None:
    mm = 8.0
    glyphs = np.zeros((200, 400), bool)
    for x in (20, 38, 56):  # one word of three glyphs 2 px apart (a quarter of 16 px is 4)
        glyphs[50:66, x : x + 16] = True
    glyphs[50:66, 90:106] = True  # a space of 18 px: a new word
    glyphs[120:136, 36:52] = True  # another line, overlapping the first word's columns
    glyphs[10:14, 0:300] = True  # a rule across the page: not a glyph
    starts = word_starts(glyphs, px_per_mm=mm)
    assert sorted(map(tuple, starts.astype(int))) == [(20, 50, 36, 66), (36, 120, 52, 136), (90, 50, 106, 66)]


def test_shipped_settings_reader_reads_rendered_settings() -> None:
    net, card = load_reader(task=SETTINGS)
    assert card.classes == SETTING_CLASSES
    assert reader_accuracy(net, np.random.default_rng(12345), n=600, task=SETTINGS) > 0.9


def _page(seed: int, **style):
    return render_page(style=replace(PageStyle(layout="3x4+1", dpi=DPI), **style), seed=seed)


@pytest.mark.parametrize(("speed", "gain", "seed"), [(25.0, 10.0, 2), (50.0, 20.0, 5), (25.0, 5.0, 3)])
def test_the_printed_speed_and_gain_are_read_from_the_header(speed: float, gain: float, seed: int) -> None:
    page = _page(seed, header=True, mm_per_s=speed, mm_per_mv=gain)
    grey = page.image.mean(axis=2).astype(np.uint8)
    prob = trace_heatmap(page.traces, page.image.shape[:2])
    read = read_settings(
        load_reader(task=SETTINGS)[0], grey, prob, page.masks.text.astype(np.float32), px_per_mm=CANONICAL_PX_PER_MM
    )
    assert (read.mm_per_s, read.mm_per_mv) == (speed, gain)
    # without a header nothing is read, and nothing is made up from the lead names
    plain = _page(seed, header=False, mm_per_s=speed, mm_per_mv=gain)
    read = read_settings(
        load_reader(task=SETTINGS)[0],
        plain.image.mean(axis=2).astype(np.uint8),
        trace_heatmap(plain.traces, plain.image.shape[:2]),
        plain.masks.text.astype(np.float32),
        px_per_mm=CANONICAL_PX_PER_MM,
    )
    assert (read.mm_per_s, read.mm_per_mv) == (None, None)


def test_a_page_printing_50_mm_s_and_20_mm_mv_without_a_pulse_is_read_so(digitizer) -> None:
    # A fast heart at 50 mm/s looks like 25 mm/s to the beats; only the print tells.
    rng = np.random.default_rng(7)
    record = simulate_ecg(rng, duration_s=10.0, fs=500.0, heart_rate_bpm=110.0)
    style = PageStyle.random(rng, layout="3x4+1", dpi=150.0)
    style = replace(style, header=True, pulse="none", mm_per_s=50.0, mm_per_mv=20.0)
    page = render_page(record, style=style, seed=7)
    result = digitizer.digitize(page.image)
    assert (result.calibration.mm_per_s, result.calibration.mm_per_mv) == (50.0, 20.0)
    assert [a.text for a in result.assumptions if a.what == "speed"] == [
        "the page prints 50 mm/s; reading it at 50 mm/s (give --speed if it is another)"
    ]
    gain_notes = [a.text for a in result.assumptions if a.what == "gain"]
    assert len(gain_notes) == 1 and "reading the printed 20 mm/mV" in gain_notes[0]
    assert score_record(page.signals, result.signals, layout=page.layout).mean_snr_db > 8.0


def test_settings_reader_training_saves_weights_that_load(tmp_path) -> None:
    out = tmp_path / "settings.pt"
    card = train_reader(out, task=SETTINGS, steps=2, batch=8)
    _net, loaded = load_reader(out, task=SETTINGS)
    assert loaded.sha256 == card.sha256 and loaded.classes == SETTING_CLASSES
    assert loaded.crop_shape == (32, 128)
    out.write_bytes(out.read_bytes()[:-10])
    with pytest.raises(ModelError, match="printed-settings reader"):
        load_reader(out, task=SETTINGS)
