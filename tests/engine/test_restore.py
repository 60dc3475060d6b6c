"""Completing a record from exact relations: limb leads wherever two were read, measured samples
untouched, every sample saying where it came from."""

from __future__ import annotations

import numpy as np
import pytest

from ecgstudio.paper import LEAD_NAMES, get_layout
from ecgstudio.restore import LIMB_LEADS, MEASURED, NONE, RECONSTRUCTED, complete_limb_leads
from ecgstudio.results import Signals
from ecgstudio.synth.simulate import simulate_ecg


def _as_plotted(truth: Signals, layout: str) -> Signals:
    """The record with every sample outside its lead's plotted window of ``layout`` NaN."""
    mv = np.full_like(truth.mv, np.nan)
    t = truth.time_s()
    for j, lead in enumerate(truth.lead_names):
        for cell in get_layout(layout).cells_for(lead):
            inside = (t >= cell.t_start_s) & (t < cell.t_end_s)
            mv[inside, j] = truth.mv[inside, j]
    return Signals(mv, truth.fs, truth.lead_names)


def test_a_3x4_page_with_a_rhythm_strip_gives_every_limb_lead_over_half_the_record() -> None:
    truth = simulate_ecg(np.random.default_rng(4), duration_s=10.0, fs=500.0)
    seen = _as_plotted(truth, "3x4+1")
    done = complete_limb_leads(seen)
    limb = [LEAD_NAMES.index(n) for n in LIMB_LEADS]
    first_half = slice(0, 2500)  # columns 1 and 2 print I, II, III and aVR, aVL, aVF beside the II strip
    np.testing.assert_allclose(done.signals.mv[first_half][:, limb], truth.mv[first_half][:, limb], atol=1e-9)
    measured = np.isfinite(seen.mv)
    np.testing.assert_array_equal(done.signals.mv[measured], seen.mv[measured])  # never changed
    assert (done.source[measured] == MEASURED).all()
    assert (done.source[first_half][:, limb] != NONE).all()
    assert np.isnan(done.signals.mv[3000:, LEAD_NAMES.index("I")]).all()  # beyond: only II was read
    chest = [LEAD_NAMES.index(n) for n in ("V1", "V4")]
    assert (done.source[:, chest] != RECONSTRUCTED).all()
    assert done.intervals("aVL") == [("reconstructed", 0.0, 2.5), ("measured", 2.5, 5.0)]


def test_fewer_than_two_limb_leads_complete_nothing() -> None:
    truth = simulate_ecg(np.random.default_rng(5), duration_s=4.0, fs=250.0)
    only_ii = np.full_like(truth.mv, np.nan)
    only_ii[:, 1] = truth.mv[:, 1]
    done = complete_limb_leads(Signals(only_ii, truth.fs, truth.lead_names))
    np.testing.assert_array_equal(done.signals.mv, only_ii)
    assert (done.source[:, 0] == NONE).all()


def test_a_least_squares_solution_where_more_than_two_limb_leads_disagree_a_little() -> None:
    truth = simulate_ecg(np.random.default_rng(6), duration_s=2.0, fs=500.0)
    seen = truth.mv.copy()
    seen[:, LEAD_NAMES.index("I")] = np.nan
    seen[:, LEAD_NAMES.index("III")] += 0.01  # a reading error on one lead
    done = complete_limb_leads(Signals(seen, truth.fs, truth.lead_names))
    error = done.signals.mv[:, 0] - truth.mv[:, 0]
    assert np.abs(error).max() == pytest.approx(0.01 / 3, rel=0.3)  # spread over the leads read
