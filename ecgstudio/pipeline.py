"""The digitizing pipeline: orchestration only, a page image in and a :class:`Digitization` out.

Stages: page geometry (:mod:`ecgstudio.geometry`) -> resampling to the canonical scale ->
trace segmentation (:mod:`ecgstudio.model`) -> rows, layout and lead boxes
(:mod:`ecgstudio.layout`) -> trace extraction and signals (:mod:`ecgstudio.extract`,
:mod:`ecgstudio.timing`) -> for pages scanned finer, segmentation and extraction again at a
finer scale (:func:`retrace`).  Boxes and traces are returned in the coordinates of the input
image, so the studio can draw them on the original scan.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from . import extract, layout as layout_stage, leadnames, timing
from .arrays import polyline_runs
from .errors import ImageSizeError, ModelError
from .geometry import rectify
from .io.images import MIN_SIDE_PX
from .model.infer import predict_maps
from .model.namenet import NameNet, load_reader
from .model.net import CANONICAL_PX_PER_MM, FINE_PX_PER_MM, TraceNet, fused_for_inference
from .model.registry import resolve_model
from .model.weights import ModelCard, load_model
from .paper import PAPER_SIZES_MM, Layout
from .results import Calibration, Digitization, LeadBox, PageMasks, Signals, Trace

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

Progress = Callable[[str, float], None]


@dataclass(frozen=True)
class DigitizeOptions:
    """What the user knows about the page; ``None`` means find it on the page.

    Attributes
    ----------
    layout : str
        ``auto`` or a name from :data:`ecgstudio.paper.LAYOUTS`.
    fs : float
        Output sampling frequency in Hz.
    mm_per_s : float, optional
        Paper speed; 25 mm/s when not given.
    mm_per_mv : float, optional
        Gain; read from the calibration pulses when not given, else 10 mm/mV.
    columns : str
        ``consecutive`` (the standard: each column continues the one before), ``from-zero``
        (every column starts at t = 0) or ``auto`` (read from the rhythm strip, see
        :mod:`ecgstudio.timing`; consecutive without one).
    """

    layout: str = "auto"
    fs: float = 500.0
    mm_per_s: float | None = None
    mm_per_mv: float | None = None
    columns: str = "auto"

    def __post_init__(self) -> None:
        if self.columns not in timing.COLUMN_READINGS:
            raise ValueError(f"columns must be one of {', '.join(timing.COLUMN_READINGS)}, got {self.columns!r}")


#: Below this source resolution (px per mm) calibration pulses are not measured.
MIN_PULSE_PX_PER_MM = 3.0
#: Below this source resolution (px per mm) lead names are not read (aVL and aVF blur together).
MIN_NAME_PX_PER_MM = 3.5
#: Pages whose own resolution allows tracing at this many times the canonical scale or more are
#: traced again more finely (:data:`FINE_PX_PER_MM`, or the page's own resolution below it):
#: rows, layout, leads and calibration come from the whole page at the canonical scale, where
#: the network was trained to see it whole, the traces from the finer maps (on the benchmark
#: pages +0.7 dB at 7.2 px/mm and +0.4 dB more at 7.9; BENCHMARKS.md).
MIN_FINE_GAIN = 1.1
#: How far (mm) a trace read again from finer maps may move from where it was first read.
RETRACE_REACH_MM = 1.5


class Digitizer:
    """Loads the model once and digitizes many pages.

    Parameters
    ----------
    model : path or str, optional
        Weights file (with its ``.json`` card beside it) or a model version name; by default the
        active version (the shipped model unless a fine-tuned one was activated; see
        :mod:`ecgstudio.model.registry`).
    device : str
        ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
    """

    def __init__(self, model: str | Path | None = None, *, device: str = "auto") -> None:
        import torch

        self.device = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                                   ("cpu" if device == "auto" else device))
        model_, card = load_model(resolve_model(model), device=self.device)
        self._use(model_, card)

    @classmethod
    def from_network(cls, net: TraceNet, card: ModelCard, *, device: torch.device) -> Digitizer:
        """A digitizer over an in-memory network (a model being trained or fine-tuned); the
        network itself is left untouched (a folded copy is used)."""
        digitizer = cls.__new__(cls)
        digitizer.device = device
        digitizer._use(net, card)
        return digitizer

    def _use(self, net: TraceNet, card: ModelCard) -> None:
        import torch

        self.card = card
        self.model = fused_for_inference(net).to(self.device, memory_format=torch.channels_last)
        self.reader = _shipped_reader()

    @property
    def model_card(self) -> ModelCard:
        return self.card

    def _traced_finer(self, page_image: np.ndarray, analysis: PageAnalysis, scale: float, k: float,
                      fs: float) -> PageAnalysis:
        """``analysis`` (at the canonical scale) traced again on the page resampled by ``scale``
        (``k`` times the canonical scale); only the band of the rows is segmented again."""
        fine = cv2.resize(page_image, None, fx=scale, fy=scale,
                          interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        margin = 3 * FINE_PX_PER_MM
        y0 = int(max(0, min(b.y0 for b in analysis.boxes) * k - margin))
        y1 = int(min(fine.shape[0], max(b.y1 for b in analysis.boxes) * k + margin))
        maps = np.zeros((2,) + fine.shape[:2], np.float32)
        maps[:, y0:y1] = predict_maps(self.model, fine[y0:y1], device=self.device)[:2]
        return retrace(analysis, maps[0], maps[1], fine, scale=k, fs=fs)

    def digitize(self, image: np.ndarray, options: DigitizeOptions = DigitizeOptions(), *,
                 progress: Progress | None = None) -> Digitization:
        """Digitize one page (RGB uint8 ``(H, W, 3)``).

        Raises
        ------
        ImageSizeError
            The image is too small to hold an ECG.
        NotAnEcgError
            No ECG traces were found.
        """
        timings: dict[str, float] = {}
        clock = time.perf_counter()

        def stage(name: str, fraction: float) -> None:
            nonlocal clock
            now = time.perf_counter()
            timings[name] = now - clock
            clock = now
            if progress:
                progress(name, fraction)

        h, w = image.shape[:2]
        if min(h, w) < MIN_SIDE_PX:
            raise ImageSizeError(f"image of {w}x{h} px is too small to hold an ECG; scan at 150 dpi or more")

        page = rectify(image)
        px_per_mm = page.grid.px_per_mm if page.grid.has_grid else _px_per_mm_without_grid(page.image)
        stage("geometry", 0.2)

        scale = CANONICAL_PX_PER_MM / px_per_mm
        canon = cv2.resize(page.image, None, fx=scale, fy=scale,
                           interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        to_canon = np.diag([scale, scale, 1.0]) @ page.homography
        stage("resample", 0.25)

        maps = predict_maps(self.model, canon, device=self.device)
        trace_prob, text_prob = maps[0], maps[1]
        stage("segmentation", 0.5)

        if options.mm_per_mv is None and px_per_mm < MIN_PULSE_PX_PER_MM:
            log.warning("the page has %.1f px per mm, too coarse to measure calibration pulses; assuming 10 mm/mV "
                        "(give --gain if it is another)", px_per_mm)
            options = replace(options, mm_per_mv=10.0)
        reader = self.reader if px_per_mm >= MIN_NAME_PX_PER_MM else None
        if reader is None and self.reader is not None:
            log.info("the page has %.1f px per mm, too coarse to read lead names; the layout's order is used",
                     px_per_mm)
        page_result = analyse_maps(trace_prob, text_prob, canon, options, reader=reader)
        stage("layout and extraction", 0.65)

        fine = min(FINE_PX_PER_MM, px_per_mm)
        if fine >= MIN_FINE_GAIN * CANONICAL_PX_PER_MM:
            page_result = self._traced_finer(page.image, page_result, fine / px_per_mm, fine / CANONICAL_PX_PER_MM,
                                             options.fs)
            to_canon = np.diag([fine / CANONICAL_PX_PER_MM] * 2 + [1.0]) @ to_canon
            scale *= fine / CANONICAL_PX_PER_MM
            text_prob = cv2.resize(text_prob, page_result.trace_prob.shape[::-1], interpolation=cv2.INTER_LINEAR)
            stage("fine tracing", 0.95)

        from_canon = np.linalg.inv(to_canon)
        masks = _masks_in_input(page_result.trace_prob, text_prob, page_result.boxes, from_canon, (h, w))
        result = Digitization(
            image_size=(h, w),
            layout=page_result.layout.name,
            calibration=page_result.calibration.scaled(1.0 / scale),
            boxes=tuple(_map_box(b, from_canon) for b in page_result.boxes),
            traces=tuple(Trace(t.lead, _map_points(from_canon, t.xy), t.confidence) for t in page_result.traces),
            signals=page_result.signals,
            confidence=page_result.confidence,
            masks=masks,
            model_version=self.card.version,
            timings_s=timings,
        )
        stage("done", 1.0)
        result.timings_s.update(timings)
        return result


Region = tuple[float, float, float, float]


@dataclass(frozen=True, eq=False)
class PageAnalysis:
    """Layout, boxes, traces and signals of a page, in the pixel frame of the analysed maps, and
    the trace map as the traces were read from it (separator ticks and pulses taken out).

    ``pulse_regions`` (calibration pulses) and ``names`` (printed lead names) are regions
    ``(x0, y0, x1, y1)`` that are not signal; with ``baselines`` and ``spacing`` they let
    :func:`retrace` read the same page again from finer maps.
    """

    layout: Layout
    calibration: Calibration
    boxes: tuple[LeadBox, ...]
    traces: tuple[Trace, ...]
    signals: Signals
    confidence: dict[str, float]
    trace_prob: np.ndarray
    pulse_regions: tuple[Region, ...] = ()
    names: tuple[Region, ...] = ()
    baselines: tuple[float, ...] = ()
    spacing: float = 0.0


def analyse_maps(trace_prob: np.ndarray, text_prob: np.ndarray, image: np.ndarray,
                 options: DigitizeOptions = DigitizeOptions(), *,
                 px_per_mm: float = CANONICAL_PX_PER_MM, reader: NameNet | None = None) -> PageAnalysis:
    """The stages after segmentation: rows, layout, calibration, boxes, lead names, traces and signals.

    Parameters
    ----------
    trace_prob, text_prob : ndarray, shape (H, W), float in [0, 1]
        Trace centre-line and non-signal-ink probabilities of a page at ``px_per_mm``.
    image : ndarray, shape (H, W, 3), uint8
        The page itself (RGB) in the same frame: its dark ink gives the calibration pulses, its
        grey levels the printed lead names.
    reader : NameNet, optional
        The lead-name reader; without it every box keeps its layout template's lead.
    """
    ink = layout_stage.ink_mask(image)
    rows = layout_stage.find_rows(trace_prob, px_per_mm=px_per_mm)
    read_names = reader is not None and options.layout == "auto"
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if read_names else None
    if read_names:
        rows = leadnames.drop_rows_above_names(
            rows, leadnames.row_names(reader, grey, trace_prob, text_prob, rows, px_per_mm=px_per_mm))
    chosen = layout_stage.choose_layout(rows, options.layout)
    rows = layout_stage.match_rows(rows, chosen)
    if options.layout == "auto":
        evidence = layout_stage.boundary_evidence(text_prob, rows, px_per_mm=px_per_mm)
        chosen = layout_stage.refine_layout(chosen, evidence)
    pulses = layout_stage.find_pulses(ink | (text_prob > 0.5), rows, px_per_mm=px_per_mm)
    rows = layout_stage.rows_beside_pulses(rows, pulses)
    if options.mm_per_mv:
        gain = options.mm_per_mv
    else:
        gain = layout_stage.gain_from_pulse(layout_stage.pulse_height_mm(pulses, len(rows), px_per_mm=px_per_mm),
                                            10.0)
    cal = Calibration(px_per_mm, px_per_mm, options.mm_per_s or 25.0, gain)
    page_layout = chosen.with_duration(layout_stage.page_duration_s(rows, cal))
    boxes = layout_stage.lead_boxes(rows, page_layout, cal)
    boxes = layout_stage.snap_to_major_lines(boxes, image, px_per_mm=px_per_mm,
                                             exclude=cv2.dilate((trace_prob > 0.2).astype(np.uint8),
                                                                np.ones((5, 5), np.uint8)) > 0)

    # Separator ticks between leads and calibration pulses are not trace, whatever the network thinks.
    pulse_regions = tuple(extract.pulse_regions(pulses))
    trace_prob = extract.without_regions(trace_prob, extract.find_separators(ink, boxes, px_per_mm=px_per_mm)
                                         + list(pulse_regions))
    baselines = tuple(r.baseline_y for r in rows)
    spacing = layout_stage.row_spacing(list(baselines), px_per_mm=px_per_mm)
    row_lines = [_row_line(trace_prob, text_prob, baselines, spacing, k, boxes) for k in range(len(rows))]
    names: tuple[Region, ...] = ()
    if read_names:
        reads = leadnames.read_names(reader, grey, trace_prob, text_prob, boxes, [xy for xy, _ in row_lines],
                                     px_per_mm=px_per_mm)
        boxes = leadnames.assign_leads(boxes, reads)
        page_layout = leadnames.layout_as_read(page_layout, boxes)
        names = tuple(leadnames.name_boxes(reads, boxes))
        row_lines = _off_the_names(row_lines, trace_prob, text_prob, baselines, spacing, boxes, names, px_per_mm)
    boxes, traces, signals = _traces_and_signals(row_lines, ink, text_prob, boxes, cal, px_per_mm=px_per_mm,
                                                 fs=options.fs, duration_s=page_layout.duration_s)
    if options.columns == "from-zero" or (options.columns == "auto" and timing.columns_start_at_zero(boxes, signals)):
        boxes = timing.restart_columns(boxes)
        signals = _traced_signals(boxes, traces, cal, fs=options.fs, duration_s=page_layout.duration_s)
    return PageAnalysis(page_layout, cal, boxes, traces, signals, _lead_confidence(boxes, traces), trace_prob,
                        pulse_regions, names, baselines, spacing)


def retrace(analysis: PageAnalysis, trace_prob: np.ndarray, text_prob: np.ndarray, image: np.ndarray, *,
            scale: float, fs: float) -> PageAnalysis:
    """The page of ``analysis`` read again from maps of the same page resampled by ``scale``
    (finer maps, e.g.; ``image`` is the page in their frame): its layout, boxes, leads, names,
    pulses and time axis carried over, its separator ticks found again, its traces and signals
    taken from the new maps."""
    def px(v):  # pixel positions (a number or an array) in the new frame (cv2.resize keeps pixel centres)
        return (v + 0.5) * scale - 0.5

    def region(r: Region) -> Region:
        return px(r[0]), px(r[1]), px(r[2]), px(r[3])

    boxes = tuple(replace(b, x0=px(b.x0), x1=px(b.x1), y0=px(b.y0), y1=px(b.y1), baseline_y=px(b.baseline_y))
                  for b in analysis.boxes)
    cal = analysis.calibration.scaled(scale)
    baselines = tuple(px(y) for y in analysis.baselines)
    spacing = analysis.spacing * scale
    names = tuple(region(r) for r in analysis.names)
    pulse_regions = tuple(region(r) for r in analysis.pulse_regions)
    ink = layout_stage.ink_mask(image)
    separators = extract.find_separators(ink, boxes, px_per_mm=cal.px_per_mm_x)
    trace_prob = extract.without_regions(trace_prob, separators + list(pulse_regions))
    # The new maps refine the traces already read; they do not start new ones (a ruled line the
    # finer view half believes, a trace where the first reading found a gap).
    near = np.zeros(trace_prob.shape, np.uint8)
    for trace in analysis.traces:
        runs = polyline_runs(px(trace.xy), shift=4)
        if runs:
            cv2.polylines(near, runs, False, 1, 1, cv2.LINE_8, 4)
    reach = int(round(RETRACE_REACH_MM * cal.px_per_mm_x))
    trace_prob = trace_prob * cv2.dilate(near, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1,) * 2))
    row_lines = [_row_line(trace_prob, text_prob, baselines, spacing, k, boxes) for k in range(len(baselines))]
    row_lines = _off_the_names(row_lines, trace_prob, text_prob, baselines, spacing, boxes, names,
                               cal.px_per_mm_x)
    boxes, traces, signals = _traces_and_signals(row_lines, ink, text_prob, boxes, cal, px_per_mm=cal.px_per_mm_x,
                                                 fs=fs, duration_s=analysis.layout.duration_s)
    return PageAnalysis(analysis.layout, cal, boxes, traces, signals, _lead_confidence(boxes, traces), trace_prob,
                        pulse_regions, names, baselines, spacing)


def _traces_and_signals(row_lines: list, ink: np.ndarray, text_prob: np.ndarray, boxes: tuple[LeadBox, ...],
                        cal: Calibration, *, px_per_mm: float, fs: float, duration_s: float
                        ) -> tuple[tuple[LeadBox, ...], tuple[Trace, ...], Signals]:
    """Each box's trace cut from its row's line (steep strokes followed on through printed text),
    the boxes' time axes aligned to the traces' samples, and the signals."""
    row_lines = [(extract.through_text(xy, ink, text_prob, px_per_mm=px_per_mm), conf) for xy, conf in row_lines]
    traces = tuple(extract.cut_trace(*row_lines[b.row], b) for b in boxes)
    boxes = timing.align_to_samples(boxes, traces, px_per_s=cal.px_per_s, fs=fs)
    return boxes, traces, _traced_signals(boxes, traces, cal, fs=fs, duration_s=duration_s)


def _traced_signals(boxes: tuple[LeadBox, ...], traces: tuple[Trace, ...], cal: Calibration, *, fs: float,
                    duration_s: float) -> Signals:
    """Signals of traces read from a map, one point per pixel column (band-limited to that)."""
    return extract.assemble_signals(boxes, traces, cal, fs=fs, duration_s=duration_s,
                                    band_limit_hz=extract.traced_band_limit(cal))


def _off_the_names(row_lines: list[tuple[np.ndarray, np.ndarray]], trace_prob: np.ndarray, text_prob: np.ndarray,
                   baselines: tuple[float, ...], spacing: float, boxes: tuple[LeadBox, ...],
                   names: tuple[Region, ...], px_per_mm: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Rows traced again without the lead names where their path met one just past its lead's
    start: a lead name is not signal, and there the path has come off the separator onto the name
    (further on, a deep S wave may run through a name stroke by stroke: left alone)."""
    starts = [(x0, y0, min(x1, x0 + 1.5 * px_per_mm), y1) for x0, y0, x1, y1 in names]
    crossed = [k for k, (xy, _) in enumerate(row_lines) if leadnames.enters(xy, starts)]
    if not crossed:
        return row_lines
    unnamed = extract.without_regions(trace_prob, names)
    return [_row_line(unnamed, text_prob, baselines, spacing, k, boxes) if k in crossed else line
            for k, line in enumerate(row_lines)]


def _row_line(trace_prob: np.ndarray, text_prob: np.ndarray, baselines: tuple[float, ...], spacing: float, k: int,
              boxes: tuple[LeadBox, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Polyline and confidence of row ``k``'s trace over the whole span of its boxes (faded
    stretches become gaps, not a shorter page)."""
    width = trace_prob.shape[1]
    row_boxes = [b for b in boxes if b.row == k]
    x_start = int(np.clip(np.floor(min(b.x0 for b in row_boxes)), 0, width - 1))
    x_end = int(np.clip(np.ceil(max(b.x1 for b in row_boxes)), x_start, width - 1))
    neighbours = extract.neighbour_baselines(list(baselines), k)
    path = extract.trace_row(trace_prob, baseline_y=baselines[k], spacing=spacing, x_start=x_start, x_end=x_end,
                             neighbours=neighbours, text_prob=text_prob)
    return extract.path_polyline(extract.drop_foreign_stretches(path, baselines[k], neighbours), prob=trace_prob)


@functools.lru_cache(maxsize=1)
def _shipped_reader() -> NameNet | None:
    """The shipped lead-name reader (CPU; it is tiny), or None with a warning if it is missing."""
    try:
        return fused_for_inference(load_reader()[0])
    except ModelError as exc:
        log.warning("%s; lead names will not be read, every box keeps its layout's lead", exc)
        return None


def _px_per_mm_without_grid(image: np.ndarray) -> float:
    """Without a grid, assume the image shows a whole landscape letter page."""
    px = image.shape[1] / PAPER_SIZES_MM["letter"][0]
    log.warning("no grid found; assuming the image is a whole letter page (%.2f px/mm)", px)
    return px


def _lead_confidence(boxes: tuple[LeadBox, ...], traces: tuple[Trace, ...]) -> dict[str, float]:
    """Per lead: mean point confidence times the share of the box's columns with a trace."""
    out: dict[str, float] = {}
    for box, trace in zip(boxes, traces):
        if trace.confidence is None or len(trace.xy) == 0:
            value = 0.0
        else:
            found = np.isfinite(trace.xy[:, 1])
            coverage = min(1.0, found.sum() / max(1.0, box.width))
            value = float(np.mean(trace.confidence[found])) * coverage if found.any() else 0.0
        out[box.lead] = float(max(out.get(box.lead, 0.0), value))
    return out


def _map_points(m: np.ndarray, xy: np.ndarray) -> np.ndarray:
    if len(xy) == 0:
        return xy.copy()
    pts = np.column_stack([xy, np.ones(len(xy))]) @ m.T
    return pts[:, :2] / pts[:, 2:3]


def _map_box(box: LeadBox, m: np.ndarray) -> LeadBox:
    corners = np.array([[box.x0, box.y0], [box.x1, box.y0], [box.x1, box.y1], [box.x0, box.y1],
                        [box.x0, box.baseline_y], [box.x1, box.baseline_y]])
    p = _map_points(m, corners)
    return replace(box, x0=float(p[:4, 0].min()), x1=float(p[:4, 0].max()), y0=float(p[:4, 1].min()),
                   y1=float(p[:4, 1].max()), baseline_y=float(p[4:, 1].mean()))


def _masks_in_input(trace_prob: np.ndarray, text_prob: np.ndarray, boxes: tuple[LeadBox, ...],
                    from_canon: np.ndarray, shape: tuple[int, int]) -> PageMasks:
    """Trace pixels labelled by box (``k + 1``) and text pixels, warped back onto the input image."""
    labels = np.zeros(trace_prob.shape, np.uint8)
    ink = trace_prob > 0.5
    for k, box in enumerate(boxes):
        y0, y1 = int(max(0, box.y0)), int(min(labels.shape[0], box.y1 + 1))
        x0, x1 = int(max(0, box.x0)), int(min(labels.shape[1], box.x1 + 1))
        region = labels[y0:y1, x0:x1]
        region[ink[y0:y1, x0:x1] & (region == 0)] = k + 1
    h, w = shape
    warp = lambda a: cv2.warpPerspective(a, from_canon, (w, h), flags=cv2.INTER_NEAREST)  # noqa: E731
    text = warp((text_prob > 0.5).astype(np.uint8)).astype(bool)
    return PageMasks(warp(labels), np.zeros((h, w), bool), text)


@functools.lru_cache(maxsize=2)
def _cached_digitizer(model: str | None) -> Digitizer:
    return Digitizer(model)


def digitize(image: np.ndarray, *, layout: str = "auto", fs: float = 500.0, mm_per_s: float | None = None,
             mm_per_mv: float | None = None, model: str | Path | None = None) -> Digitization:
    """One-shot digitization with a cached :class:`Digitizer` (see :meth:`Digitizer.digitize`)."""
    digitizer = _cached_digitizer(str(model) if model else None)
    return digitizer.digitize(image, DigitizeOptions(layout, fs, mm_per_s, mm_per_mv))


__all__ = ["DigitizeOptions", "Digitizer", "PageAnalysis", "analyse_maps", "digitize", "retrace"]
