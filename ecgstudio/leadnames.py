"""Lead names: read the name printed at the start of each lead box, and let it decide the lead.

A layout's template says which lead each box holds, but pages do not always follow it: a
two-lead strip may print V5 above MLII, a Cabrera page orders the limb leads aVL, I, -aVR, II,
aVF, III.  Where the page prints names, they say.

1. :func:`find_words`: near the start of each box (4 mm before it to 12 mm after, the box's
   height), the model's text and trace maps give glyphs; the box's own trace is masked out, and
   glyphs close together form words of a plausible size for a name.
2. :func:`read_names`: each word is classified by the lead-name reader
   (:mod:`ecgstudio.model.namenet`) from the grey page at its physical scale.
3. :func:`assign_leads`: boxes that plot the same length of time share out their leads so that
   confident reads win and unread boxes keep the template (an assignment over all twelve leads,
   each used once within the group); a box read as ``-aVR`` is inverted.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from .assumptions import assume
from .config import NamesConfig, RowsConfig
from .errors import NotAnEcgError
from .layout import LAYOUT_BY_ROWS, find_rows, row_spacing
from .model.namenet import CROP_H_MM, CROP_PX_PER_MM, CROP_W_MM, NAME_CLASSES, NameNet, crop_shape, normalise_crops
from .paper import LAYOUTS, LEAD_NAMES, Cell, Layout
from .results import LeadBox

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NameRead:
    """What was read near one box.

    Attributes
    ----------
    box_index : int
        Index of the box in the tuple given to :func:`read_names`.
    word_xyxy : tuple of float
        The word's bounding box in pixels of the analysed page.
    probs : ndarray, shape (len(NAME_CLASSES),)
        The reader's class probabilities.
    min_prob : float
        The probability a read needs to count (:attr:`NamesConfig.min_read_prob`).
    """

    box_index: int
    word_xyxy: tuple[float, float, float, float]
    probs: np.ndarray
    min_prob: float = NamesConfig.min_read_prob

    @property
    def name(self) -> str:
        return NAME_CLASSES[int(np.argmax(self.probs))]

    @property
    def probability(self) -> float:
        return float(self.probs.max())

    @property
    def confident(self) -> bool:
        """A lead name read with at least :attr:`min_prob`."""
        return self.name != "other" and self.probability >= self.min_prob

    def lead_probs(self) -> np.ndarray:
        """Probability of each of :data:`LEAD_NAMES` (``-aVR`` counts as aVR)."""
        p = self.probs[: len(LEAD_NAMES)].copy()
        p[LEAD_NAMES.index("aVR")] += self.probs[NAME_CLASSES.index("-aVR")]
        return p


def _search_region(box: LeadBox, shape: tuple[int, int], px_per_mm: float) -> tuple[int, int, int, int]:
    h, w = shape
    x0 = int(np.clip(box.x0 - 4 * px_per_mm, 0, w))
    x1 = int(np.clip(box.x0 + 12 * px_per_mm, 0, w))
    y0 = int(np.clip(box.y0, 0, h))
    y1 = int(np.clip(box.y1, 0, h))
    return x0, y0, x1, y1


def find_words(glyphs: np.ndarray, *, px_per_mm: float) -> list[tuple[int, int, int, int]]:
    """Word boxes ``(x0, y0, x1, y1)`` (end-exclusive) in a boolean glyph mask.

    Components up to 7 mm tall and 10 mm wide are glyphs; glyphs less than 1.2 mm apart that
    overlap vertically form a word; words 1.2-7 mm tall and at most 14 mm wide are kept.
    """
    _, _, stats, _ = cv2.connectedComponentsWithStats(glyphs.astype(np.uint8), connectivity=8)
    mm = px_per_mm
    parts = [
        tuple(int(v) for v in s[:4]) for s in stats[1:] if s[3] <= 7 * mm and s[2] <= 10 * mm and s[4] >= 0.25 * mm * mm
    ]
    parts.sort()
    words: list[list[int]] = []
    for x, y, w, h in parts:
        for word in words:
            gap = x - word[2]
            overlap = min(y + h, word[3]) - max(y, word[1])
            if gap <= 1.2 * mm and overlap >= 0.3 * min(h, word[3] - word[1]):
                word[0], word[1] = min(word[0], x), min(word[1], y)
                word[2], word[3] = max(word[2], x + w), max(word[3], y + h)
                break
        else:
            words.append([x, y, x + w, y + h])
    return [(a, b, c, d) for a, b, c, d in words if 1.2 * mm <= d - b <= 7 * mm and c - a <= 14 * mm]


def word_crops(
    grey: np.ndarray,
    centres: Sequence[tuple[float, float]],
    px_per_mm: float,
    crop_mm: tuple[float, float] = (CROP_H_MM, CROP_W_MM),
) -> np.ndarray:
    """A reader's normalised crops of ``crop_mm`` (height, width) centred on ``centres`` (x, y),
    at :data:`CROP_PX_PER_MM` (paper beyond the page's edges)."""
    s = CROP_PX_PER_MM / px_per_mm
    source = cv2.GaussianBlur(grey, (0, 0), 0.5 / s) if s < 1 else grey  # no aliasing when reducing
    paper = float(np.median(grey[:: max(1, grey.shape[0] // 64), :: max(1, grey.shape[1] // 64)]))
    hw, hh = crop_mm[1] * px_per_mm / 2, crop_mm[0] * px_per_mm / 2
    shape = crop_shape(crop_mm)
    out = np.empty((len(centres), *shape), np.uint8)
    for k, (cx, cy) in enumerate(centres):
        m = np.array([[s, 0, -(cx - hw) * s], [0, s, -(cy - hh) * s]], np.float32)
        out[k] = cv2.warpAffine(
            source,
            m,
            (shape[1], shape[0]),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=paper,
        )
    return normalise_crops(out)


def read_names(
    reader: NameNet,
    grey: np.ndarray,
    trace_prob: np.ndarray,
    text_prob: np.ndarray,
    boxes: Sequence[LeadBox],
    row_paths: Sequence[np.ndarray],
    *,
    px_per_mm: float,
    config: NamesConfig = NamesConfig(),
) -> list[NameRead | None]:
    """The most name-like word near the start of each box, read; None where there is none.

    Parameters
    ----------
    reader : NameNet
        The lead-name reader (eval mode).
    grey : ndarray, shape (H, W), uint8
        The page's luminance at ``px_per_mm``.
    trace_prob, text_prob : ndarray, shape (H, W), float
        The segmentation maps (a lone ``I`` often looks like trace to the model).
    boxes : sequence of LeadBox
        Lead boxes in the same frame.
    row_paths : sequence of ndarray, shape (n, 2)
        Each row's extracted trace polyline ``(x, y)``, masked out before words are sought.
    """
    shape = grey.shape[:2]
    glyph_all = (text_prob > 0.4) | (trace_prob > 0.4)
    own_trace = {}
    thickness = max(3, round(1.2 * px_per_mm))
    words_per_box: list[list[tuple[int, int, int, int]]] = []
    for box in boxes:
        x0, y0, x1, y1 = _search_region(box, shape, px_per_mm)
        if x1 - x0 < 2 or y1 - y0 < 2:
            words_per_box.append([])
            continue
        if box.row not in own_trace:
            mask = np.zeros(shape, np.uint8)
            xy = row_paths[box.row]
            xy = xy[np.isfinite(xy).all(axis=1)]
            if len(xy) > 1:
                cv2.polylines(mask, [np.round(xy).astype(np.int32)], False, 1, thickness)
            own_trace[box.row] = mask.astype(bool)
        glyphs = glyph_all[y0:y1, x0:x1] & ~own_trace[box.row][y0:y1, x0:x1]
        words = [(a + x0, b + y0, c + x0, d + y0) for a, b, c, d in find_words(glyphs, px_per_mm=px_per_mm)]
        # A name sits at the box's start near its baseline; on a cluttered page read the nearest few.
        words.sort(key=lambda wd: abs(wd[0] - box.x0) + abs((wd[1] + wd[3]) / 2 - box.baseline_y))
        words_per_box.append(words[: config.max_words_per_box])
    flat = [(i, wd) for i, ws in enumerate(words_per_box) for wd in ws]
    if not flat:
        return [None] * len(boxes)
    crops = word_crops(grey, [((x0 + x1) / 2, (y0 + y1) / 2) for _, (x0, y0, x1, y1) in flat], px_per_mm)
    with torch.inference_mode():
        probs = torch.softmax(reader(torch.from_numpy(crops)[:, None]), dim=1).numpy()
    reads: list[NameRead | None] = [None] * len(boxes)
    for (i, wd), p in zip(flat, probs):
        if reads[i] is None or p[: len(NAME_CLASSES) - 1].max() > reads[i].probs[: len(NAME_CLASSES) - 1].max():
            reads[i] = NameRead(i, tuple(float(v) for v in wd), p, config.min_read_prob)
    return reads


def row_names(
    reader: NameNet,
    grey: np.ndarray,
    trace_prob: np.ndarray,
    text_prob: np.ndarray,
    rows: Sequence,
    *,
    px_per_mm: float,
    fractions: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75),
    config: NamesConfig = NamesConfig(),
) -> list[list[NameRead | None]]:
    """Names read where a lead could start on each row (``fractions`` of its width), before any
    layout is chosen: a row of traces carries lead names, a grid line or a header does not."""
    spacing = row_spacing([r.baseline_y for r in rows], px_per_mm=px_per_mm)
    probes = []
    for k, row in enumerate(rows):
        for j, f in enumerate(fractions):
            x = row.x_start + f * (row.x_end - row.x_start)
            probes.append(
                LeadBox(
                    lead="I",
                    x0=x,
                    y0=row.baseline_y - 0.6 * spacing,
                    x1=x + 1.0,
                    y1=row.baseline_y + 0.4 * spacing,
                    baseline_y=row.baseline_y,
                    t_start_s=0.0,
                    duration_s=1.0,
                    row=k,
                    col=j,
                )
            )
    no_paths = [np.zeros((0, 2))] * len(rows)
    reads = read_names(reader, grey, trace_prob, text_prob, probes, no_paths, px_per_mm=px_per_mm, config=config)
    n = len(fractions)
    return [reads[k * n : (k + 1) * n] for k in range(len(rows))]


def upside_down(
    reader: NameNet,
    image: np.ndarray,
    trace_prob: np.ndarray,
    text_prob: np.ndarray,
    *,
    px_per_mm: float,
    config: NamesConfig = NamesConfig(),
    rows_config: RowsConfig = RowsConfig(),
) -> bool:
    """Whether the page (RGB ``image`` and its maps) reads its lead names better turned half
    round: the names read with confidence where leads start on each row (:func:`row_names`), as
    it is and turned 180 degrees.  Turned, it must show at least
    :attr:`~ecgstudio.config.NamesConfig.flip_min_names` and more than twice as many: II and III
    read either way up."""
    counts = []
    for k in (0, 2):
        trace = np.ascontiguousarray(np.rot90(trace_prob, k))
        try:
            rows = find_rows(trace, px_per_mm=px_per_mm, config=rows_config)
        except NotAnEcgError:
            return False
        grey = cv2.cvtColor(np.ascontiguousarray(np.rot90(image, k)), cv2.COLOR_RGB2GRAY)
        text = np.ascontiguousarray(np.rot90(text_prob, k))
        reads = row_names(reader, grey, trace, text, rows, px_per_mm=px_per_mm, config=config)
        counts.append(sum(r is not None and r.confident for row in reads for r in row))
    as_is, turned = counts
    return turned >= max(config.flip_min_names, 2 * as_is + 1)


def name_doubts(
    boxes: Sequence[LeadBox], reads: Sequence[NameRead | None], *, config: NamesConfig = NamesConfig()
) -> dict[str, float]:
    """The confidence a lead may have at most where its box's printed name reads as another lead
    with at least :attr:`NamesConfig.min_doubt_prob` (a name the lead assignment could not follow,
    two boxes reading one name, or did not trust, read below :attr:`NameRead.min_prob`): one
    minus that reading's probability.  Each doubt is told to the person as an assumption about
    the page's layout."""
    out: dict[str, float] = {}
    for box, read in zip(boxes, reads, strict=True):
        if read is None:
            continue
        probs = read.lead_probs()
        k = int(np.argmax(probs))
        lead, other = box.lead, LEAD_NAMES[k]
        if probs[k] < config.min_doubt_prob or other == lead:
            continue
        out[lead] = min(out.get(lead, 1.0), 1.0 - float(probs[k]))
        assume(log, "layout", f"the name printed at lead {lead} (row {box.row + 1}) reads {other}; check the leads")
    return out


#: Names that read the same turned half round (in the sans-serif type carts print).
_SAME_UPSIDE_DOWN = frozenset({"I", "II", "III"})


def one_way_up(reads: Sequence[NameRead | None]) -> int:
    """How many names were read with confidence that read only the right way up (not I, II or
    III, which read the same turned half round): they say which way up the page is."""
    return sum(1 for r in reads if r is not None and r.confident and r.name not in _SAME_UPSIDE_DOWN)


def name_boxes(reads: Sequence[NameRead | None], boxes: Sequence[LeadBox]) -> list[tuple[float, float, float, float]]:
    """Where the confidently read lead names are printed, widened to the left by their height
    (the part of a name the trace ran into was masked out with the trace when the word was
    found) but not past the start of their lead's box (the lead before it is not a name)."""
    out = []
    for r in reads:
        if r is not None and r.confident:
            x0, y0, x1, y1 = r.word_xyxy
            out.append((max(x0 - (y1 - y0), boxes[r.box_index].x0), y0, x1, y1))
    return out


def enters(xy: np.ndarray, words: Sequence[tuple[float, float, float, float]]) -> bool:
    """Whether a polyline ``(n, 2)`` has points inside any of the word boxes."""
    if not len(words) or not len(xy):
        return False
    w = np.asarray(words, float)
    x, y = xy[:, :1], xy[:, 1:]
    return bool(((x >= w[:, 0]) & (x < w[:, 2]) & (y >= w[:, 1]) & (y < w[:, 3])).any())


def drop_rows_above_names(rows: Sequence, reads: Sequence[Sequence[NameRead | None]]) -> list:
    """The rows from the first one that carries a lead name down, where the rows above carry none.

    Leads are printed under the page header, so rows above the first named one are header text
    or grid lines the model half believes.  Only done where at least three rows are named, what
    is left is a standard number of rows (a faded name on a 12-row page drops nothing) and the
    rows dropped are clearly less trace-like than the named ones (under three quarters of their
    median :attr:`~ecgstudio.layout.Row.trace_likeness`).
    """
    named = [any(r is not None and r.confident for r in row) for row in reads]
    if sum(named) < 3 or named[0]:
        return list(rows)
    first = named.index(True)
    if len(rows) - first not in LAYOUT_BY_ROWS:
        return list(rows)
    # A row of leads whose names are all illegible still looks like the others: keep it.
    likeness = float(np.median([r.trace_likeness for r, n in zip(rows, named) if n]))
    if any(r.trace_likeness >= 0.75 * likeness for r in rows[:first]):
        return list(rows)
    log.info("%d row(s) above the first lead name dropped (header text or grid lines)", first)
    return list(rows[first:])


def layout_as_read(template: Layout, boxes: Sequence[LeadBox]) -> Layout:
    """The layout the boxes show: a standard one if their leads match it cell for cell (a 3x4 + 1
    read as the Cabrera order is ``cabrera-3x4+1``), else the template's name over the boxes' leads."""
    cells = tuple(Cell(b.lead, b.row, b.col, b.t_start_s, b.duration_s, b.inverted) for b in boxes)

    def key(cs: Sequence[Cell]) -> set[tuple]:
        return {(c.lead, c.row, c.col, c.inverted) for c in cs}

    name = next(
        (lay.name for lay in LAYOUTS.values() if lay.n_rows == template.n_rows and key(lay.cells) == key(cells)),
        template.name,
    )
    return Layout(name, template.n_rows, cells, template.duration_s)
