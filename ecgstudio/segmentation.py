"""Segmentation: the trace network over a page resampled to its canonical scale, again over the
band of the rows at a finer scale, and its masks carried back onto the input image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from .config import SegmentationConfig
from .model.infer import predict_maps
from .model.net import CANONICAL_PX_PER_MM, TraceNet
from .results import LeadBox, PageMasks

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True, eq=False)
class PageMaps:
    """A page resampled by ``scale`` and the network's maps of it.

    Attributes
    ----------
    image : ndarray, shape (H, W, 3), uint8
        The page (RGB) in the maps' frame.
    trace_prob, text_prob : ndarray, shape (H, W), float32 in [0, 1]
        Trace centre-line and non-signal-ink (printed text, pulses) probabilities.
    scale : float
        Pixels of this frame per pixel of the page it was resampled from.
    """

    image: np.ndarray
    trace_prob: np.ndarray
    text_prob: np.ndarray
    scale: float


def resampled(image: np.ndarray, scale: float) -> np.ndarray:
    """``image`` resampled by ``scale`` (area-averaged when shrinking)."""
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


def canonical_maps(
    model: TraceNet,
    page_image: np.ndarray,
    *,
    px_per_mm: float,
    device: torch.device | str = "cpu",
    config: SegmentationConfig = SegmentationConfig(),
) -> PageMaps:
    """The page (at ``px_per_mm``) resampled to the network's canonical scale, and its maps."""
    scale = CANONICAL_PX_PER_MM / px_per_mm
    canon = resampled(page_image, scale)
    maps = predict_maps(model, canon, device=device, config=config)
    return PageMaps(canon, maps[0], maps[1], scale)


def fine_scale(px_per_mm: float, config: SegmentationConfig = SegmentationConfig()) -> float | None:
    """The scale (px/mm) a page scanned at ``px_per_mm`` is traced again at, or None where its
    own resolution gains too little over the canonical scale."""
    fine = min(config.fine_px_per_mm, px_per_mm)
    return fine if fine >= config.min_fine_gain * CANONICAL_PX_PER_MM else None


def band_maps(
    model: TraceNet,
    page_image: np.ndarray,
    boxes: Sequence[LeadBox],
    *,
    px_per_mm: float,
    fine_px_per_mm: float,
    device: torch.device | str = "cpu",
    config: SegmentationConfig = SegmentationConfig(),
) -> PageMaps:
    """The page (at ``px_per_mm``) resampled to ``fine_px_per_mm``, segmented again only over the
    band of the ``boxes`` (given at the canonical scale); the maps are zero elsewhere."""
    fine = resampled(page_image, fine_px_per_mm / px_per_mm)
    k = fine_px_per_mm / CANONICAL_PX_PER_MM
    margin = 3 * config.fine_px_per_mm
    y0 = int(max(0, min(b.y0 for b in boxes) * k - margin))
    y1 = int(min(fine.shape[0], max(b.y1 for b in boxes) * k + margin))
    maps = np.zeros((2, *fine.shape[:2]), np.float32)
    maps[:, y0:y1] = predict_maps(model, fine[y0:y1], device=device, config=config)[:2]
    return PageMaps(fine, maps[0], maps[1], fine_px_per_mm / px_per_mm)


def masks_in_input(
    trace_prob: np.ndarray,
    text_prob: np.ndarray,
    boxes: Sequence[LeadBox],
    from_frame: np.ndarray,
    shape: tuple[int, int],
) -> PageMasks:
    """Trace pixels labelled by box (``k + 1``) and text pixels, warped back onto the input image
    (``from_frame`` maps the maps' frame onto it; ``shape`` is its ``(H, W)``)."""
    labels = np.zeros(trace_prob.shape, np.uint8)
    ink = trace_prob > 0.5
    for k, box in enumerate(boxes):
        y0, y1 = int(max(0, box.y0)), int(min(labels.shape[0], box.y1 + 1))
        x0, x1 = int(max(0, box.x0)), int(min(labels.shape[1], box.x1 + 1))
        region = labels[y0:y1, x0:x1]
        region[ink[y0:y1, x0:x1] & (region == 0)] = k + 1
    h, w = shape

    def warp(a: np.ndarray) -> np.ndarray:
        return cv2.warpPerspective(a, from_frame, (w, h), flags=cv2.INTER_NEAREST)

    text = warp((text_prob > 0.5).astype(np.uint8)).astype(bool)
    return PageMasks(warp(labels), np.zeros((h, w), bool), text)
