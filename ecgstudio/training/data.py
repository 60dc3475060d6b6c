"""Training data for the trace network: synthetic pages at the canonical scale, with targets.

Targets are rasterised from the renderer's exact ground truth: channel 0 is a narrow Gaussian
ridge along each trace's centre line, kept only where ink is actually visible (faded stretches
and cropped parts are 0, so the network learns not to invent ink); channel 1 is non-signal ink
and text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import cv2
import numpy as np

from ..arrays import polyline_runs
from ..model.net import CANONICAL_PX_PER_MM, TRAINED_SCALES
from ..results import Trace
from ..synth.batch import RecordPool
from ..synth.damage import DamageSettings, crumple
from ..synth.render import PageStyle, SynthPage, render_page

#: Share of training pages crumpled and flattened again (:func:`ecgstudio.synth.damage.crumple`).
CRUMPLED_SHARE = 0.3
_RIDGE_SIGMA_PX = 0.8
_SHIFT = 4


def trace_heatmap(traces: Sequence[Trace], shape: tuple[int, int], *, visible: np.ndarray | None = None) -> np.ndarray:
    """A Gaussian ridge (peak 1, sigma 0.8 px) along each polyline.

    Parameters
    ----------
    traces : sequence of Trace
        Polylines in pixel coordinates (NaN rows are gaps).
    shape : (height, width)
    visible : ndarray of bool, optional
        Where trace ink is visible; the ridge is kept within 2 px of it.

    Returns
    -------
    ndarray, shape (H, W), float32 in [0, 1]
    """
    canvas = np.zeros(shape, np.uint8)
    for trace in traces:
        runs = polyline_runs(trace.xy, shift=_SHIFT)
        if runs:
            cv2.polylines(canvas, runs, False, 255, 1, cv2.LINE_AA, _SHIFT)
    ridge = cv2.GaussianBlur(canvas.astype(np.float32) / 255.0, (0, 0), _RIDGE_SIGMA_PX)
    ridge *= 1.0 / _ridge_peak()
    if visible is not None:
        ridge *= cv2.dilate(visible.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(np.float32)
    return np.clip(ridge, 0.0, 1.0)


def _ridge_peak() -> float:
    """Peak of the blurred ridge of a straight horizontal line, to normalise to 1."""
    line = np.zeros((21, 21), np.float32)
    line[10, :] = 1.0
    return float(cv2.GaussianBlur(line, (0, 0), _RIDGE_SIGMA_PX)[10, 10])


def page_targets(page: SynthPage) -> np.ndarray:
    """Targets ``(2, H, W)`` float32 for a rendered page (trace ridge, non-signal ink and text)."""
    shape = page.image.shape[:2]
    trace = trace_heatmap(page.traces, shape, visible=page.masks.trace > 0)
    text = page.masks.text.astype(np.float32)
    # Text boxes are rectangles; only their dark pixels are ink.
    dark = page.image.min(axis=2) < 160
    text *= dark
    return np.stack([trace, text])


def training_damage(rng: np.random.Generator, severity: float) -> DamageSettings:
    """Damage as seen after the pipeline's rectification: little residual rotation and perspective."""
    d = DamageSettings.random(rng, severity=severity)
    return replace(d, quarter_turn=0.0, rotation=min(d.rotation, 0.15), perspective=min(d.perspective, 0.15))


def render_training_page(
    rng: np.random.Generator, records: RecordPool, *, severity: float = 0.6
) -> tuple[np.ndarray, np.ndarray]:
    """One random page near the canonical scale: ``(image (H, W, 3) uint8, targets (2, H, W) float32)``."""
    dpi = 25.4 * CANONICAL_PX_PER_MM * float(rng.uniform(*TRAINED_SCALES))
    style = PageStyle.random(rng, dpi=dpi)
    page = render_page(
        records.pick(rng), style=style, damage=training_damage(rng, severity), seed=int(rng.integers(2**31))
    )
    image = page.image
    if rng.random() < CRUMPLED_SHARE:
        image = crumple(image, rng, float(rng.uniform(0.3, 1.0)))
    return image, page_targets(page)


def random_crops(
    image: np.ndarray, targets: np.ndarray, rng: np.random.Generator, *, size: int, count: int
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` crops of ``size`` px, most of them centred near trace ink.

    Returns images ``(count, 3, size, size)`` float32 in [0, 1] and targets ``(count, 2, size, size)``.
    """
    h, w = image.shape[:2]
    pad_h, pad_w = max(0, size - h), max(0, size - w)
    if pad_h or pad_w:
        image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), constant_values=255)
        targets = np.pad(targets, ((0, 0), (0, pad_h), (0, pad_w)))
        h, w = image.shape[:2]
    ys, xs = np.nonzero(targets[0] > 0.5)
    xs_out, ts_out = [], []
    for _ in range(count):
        if len(ys) and rng.random() < 0.8:
            k = int(rng.integers(len(ys)))
            cy, cx = ys[k] + int(rng.integers(-size // 3, size // 3)), xs[k] + int(rng.integers(-size // 3, size // 3))
        else:
            cy, cx = int(rng.integers(h)), int(rng.integers(w))
        y0 = int(np.clip(cy - size // 2, 0, h - size))
        x0 = int(np.clip(cx - size // 2, 0, w - size))
        xs_out.append(image[y0 : y0 + size, x0 : x0 + size].transpose(2, 0, 1))
        ts_out.append(targets[:, y0 : y0 + size, x0 : x0 + size])
    return np.stack(xs_out).astype(np.float32) / 255.0, np.stack(ts_out)
