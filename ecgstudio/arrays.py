"""Array helpers shared by the pipeline stages, the renderer and the studio."""

from __future__ import annotations

import numpy as np


def true_runs(mask: np.ndarray) -> np.ndarray:
    """The runs of True in a 1-D boolean array, as ``(n, 2)`` rows ``[start, stop)``."""
    return np.flatnonzero(np.diff(np.r_[0, np.asarray(mask).astype(np.int8), 0])).reshape(-1, 2)


def polyline_runs(xy: np.ndarray, keep: np.ndarray | None = None, *, shift: int = 4) -> list[np.ndarray]:
    """The unbroken stretches of a polyline ``(n, 2)`` (rows of NaN are breaks; so are rows where
    ``keep`` is False) as fixed-point ``int32`` point lists with ``shift`` fractional bits, ready
    for ``cv2.polylines(..., shift=shift)``; stretches of one point are left out."""
    good = np.isfinite(xy).all(axis=1) if len(xy) else np.zeros(0, bool)
    if keep is not None:
        good &= keep
    return [
        np.round(xy[a:b] * (1 << shift)).astype(np.int32).reshape(-1, 1, 2) for a, b in true_runs(good) if b - a > 1
    ]
