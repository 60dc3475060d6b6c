"""Which seconds each column shows: consecutive windows (the standard) or all from t = 0."""

from __future__ import annotations

import numpy as np
import pytest

from ecgstudio.metrics import score_record
from ecgstudio.model.data import trace_heatmap
from ecgstudio.model.net import CANONICAL_PX_PER_MM
from ecgstudio.pipeline import DigitizeOptions, analyse_maps
from ecgstudio.synth.render import PageStyle, render_page

DPI = 25.4 * CANONICAL_PX_PER_MM


def _analyse(page, columns: str = "auto"):
    prob = trace_heatmap(page.traces, page.image.shape[:2])
    options = DigitizeOptions(mm_per_s=25.0, mm_per_mv=10.0, columns=columns)
    return analyse_maps(prob, page.masks.text.astype(np.float32), page.image, options)


@pytest.mark.parametrize("name", ["3x4+1", "6x2+1"])
@pytest.mark.parametrize("seed", [3, 4])
def test_columns_are_read_from_the_rhythm_strip(name: str, seed: int) -> None:
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
    with pytest.raises(ValueError, match="columns must be one of"):
        DigitizeOptions(columns="sideways")
