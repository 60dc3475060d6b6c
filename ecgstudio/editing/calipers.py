"""Calipers and the cursor readout, without widgets: what a reader of an ECG measures.

Intervals (RR, PR, QRS, QT) between two instants in ms, with the heart rate an RR interval
means; amplitudes between two levels in mV; the time and voltage under the cursor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Calipers:
    """Two instants ``t0_s < t1_s`` and two levels ``v0_mv``, ``v1_mv`` set by a person.

    Attributes
    ----------
    t0_s, t1_s : float
        Seconds from the record start.
    v0_mv, v1_mv : float
        Millivolts (levels on one lead).
    """

    t0_s: float
    t1_s: float
    v0_mv: float = 0.0
    v1_mv: float = 0.0

    @property
    def interval_ms(self) -> float:
        return abs(self.t1_s - self.t0_s) * 1000.0

    @property
    def rate_bpm(self) -> float:
        """The heart rate an interval this long between two R waves means (NaN for a zero interval)."""
        return 60_000.0 / self.interval_ms if self.interval_ms > 0 else math.nan

    @property
    def amplitude_mv(self) -> float:
        return abs(self.v1_mv - self.v0_mv)

    def describe(self) -> str:
        """``"820 ms (73 bpm as RR) | 1.25 mV"``."""
        rate = f" ({self.rate_bpm:.0f} bpm as RR)" if math.isfinite(self.rate_bpm) else ""
        return f"{self.interval_ms:.0f} ms{rate} | {self.amplitude_mv:.2f} mV"


def readout(t_s: float, lead: str, signal_mv: np.ndarray, fs: float) -> str:
    """What the cursor points at: ``"II  t 2.345 s  0.52 mV"`` (the lead's sample nearest in
    time; "no sample" where the page does not show the lead then)."""
    i = int(round(t_s * fs))
    if not 0 <= i < len(signal_mv) or not math.isfinite(float(signal_mv[i])):
        return f"{lead}  t {t_s:.3f} s  no sample"
    return f"{lead}  t {t_s:.3f} s  {float(signal_mv[i]):.2f} mV"
