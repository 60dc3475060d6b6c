"""Pictures of a digitization: lead boxes, names and extracted traces drawn on the page."""

from __future__ import annotations

import cv2
import numpy as np

from .arrays import polyline_runs
from .results import Digitization

_SHIFT = 4
_BOX_RGB = (0, 120, 255)
_TRACE_RGB = (0, 170, 60)
_LOW_RGB = (230, 40, 40)


def draw_overlay(image: np.ndarray, result: Digitization, *, low_confidence: float = 0.4) -> np.ndarray:
    """A copy of the RGB page with boxes (blue), lead names and traces (green; red where unsure)."""
    rgb = image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    canvas = (rgb.astype(np.float32) * 0.55 + 255 * 0.45).astype(np.uint8)  # a paler page lets the drawing stand out
    scale = max(1, round(max(canvas.shape[:2]) / 1500))
    for box, trace in zip(result.boxes, result.traces):
        p0 = (int(round(box.x0)), int(round(box.y0)))
        p1 = (int(round(box.x1)), int(round(box.y1)))
        cv2.rectangle(canvas, p0, p1, _BOX_RGB, scale, cv2.LINE_AA)
        label = f"-{box.lead}" if box.inverted else box.lead
        cv2.putText(
            canvas,
            label,
            (p0[0] + 3 * scale, p0[1] + 14 * scale),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.5 * scale,
            _BOX_RGB,
            scale,
            cv2.LINE_AA,
        )
        xy = trace.xy
        if len(xy) < 2:
            continue
        conf = trace.confidence if trace.confidence is not None else np.ones(len(xy))
        for good in (True, False):
            runs = polyline_runs(xy, (conf >= low_confidence) == good, shift=_SHIFT)
            if runs:
                cv2.polylines(canvas, runs, False, _TRACE_RGB if good else _LOW_RGB, scale, cv2.LINE_AA, _SHIFT)
    return canvas
