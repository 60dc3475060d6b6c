"""Simulated 12-lead ECGs from a moving heart dipole.

The heart is modelled as one electric dipole whose 3-D vector moves through each beat.  Every
wave (P, the Q, R and S parts of the QRS complex, ST, T, U) is a sum of Gaussian-shaped bumps
in time, each with its own direction and magnitude, so a wave looks different in every lead
just as it does on a real ECG, and all leads stay consistent with one another.

Body axes are ``x`` towards the patient's left, ``y`` towards the feet and ``z`` forwards
(anterior).  Limb leads see the frontal (``x``, ``y``) plane: lead I at 0 degrees, II at 60;
III, aVR, aVL and aVF are then derived from I and II exactly (Einthoven, Goldberger), so
``III == II - I`` holds to floating point.  The precordial leads V1 to V6 look from the right
parasternal to the left mid-axillary position in the horizontal plane, with larger gains
because the electrodes are close to the heart; a normal dipole loop gives the usual R-wave
progression (V1 small r and deep S, V6 tall R).

Baseline wander, muscle (EMG) noise and mains interference are simulated at the nine
electrodes (RA, LA, LL, V1 to V6) and turned into leads the way an electrocardiograph does
(I = LA - RA, II = LL - RA, Vi against Wilson's central terminal), so they respect the same
lead identities as the heart signal.

Use :func:`simulate_ecg` with a :class:`SimulationSettings` to fix the physiology, or with no
settings to draw everything at random from realistic ranges
(:meth:`SimulationSettings.random`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from ..paper import LEAD_NAMES
from ..results import Signals

__all__ = ["CONDUCTIONS", "RHYTHMS", "SETTING_RANGES", "SimulationSettings", "simulate_ecg"]

RHYTHMS: tuple[str, ...] = ("sinus", "af")
CONDUCTIONS: tuple[str, ...] = ("normal", "rbbb", "lbbb")

#: Accepted (inclusive) range of each numeric setting.
SETTING_RANGES: dict[str, tuple[float, float]] = {
    "heart_rate_bpm": (30.0, 220.0),
    "sinus_arrhythmia": (0.0, 0.15),
    "af_rr_cv": (0.0, 0.5),
    "f_wave_mv": (0.0, 0.3),
    "pvc_probability": (0.0, 0.3),
    "axis_deg": (-180.0, 180.0),
    "horizontal_rotation_deg": (-45.0, 45.0),
    "qrs_duration_ms": (60.0, 200.0),
    "r_amplitude_mv": (0.1, 3.0),
    "septal_q": (0.0, 0.4),
    "terminal_s": (0.0, 1.0),
    "p_amplitude_mv": (0.0, 0.4),
    "p_duration_ms": (60.0, 150.0),
    "p_axis_deg": (-30.0, 90.0),
    "pr_interval_ms": (90.0, 350.0),
    "t_amplitude_mv": (0.0, 1.5),
    "qtc_ms": (320.0, 560.0),
    "u_wave": (0.0, 0.3),
    "st_shift_mv": (-0.6, 0.6),
    "baseline_wander_mv": (0.0, 0.6),
    "respiration_hz": (0.1, 0.4),
    "noise_mv": (0.0, 0.2),
    "mains_hz": (45.0, 65.0),
    "mains_mv": (0.0, 0.2),
}

#: Largest QRS and premature-beat deflections in any lead, in mV.
_MAX_QRS_MV = 3.0
_MAX_PVC_MV = 3.5

#: Width of the T wave's descending half as a fraction of the QT interval.
_T_SIGMA_RIGHT = 0.07

# Precordial electrodes: horizontal angle (degrees from the patient's left towards anterior),
# elevation (degrees, positive towards the feet) and gain relative to the limb leads.
_PRECORDIAL_GEOMETRY = (
    (115.0, -8.0, 1.2),  # V1, right parasternal
    (95.0, -8.0, 1.8),  # V2
    (75.0, -3.0, 2.0),  # V3
    (55.0, 4.0, 2.0),  # V4, mid-clavicular
    (30.0, 8.0, 1.9),  # V5
    (0.0, 10.0, 1.2),  # V6, mid-axillary
)


@dataclass(frozen=True)
class SimulationSettings:
    """The physiology and recording conditions of one simulated ECG.

    The defaults describe a clean normal sinus ECG.  Ranges in brackets are what the
    constructor accepts; :meth:`random` draws from narrower, realistic distributions
    (given after "random:").

    Attributes
    ----------
    heart_rate_bpm : float
        Mean ventricular rate [30, 220]; default 70.  Random: mostly 55-100, overall 40-180
        (60-150 in atrial fibrillation).
    rhythm : {"sinus", "af"}
        Sinus rhythm with P waves, or atrial fibrillation (no P waves, fibrillatory baseline,
        irregularly irregular RR).  Random: AF in about 12 % of records.
    sinus_arrhythmia : float
        Depth of the respiratory modulation of the sinus RR interval, as a fraction of the
        mean RR [0, 0.15]; default 0 (perfectly regular).  Random: 0-0.06.
    af_rr_cv : float
        Coefficient of variation of the RR intervals in atrial fibrillation [0, 0.5];
        default 0.2.  Random: 0.12-0.3.
    f_wave_mv : float
        Amplitude (about twice the RMS) of the fibrillatory waves in the lead where they are
        largest, usually V1 [0, 0.3]; AF only; default 0.06.  Random: 0.02-0.15.
    pvc_probability : float
        Chance that a beat is followed by a premature ventricular contraction (wide QRS,
        discordant T, compensatory pause) [0, 0.3]; default 0.  Random: 0 in 80 % of
        records, else 0.03-0.15.
    axis_deg : float
        Frontal-plane QRS axis: the direction of the net QRS area, in degrees, 0 towards
        lead I, +90 towards aVF [-180, 180]; default 60.  Random: -30 to +110 mostly,
        extreme (-90 to -30, +110 to +180) in about 10 % of records; -60 to +75 with a
        left bundle-branch block.
    horizontal_rotation_deg : float
        Rotation of the ventricular loop about the long body axis; positive moves the
        precordial transition towards V1 (counter-clockwise rotation) [-45, 45]; default 0.
        Random: about N(0, 10).
    conduction : {"normal", "rbbb", "lbbb"}
        Ventricular conduction: normal, right or left bundle-branch block (wide QRS with the
        typical morphology and secondary ST-T changes).  Random: 8 % each block.
    qrs_duration_ms : float
        QRS duration [60, 200]; default 90.  Random: 75-110 normal, 125-170 with a block.
    r_amplitude_mv : float
        Height of the tallest R wave among the 12 leads [0.1, 3]; default 1.5 (a QRS is
        scaled down where a deeper S wave would otherwise exceed 3 mV).  Random: 0.6-2.5,
        0.3-0.6 (low voltage) in 5 % of records.
    septal_q : float
        Septal (initial right-anterior) QRS force relative to the main R force [0, 0.4];
        default 0.12.  Random: 0.05-0.22.
    terminal_s : float
        Terminal (superior-posterior) QRS force relative to the main R force [0, 1];
        default 0.2.  Random: 0.05-0.5.
    p_amplitude_mv : float
        Largest P-wave deflection among the 12 leads [0, 0.4]; default 0.15.  Random:
        0.07-0.25.
    p_duration_ms : float
        P-wave duration [60, 150]; default 100.  Random: 80-120.
    p_axis_deg : float
        Frontal P axis [-30, 90]; default 55.  Random: 20-80.
    pr_interval_ms : float
        PR interval at 60 bpm [90, 350]; default 160.  It shortens with rate as RR**0.25.
        Random: 120-220, occasionally up to 260 (first-degree block).
    t_amplitude_mv : float
        Largest T-wave deflection among the 12 leads [0, 1.5]; default 0.5.  Random:
        0.15-0.5 of ``r_amplitude_mv``.
    t_inverted : bool
        Reverse the T-wave vector (T inverted where the QRS is upright, as in ischaemia or
        strain); default False.  Random: 8 % of records.
    qtc_ms : float
        Bazett-corrected QT [320, 560]; QT = QTc * sqrt(RR) plus any QRS widening beyond
        100 ms; default 410.  Random: 370-470, occasionally up to 520.
    u_wave : float
        U-wave amplitude relative to the T wave [0, 0.3]; default 0.05.  Random: 0-0.12.
    st_shift_mv : float
        Largest ST deviation among the 12 leads, along ``st_direction`` [-0.6, 0.6];
        default 0.  Reciprocal leads show the opposite shift.  Random: 0 in 88 % of
        records, else 0.08-0.3.
    st_direction : tuple of 3 floats
        Direction (x left, y feet, z anterior; normalized internally) of the ST injury
        vector; default (0, 1, 0) (inferior).  Random: inferior, anterior, lateral,
        subendocardial (towards aVR) or diffuse pericarditic, with scatter.
    baseline_wander_mv : float
        Largest baseline wander in any lead [0, 0.6]; default 0.  Random: 0-0.3.
    respiration_hz : float
        Breathing rate that drives the wander and the sinus arrhythmia [0.1, 0.4]; it
        drifts by up to 0.06 Hz, so the wander stays below 0.5 Hz; default 0.25.  Random: 0.15-0.4.
    noise_mv : float
        RMS of muscle (EMG-like, broadband, bursty) noise averaged over I, II and V1-V6
        [0, 0.2]; default 0.  Random: 0 in 35 % of records, else 0.004-0.05.
    mains_hz : float
        Mains frequency [45, 65]; default 50.  Random: 50 or 60.  Ignored where it is above
        the Nyquist frequency (an electrocardiograph filters it out).
    mains_mv : float
        Largest mains amplitude in any lead [0, 0.2]; default 0.  Random: 0 in 80 % of
        records, else 0.005-0.04.
    """

    heart_rate_bpm: float = 70.0
    rhythm: str = "sinus"
    sinus_arrhythmia: float = 0.0
    af_rr_cv: float = 0.2
    f_wave_mv: float = 0.06
    pvc_probability: float = 0.0
    axis_deg: float = 60.0
    horizontal_rotation_deg: float = 0.0
    conduction: str = "normal"
    qrs_duration_ms: float = 90.0
    r_amplitude_mv: float = 1.5
    septal_q: float = 0.12
    terminal_s: float = 0.2
    p_amplitude_mv: float = 0.15
    p_duration_ms: float = 100.0
    p_axis_deg: float = 55.0
    pr_interval_ms: float = 160.0
    t_amplitude_mv: float = 0.5
    t_inverted: bool = False
    qtc_ms: float = 410.0
    u_wave: float = 0.05
    st_shift_mv: float = 0.0
    st_direction: tuple[float, float, float] = (0.0, 1.0, 0.0)
    baseline_wander_mv: float = 0.0
    respiration_hz: float = 0.25
    noise_mv: float = 0.0
    mains_hz: float = 50.0
    mains_mv: float = 0.0

    def __post_init__(self) -> None:
        for name, (lo, hi) in SETTING_RANGES.items():
            value = getattr(self, name)
            if not lo <= value <= hi:
                raise ValueError(f"{name}={value!r} is outside the accepted range [{lo}, {hi}]")
        if self.rhythm not in RHYTHMS:
            raise ValueError(f"rhythm={self.rhythm!r} is unknown; use one of {', '.join(RHYTHMS)}")
        if self.conduction not in CONDUCTIONS:
            raise ValueError(f"conduction={self.conduction!r} is unknown; use one of {', '.join(CONDUCTIONS)}")
        direction = np.asarray(self.st_direction, dtype=float)
        if direction.shape != (3,) or not np.all(np.isfinite(direction)) or not np.any(direction):
            raise ValueError(f"st_direction={self.st_direction!r} must be three finite numbers, not all zero")

    @classmethod
    def random(cls, rng: np.random.Generator) -> SimulationSettings:
        """Draw settings from realistic distributions (see the class docstring).

        To fix some settings and draw the rest, replace them afterwards
        (``dataclasses.replace``) or pass them as overrides to :func:`simulate_ecg`.

        Parameters
        ----------
        rng : numpy.random.Generator
            Source of randomness.

        Returns
        -------
        SimulationSettings
        """

        def chance(p: float) -> bool:
            return bool(rng.random() < p)

        def uniform(lo: float, hi: float) -> float:
            return float(rng.uniform(lo, hi))

        def normal(mean: float, sd: float, lo: float, hi: float) -> float:
            return float(np.clip(rng.normal(mean, sd), lo, hi))

        def log_uniform(lo: float, hi: float) -> float:
            return float(lo * (hi / lo) ** rng.random())

        af = chance(0.12)
        pick = rng.random()
        rates = uniform(55, 100), uniform(40, 55), uniform(100, 180)
        heart_rate = rates[0] if pick < 0.76 else rates[1] if pick < 0.88 else rates[2]
        if af:
            heart_rate = min(max(heart_rate, 60.0), 150.0)

        pick = rng.random()
        conduction = "rbbb" if pick < 0.08 else "lbbb" if pick < 0.16 else "normal"
        qrs_ms = uniform(75, 110) if conduction == "normal" else uniform(125, 170)
        extreme, left = chance(0.1), chance(0.6)
        extreme_axis = uniform(-90, -30) if left else uniform(110, 180)
        axis = extreme_axis if extreme else normal(45.0, 30.0, -30.0, 110.0)
        if conduction == "lbbb":  # left bundle-branch block comes with a normal or left axis
            axis = float(np.clip(axis, -60.0, 75.0))

        low_voltage = chance(0.05)
        r_amp = uniform(0.3, 0.6) if low_voltage else log_uniform(0.6, 2.5)
        t_amp = uniform(0.15, 0.5) * r_amp

        long_pr = chance(0.05)
        pr = uniform(200, 260) if long_pr else normal(155.0, 18.0, 120.0, 210.0)
        long_qt = chance(0.05)
        qtc = uniform(470, 520) if long_qt else normal(415.0, 20.0, 370.0, 470.0)

        has_st = chance(0.12)
        territories = (
            (-0.15, 1.0, -0.1),  # inferior
            (0.25, -0.1, 1.0),  # anterior
            (1.0, -0.5, 0.1),  # lateral
            (-0.8, -0.45, -0.2),  # subendocardial ischaemia: towards aVR
            (0.5, 0.7, 0.5),  # pericarditis: along the mean vector
        )
        territory = np.array(territories[int(rng.integers(len(territories)))])
        st_direction = territory / np.linalg.norm(territory) + 0.2 * rng.standard_normal(3)
        st_shift = uniform(0.08, 0.3)

        strong_wander = chance(0.6)
        wander = uniform(0.0, 0.3) if strong_wander else uniform(0.0, 0.04)
        has_emg = chance(0.65)
        emg = log_uniform(0.004, 0.05)
        has_mains, us_mains = chance(0.2), chance(0.4)
        mains_mv = uniform(0.005, 0.04)
        has_pvc = chance(0.2)
        pvc_p = uniform(0.03, 0.15)
        return cls(
            heart_rate_bpm=float(heart_rate),
            rhythm="af" if af else "sinus",
            sinus_arrhythmia=uniform(0.0, 0.06),
            af_rr_cv=uniform(0.12, 0.3),
            f_wave_mv=uniform(0.02, 0.15),
            pvc_probability=pvc_p if has_pvc else 0.0,
            axis_deg=float(axis),
            horizontal_rotation_deg=normal(0.0, 10.0, -30.0, 30.0),
            conduction=conduction,
            qrs_duration_ms=qrs_ms,
            r_amplitude_mv=r_amp,
            septal_q=uniform(0.05, 0.22),
            terminal_s=uniform(0.05, 0.5),
            p_amplitude_mv=uniform(0.07, 0.25),
            p_duration_ms=uniform(80, 120),
            p_axis_deg=normal(55.0, 15.0, 20.0, 80.0),
            pr_interval_ms=pr,
            t_amplitude_mv=t_amp,
            t_inverted=chance(0.08),
            qtc_ms=qtc,
            u_wave=uniform(0.0, 0.12),
            st_shift_mv=st_shift if has_st else 0.0,
            st_direction=(float(st_direction[0]), float(st_direction[1]), float(st_direction[2])),
            baseline_wander_mv=wander,
            respiration_hz=uniform(0.15, 0.4),
            noise_mv=emg if has_emg else 0.0,
            mains_hz=60.0 if us_mains else 50.0,
            mains_mv=mains_mv if has_mains else 0.0,
        )


def simulate_ecg(
    rng: np.random.Generator,
    *,
    duration_s: float = 10.0,
    fs: float = 500.0,
    settings: SimulationSettings | None = None,
    **overrides: Any,
) -> Signals:
    """Simulate a 12-lead ECG.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of all randomness: the settings when ``settings`` is None, then beat timing,
        premature beats, fibrillatory waves and noise.  The same seed gives the same ECG.
    duration_s : float, optional
        Record length in seconds (> 0); default 10.
    fs : float, optional
        Sampling frequency in Hz (>= 100); default 500.
    settings : SimulationSettings, optional
        The physiology and recording conditions.  None draws them at random with
        :meth:`SimulationSettings.random`, so repeated calls give endless variety.
    **overrides
        Fields of :class:`SimulationSettings` to fix, applied on top of ``settings`` (or of
        the random draw), e.g. ``heart_rate_bpm=75, axis_deg=60``.

    Returns
    -------
    Signals
        ``mv`` of shape ``(round(duration_s * fs), 12)``, float64, in mV, leads in
        :data:`ecgstudio.paper.LEAD_NAMES` order.

    Raises
    ------
    ValueError
        If ``duration_s`` or ``fs`` is out of range or a setting is invalid.
    TypeError
        If an override names no setting.
    """
    if not duration_s > 0:
        raise ValueError(f"duration_s must be positive, got {duration_s}")
    if not fs >= 100:
        raise ValueError(f"fs must be at least 100 Hz to resolve the QRS, got {fs}")
    known = {f.name for f in fields(SimulationSettings)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"unknown setting(s) {', '.join(unknown)}; valid names are {', '.join(sorted(known))}")
    if settings is None:
        settings = SimulationSettings.random(rng)
    if overrides:
        settings = replace(settings, **overrides)
    n = int(round(duration_s * fs))
    if n < 1:
        raise ValueError(f"duration_s * fs must give at least one sample, got {duration_s} * {fs}")
    # Independent streams, so that e.g. a noise setting does not change the rhythm.
    seeds = rng.integers(0, 2**63 - 1, size=4)
    rng_rhythm, rng_pvc, rng_atrial, rng_noise = (np.random.default_rng(int(s)) for s in seeds)
    t = np.arange(n) / fs

    heart = _Heart(settings, rng_pvc)
    breathing = _breathing_phase(settings.respiration_hz, rng_rhythm)
    beats = _schedule_beats(settings, rng_rhythm, breathing, n / fs)
    dipole = _render(heart.bumps_for(beats), n, fs)
    if settings.rhythm == "af" and settings.f_wave_mv > 0:
        dipole += _fibrillatory_waves(settings, rng_atrial, n, fs)
    primary = dipole @ _PRIMARY_LEADS  # (n, 8): I, II, V1..V6
    primary += _electrode_noise(settings, rng_noise, t, fs, breathing)
    return Signals(mv=_derive_leads(primary), fs=float(fs), lead_names=LEAD_NAMES)


# --------------------------------------------------------------------------------------------
# Geometry


def _direction(frontal_deg: float, anterior_deg: float) -> np.ndarray:
    """Unit vector at a frontal angle (0 = left, 90 = feet) tilted anterior by ``anterior_deg``."""
    f, a = math.radians(frontal_deg), math.radians(anterior_deg)
    return np.array([math.cos(a) * math.cos(f), math.cos(a) * math.sin(f), math.sin(a)])


def _rot_z(deg: float) -> np.ndarray:
    """Rotation in the frontal plane (about the antero-posterior axis), towards the feet."""
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _rot_y(deg: float) -> np.ndarray:
    """Rotation in the horizontal plane (about the long body axis), from left towards anterior."""
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]])


def _primary_lead_matrix() -> np.ndarray:
    """Lead vectors of I, II and V1..V6 as the columns of a (3, 8) matrix."""
    cols = [np.array([1.0, 0.0, 0.0]), np.array([0.5, math.sqrt(3.0) / 2.0, 0.0])]
    for horizontal, elevation, gain in _PRECORDIAL_GEOMETRY:
        h, e = math.radians(horizontal), math.radians(elevation)
        cols.append(gain * np.array([math.cos(e) * math.cos(h), math.sin(e), math.cos(e) * math.sin(h)]))
    return np.stack(cols, axis=1)


def _derive_leads(primary: np.ndarray) -> np.ndarray:
    """From columns (I, II, V1..V6) to the 12 leads in LEAD_NAMES order (Einthoven, Goldberger)."""
    lead_i, lead_ii = primary[..., 0], primary[..., 1]
    out = np.empty(primary.shape[:-1] + (12,), dtype=np.float64)
    out[..., 0] = lead_i
    out[..., 1] = lead_ii
    out[..., 2] = lead_ii - lead_i
    out[..., 3] = -(lead_i + lead_ii) / 2.0
    out[..., 4] = lead_i - lead_ii / 2.0
    out[..., 5] = lead_ii - lead_i / 2.0
    out[..., 6:] = primary[..., 2:]
    return out


_PRIMARY_LEADS = _primary_lead_matrix()
_ALL_LEADS = _derive_leads(_PRIMARY_LEADS)  # (3, 12): lead vectors of all 12 leads


# --------------------------------------------------------------------------------------------
# Bumps: the building block of every wave


@dataclass
class _Bumps:
    """Gaussian-shaped bumps: centre (s), left/right widths (s), exponent, 3-D amplitude (mV)."""

    center: np.ndarray
    sigma_left: np.ndarray
    sigma_right: np.ndarray
    power: np.ndarray
    amp: np.ndarray  # (k, 3)

    @classmethod
    def from_rows(cls, rows: list[tuple[float, float, float, float, np.ndarray]]) -> _Bumps:
        if not rows:
            return cls(*(np.zeros(0) for _ in range(4)), np.zeros((0, 3)))
        c, sl, sr, p, a = zip(*rows)
        return cls(np.array(c), np.array(sl), np.array(sr), np.array(p), np.array(a, dtype=float))

    @staticmethod
    def concat(parts: list[_Bumps]) -> _Bumps:
        return _Bumps(
            np.concatenate([b.center for b in parts]),
            np.concatenate([b.sigma_left for b in parts]),
            np.concatenate([b.sigma_right for b in parts]),
            np.concatenate([b.power for b in parts]),
            np.concatenate([b.amp for b in parts]),
        )

    def shifted(self, dt: float, amp_scale: float = 1.0, time_scale: float = 1.0) -> _Bumps:
        """A copy moved by ``dt`` seconds, its timing stretched about 0 and amplitudes scaled."""
        return _Bumps(
            self.center * time_scale + dt,
            self.sigma_left * time_scale,
            self.sigma_right * time_scale,
            self.power,
            self.amp * amp_scale,
        )

    def area(self) -> np.ndarray:
        """Time integral of the dipole (mV s), exact for Gaussian bumps."""
        width = (self.sigma_left + self.sigma_right) / 2.0 * math.sqrt(2.0 * math.pi)
        return (self.amp * width[:, None]).sum(axis=0)

    def rotated(self, matrix: np.ndarray) -> _Bumps:
        return replace(self, amp=self.amp @ matrix.T)


def _render(bumps: _Bumps, n: int, fs: float, t0: float = 0.0) -> np.ndarray:
    """Sum the bumps on the sample grid ``t0 + arange(n) / fs``; returns (n, 3) in mV."""
    out = np.zeros((n, 3))
    if len(bumps.center) == 0:
        return out
    reach = 5.0
    start = np.ceil((bumps.center - reach * bumps.sigma_left - t0) * fs).astype(np.int64)
    stop = np.floor((bumps.center + reach * bumps.sigma_right - t0) * fs).astype(np.int64)
    start = np.clip(start, 0, n)
    stop = np.clip(stop + 1, 0, n)
    lengths = np.maximum(stop - start, 0)
    total = int(lengths.sum())
    if total == 0:
        return out
    which = np.repeat(np.arange(len(lengths)), lengths)
    offsets = np.cumsum(lengths) - lengths
    idx = np.arange(total) - np.repeat(offsets, lengths) + np.repeat(start, lengths)
    dt = t0 + idx / fs - bumps.center[which]
    sigma = np.where(dt < 0.0, bumps.sigma_left[which], bumps.sigma_right[which])
    u = np.abs(dt / sigma)
    power = bumps.power[which]
    g = np.exp(-0.5 * np.where(power == 2.0, u * u, u**power))
    for axis in range(3):
        out[:, axis] = np.bincount(idx, weights=g * bumps.amp[which, axis], minlength=n)
    return out


def _lead_extremes(bumps: _Bumps) -> tuple[float, float]:
    """Largest positive value and largest magnitude over the 12 leads of a one-beat wave."""
    if len(bumps.center) == 0:
        return 0.0, 0.0
    fs = 2000.0
    t0 = float(np.min(bumps.center - 5.0 * bumps.sigma_left))
    t1 = float(np.max(bumps.center + 5.0 * bumps.sigma_right))
    leads = _render(bumps, int((t1 - t0) * fs) + 2, fs, t0) @ _ALL_LEADS
    return float(max(leads.max(), 0.0)), float(np.abs(leads).max())


# --------------------------------------------------------------------------------------------
# The heart: wave templates for one record


# QRS templates: (time, width as fractions of the QRS duration, relative magnitude,
# frontal angle, anterior angle); the frontal angles assume a 60 degree axis before the
# whole complex is turned to the requested axis.
def _qrs_rows(s: SimulationSettings) -> list[tuple[float, float, float, float, float]]:
    if s.conduction == "rbbb":
        return [
            (0.08, 0.040, s.septal_q, 200.0, 40.0),  # septum, left to right
            (0.20, 0.055, 0.45, 45.0, 25.0),  # early left-ventricular free wall
            (0.33, 0.060, 1.0, 55.0, -20.0),  # main left-ventricular force
            (0.50, 0.070, 0.5 * s.terminal_s, 250.0, -35.0),
            (0.75, 0.120, 0.7, 195.0, 40.0),  # late, slow right-ventricular activation
        ]
    if s.conduction == "lbbb":
        return [
            (0.15, 0.070, 0.25, 20.0, 25.0),  # septum, right to left
            (0.40, 0.130, 1.0, 40.0, -45.0),
            (0.70, 0.120, 0.85, 20.0, -60.0),  # late left-ventricular: notched, broad R
        ]
    return [
        (0.13, 0.055, s.septal_q, 200.0, 45.0),  # septum, left to right and anterior
        (0.30, 0.075, 0.5, 40.0, 30.0),  # apex and anterior free wall
        (0.47, 0.085, 1.0, 60.0, -15.0),  # main left-ventricular force
        (0.67, 0.090, s.terminal_s, 250.0, -55.0),  # base, superior and posterior
    ]


class _Heart:
    """The wave templates of one record, in body coordinates and mV."""

    def __init__(self, s: SimulationSettings, rng: np.random.Generator) -> None:
        self.s = s
        qrs_s = s.qrs_duration_ms / 1000.0
        self.qrs_s = qrs_s

        # QRS, turned to the requested horizontal rotation and frontal axis.
        rows = _qrs_rows(s)
        qrs = _Bumps.from_rows(
            [(t * qrs_s, w * qrs_s, w * qrs_s, 2.0, m * _direction(f, a)) for t, w, m, f, a in rows]
        ).rotated(_rot_y(s.horizontal_rotation_deg))
        net = qrs.area()
        turn = s.axis_deg - math.degrees(math.atan2(net[1], net[0]))
        qrs = qrs.rotated(_rot_z(turn))
        max_pos, max_abs = _lead_extremes(qrs)
        scale = min(s.r_amplitude_mv / max_pos if max_pos > 0 else math.inf, _MAX_QRS_MV / max_abs)
        self.qrs = qrs.shifted(0.0, scale)
        self.qrs_max_abs = max_abs * scale

        # T (relative to a QT of 1 s; stretched per beat) and U.  The T vector follows the
        # QRS axis only partly in normal conduction, fully (secondary changes) with a block.
        if s.conduction == "rbbb":
            t_dir, t_turn = _direction(20.0, -30.0), turn
        elif s.conduction == "lbbb":
            t_dir, t_turn = _direction(200.0, 40.0), turn
        else:
            t_dir, t_turn = _direction(60.0, 30.0), 0.6 * turn
        t_dir = _rot_z(t_turn) @ _rot_y(s.horizontal_rotation_deg) @ t_dir
        peak = _lead_extremes(_Bumps.from_rows([(0.0, 0.1, 0.1, 2.0, t_dir)]))[1]
        t_vec = (-1.0 if s.t_inverted else 1.0) * s.t_amplitude_mv / peak * t_dir
        u_vec = s.u_wave * (0.6 * t_vec + 0.4 * np.linalg.norm(t_vec) * _direction(60.0, 50.0))
        sigma_r = _T_SIGMA_RIGHT
        self.t_wave = _Bumps.from_rows(
            [
                (1.0 - 2.3 * sigma_r, 1.5 * sigma_r, sigma_r, 2.0, t_vec),  # ends at QT
                (1.17, 0.09, 0.11, 2.0, u_vec),  # U wave, mostly anterior
            ]
        )

        # ST injury vector: a flat-topped bump from the J point into the T upstroke.
        st_dir = np.asarray(s.st_direction, dtype=float)
        st_dir = st_dir / np.linalg.norm(st_dir)
        st_peak = float(np.abs(st_dir @ _ALL_LEADS).max())
        self.st_vec = s.st_shift_mv / st_peak * st_dir

        # P wave: right then left atrium.
        p_s = s.p_duration_ms / 1000.0
        p_rows = [
            (0.38 * p_s, 0.15 * p_s, 0.15 * p_s, 2.0, _direction(s.p_axis_deg + 20.0, 35.0)),
            (0.62 * p_s, 0.15 * p_s, 0.15 * p_s, 2.0, 0.9 * _direction(s.p_axis_deg - 15.0, -30.0)),
        ]
        p = _Bumps.from_rows(p_rows)
        p_peak = _lead_extremes(p)[1]
        self.p_wave = p.shifted(0.0, s.p_amplitude_mv / p_peak if p_peak > 0 else 0.0)

        # Premature ventricular beat from one ectopic focus (always drawn, for determinism).
        focus = _direction(rng.uniform(-180.0, 180.0), rng.uniform(-60.0, 60.0))
        bend_axis = np.cross(focus, rng.standard_normal(3))
        bend_axis /= np.linalg.norm(bend_axis)
        second = _rotate_about(focus, bend_axis, rng.uniform(50.0, 100.0))
        self.pvc_qrs_s = rng.uniform(0.13, 0.18)
        pvc_size = rng.uniform(1.2, 1.8)
        pvc_t_ratio = rng.uniform(0.3, 0.5)
        d = self.pvc_qrs_s
        pvc = _Bumps.from_rows(
            [
                (0.30 * d, 0.15 * d, 0.15 * d, 2.0, focus),
                (0.62 * d, 0.13 * d, 0.13 * d, 2.0, 0.55 * second),
            ]
        )
        pvc_abs = _lead_extremes(pvc)[1]
        pvc_target = min(pvc_size * self.qrs_max_abs, _MAX_PVC_MV)
        self.pvc = pvc.shifted(0.0, pvc_target / pvc_abs)
        pvc_t_dir = -(focus + 0.5 * second)
        pvc_t_dir /= np.linalg.norm(pvc_t_dir)
        pvc_t_peak = float(np.abs(pvc_t_dir @ _ALL_LEADS).max())
        self.pvc_t_vec = pvc_t_ratio * pvc_target / pvc_t_peak * pvc_t_dir

    def bumps_for(self, beats: list[tuple[str, float, float]]) -> _Bumps:
        """All bumps of a beat schedule: (kind, time in s, effective RR in s) per event."""
        s = self.s
        parts = []
        for kind, t, rr in beats:
            if kind == "P":
                parts.append(self.p_wave.shifted(t))
                continue
            qt = s.qtc_ms / 1000.0 * math.sqrt(min(max(rr, 0.25), 2.0))
            if kind == "N":
                qt += max(self.qrs_s - 0.1, 0.0)
                parts.append(self.qrs.shifted(t))
                parts.append(self.t_wave.shifted(t, 1.0, qt))
                if s.st_shift_mv != 0.0:
                    t_peak = t + (1.0 - 2.3 * _T_SIGMA_RIGHT) * qt
                    j = t + self.qrs_s
                    half = max((t_peak - j) / 2.0, 0.02)
                    parts.append(_Bumps.from_rows([(j + half, 1.1 * half, 1.4 * half, 6.0, self.st_vec)]))
            else:  # premature ventricular beat
                qt += self.pvc_qrs_s - 0.08
                parts.append(self.pvc.shifted(t))
                t_peak = t + qt - 2.3 * 0.05
                parts.append(_Bumps.from_rows([(t_peak, 0.09, 0.05, 2.0, self.pvc_t_vec)]))
        return _Bumps.concat(parts) if parts else _Bumps.from_rows([])


def _rotate_about(v: np.ndarray, axis: np.ndarray, deg: float) -> np.ndarray:
    """Rodrigues rotation of ``v`` about the unit vector ``axis``."""
    a = math.radians(deg)
    return v * math.cos(a) + np.cross(axis, v) * math.sin(a) + axis * (axis @ v) * (1.0 - math.cos(a))


# --------------------------------------------------------------------------------------------
# Rhythm


def _breathing_phase(f: float, rng: np.random.Generator) -> Callable[[Any], np.ndarray]:
    """Draw a breathing pattern at about ``f`` Hz; returns its phase (radians) as a function of time (s)."""
    phase0 = rng.uniform(0.0, 2.0 * math.pi)
    mod_f = rng.uniform(0.02, 0.06, size=2)
    mod_a = rng.uniform(0.0, 0.5, size=2)
    mod_p = rng.uniform(0.0, 2.0 * math.pi, size=2)

    def phase(t: Any) -> np.ndarray:
        t = np.asarray(t, dtype=float)
        wobble = sum(a * np.sin(2.0 * math.pi * fm * t + p) for a, fm, p in zip(mod_a, mod_f, mod_p))
        return 2.0 * math.pi * f * t + phase0 + wobble

    return phase


def _schedule_beats(
    s: SimulationSettings,
    rng: np.random.Generator,
    phase: Callable[[Any], np.ndarray],
    duration: float,
) -> list[tuple[str, float, float]]:
    """The events of a record: ``(kind, time_s, rr_s)``.

    ``kind`` is "N" for the QRS onset of a conducted beat, "V" for that of a premature
    ventricular beat and "P" for the onset of a sinus P wave; ``rr_s`` is the RR interval
    that sets the beat's QT.  The schedule starts before t = 0 so that the record opens in
    the middle of the rhythm.
    """
    rr0 = 60.0 / s.heart_rate_bpm
    pr0 = s.pr_interval_ms / 1000.0
    events: list[tuple[str, float, float]] = []
    t = -rr0 * (1.0 + rng.random()) - 0.5
    last_v = t - rr0
    blocked = False
    af = s.rhythm == "af"
    sigma = math.sqrt(math.log1p(s.af_rr_cv**2))
    while t < duration + 0.6:
        if af:
            rr = rr0 * math.exp(sigma * rng.standard_normal() - sigma**2 / 2.0)
            rr = max(rr, 0.25, 0.35 * rr0)
        else:
            rr = rr0 * (
                1.0 - s.sinus_arrhythmia * math.sin(float(phase(t))) + 0.25 * s.sinus_arrhythmia * rng.standard_normal()
            )
            rr = max(rr, 0.25)
        effective = 0.7 * rr0 + 0.3 * (t - last_v)
        if af:
            events.append(("N", t, effective))
            last_v = t
            conducted = True
        else:
            pr = pr0 * min(max(effective, 0.3), 2.0) ** 0.25
            events.append(("P", t - pr, rr))
            conducted = not blocked
            if conducted:
                events.append(("N", t, effective))
                last_v = t
            blocked = False
        premature, coupling = rng.random() < s.pvc_probability, rng.uniform(0.5, 0.7)
        if conducted and premature:
            coupling = min(max(coupling * rr, 0.3), rr - 0.12)
            if coupling > 0.25:
                v = t + coupling
                events.append(("V", v, 0.7 * rr0 + 0.3 * coupling))
                last_v = v
                if af:
                    rr = coupling + rr0 * rng.uniform(0.9, 1.3)
                else:
                    blocked = True  # the next sinus P finds the ventricles refractory
        t += rr
    return events


def _fibrillatory_waves(s: SimulationSettings, rng: np.random.Generator, n: int, fs: float) -> np.ndarray:
    """Atrial fibrillatory activity as a 3-D dipole (n, 3) in mV: narrow-band 4-9 Hz waves."""
    f0 = rng.uniform(5.0, 8.0)
    freqs = np.fft.rfftfreq(n, 1.0 / fs)
    shape = np.exp(-0.5 * ((freqs - f0) / 0.7) ** 2) + 0.3 * np.exp(-0.5 * ((freqs - 2.0 * f0) / 1.0) ** 2)
    spectra = np.fft.rfft(rng.standard_normal((n, 3)), axis=0) * shape[:, None]
    sources = np.fft.irfft(spectra, n=n, axis=0)
    sources /= np.maximum(sources.std(axis=0), 1e-12)
    # Atrial activity points mostly anterior-right-inferior (large in V1, II, III, aVF).
    mixing = np.array([[-0.35, 0.55, 0.75], [0.3, 0.5, 0.0], [0.0, 0.2, 0.4]])
    mixing = mixing + 0.15 * rng.standard_normal((3, 3))
    dipole = sources @ mixing
    rms = (dipole @ _ALL_LEADS).std(axis=0).max()
    return dipole * (s.f_wave_mv / (2.0 * rms)) if rms > 0 else dipole


# --------------------------------------------------------------------------------------------
# Recording artefacts at the electrodes


def _electrodes_to_primary(e: np.ndarray) -> np.ndarray:
    """Electrode potentials (n, 9: RA, LA, LL, V1..V6) to leads (n, 8: I, II, V1..V6)."""
    ra, la, ll = e[:, 0], e[:, 1], e[:, 2]
    wilson = (ra + la + ll) / 3.0
    out = np.empty((e.shape[0], 8))
    out[:, 0] = la - ra
    out[:, 1] = ll - ra
    out[:, 2:] = e[:, 3:] - wilson[:, None]
    return out


def _shaped_noise(
    rng: np.random.Generator,
    n: int,
    fs: float,
    gain: Callable[[np.ndarray], np.ndarray],
    columns: int,
) -> np.ndarray:
    """Gaussian noise (n, columns) with amplitude spectrum ``gain(freqs)``, unit RMS per column."""
    freqs = np.fft.rfftfreq(n, 1.0 / fs)
    spectra = np.fft.rfft(rng.standard_normal((n, columns)), axis=0) * gain(freqs)[:, None]
    x = np.fft.irfft(spectra, n=n, axis=0)
    return x / np.maximum(x.std(axis=0), 1e-12)


def _electrode_noise(
    s: SimulationSettings,
    rng: np.random.Generator,
    t: np.ndarray,
    fs: float,
    phase: Callable[[Any], np.ndarray],
) -> np.ndarray:
    """Baseline wander, EMG and mains, as lead signals (n, 8: I, II, V1..V6) in mV."""
    n = len(t)
    out = np.zeros((n, 8))
    # Draw everything up front so each artefact's realization does not depend on the others.
    wander_gain = rng.standard_normal(9) * np.array([0.4] * 3 + [1.0] * 6)
    drift_gain = rng.uniform(0.2, 0.6, size=9)
    seeds = rng.integers(0, 2**63 - 1, size=3)
    mains_amp = rng.uniform(0.5, 1.0, size=9)
    mains_phase = rng.uniform(-0.4, 0.4, size=9) + rng.uniform(0.0, 2.0 * math.pi)
    harmonic = rng.uniform(0.0, 0.15)

    if s.baseline_wander_mv > 0 and n > 1:
        breathing = np.sin(phase(t))
        # Slow electrode drift, 0.03-0.15 Hz, with no DC offset.
        drift = _shaped_noise(
            np.random.default_rng(int(seeds[0])),
            n,
            fs,
            lambda f: (f / 0.03) ** 2 / (1.0 + (f / 0.03) ** 2) / (1.0 + (f / 0.15) ** 4),
            9,
        )
        wander = _electrodes_to_primary(breathing[:, None] * wander_gain + drift * drift_gain)
        peak = np.abs(_derive_leads(wander)).max()
        if peak > 0:
            out += wander * (s.baseline_wander_mv / peak)

    if s.noise_mv > 0 and n > 1:
        top = min(150.0, 0.4 * fs)
        emg = _shaped_noise(
            np.random.default_rng(int(seeds[1])),
            n,
            fs,
            lambda f: (f / 15.0) ** 2 / (1.0 + (f / 15.0) ** 2) / (1.0 + (f / top) ** 4),
            9,
        )
        envelope = _shaped_noise(np.random.default_rng(int(seeds[2])), n, fs, lambda f: np.exp(-f / 0.5), 10)
        bursts = np.exp(0.5 * (envelope[:, :1] + 0.6 * envelope[:, 1:]))
        emg = _electrodes_to_primary(emg * bursts)
        rms = math.sqrt(float(np.mean(emg**2)))
        if rms > 0:
            out += emg * (s.noise_mv / rms)

    if s.mains_mv > 0 and s.mains_hz < fs / 2.0:
        w = 2.0 * math.pi * s.mains_hz * t[:, None]
        hum = mains_amp * np.sin(w + mains_phase)
        if 3.0 * s.mains_hz < fs / 2.0:
            hum += harmonic * mains_amp * np.sin(3.0 * w + 2.0 * mains_phase)
        hum = _electrodes_to_primary(hum)
        peak = np.abs(_derive_leads(hum)).max()
        if peak > 0:
            out += hum * (s.mains_mv / peak)
    return out
