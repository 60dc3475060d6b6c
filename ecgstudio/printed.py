"""Settings printed on the page: the paper speed and gain most carts print ("25mm/s 10mm/mV").

A page without a calibration pulse, or printed at 50 mm/s, shows its gain or speed nowhere
else.  :func:`read_settings` reads them:

1. :func:`word_starts`: the page's text (ink where the segmentation sees text, not trace,
   told from the paper around it by Otsu's threshold, grid lines running 5 mm or more taken
   out) falls into glyphs; a glyph with no glyph of its line just before it (a gap of more than a
   quarter of its height) starts a word.
2. Each word start is read by the printed-settings reader (:mod:`ecgstudio.model.settingsnet`)
   on a crop starting just before it: which setting, if any, the text from there on gives.
3. A setting is read where one class has the highest probability above
   :attr:`~ecgstudio.config.NamesConfig.min_setting_prob` somewhere on the page and no other
   value of the same setting reaches it elsewhere (a page printing two gains says nothing).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from .config import NamesConfig
from .leadnames import word_crops
from .model.namenet import NameNet
from .model.settingsnet import LEFT_MARGIN_MM, SETTING_CLASSES, SETTING_OTHER, SETTING_VALUES, SETTINGS_CROP_MM

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PrintedSettings:
    """The speed (mm/s) and gain (mm/mV) printed on a page; None where none was read."""

    mm_per_s: float | None = None
    mm_per_mv: float | None = None


def word_starts(glyphs: np.ndarray, *, px_per_mm: float) -> np.ndarray:
    """Boxes ``(x0, y0, x1, y1)`` of the glyphs that start a word, shape ``(n, 4)``, each
    spanning the median top and bottom of the glyphs of its line in the 10 mm after it (a
    glyph touching a stroke of the line above stands no higher than its neighbours).

    Components 0.5-7 mm tall and at most 10 mm wide are glyphs; a glyph starts a word where no
    glyph overlapping it vertically ends less than a quarter of the taller one's height before
    it (or overlaps its start).
    """
    _, _, stats, _ = cv2.connectedComponentsWithStats(glyphs.astype(np.uint8), connectivity=8)
    mm = px_per_mm
    s = stats[1:]
    keep = (s[:, 3] >= 0.5 * mm) & (s[:, 3] <= 7 * mm) & (s[:, 2] <= 10 * mm)
    x0, y0, w, h = (s[keep, k].astype(np.float64) for k in range(4))
    x1, y1 = x0 + w, y0 + h
    if not len(x0):
        return np.zeros((0, 4))
    out = []
    for a in range(0, len(x0), 256):  # [i, j] tables for 256 glyphs i at a time against every glyph j
        i = slice(a, a + 256)
        overlap = np.minimum(y1[i, None], y1[None, :]) - np.maximum(y0[i, None], y0[None, :])
        same_line = overlap >= 0.5 * np.minimum(h[i, None], h[None, :])
        gap = x0[i, None] - x1[None, :]  # how far glyph j ends before glyph i starts
        before = same_line & (x0[None, :] < x0[i, None]) & (gap <= 0.25 * np.maximum(h[i, None], h[None, :]))
        after = same_line & (x0[None, :] >= x0[i, None]) & (x0[None, :] <= x0[i, None] + 10 * mm)
        for k in np.flatnonzero(~before.any(axis=1)):
            out.append((x0[a + k], np.median(y0[after[k]]), x1[a + k], np.median(y1[after[k]])))
    return np.array(out).reshape(-1, 4)


def read_settings(
    reader: NameNet,
    grey: np.ndarray,
    trace_prob: np.ndarray,
    text_prob: np.ndarray,
    *,
    px_per_mm: float,
    config: NamesConfig = NamesConfig(),
) -> PrintedSettings:
    """The speed and gain printed on a page (grey luminance and segmentation maps at ``px_per_mm``)."""
    text = cv2.dilate(((text_prob > 0.4) & (trace_prob < 0.5)).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    if text.sum() < 16:
        return PrintedSettings()
    # ink and paper apart where the text is (Otsu): thin print is lighter than the traces
    level, _ = cv2.threshold(grey[text].reshape(-1, 1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    dark = (grey <= level).astype(np.uint8)
    reach = max(3, round(5 * px_per_mm))  # grid lines run on; strokes of print do not
    lines = cv2.morphologyEx(dark, cv2.MORPH_OPEN, np.ones((1, reach), np.uint8)) | cv2.morphologyEx(
        dark, cv2.MORPH_OPEN, np.ones((reach, 1), np.uint8)
    )
    starts = word_starts((dark > lines) & text, px_per_mm=px_per_mm)
    if not len(starts):
        return PrintedSettings()
    half_w = SETTINGS_CROP_MM[1] * px_per_mm / 2
    centres = [(x0 - LEFT_MARGIN_MM * px_per_mm + half_w, (y0 + y1) / 2) for x0, y0, _, y1 in starts]
    with torch.inference_mode():
        crops = torch.from_numpy(word_crops(grey, centres, px_per_mm, SETTINGS_CROP_MM))[:, None]
        probs = torch.softmax(reader(crops), dim=1).numpy()
    best = probs[:, :SETTING_OTHER].max(axis=0)  # each class's best read on the page
    read = {}
    for what in ("speed", "gain"):
        classes = [k for k, (kind, _) in enumerate(SETTING_VALUES) if kind == what]
        found = [k for k in classes if best[k] >= config.min_setting_prob]
        if len(found) == 1:
            read[what] = SETTING_VALUES[found[0]][1]
            log.info("the page prints %s", SETTING_CLASSES[found[0]])
        elif found:
            values = ", ".join(f"{SETTING_VALUES[k][1]:g}" for k in found)
            log.info("the page prints more than one %s (%s); reading none", what, values)
    return PrintedSettings(read.get("speed"), read.get("gain"))
