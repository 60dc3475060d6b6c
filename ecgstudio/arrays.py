"""Array helpers shared by the pipeline stages, the renderer and the studio."""

from __future__ import annotations

import numpy as np


def true_runs(mask: np.ndarray) -> np.ndarray:
    """The runs of True in a 1-D boolean array, as ``(n, 2)`` rows ``[start, stop)``."""
    return np.flatnonzero(np.diff(np.r_[0, np.asarray(mask).astype(np.int8), 0])).reshape(-1, 2)
