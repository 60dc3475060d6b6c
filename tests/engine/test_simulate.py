"""Tests of the 12-lead ECG simulator: lead identities, rate, axis, amplitudes and rhythm."""

from __future__ import annotations

import math
import time
from dataclasses import replace

import numpy as np
import pytest
from numpy.testing import assert_allclose

from ecgstudio.paper import LEAD_NAMES
from ecgstudio.results import Signals
from ecgstudio.synth.simulate import SimulationSettings, simulate_ecg

FS = 500.0

#: Settings with every artefact and irregularity switched off.
CLEAN = {
    "noise_mv": 0.0,
    "mains_mv": 0.0,
    "baseline_wander_mv": 0.0,
    "pvc_probability": 0.0,
    "sinus_arrhythmia": 0.0,
    "st_shift_mv": 0.0,
}


def _qrs_peaks(x: np.ndarray, fs: float, threshold: float = 0.25) -> np.ndarray:
    """Sample indices of QRS complexes in one lead or several (columns).

    A small Pan-Tompkins-like detector: squared slope (summed over columns), smoothed over
    60 ms, thresholded at ``threshold`` times its maximum; one peak per supra-threshold run,
    runs closer than 250 ms merged.
    """
    x = x.reshape(len(x), -1)
    slope = np.gradient(x, axis=0) * fs
    width = max(int(0.06 * fs), 1)
    energy = np.convolve((slope**2).sum(axis=1), np.ones(width) / width, mode="same")
    above = np.concatenate([[False], energy > threshold * energy.max(), [False]])
    starts = np.flatnonzero(~above[:-1] & above[1:])
    stops = np.flatnonzero(above[:-1] & ~above[1:])
    peaks: list[int] = []
    for a, b in zip(starts, stops):
        p = a + int(np.argmax(energy[a:b]))
        if peaks and p - peaks[-1] < 0.25 * fs:
            if energy[p] > energy[peaks[-1]]:
                peaks[-1] = p
            continue
        peaks.append(p)
    return np.array(peaks)


def _rate_bpm(peaks: np.ndarray, fs: float) -> float:
    return 60.0 * fs / float(np.mean(np.diff(peaks)))


def _rr_cv(peaks: np.ndarray) -> float:
    rr = np.diff(peaks).astype(float)
    return float(rr.std() / rr.mean())


# --------------------------------------------------------------------------------------------
# Shape, identities, determinism


def test_shape_dtype_and_lead_order():
    sig = simulate_ecg(np.random.default_rng(0))
    assert isinstance(sig, Signals)
    assert sig.mv.shape == (5000, 12)
    assert sig.mv.dtype == np.float64
    assert sig.fs == FS
    assert sig.lead_names == LEAD_NAMES
    assert np.all(np.isfinite(sig.mv))

    short = simulate_ecg(np.random.default_rng(0), duration_s=2.5, fs=250.0)
    assert short.mv.shape == (625, 12)
    assert short.fs == 250.0


@pytest.mark.parametrize("seed", range(50))
def test_einthoven_and_goldberger_hold_exactly(seed):
    rng = np.random.default_rng(seed)
    if seed % 2:  # every other record with heavy artefacts, whatever the random draw
        sig = simulate_ecg(rng, noise_mv=0.08, mains_mv=0.05, baseline_wander_mv=0.3, pvc_probability=0.2)
    else:
        sig = simulate_ecg(rng)
    lead = {name: sig.lead(name) for name in LEAD_NAMES}
    tol = {"rtol": 0.0, "atol": 1e-9}
    assert_allclose(lead["III"], lead["II"] - lead["I"], **tol)
    assert_allclose(lead["aVR"], -(lead["I"] + lead["II"]) / 2.0, **tol)
    assert_allclose(lead["aVL"], lead["I"] - lead["II"] / 2.0, **tol)
    assert_allclose(lead["aVF"], lead["II"] - lead["I"] / 2.0, **tol)
    assert_allclose(lead["aVR"] + lead["aVL"] + lead["aVF"], 0.0, **tol)


def test_same_seed_same_ecg_and_different_seeds_differ():
    a = simulate_ecg(np.random.default_rng(42))
    b = simulate_ecg(np.random.default_rng(42))
    c = simulate_ecg(np.random.default_rng(43))
    np.testing.assert_array_equal(a.mv, b.mv)
    assert not np.allclose(a.mv, c.mv)

    settings = SimulationSettings(noise_mv=0.02, rhythm="af")
    d = simulate_ecg(np.random.default_rng(7), settings=settings)
    e = simulate_ecg(np.random.default_rng(7), settings=settings)
    f = simulate_ecg(np.random.default_rng(8), settings=settings)
    np.testing.assert_array_equal(d.mv, e.mv)
    assert not np.allclose(d.mv, f.mv)


def test_random_settings_give_variety():
    rates = {round(SimulationSettings.random(np.random.default_rng(s)).heart_rate_bpm) for s in range(20)}
    assert len(rates) > 10


def test_changing_the_noise_keeps_the_rhythm():
    base = SimulationSettings(heart_rate_bpm=72, sinus_arrhythmia=0.05, pvc_probability=0.1)
    clean = simulate_ecg(np.random.default_rng(3), settings=base)
    noisy = simulate_ecg(np.random.default_rng(3), settings=replace(base, noise_mv=0.02, baseline_wander_mv=0.2))
    peaks_clean, peaks_noisy = _qrs_peaks(clean.mv, FS), _qrs_peaks(noisy.mv, FS)
    assert len(peaks_clean) == len(peaks_noisy)
    assert_allclose(peaks_noisy, peaks_clean, atol=0.02 * FS)


def test_overrides_fix_single_settings_of_a_random_draw():
    drawn = SimulationSettings.random(np.random.default_rng(11))
    via_overrides = simulate_ecg(np.random.default_rng(11), heart_rate_bpm=75, axis_deg=60)
    rng = np.random.default_rng(11)
    explicit = simulate_ecg(rng, settings=replace(SimulationSettings.random(rng), heart_rate_bpm=75, axis_deg=60))
    np.testing.assert_array_equal(via_overrides.mv, explicit.mv)
    assert drawn.heart_rate_bpm != 75


# --------------------------------------------------------------------------------------------
# Physiology


@pytest.mark.parametrize("rate", [60.0, 75.0, 120.0])
def test_requested_heart_rate_is_measured_back(rate):
    sig = simulate_ecg(np.random.default_rng(int(rate)), settings=SimulationSettings(heart_rate_bpm=rate))
    peaks = _qrs_peaks(sig.lead("II"), FS)
    assert abs(_rate_bpm(peaks, FS) - rate) < 0.03 * rate


@pytest.mark.parametrize("axis", [-90.0, -60.0, -30.0, 0.0, 30.0, 60.0, 90.0, 110.0, 150.0, 180.0])
def test_axis_is_the_net_qrs_area_direction(axis):
    """With P, T and U waves off, the whole-record areas of I and aVF are the QRS areas."""
    settings = SimulationSettings(axis_deg=axis, p_amplitude_mv=0.0, t_amplitude_mv=0.0, u_wave=0.0)
    sig = simulate_ecg(np.random.default_rng(1), settings=settings)
    area_i, area_avf = sig.lead("I").sum(), sig.lead("aVF").sum()
    measured = math.degrees(math.atan2(area_avf * 2.0 / math.sqrt(3.0), area_i))
    assert abs((measured - axis + 180.0) % 360.0 - 180.0) < 1.0


@pytest.mark.parametrize("axis", [-60.0, -30.0, 0.0, 30.0, 60.0, 90.0, 110.0, 150.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_axis_is_recovered_from_qrs_windows(axis, seed):
    """A clinician's estimate on a full ECG: net QRS area in I and aVF around each beat."""
    rng = np.random.default_rng(seed)
    settings = replace(SimulationSettings.random(rng), rhythm="sinus", heart_rate_bpm=60.0, axis_deg=axis, **CLEAN)
    sig = simulate_ecg(rng, settings=settings)
    half = int(0.9 * settings.qrs_duration_ms / 1000.0 * FS)
    area_i = area_avf = 0.0
    for p in _qrs_peaks(sig.mv, FS):
        if half <= p < sig.n_samples - half:
            area_i += sig.lead("I")[p - half : p + half].sum()
            area_avf += sig.lead("aVF")[p - half : p + half].sum()
    measured = math.degrees(math.atan2(area_avf * 2.0 / math.sqrt(3.0), area_i))
    assert abs((measured - axis + 180.0) % 360.0 - 180.0) < 15.0


def test_amplitudes_are_plausible_across_random_records():
    for seed in range(200):
        rng = np.random.default_rng(seed)
        settings = SimulationSettings.random(rng)
        sig = simulate_ecg(rng, settings=settings)
        assert np.all(np.isfinite(sig.mv))
        assert np.abs(sig.mv).max() < 5.0, (seed, settings)
        clean = simulate_ecg(np.random.default_rng(seed), settings=replace(settings, f_wave_mv=0.0, **CLEAN))
        tallest_r = clean.mv.max()
        assert 0.3 < tallest_r < 3.6, (seed, settings)


def test_r_wave_progression_for_the_default_ecg():
    sig = simulate_ecg(np.random.default_rng(5), settings=SimulationSettings())
    r = sig.mv.max(axis=0)
    s = -sig.mv.min(axis=0)
    ratio = dict(zip(LEAD_NAMES, r / s))
    assert ratio["V1"] < 1.0 < ratio["V6"]
    assert ratio["V1"] < ratio["V3"] < ratio["V5"]
    r_v = [r[LEAD_NAMES.index(f"V{k}")] for k in range(1, 5)]
    assert r_v == sorted(r_v)  # R grows from V1 to V4
    assert -sig.lead("aVR").min() > sig.lead("aVR").max()  # aVR mostly negative


def test_atrial_fibrillation_is_irregular_and_sinus_regular():
    for seed in range(3):
        af = simulate_ecg(np.random.default_rng(seed), duration_s=30.0, settings=SimulationSettings(rhythm="af"))
        assert _rr_cv(_qrs_peaks(af.lead("II"), FS)) > 0.1
        for arrhythmia in (0.0, 0.03):
            sinus = simulate_ecg(
                np.random.default_rng(seed), duration_s=30.0, settings=SimulationSettings(sinus_arrhythmia=arrhythmia)
            )
            assert _rr_cv(_qrs_peaks(sinus.lead("II"), FS)) < 0.05


def test_atrial_fibrillation_has_no_p_waves_but_fibrillatory_waves():
    af = SimulationSettings(rhythm="af", f_wave_mv=0.1)
    with_p = simulate_ecg(np.random.default_rng(4), settings=replace(af, p_amplitude_mv=0.25))
    without_p = simulate_ecg(np.random.default_rng(4), settings=replace(af, p_amplitude_mv=0.0))
    np.testing.assert_array_equal(with_p.mv, without_p.mv)

    flat = simulate_ecg(np.random.default_rng(4), settings=replace(af, f_wave_mv=0.0))
    f_waves = with_p.mv - flat.mv
    assert 0.05 < 2.0 * f_waves.std(axis=0).max() < 0.15
    spectrum = np.abs(np.fft.rfft(f_waves, axis=0)).sum(axis=1)
    freqs = np.fft.rfftfreq(len(f_waves), 1.0 / FS)
    assert 4.0 <= freqs[np.argmax(spectrum)] <= 9.0


def test_premature_beats_are_early_and_followed_by_a_pause():
    settings = SimulationSettings(heart_rate_bpm=60.0, pvc_probability=0.3)
    sig = simulate_ecg(np.random.default_rng(2), duration_s=60.0, settings=settings)
    rr = np.diff(_qrs_peaks(sig.mv, FS, threshold=0.05)) / FS
    assert np.any(rr < 0.75) and np.any(rr > 1.25)
    short = np.flatnonzero(rr[:-1] < 0.75)
    assert_allclose(rr[short] + rr[short + 1], 2.0, atol=0.05)  # full compensatory pause


def test_artefacts_have_the_requested_size_and_band():
    """The artefacts are the difference between a record with and one without them."""
    base = SimulationSettings(heart_rate_bpm=80.0)
    clean = simulate_ecg(np.random.default_rng(9), duration_s=30.0, settings=base)

    wandering = simulate_ecg(np.random.default_rng(9), duration_s=30.0, settings=replace(base, baseline_wander_mv=0.3))
    wander = wandering.mv - clean.mv
    assert 0.29 < np.abs(wander).max() <= 0.3 + 1e-9
    spectrum = np.abs(np.fft.rfft(wander, axis=0)) ** 2
    freqs = np.fft.rfftfreq(len(wander), 1.0 / FS)
    assert spectrum[freqs > 0.5].sum() < 0.01 * spectrum.sum()

    noisy = simulate_ecg(np.random.default_rng(9), duration_s=30.0, settings=replace(base, noise_mv=0.03))
    primary = [LEAD_NAMES.index(name) for name in ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")]
    emg = (noisy.mv - clean.mv)[:, primary]
    assert math.sqrt(np.mean(emg**2)) == pytest.approx(0.03, rel=1e-6)
    spectrum = np.abs(np.fft.rfft(emg, axis=0)) ** 2
    assert spectrum[freqs > 10.0].sum() > 0.95 * spectrum.sum()  # broadband muscle noise, no drift

    hum = simulate_ecg(np.random.default_rng(9), duration_s=30.0, settings=replace(base, mains_mv=0.02, mains_hz=60.0))
    mains = hum.mv - clean.mv
    assert np.abs(mains).max() == pytest.approx(0.02, rel=1e-6)
    spectrum = np.abs(np.fft.rfft(mains, axis=0)).sum(axis=1)
    assert freqs[np.argmax(spectrum)] == pytest.approx(60.0, abs=0.1)


def test_st_elevation_has_reciprocal_depression():
    settings = SimulationSettings(st_shift_mv=0.25, st_direction=(0.0, 1.0, 0.0), heart_rate_bpm=60.0)
    sig = simulate_ecg(np.random.default_rng(0), settings=settings)
    base = simulate_ecg(np.random.default_rng(0), settings=SimulationSettings(heart_rate_bpm=60.0))
    diff = sig.mv - base.mv
    peak = dict(zip(LEAD_NAMES, diff[np.argmax(np.abs(diff).max(axis=1))]))
    assert peak["aVF"] > 0.2 and peak["III"] > 0.1 and peak["aVL"] < -0.05
    assert np.abs(diff).max() == pytest.approx(0.25, rel=0.02)


# --------------------------------------------------------------------------------------------
# Settings and speed


def test_invalid_settings_are_rejected():
    with pytest.raises(ValueError, match="heart_rate_bpm"):
        SimulationSettings(heart_rate_bpm=400.0)
    with pytest.raises(ValueError, match="rhythm"):
        SimulationSettings(rhythm="vf")
    with pytest.raises(ValueError, match="conduction"):
        SimulationSettings(conduction="wpw")
    with pytest.raises(ValueError, match="st_direction"):
        SimulationSettings(st_direction=(0.0, 0.0, 0.0))
    with pytest.raises(TypeError, match="heart_rate"):
        simulate_ecg(np.random.default_rng(0), heart_rate=70)
    with pytest.raises(ValueError, match="fs"):
        simulate_ecg(np.random.default_rng(0), fs=50.0)
    with pytest.raises(ValueError, match="duration_s"):
        simulate_ecg(np.random.default_rng(0), duration_s=0.0)


def test_random_settings_are_valid_and_mostly_normal():
    draws = [SimulationSettings.random(np.random.default_rng(s)) for s in range(500)]
    rates = np.array([d.heart_rate_bpm for d in draws])
    axes = np.array([d.axis_deg for d in draws])
    assert rates.min() >= 40.0 and rates.max() <= 180.0
    assert np.mean((rates >= 55.0) & (rates <= 100.0)) > 0.6
    assert np.mean((axes >= -30.0) & (axes <= 110.0)) > 0.8
    assert {d.rhythm for d in draws} == {"sinus", "af"}
    assert {d.conduction for d in draws} == {"normal", "rbbb", "lbbb"}
    assert any(d.t_inverted for d in draws) and any(d.st_shift_mv for d in draws)


def test_simulation_is_fast():
    rng = np.random.default_rng(0)
    simulate_ecg(rng)
    best = math.inf
    for _ in range(5):
        start = time.perf_counter()
        simulate_ecg(rng, noise_mv=0.02, baseline_wander_mv=0.2, mains_mv=0.02)
        best = min(best, time.perf_counter() - start)
    assert best < 0.02
