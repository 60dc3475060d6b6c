"""Signal restoration: complete what the page does not show from what it does, saying which is which.

A 3x4 page shows each lead for 2.5 of its 10 s; digital-ECG models want 10 s of 12 leads.
What is exact comes first: at any moment two limb leads determine the other four (Einthoven
and Goldberger: III = II - I, aVR = -(I + II)/2, aVL = I - II/2, aVF = II - I/2), so wherever
two or more limb leads were read (the rhythm strip and the column's limb leads, on a standard
page), every limb lead is known.  Measured samples are never changed; every sample says where
it came from (:data:`SOURCES`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .results import Signals

#: Where a sample of a completed record came from: not known (NaN), read off the page, or
#: computed from other leads read at the same moment.
SOURCES = ("none", "measured", "reconstructed")
NONE, MEASURED, RECONSTRUCTED = range(3)

#: The limb leads as combinations of leads I and II (Einthoven's and Goldberger's relations).
LIMB_LEADS: dict[str, tuple[float, float]] = {
    "I": (1.0, 0.0),
    "II": (0.0, 1.0),
    "III": (-1.0, 1.0),
    "aVR": (-0.5, -0.5),
    "aVL": (1.0, -0.5),
    "aVF": (-0.5, 1.0),
}


@dataclass(frozen=True, eq=False)
class Completion:
    """A completed record and where each of its samples came from.

    Attributes
    ----------
    signals : Signals
        ``(n_samples, n_leads)`` mV: the measured samples as read, others completed or NaN.
    source : ndarray, shape (n_samples, n_leads), uint8
        Index into :data:`SOURCES` per sample.
    """

    signals: Signals
    source: np.ndarray

    def intervals(self, lead: str) -> list[tuple[str, float, float]]:
        """``(source, start s, end s)`` of each run of samples of one kind in ``lead``, none-runs left out."""
        j = list(self.signals.lead_names).index(lead)
        col = self.source[:, j]
        edges = np.flatnonzero(np.diff(col)) + 1
        starts, ends = np.r_[0, edges], np.r_[edges, len(col)]
        fs = self.signals.fs
        return [
            (SOURCES[col[a]], float(a / fs), float(b / fs)) for a, b in zip(starts, ends, strict=True) if col[a] != NONE
        ]

    def runs(self) -> dict[str, list[list]]:
        """Per lead, ``[source, start s, end s]`` of each run (the JSON sidecar's ``completion``)."""
        return {
            lead: [[kind, round(a, 4), round(b, 4)] for kind, a, b in self.intervals(lead)]
            for lead in self.signals.lead_names
        }


def complete_limb_leads(signals: Signals) -> Completion:
    """Every limb lead wherever at least two limb leads were read at the same moment.

    At each sample the limb leads read give equations in (I, II); with two or more, (I, II) is
    their least-squares solution and each limb lead not read is computed from it.  Chest leads and
    moments with fewer than two limb leads read are left as they are.
    """
    names = list(signals.lead_names)
    mv = np.array(signals.mv, dtype=np.float64, copy=True)
    source = np.where(np.isfinite(mv), MEASURED, NONE).astype(np.uint8)
    limb = [(j, LIMB_LEADS[name]) for j, name in enumerate(names) if name in LIMB_LEADS]
    if len(limb) < 2:
        return Completion(Signals(mv, signals.fs, signals.lead_names), source)
    cols = [j for j, _ in limb]
    c = np.array([coef for _, coef in limb])  # (m, 2)
    y = mv[:, cols]  # (n, m)
    w = np.isfinite(y).astype(np.float64)
    y0 = np.nan_to_num(y)
    # Normal equations per sample: (C^T W C) x = C^T W y.
    a = np.einsum("nm,mi,mj->nij", w, c, c)
    b = np.einsum("nm,mi,nm->ni", w, c, y0)
    det = a[:, 0, 0] * a[:, 1, 1] - a[:, 0, 1] * a[:, 1, 0]
    known = (w.sum(axis=1) >= 2) & (np.abs(det) > 1e-9)
    x = np.full((len(mv), 2), np.nan)
    inv = (
        np.stack([np.stack([a[:, 1, 1], -a[:, 0, 1]], -1), np.stack([-a[:, 1, 0], a[:, 0, 0]], -1)], 1)
        / np.where(known, det, 1.0)[:, None, None]
    )
    x[known] = np.einsum("nij,nj->ni", inv[known], b[known])
    for j, coef in limb:
        fill = known & ~np.isfinite(mv[:, j])
        mv[fill, j] = x[fill] @ np.asarray(coef)
        source[fill, j] = RECONSTRUCTED
    return Completion(Signals(mv, signals.fs, signals.lead_names), source)
