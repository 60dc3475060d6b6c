"""The digitizing pipeline: orchestration only, a page image in and a :class:`Digitization` out.

The stages, each a module with typed results, in the order :meth:`Digitizer.digitize` calls them:

1. **geometry** (:mod:`ecgstudio.geometry`): the page upright, flat and square, its grid scale.
2. **segmentation** (:mod:`ecgstudio.segmentation`): the trace network's maps of the page at the
   canonical scale; the speed and gain printed on it (:mod:`ecgstudio.printed`).
3. **rows and layout** (:mod:`ecgstudio.layout`, lead names in :mod:`ecgstudio.leadnames`).
4. **pulses and calibration** (:mod:`ecgstudio.calibration`).
5. **lead boxes** (:mod:`ecgstudio.boxes`): the one place a box is made and changed.
6. **path search** (:mod:`ecgstudio.path`) and **strokes** (:mod:`ecgstudio.strokes`): each
   row's trace, each lead's part of it.
7. **signals** (:mod:`ecgstudio.signals`, columns' time in :mod:`ecgstudio.timing`).
8. For pages scanned finer, segmentation, path search, strokes and signals again at a finer
   scale (:func:`retrace`).

Boxes and traces are returned in the coordinates of the input image, so the studio can draw
them on the original scan.  Every setting is a field of :class:`~ecgstudio.config.EngineConfig`.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import cv2
import numpy as np

from . import boxes as box_stage
from . import calibration, leadnames, path, segmentation, strokes, timing
from . import layout as layout_stage
from . import signals as signal_stage
from .assumptions import assume, collected, keep
from .config import EngineConfig
from .errors import EcgStudioError, ImageSizeError, ModelError, NotAnEcgError
from .geometry import RectifiedPage, map_points, page_px_per_mm, rectify
from .io.images import MIN_SIDE_PX
from .model.namenet import NAMES, NameNet, load_reader
from .model.net import CANONICAL_PX_PER_MM, TraceNet, fused_for_inference
from .model.registry import resolve_model
from .model.settingsnet import SETTINGS
from .model.speednet import load_speed_reader
from .model.weights import ModelCard, load_model
from .paper import LAYOUTS, Layout
from .printed import PrintedSettings, read_settings
from .results import Calibration, Digitization, LeadBox, Signals, Trace

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

Progress = Callable[[str, float], None]
_Net = TypeVar("_Net")
Region = tuple[float, float, float, float]


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
    config : EngineConfig
        The engine's settings.
    """

    def __init__(
        self, model: str | Path | None = None, *, device: str = "auto", config: EngineConfig = EngineConfig()
    ) -> None:
        import torch

        self.device = torch.device(
            "cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device)
        )
        model_, card = load_model(resolve_model(model), device=self.device)
        self._use(model_, card, config)

    @classmethod
    def from_network(
        cls, net: TraceNet, card: ModelCard, *, device: torch.device, config: EngineConfig = EngineConfig()
    ) -> Digitizer:
        """A digitizer over an in-memory network (a model being trained or fine-tuned); the
        network itself is left untouched (a folded copy is used)."""
        digitizer = cls.__new__(cls)
        digitizer.device = device
        digitizer._use(net, card, config)
        return digitizer

    def _use(self, net: TraceNet, card: ModelCard, config: EngineConfig) -> None:
        import torch

        self.card = card
        self.config = config
        self.model = fused_for_inference(net).to(self.device, memory_format=torch.channels_last)
        self.reader = _shipped(
            lambda: fused_for_inference(load_reader(task=NAMES)[0]),
            "lead names will not be read, every box keeps its layout's lead",
        )
        self.settings_reader = _shipped(
            lambda: fused_for_inference(load_reader(task=SETTINGS)[0]), "printed speeds and gains will not be read"
        )
        self.speed_reader = _shipped(
            lambda: load_speed_reader()[0], "pages printed at 50 mm/s are read at 50 only where given or printed"
        )

    @property
    def model_card(self) -> ModelCard:
        return self.card

    def digitize(
        self, image: np.ndarray, options: DigitizeOptions = DigitizeOptions(), *, progress: Progress | None = None
    ) -> Digitization:
        """Digitize one page (RGB uint8 ``(H, W, 3)``).

        Raises
        ------
        ImageSizeError
            The image is too small to hold an ECG.
        NotAnEcgError
            No ECG traces were found.
        """
        with collected() as assumed:
            result = self._digitize(image, options, progress)
        if not isinstance(result, Digitization):
            with collected() as assumed:
                result = self._digitize(image, options, progress, turn=result)
        assert isinstance(result, Digitization)
        return dataclasses.replace(result, assumptions=tuple(assumed))

    def _digitize(
        self, image: np.ndarray, options: DigitizeOptions, progress: Progress | None, *, turn: int | None = None
    ) -> Digitization | int:
        """The page read upright as the geometry, the lead names and the traces say, or with
        ``turn`` (degrees) as given; where no lead names confirm which way up it is and its traces
        run backwards in time, and forwards with the page turned half round (checked only when
        ``turn`` is None), that turn instead."""
        config = self.config
        stage = _StageClock(progress)
        h, w = image.shape[:2]
        if min(h, w) < MIN_SIDE_PX:
            raise ImageSizeError(f"image of {w}x{h} px is too small to hold an ECG; scan at 150 dpi or more")
        if max(h, w) > config.segmentation.max_aspect * min(h, w):
            raise ImageSizeError(
                f"image of {w}x{h} px is {max(h, w) / min(h, w):.0f} times longer than it is wide; no ECG page or "
                "strip is that narrow: crop it to the ECG, or scan the whole page"
            )

        if turn is not None:
            page = rectify(image, turn=turn, config=config.geometry)
        else:
            page = rectify(image, config=config.geometry)
            if page.sideways_margin < config.geometry.check_sideways_below:
                page = self._upright_by_traces(image, page)
        with collected() as guessed:
            px_per_mm = page_px_per_mm(page)
        if px_per_mm < config.segmentation.min_px_per_mm:
            raise ImageSizeError(
                f"image of {w}x{h} px is read at {px_per_mm:.2f} px/mm ({px_per_mm * 25.4:.0f} dpi), too coarse to "
                "show an ECG trace; scan at 150 dpi or more"
            )
        stage("geometry", 0.2)

        maps = segmentation.canonical_maps(
            self.model, page.image, px_per_mm=px_per_mm, device=self.device, config=config.segmentation
        )
        if turn is None and self._names_upside_down(maps, px_per_mm):
            log.info("the lead names read upside down: the page is turned half round")
            page = rectify(image, turn=(page.quarter_turn + 180) % 360, config=config.geometry)
            maps = segmentation.canonical_maps(
                self.model, page.image, px_per_mm=px_per_mm, device=self.device, config=config.segmentation
            )
        measured = None if page.grid.has_grid else self._scale_from_traces(maps, px_per_mm)
        if measured is None:
            keep(guessed)
        else:
            px_per_mm = measured
            assume(
                log,
                "scale",
                f"no grid found; the scale is taken from the traces' width, {layout_stage.TRACE_WIDTH_MM:g} mm as "
                f"electrocardiographs print 10 s at 25 mm/s ({px_per_mm:.2f} px/mm)",
            )
            maps = segmentation.canonical_maps(
                self.model, page.image, px_per_mm=px_per_mm, device=self.device, config=config.segmentation
            )
        printed = self._printed_settings(maps, px_per_mm)
        if options.mm_per_s is None and printed.mm_per_s is not None:
            options = dataclasses.replace(options, mm_per_s=printed.mm_per_s)
            if printed.mm_per_s != config.calibration.default_mm_per_s:
                speed = f"{printed.mm_per_s:g} mm/s"
                assume(log, "speed", f"the page prints {speed}; reading it at {speed} (give --speed if it is another)")
        stage("segmentation", 0.5)

        reading = {
            "reader": self._reader_for(px_per_mm),
            "source_px_per_mm": px_per_mm,
            "printed_mm_per_mv": printed.mm_per_mv,
            "config": config,
        }
        analyse = functools.partial(analyse_maps, maps.trace_prob, maps.text_prob, maps.image, **reading)
        with collected() as first_reading:
            analysis = analyse(options)
        if (
            options.mm_per_s is None
            and self.speed_reader is not None
            and calibration.double_speed(analysis.signals, self.speed_reader, config=config.calibration)
        ):
            speed = 2 * config.calibration.default_mm_per_s
            assume(
                log,
                "speed",
                f"every wave lasts twice as long as an ECG's, as on a page printed at {speed:g} mm/s; reading "
                f"it at {speed:g} mm/s (give --speed if it is another)",
            )
            analysis = analyse(dataclasses.replace(options, mm_per_s=speed))
        else:
            keep(first_reading)
        analysis = self._layout_by_limb_leads(analyse, options, analysis)
        # Lead names read the right way up settle which way up the page is; without them, the traces do.
        named = analysis.upright_names >= config.names.flip_min_names
        if turn is None and not named and timing.time_direction(analysis.signals) < -config.timing.turn_evidence:
            half_round = [np.ascontiguousarray(a[::-1, ::-1]) for a in (maps.trace_prob, maps.text_prob, maps.image)]
            if self._runs_forward(functools.partial(analyse_maps, *half_round, **reading), options):
                log.info("the traces run backwards in time, and forwards with the page turned half round")
                return (page.quarter_turn + 180) % 360
        stage("layout and extraction", 0.65)

        scale = maps.scale
        to_frame = np.diag([scale, scale, 1.0]) @ page.homography
        text_prob = maps.text_prob
        fine_px_per_mm = segmentation.fine_scale(px_per_mm, config.segmentation)
        if fine_px_per_mm is not None:
            fine = segmentation.band_maps(
                self.model,
                page.image,
                analysis.boxes,
                px_per_mm=px_per_mm,
                fine_px_per_mm=fine_px_per_mm,
                device=self.device,
                config=config.segmentation,
            )
            k = fine_px_per_mm / CANONICAL_PX_PER_MM
            analysis = retrace(
                analysis, fine.trace_prob, fine.text_prob, fine.image, scale=k, fs=options.fs, config=config
            )
            to_frame = np.diag([k, k, 1.0]) @ to_frame
            scale *= k
            text_prob = cv2.resize(text_prob, analysis.trace_prob.shape[::-1], interpolation=cv2.INTER_LINEAR)
            stage("fine tracing", 0.95)

        best = max(analysis.confidence.values(), default=0.0)
        weak_grid = not page.grid.has_grid or page.grid.confidence < config.signals.min_gridless_confidence
        if weak_grid and best < config.signals.min_gridless_confidence:
            raise NotAnEcgError(
                f"no ECG found: the page has no clear ECG grid and its marks do not look like ECG traces (best lead "
                f"confidence {best:.2f}); check that the file is an ECG page"
            )
        result = analysis.in_input(
            to_frame, scale, text_prob, (h, w), model_version=self.card.version, timings_s=stage.timings
        )
        stage("done", 1.0)
        return result

    def _layout_by_limb_leads(
        self, analyse: Callable[[DigitizeOptions], PageAnalysis], options: DigitizeOptions, analysis: PageAnalysis
    ) -> PageAnalysis:
        """``analysis``, or, unless a layout was named, the page read with another layout of as
        many rows where its limb leads agree clearly better (:func:`ecgstudio.signals.limb_disagreement`:
        a Cabrera page read in the standard order, a 6x2 page taken for 3x4 + 3 rhythm strips)."""
        config = self.config.signals
        off = signal_stage.limb_disagreement(analysis.signals)
        if options.layout != "auto" or off is None or off <= config.limb_check_above:
            return analysis
        best, best_off, best_said = analysis, off, []
        for name, layout in LAYOUTS.items():
            if layout.n_rows != analysis.layout.n_rows or name == analysis.layout.name:
                continue
            with collected(quiet=True) as said:
                other = analyse(dataclasses.replace(options, layout=name))
            other_off = signal_stage.limb_disagreement(other.signals)
            if other_off is not None and other_off < best_off:
                best, best_off, best_said = other, other_off, said
        if best_off >= min(config.limb_better_share * off, config.limb_adopt_below):
            return analysis
        log.info(
            "the limb leads agree as %s (%.2f), not as %s (%.2f)", best.layout.name, best_off, analysis.layout.name, off
        )
        for said in best_said:
            log.warning("%s", said.text)
        keep(best_said)
        return best

    def _runs_forward(self, analyse: Callable[[DigitizeOptions], PageAnalysis], options: DigitizeOptions) -> bool:
        """Whether the page read by ``analyse`` shows its traces clearly running forward in time
        (:func:`ecgstudio.timing.time_direction`)."""
        try:
            with collected(quiet=True):
                signals = analyse(options).signals
        except EcgStudioError:
            return False
        return timing.time_direction(signals) > self.config.timing.turn_evidence

    def _upright_by_traces(self, image: np.ndarray, page: RectifiedPage) -> RectifiedPage:
        """``page``, or the page turned a quarter the other way where the trace network finds
        clearly more trace rows that way (their :attr:`~ecgstudio.layout.Row.trace_likeness`, read
        at half the canonical scale, :attr:`~ecgstudio.config.GeometryConfig.sideways_evidence`
        times the other's; a lone row, often a paper edge, counts for nothing): for pages whose
        ink leaves the rows' axis unclear."""

        def rows_likeness(upright: np.ndarray) -> float:
            half = 0.5 * CANONICAL_PX_PER_MM
            px_per_mm = page.calibration_hint.px_per_mm_x * CANONICAL_PX_PER_MM / half
            maps = segmentation.canonical_maps(
                self.model, upright, px_per_mm=px_per_mm, device=self.device, config=self.config.segmentation
            )
            try:
                rows = layout_stage.find_rows(maps.trace_prob, px_per_mm=half, config=self.config.rows)
            except NotAnEcgError:
                return 0.0
            return sum(r.trace_likeness for r in rows) if len(rows) > 1 else 0.0

        turned = np.ascontiguousarray(np.rot90(page.image))
        if rows_likeness(turned) <= self.config.geometry.sideways_evidence * rows_likeness(page.image):
            return page
        sideways = page.quarter_turn % 180 == 0
        log.info("the trace network reads the page's rows along its %s", "columns" if sideways else "rows")
        return rectify(image, sideways=sideways, config=self.config.geometry)

    def _names_upside_down(self, maps: segmentation.PageMaps, px_per_mm: float) -> bool:
        """Whether the page's lead names read better turned half round, where it is fine enough
        for names to be read (:func:`~ecgstudio.leadnames.upside_down`)."""
        if self.reader is None or px_per_mm < self.config.names.min_px_per_mm:
            return False
        return leadnames.upside_down(
            self.reader,
            maps.image,
            maps.trace_prob,
            maps.text_prob,
            px_per_mm=CANONICAL_PX_PER_MM,
            config=self.config.names,
            rows_config=self.config.rows,
        )

    def _scale_from_traces(self, maps: segmentation.PageMaps, px_per_mm: float) -> float | None:
        """The scale of a page without a grid from its traces' width (:func:`~ecgstudio.layout.width_scale`),
        where it differs from the guess ``px_per_mm`` the maps were made at by more than
        :attr:`~ecgstudio.config.RowsConfig.min_width_correction` and less than its largest."""
        try:
            rows = layout_stage.find_rows(maps.trace_prob, px_per_mm=CANONICAL_PX_PER_MM, config=self.config.rows)
        except NotAnEcgError:
            return None
        factor = layout_stage.width_scale(rows) / CANONICAL_PX_PER_MM
        lo, hi = self.config.rows.width_correction
        return px_per_mm * factor if lo <= abs(math.log(factor)) <= hi else None

    def _printed_settings(self, maps: segmentation.PageMaps, px_per_mm: float) -> PrintedSettings:
        """The speed and gain printed on the page, where it is fine enough for text to be read."""
        if self.settings_reader is None or px_per_mm < self.config.names.min_px_per_mm:
            return PrintedSettings()
        grey = cv2.cvtColor(maps.image, cv2.COLOR_RGB2GRAY)
        return read_settings(
            self.settings_reader,
            grey,
            maps.trace_prob,
            maps.text_prob,
            px_per_mm=CANONICAL_PX_PER_MM,
            config=self.config.names,
        )

    def _reader_for(self, px_per_mm: float) -> NameNet | None:
        """The lead-name reader where the page is fine enough for names to be read."""
        if px_per_mm >= self.config.names.min_px_per_mm:
            return self.reader
        if self.reader is not None:
            log.info(
                "the page has %.1f px per mm, too coarse to read lead names; the layout's order is used", px_per_mm
            )
        return None


class _StageClock:
    """Seconds per stage, and the caller's progress callback told of each stage as it ends."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.timings: dict[str, float] = {}
        self._clock = time.perf_counter()

    def __call__(self, name: str, fraction: float) -> None:
        now = time.perf_counter()
        self.timings[name] = now - self._clock
        self._clock = now
        if self.progress:
            self.progress(name, fraction)


@dataclass(frozen=True, eq=False)
class PageAnalysis:
    """Layout, boxes, traces and signals of a page, in the pixel frame of the analysed maps, and
    the trace map as the traces were read from it (separator ticks and pulses taken out).

    ``pulse_regions`` (calibration pulses) and ``names`` (printed lead names) are regions
    ``(x0, y0, x1, y1)`` that are not signal; with ``baselines``, ``spacing`` and ``doubts``
    they let :func:`retrace` read the same page again from finer maps.
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
    #: Leads whose printed name reads as another lead, with the confidence they may have at most.
    doubts: dict[str, float] = dataclasses.field(default_factory=dict)
    #: Lead names read with confidence that read only the right way up (:func:`ecgstudio.leadnames.one_way_up`).
    upright_names: int = 0

    def in_input(
        self,
        to_frame: np.ndarray,
        scale: float,
        text_prob: np.ndarray,
        shape: tuple[int, int],
        *,
        model_version: str,
        timings_s: dict[str, float],
    ) -> Digitization:
        """The analysis as a :class:`Digitization` of the input image (``shape``), which
        ``to_frame`` maps onto the analysis's frame, ``scale`` times finer than the rectified
        page (``text_prob`` is in the analysis's frame too)."""
        from_frame = np.linalg.inv(to_frame)
        return Digitization(
            image_size=shape,
            layout=self.layout.name,
            calibration=self.calibration.scaled(1.0 / scale),
            boxes=tuple(b.mapped(functools.partial(map_points, from_frame)) for b in self.boxes),
            traces=tuple(Trace(t.lead, map_points(from_frame, t.xy), t.confidence) for t in self.traces),
            signals=self.signals,
            confidence=self.confidence,
            masks=segmentation.masks_in_input(self.trace_prob, text_prob, self.boxes, from_frame, shape),
            model_version=model_version,
            timings_s=timings_s,
        )


def analyse_maps(
    trace_prob: np.ndarray,
    text_prob: np.ndarray,
    image: np.ndarray,
    options: DigitizeOptions = DigitizeOptions(),
    *,
    px_per_mm: float = CANONICAL_PX_PER_MM,
    reader: NameNet | None = None,
    source_px_per_mm: float | None = None,
    printed_mm_per_mv: float | None = None,
    config: EngineConfig = EngineConfig(),
) -> PageAnalysis:
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
    source_px_per_mm : float, optional
        The page's resolution as scanned (default ``px_per_mm``): too coarse a scan has its
        calibration pulses left unmeasured.
    printed_mm_per_mv : float, optional
        The gain printed on the page (:mod:`ecgstudio.printed`), taken where no pulse says.
    """
    ink = layout_stage.ink_mask(image)
    rows = layout_stage.find_rows(trace_prob, px_per_mm=px_per_mm, config=config.rows)
    read_names = reader is not None and options.layout == "auto"
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if read_names else None
    if read_names:
        reads = leadnames.row_names(reader, grey, trace_prob, text_prob, rows, px_per_mm=px_per_mm, config=config.names)
        rows = leadnames.drop_rows_above_names(rows, reads)
    rows = layout_stage.fill_lattice(
        rows, trace_prob, px_per_mm=px_per_mm, requested=options.layout, config=config.rows
    )
    chosen = layout_stage.choose_layout(rows, options.layout)
    rows = layout_stage.match_rows(rows, chosen, requested=options.layout)
    if options.layout == "auto":
        evidence = layout_stage.boundary_evidence(text_prob, rows, px_per_mm=px_per_mm)
        chosen = layout_stage.refine_layout(chosen, evidence)

    pulses = calibration.find_pulses(ink | (text_prob > 0.5), rows, px_per_mm=px_per_mm)
    rows = calibration.rows_beside_pulses(rows, pulses)
    cal = calibration.page_calibration(
        pulses,
        len(rows),
        px_per_mm=px_per_mm,
        source_px_per_mm=source_px_per_mm,
        mm_per_mv=options.mm_per_mv,
        mm_per_s=options.mm_per_s,
        printed_mm_per_mv=printed_mm_per_mv,
        config=config.calibration,
    )
    page_layout = chosen.with_duration(layout_stage.page_duration_s(rows, cal))

    boxes = box_stage.lead_boxes(rows, page_layout, cal, config=config.boxes)
    near_trace = cv2.dilate((trace_prob > 0.2).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    boxes = box_stage.snap_to_major_lines(boxes, image, px_per_mm=px_per_mm, exclude=near_trace, config=config.boxes)

    # Separator ticks between leads and calibration pulses are not trace, whatever the network thinks.
    pulse_regions = tuple(calibration.pulse_regions(pulses))
    separators = path.find_separators(ink, boxes, px_per_mm=px_per_mm, config=config.path)
    trace_prob = path.without_regions(trace_prob, separators + list(pulse_regions))
    baselines = tuple(r.baseline_y for r in rows)
    spacing = layout_stage.row_spacing(list(baselines), px_per_mm=px_per_mm)
    tracing = {"path_config": config.path, "config": config.strokes}
    row_lines = strokes.trace_rows(trace_prob, text_prob, baselines, spacing, boxes, **tracing)
    names: tuple[Region, ...] = ()
    if read_names:
        row_paths = [xy for xy, _ in row_lines]
        reads = leadnames.read_names(
            reader, grey, trace_prob, text_prob, boxes, row_paths, px_per_mm=px_per_mm, config=config.names
        )
        boxes = box_stage.assign_leads(boxes, reads)
        page_layout = leadnames.layout_as_read(page_layout, boxes)
        names = tuple(leadnames.name_boxes(reads, boxes))
        row_lines = strokes.off_the_names(
            row_lines, trace_prob, text_prob, baselines, spacing, boxes, names, px_per_mm=px_per_mm, **tracing
        )
    boxes, traces, signals = _traces_and_signals(
        row_lines,
        ink,
        text_prob,
        boxes,
        cal,
        px_per_mm=px_per_mm,
        fs=options.fs,
        duration_s=page_layout.duration_s,
        config=config,
    )
    from_zero = options.columns == "from-zero" or (
        options.columns == "auto" and timing.columns_start_at_zero(boxes, signals, config=config.timing)
    )
    if from_zero:
        boxes = box_stage.restart_columns(boxes)
        signals = signal_stage.traced_signals(
            boxes, traces, cal, fs=options.fs, duration_s=page_layout.duration_s, config=config.signals
        )
    doubts = leadnames.name_doubts(boxes, reads, config=config.names) if read_names else {}
    confidence = signal_stage.lead_confidence(boxes, traces, caps=doubts)
    return PageAnalysis(
        page_layout,
        cal,
        boxes,
        traces,
        signals,
        confidence,
        trace_prob,
        pulse_regions,
        names,
        baselines,
        spacing,
        doubts,
        leadnames.one_way_up(reads) if read_names else 0,
    )


def retrace(
    analysis: PageAnalysis,
    trace_prob: np.ndarray,
    text_prob: np.ndarray,
    image: np.ndarray,
    *,
    scale: float,
    fs: float,
    config: EngineConfig = EngineConfig(),
) -> PageAnalysis:
    """The page of ``analysis`` read again from maps of the same page resampled by ``scale``
    (finer maps, e.g.; ``image`` is the page in their frame): its layout, boxes, leads, names,
    pulses and time axis carried over, its separator ticks found again, its traces and signals
    taken from the new maps."""

    def px(v: float) -> float:  # positions in the new frame (cv2.resize keeps pixel centres)
        return (v + 0.5) * scale - 0.5

    def region(r: Region) -> Region:
        return px(r[0]), px(r[1]), px(r[2]), px(r[3])

    boxes = box_stage.scaled(analysis.boxes, scale)
    cal = analysis.calibration.scaled(scale)
    px_per_mm = cal.px_per_mm_x
    baselines = tuple(px(y) for y in analysis.baselines)
    spacing = analysis.spacing * scale
    names = tuple(region(r) for r in analysis.names)
    pulse_regions = tuple(region(r) for r in analysis.pulse_regions)
    ink = layout_stage.ink_mask(image)
    separators = path.find_separators(ink, boxes, px_per_mm=px_per_mm, config=config.path)
    trace_prob = path.without_regions(trace_prob, separators + list(pulse_regions))
    trace_prob = path.near_traces(trace_prob, analysis.traces, scale=scale, px_per_mm=px_per_mm, config=config.path)
    tracing = {"path_config": config.path, "config": config.strokes}
    row_lines = strokes.trace_rows(trace_prob, text_prob, baselines, spacing, boxes, **tracing)
    row_lines = strokes.off_the_names(
        row_lines, trace_prob, text_prob, baselines, spacing, boxes, names, px_per_mm=px_per_mm, **tracing
    )
    boxes, traces, signals = _traces_and_signals(
        row_lines,
        ink,
        text_prob,
        boxes,
        cal,
        px_per_mm=px_per_mm,
        fs=fs,
        duration_s=analysis.layout.duration_s,
        config=config,
    )
    return dataclasses.replace(
        analysis,
        calibration=cal,
        boxes=boxes,
        traces=traces,
        signals=signals,
        confidence=signal_stage.lead_confidence(boxes, traces, caps=analysis.doubts),
        trace_prob=trace_prob,
        pulse_regions=pulse_regions,
        names=names,
        baselines=baselines,
        spacing=spacing,
    )


def _traces_and_signals(
    row_lines: list[strokes.RowLine],
    ink: np.ndarray,
    text_prob: np.ndarray,
    boxes: tuple[LeadBox, ...],
    cal: Calibration,
    *,
    px_per_mm: float,
    fs: float,
    duration_s: float,
    config: EngineConfig,
) -> tuple[tuple[LeadBox, ...], tuple[Trace, ...], Signals]:
    """Each box's trace, the boxes' time axes aligned to the traces' samples, and the signals."""
    traces = strokes.lead_traces(row_lines, ink, text_prob, boxes, px_per_mm=px_per_mm, config=config.strokes)
    boxes = box_stage.align_to_samples(boxes, traces, px_per_s=cal.px_per_s, fs=fs, config=config.boxes)
    signals = signal_stage.traced_signals(boxes, traces, cal, fs=fs, duration_s=duration_s, config=config.signals)
    return boxes, traces, signals


@functools.lru_cache(maxsize=2)
def _shipped(load: Callable[[], _Net], without: str) -> _Net | None:
    """A shipped small network (CPU; they are tiny), or None with a warning saying what goes
    ``without`` it where it is missing or broken."""
    try:
        return load()
    except ModelError as exc:
        log.warning("%s; %s", exc, without)
        return None


@functools.lru_cache(maxsize=2)
def _cached_digitizer(weights: Path) -> Digitizer:
    return Digitizer(weights)


def digitize(
    image: np.ndarray,
    *,
    layout: str = "auto",
    fs: float = 500.0,
    mm_per_s: float | None = None,
    mm_per_mv: float | None = None,
    model: str | Path | None = None,
) -> Digitization:
    """One-shot digitization with a cached :class:`Digitizer` (see :meth:`Digitizer.digitize`);
    the model is looked up on every call, so a version activated meanwhile is the one used."""
    digitizer = _cached_digitizer(resolve_model(model).resolve())
    return digitizer.digitize(image, DigitizeOptions(layout, fs, mm_per_s, mm_per_mv))


__all__ = ["DigitizeOptions", "Digitizer", "PageAnalysis", "analyse_maps", "digitize", "retrace"]
