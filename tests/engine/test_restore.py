"""Completing a record: limb leads from exact relations wherever two were read, every lead's own
beats placed at the rhythm strip's beats, measured samples untouched, every sample saying where
it came from."""

from __future__ import annotations

import numpy as np
import pytest

from ecgstudio.metrics import score_lead
from ecgstudio.paper import LEAD_NAMES, get_layout
from ecgstudio.restore import (
    MEASURED,
    NONE,
    RECONSTRUCTED,
    beat_times,
    complete_limb_leads,
    place_beats,
    r_peaks,
    restore,
)
from ecgstudio.results import Signals
from ecgstudio.signals import LIMB_LEADS
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


@pytest.mark.parametrize("heart_rate", [50.0, 75.0, 120.0])
def test_the_rhythm_strips_beats_are_found(heart_rate: float) -> None:
    truth = simulate_ecg(np.random.default_rng(7), duration_s=10.0, fs=500.0, heart_rate_bpm=heart_rate)
    strip = truth.lead("II")
    peaks = r_peaks(strip, truth.fs)
    assert len(peaks) == pytest.approx(heart_rate / 6, abs=1.5)  # beats in 10 s
    assert np.median(np.diff(peaks)) / truth.fs == pytest.approx(60 / heart_rate, rel=0.05)
    first = peaks[1]
    cut = strip[first - 10 :]  # a strip that starts 20 ms before a QRS: that beat is placed as well
    assert abs(r_peaks(cut, truth.fs)[0] - 10) <= 5
    with_gap = strip.copy()
    with_gap[:1000] = np.nan  # a strip read from 2 s on: no beat found where nothing was read
    assert (r_peaks(with_gap, truth.fs) >= 1000).all()


def test_every_lead_of_a_3x4_page_with_a_rhythm_strip_is_completed_over_the_whole_record() -> None:
    truth = simulate_ecg(np.random.default_rng(4), duration_s=10.0, fs=500.0, heart_rate_bpm=70, pvc_probability=0.0)
    seen = _as_plotted(truth, "3x4+1")
    done = restore(seen)
    assert np.isfinite(done.signals.mv).all() and (done.source != NONE).all()
    measured = np.isfinite(seen.mv)
    np.testing.assert_array_equal(done.signals.mv[measured], seen.mv[measured])  # never changed
    assert (done.source[measured] == MEASURED).all() and (done.source[~measured] == RECONSTRUCTED).all()
    # The exact part stays exact; beats placed elsewhere look like the lead's own beats.
    first_half = slice(0, 2500)
    np.testing.assert_allclose(done.signals.mv[first_half, 0], truth.mv[first_half, 0], atol=1e-9)
    for lead in ("I", "aVF", "V1", "V4"):
        j = LEAD_NAMES.index(lead)
        placed = done.source[:, j] == RECONSTRUCTED
        placed[first_half] &= lead not in LIMB_LEADS
        assert score_lead(truth.mv[placed, j], done.signals.mv[placed, j], truth.fs).snr_db > 3.0, lead
    # The limb leads placed from I and II keep Einthoven's law.
    i, ii, iii = (done.signals.lead(n) for n in ("I", "II", "III"))
    np.testing.assert_allclose(iii, ii - i, atol=1e-9)


@pytest.mark.parametrize("layout", ["3x4", "6x2"])
def test_without_a_rhythm_strip_the_leads_read_at_each_moment_time_the_beats(layout: str) -> None:
    truth = simulate_ecg(np.random.default_rng(5), duration_s=10.0, fs=500.0, heart_rate_bpm=80, pvc_probability=0.0)
    seen = _as_plotted(truth, layout)
    found, true = beat_times(seen), r_peaks(truth.lead("II"), truth.fs)
    assert len(found) == len(true)
    # Each beat at the same point of its complex, whichever column showed it (those on a column's
    # edge, seen by the leads of both, may be a little off).
    offsets = (found - true) / truth.fs
    assert np.mean(np.abs(offsets - np.median(offsets)) <= 0.01) >= 0.8
    done, exact = restore(seen), complete_limb_leads(seen)
    assert np.isfinite(done.signals.mv).all()
    known = np.isfinite(exact.signals.mv)
    np.testing.assert_array_equal(done.signals.mv[known], exact.signals.mv[known])  # the exact part stays exact
    # The chest leads placed, if not quite as well as with a rhythm strip (its one lead times every beat alike).
    with_strip = restore(_as_plotted(truth, "3x4+1"))

    def chest_snr(completion) -> float:
        snrs = []
        for lead in ("V1", "V2", "V3", "V4", "V5", "V6"):
            j = LEAD_NAMES.index(lead)
            placed = completion.source[:, j] == RECONSTRUCTED
            snrs.append(score_lead(truth.mv[placed, j], completion.signals.mv[placed, j], truth.fs).snr_db)
        return float(np.mean(snrs))

    assert chest_snr(done) > 3.0 and chest_snr(done) > chest_snr(with_strip) - 3.0


def test_a_lead_never_read_is_not_invented() -> None:
    truth = simulate_ecg(np.random.default_rng(6), duration_s=10.0, fs=500.0)
    column = np.full(len(truth.mv), np.nan)
    peaks = r_peaks(truth.lead("II"), truth.fs)
    assert np.isnan(place_beats(column, peaks)).all()
