"""Render 12-lead signals onto ECG paper, with exact ground truth.

The page is drawn in layers on a millimetre canvas: paper, grid (minor and major lines), printed
text (header, lead labels), then the trace ink (traces, calibration pulses, lead separators).
Every layer has a mask, and every trace's sub-pixel polyline is known exactly; damage
(:mod:`ecgstudio.synth.damage`) then warps image, masks and polylines together.

Pixel convention: the centre of pixel ``(row i, column j)`` is the point ``(x=j, y=i)``.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..arrays import true_runs
from ..errors import LayoutError
from ..paper import GAINS_MM_MV, LAYOUTS, MAJOR_MM, PAPER_SIZES_MM, Layout, get_layout
from ..results import Calibration, Digitization, LeadBox, PageMasks, Signals, Trace
from .damage import DamageSettings, Warp, apply_damage
from .simulate import simulate_ecg

log = logging.getLogger(__name__)

#: Grid colours as (minor line RGB, major line RGB).
GRID_COLORS: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]] | None] = {
    "red": ((246, 178, 178), (232, 96, 96)),
    "pink": ((251, 212, 218), (240, 150, 165)),
    "green": ((190, 230, 190), (110, 185, 120)),
    "blue": ((195, 215, 245), (110, 150, 220)),
    "grey": ((215, 215, 215), (150, 150, 150)),
    "dark": ((170, 170, 170), (95, 95, 95)),  # photocopied or B&W-scanned paper: grid nearly as dark as ink
    "none": None,
}

_SHIFT = 4  # cv2 fixed-point bits: polylines are drawn with 1/16 px precision
_PULSE_S = 0.2  # calibration pulse width in seconds of paper
_PULSE_MV = 1.0
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


@dataclass(frozen=True)
class PageStyle:
    """How a page is printed.  Defaults give a clean 3x4 + lead II page like most ECG carts.

    Attributes
    ----------
    layout : str
        A name from :data:`ecgstudio.paper.LAYOUTS`.
    paper : str
        ``letter`` or ``a4`` (landscape).
    dpi : float
        Resolution of the rendered page (100-300 typical).
    mm_per_s, mm_per_mv : float
        Paper speed and gain.
    grid_color : str
        A key of :data:`GRID_COLORS`; ``none`` prints no grid.
    minor_grid : bool
        Whether the 1 mm lines are printed (some printers show only 5 mm lines).
    grid_line_mm : float
        Width of a minor grid line in mm (major lines are twice as wide).
    trace_color : tuple of int
        RGB of the trace ink.
    trace_width_mm : float
        Trace line width in mm.
    pulse : str
        Calibration pulse at the ``start`` or ``end`` of each row, or ``none``.
    lead_labels, separators, header : bool
        Print lead names, short ticks between columns, patient/measurement header text.
    label_below : bool
        Lead names under the baseline instead of above it.
    label_drop_mm : float
        With ``label_below``, how far under the baseline the names' baseline sits (close under
        the trace, a deep S wave runs into them).
    label_mm, label_font : float, int
        Height of the lead names in mm and their typeface (0: Pillow's own, 1-2: DejaVu).
    separator_mm : float
        Width of the separator ticks in mm; 0 draws them as wide as the trace (some generators
        print bold bars).
    top_space_mm : float
        Blank paper between the header and the first row (some carts print the rows low).
    paper_rgb : tuple of int
        Paper colour.
    fade : float
        In [0, 1]: faded and missing stretches of trace ink (a worn printer or a faded thermal page).
    columns_from_zero : bool
        Every column shows the record from t = 0 (some generators and printers), instead of
        consecutive windows; the rhythm strip is unchanged.
    origin_on_grid : bool
        Time 0 of every row on a 5 mm grid line (ecg-image-kit's pages, and much printing
        software); otherwise wherever the page's margins put it.
    """

    layout: str = "3x4+1"
    paper: str = "letter"
    dpi: float = 200.0
    mm_per_s: float = 25.0
    mm_per_mv: float = 10.0
    grid_color: str = "red"
    minor_grid: bool = True
    grid_line_mm: float = 0.1
    trace_color: tuple[int, int, int] = (0, 0, 0)
    trace_width_mm: float = 0.25
    pulse: str = "start"
    lead_labels: bool = True
    separators: bool = True
    header: bool = True
    label_below: bool = False
    label_drop_mm: float = 5.0
    label_mm: float = 3.0
    label_font: int = 0
    separator_mm: float = 0.0
    top_space_mm: float = 0.0
    paper_rgb: tuple[int, int, int] = (255, 255, 255)
    fade: float = 0.0
    columns_from_zero: bool = False
    origin_on_grid: bool = False

    def __post_init__(self) -> None:
        get_layout(self.layout)
        if self.paper not in PAPER_SIZES_MM:
            raise LayoutError(f"unknown paper {self.paper!r}; choose one of {', '.join(PAPER_SIZES_MM)}")
        if self.grid_color not in GRID_COLORS:
            raise LayoutError(f"unknown grid colour {self.grid_color!r}; choose one of {', '.join(GRID_COLORS)}")
        if self.pulse not in ("start", "end", "none"):
            raise LayoutError(f"pulse must be 'start', 'end' or 'none', got {self.pulse!r}")
        if not 30 <= self.dpi <= 600:
            raise LayoutError(f"dpi must be within 30-600, got {self.dpi}")

    @property
    def px_per_mm(self) -> float:
        return self.dpi / 25.4

    @classmethod
    def random(cls, rng: np.random.Generator, **fixed) -> PageStyle:
        """A realistic random style for training pages; keyword arguments fix fields."""
        layouts = list(LAYOUTS)
        weights = np.array([4.0 if name in ("3x4+1", "3x4") else 1.0 for name in layouts])
        layout = fixed.pop("layout", None) or str(rng.choice(layouts, p=weights / weights.sum()))
        n_rows = get_layout(layout).n_rows
        gain = 10.0 if rng.random() < 0.8 else float(rng.choice(GAINS_MM_MV))
        if n_rows >= 12 and gain > 10 and rng.random() < 0.7:
            gain = 5.0
        ink = (0, 0, 0) if rng.random() < 0.75 else tuple(int(v) for v in rng.integers(0, 90, 3))
        tint = 255 - rng.integers(0, 18) * np.array([rng.random() < 0.5, rng.random() < 0.6, 1.0])
        grids = ["red", "pink", "green", "blue", "grey", "dark", "none"]
        style = {
            "layout": layout,
            "paper": str(rng.choice(["letter", "a4"])),
            "dpi": float(rng.uniform(100, 300)),
            "mm_per_s": 25.0 if rng.random() < 0.9 else 50.0,
            "mm_per_mv": gain,
            "grid_color": str(rng.choice(grids, p=[0.28, 0.23, 0.1, 0.1, 0.14, 0.08, 0.07])),
            "minor_grid": bool(rng.random() < 0.85),
            "grid_line_mm": float(rng.uniform(0.06, 0.16)),
            "trace_color": ink,
            "trace_width_mm": float(rng.uniform(0.1, 0.45)),
            "pulse": str(rng.choice(["start", "end", "none"], p=[0.6, 0.15, 0.25])),
            "lead_labels": bool(rng.random() < 0.9),
            "separators": bool(rng.random() < 0.6),
            "header": bool(rng.random() < 0.7),
            "label_below": bool(rng.random() < 0.35),
            "label_drop_mm": float(rng.uniform(3.0, 6.0)),
            "label_mm": float(rng.uniform(2.5, 5.0)),
            "label_font": int(rng.integers(0, 3)),
            "separator_mm": float(rng.uniform(0.3, 0.8)) if rng.random() < 0.5 else 0.0,
            "top_space_mm": float(rng.uniform(0, 70)) if rng.random() < 0.3 else 0.0,
            "paper_rgb": tuple(int(v) for v in tint),
            "fade": float(rng.uniform(0, 1)) if rng.random() < 0.2 else 0.0,
        }
        colors = GRID_COLORS[style["grid_color"]]
        if colors is not None and rng.random() < 0.35:  # tinted paper, e.g. pink ECG paper
            k = float(rng.uniform(0.2, 0.6))
            style["paper_rgb"] = tuple(int(round(255 - k * (255 - c))) for c in colors[0])
        style.update(fixed)
        return cls(**style)


@dataclass(frozen=True, eq=False)
class SynthPage:
    """A rendered page and its exact ground truth.

    Attributes
    ----------
    image : ndarray, shape (H, W, 3), uint8
        The page as a scanner or camera would deliver it (RGB).
    signals : Signals
        The record that was plotted, in mV at its own sampling rate.
    layout : Layout
        The layout with time windows for this paper speed.
    style : PageStyle
    damage : DamageSettings
    calibration : Calibration
        Scale of the undamaged page (px per mm on both axes, speed, gain).
    clean_boxes, clean_traces : tuple
        Lead boxes and trace polylines on the undamaged page.
    boxes, traces : tuple
        The same after all geometric damage, in coordinates of ``image``; boxes are the
        axis-aligned bounds of the warped box corners.
    masks : PageMasks
        Masks aligned with ``image``.
    warp : Warp
        The geometric transform from the undamaged page to ``image``.
    seed : int or None
    """

    image: np.ndarray
    signals: Signals
    layout: Layout
    style: PageStyle
    damage: DamageSettings
    calibration: Calibration
    clean_boxes: tuple[LeadBox, ...]
    clean_traces: tuple[Trace, ...]
    boxes: tuple[LeadBox, ...]
    traces: tuple[Trace, ...]
    masks: PageMasks
    warp: Warp
    seed: int | None = None

    def plotted_signals(self) -> Signals:
        """The record with every sample outside the lead's plotted window set to NaN."""
        mv = np.full_like(self.signals.mv, np.nan)
        t = self.signals.time_s()
        for j, lead in enumerate(self.signals.lead_names):
            for cell in self.layout.cells_for(lead):
                inside = (t >= cell.t_start_s - 1e-9) & (t < cell.t_end_s - 1e-9)
                mv[inside, j] = self.signals.mv[inside, j]
        return Signals(mv, self.signals.fs, self.signals.lead_names)

    def to_digitization(self) -> Digitization:
        """The ground truth as a :class:`Digitization` (for the label store and the studio)."""
        return Digitization(
            image_size=self.image.shape[:2],
            layout=self.layout.name,
            calibration=self.calibration,
            boxes=self.boxes,
            traces=self.traces,
            signals=self.plotted_signals(),
            confidence=dict.fromkeys(self.layout.leads, 1.0),
            masks=self.masks,
            model_version="ground-truth",
        )


@dataclass
class _Canvas:
    """Mutable layers while a page is drawn."""

    height: int
    width: int
    text: Image.Image = field(init=False)  # 'L' alpha of printed text
    ink: np.ndarray = field(init=False)  # uint8 alpha of trace ink (antialiased)
    trace_labels: np.ndarray = field(init=False)
    text_mask: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.text = Image.new("L", (self.width, self.height), 0)
        self.ink = np.zeros((self.height, self.width), np.uint8)
        self.trace_labels = np.zeros((self.height, self.width), np.uint8)
        self.text_mask = np.zeros((self.height, self.width), bool)


def render_page(
    signals: Signals | None = None,
    *,
    style: PageStyle | None = None,
    damage: DamageSettings | None = None,
    seed: int | None = None,
    t_offset_s: float | None = None,
    layout: Layout | None = None,
) -> SynthPage:
    """Render a 12-lead record onto ECG paper and return the page with exact ground truth.

    Parameters
    ----------
    signals : Signals, optional
        The record to plot (mV, any fs, at least as long as the layout's duration for full
        cells).  None simulates one with :func:`ecgstudio.synth.simulate.simulate_ecg`.
    style : PageStyle, optional
        How the page is printed; the default is a clean 3x4 + II letter page at 200 dpi.
    damage : DamageSettings, optional
        Scanner and photo damage; None renders a clean page.
    seed : int, optional
        Seed for everything random (simulation, header text, fading, damage): the same seed
        gives the same page.
    t_offset_s : float, optional
        Where in a longer record the page starts; random when None.
    layout : Layout, optional
        Print this layout instead of the style's named one (a page in its own lead order, such
        as a two-lead strip with V5 above II); it must have as many rows as the style's.

    Returns
    -------
    SynthPage
    """
    rng = np.random.default_rng(seed)
    style = style or PageStyle()
    damage = damage or DamageSettings.none()
    px_mm = style.px_per_mm
    paper_w_mm, paper_h_mm = PAPER_SIZES_MM[style.paper]
    pulse_mm = _PULSE_S * 25.0 + 2.0 if style.pulse != "none" else 0.0  # pulse printed at 25 mm/s width
    plot_w_mm = min(250.0, paper_w_mm - 20.0 - pulse_mm)
    placement = (layout or get_layout(style.layout)).with_duration(plot_w_mm / style.mm_per_s)
    # Where each cell sits on the paper (placement) and which seconds it shows (layout).
    layout = _from_zero(placement) if style.columns_from_zero else placement

    if signals is None:
        signals = simulate_ecg(rng, duration_s=layout.duration_s + 0.5, fs=500.0)
    if t_offset_s is None:
        spare = max(0.0, signals.duration_s - layout.duration_s)
        t_offset_s = float(rng.uniform(0, spare)) if spare > 0.5 else 0.0
    shown = _window(signals, t_offset_s, layout.duration_s)

    width, height = round(paper_w_mm * px_mm), round(paper_h_mm * px_mm)
    canvas = _Canvas(height, width)
    image = _paper_and_grid(style, height, width)

    header_mm = (float(rng.uniform(22, 32)) if style.header else float(rng.uniform(6, 12))) + style.top_space_mm
    bottom_mm = float(rng.uniform(6, 12))
    row_h_mm = (paper_h_mm - header_mm - bottom_mm) / layout.n_rows
    left_mm = (paper_w_mm - plot_w_mm - pulse_mm) / 2 + float(rng.uniform(-3, 3))
    trace_left_mm = left_mm + (pulse_mm if style.pulse == "start" else 0.0)
    if style.origin_on_grid:  # time 0 on a 5 mm line, as ecg-image-kit and much printing software lay it out
        phase_mm = _grid_params(style)[0]
        trace_left_mm = phase_mm + MAJOR_MM * round((trace_left_mm - phase_mm) / MAJOR_MM)
        left_mm = trace_left_mm - (pulse_mm if style.pulse == "start" else 0.0)
    cal = Calibration(px_mm, px_mm, style.mm_per_s, style.mm_per_mv)
    thickness = max(1, round(style.trace_width_mm * px_mm))

    boxes, traces = [], []
    for row in range(layout.n_rows):
        baseline_mm = header_mm + (row + float(rng.uniform(0.55, 0.65))) * row_h_mm
        y_base = baseline_mm * px_mm
        for place, cell in zip(placement.row_cells(row), layout.row_cells(row)):
            x0 = (trace_left_mm + place.t_start_s * style.mm_per_s) * px_mm
            x1 = (trace_left_mm + place.t_end_s * style.mm_per_s) * px_mm
            box = LeadBox(
                lead=cell.lead,
                x0=x0,
                y0=(baseline_mm - 0.6 * row_h_mm) * px_mm,
                x1=x1,
                y1=(baseline_mm + 0.4 * row_h_mm) * px_mm,
                baseline_y=y_base,
                t_start_s=cell.t_start_s,
                duration_s=cell.duration_s,
                row=row,
                col=cell.col,
                inverted=cell.inverted,
            )
            xy = _cell_polyline(shown, cell, box, cal)
            index = len(boxes) + 1
            _draw_polyline(canvas, xy, thickness, label=index)
            boxes.append(box)
            traces.append(Trace(cell.lead, xy))
            if style.lead_labels:
                label_dy = style.label_drop_mm * px_mm if style.label_below else -0.3 * row_h_mm * px_mm
                _draw_text(
                    canvas,
                    cell.label,
                    (x0 + 1.0 * px_mm, y_base + label_dy),
                    size_px=style.label_mm * px_mm,
                    font_index=style.label_font,
                )
            if style.separators and cell.col > 0:
                bar = max(thickness, round(style.separator_mm * px_mm))
                _draw_ink_segment(canvas, [(x0, y_base - 2.5 * px_mm), (x0, y_base + 2.5 * px_mm)], bar)
        if style.pulse != "none":
            end = (trace_left_mm + layout.duration_s * style.mm_per_s) * px_mm
            x_pulse = (left_mm + 1.0) * px_mm if style.pulse == "start" else end + 1.0 * px_mm
            _draw_pulse(canvas, x_pulse, y_base, cal, thickness)
    if style.header:
        _draw_header(canvas, style, shown, left_mm * px_mm, px_mm, rng)

    _composite(image, canvas, style, rng)
    masks = PageMasks(canvas.trace_labels, _grid_mask(image.shape[:2], style), canvas.text_mask)
    page = apply_damage(image, masks, damage, rng)
    return SynthPage(
        image=page.image,
        signals=shown,
        layout=layout,
        style=style,
        damage=damage,
        calibration=cal,
        clean_boxes=tuple(boxes),
        clean_traces=tuple(traces),
        boxes=tuple(b.mapped(page.warp.map_points) for b in boxes),
        traces=tuple(Trace(t.lead, page.warp.map_points(t.xy)) for t in traces),
        masks=page.masks,
        warp=page.warp,
        seed=seed,
    )


def _from_zero(layout: Layout) -> Layout:
    """``layout`` with every cell shorter than the page starting at t = 0."""
    cells = tuple(c if c.duration_s >= layout.duration_s else replace(c, t_start_s=0.0) for c in layout.cells)
    return Layout(layout.name, layout.n_rows, cells, layout.duration_s)


def _window(signals: Signals, t0: float, duration_s: float) -> Signals:
    """``duration_s`` of the record from ``t0`` (NaN-padded if the record is shorter)."""
    n = int(round(duration_s * signals.fs))
    start = int(round(t0 * signals.fs))
    out = np.full((n, signals.mv.shape[1]), np.nan)
    part = signals.mv[start : start + n]
    out[: len(part)] = part
    return Signals(out, signals.fs, signals.lead_names)


def _cell_polyline(signals: Signals, cell, box: LeadBox, cal: Calibration) -> np.ndarray:
    """Pixel polyline of the samples inside a cell's window; NaN samples stay NaN rows."""
    if cell.lead not in signals.lead_names:
        return np.zeros((0, 2))
    fs = signals.fs
    i0 = int(np.ceil(cell.t_start_s * fs - 1e-9))
    i1 = int(np.floor(cell.t_end_s * fs - 1e-9))
    i1 = min(i1, signals.n_samples - 1)
    idx = np.arange(i0, i1 + 1)
    v = signals.lead(cell.lead)[idx]
    if cell.inverted:
        v = -v
    x = box.x0 + (idx / fs - cell.t_start_s) * cal.px_per_s
    y = box.baseline_y - v * cal.px_per_mv
    return np.column_stack([x, y])


def _segments(xy: np.ndarray) -> list[np.ndarray]:
    """Split a polyline at NaN rows into runs of finite points."""
    finite = np.isfinite(xy).all(axis=1)
    if finite.all():
        return [xy] if len(xy) else []
    return [xy[a:b] for a, b in true_runs(finite)]


def _fixed(xy: np.ndarray) -> np.ndarray:
    return np.round(xy * (1 << _SHIFT)).astype(np.int32).reshape(-1, 1, 2)


def _draw_polyline(canvas: _Canvas, xy: np.ndarray, thickness: int, *, label: int) -> None:
    runs = [_fixed(run) for run in _segments(xy) if len(run) > 1]
    if not runs:
        return
    cv2.polylines(canvas.ink, runs, False, 255, thickness, cv2.LINE_AA, _SHIFT)
    cv2.polylines(canvas.trace_labels, runs, False, label, thickness, cv2.LINE_8, _SHIFT)


def _draw_ink_segment(canvas: _Canvas, points, thickness: int) -> None:
    """Non-signal ink (pulses, separators): drawn like a trace, masked as text."""
    pts = _fixed(np.asarray(points, float))
    cv2.polylines(canvas.ink, [pts], False, 255, thickness, cv2.LINE_AA, _SHIFT)
    mask = np.zeros(canvas.ink.shape, np.uint8)
    cv2.polylines(mask, [pts], False, 1, thickness + 2, cv2.LINE_8, _SHIFT)
    canvas.text_mask |= mask.astype(bool)


def _draw_pulse(canvas: _Canvas, x: float, y_base: float, cal: Calibration, thickness: int) -> None:
    w = _PULSE_S * 25.0 * cal.px_per_mm_x  # printed 5 mm wide whatever the speed
    h = _PULSE_MV * cal.px_per_mv
    pts = [
        (x, y_base),
        (x + 0.2 * w, y_base),
        (x + 0.2 * w, y_base - h),
        (x + 0.8 * w, y_base - h),
        (x + 0.8 * w, y_base),
        (x + w, y_base),
    ]
    _draw_ink_segment(canvas, pts, thickness)


@functools.lru_cache(maxsize=64)
def _font(size_px: int, index: int) -> ImageFont.FreeTypeFont:
    candidates = [
        p
        for p in (
            "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed.ttf",
        )
        if Path(p).is_file()
    ]
    if index and candidates:
        return ImageFont.truetype(candidates[index % len(candidates)], size_px)
    return ImageFont.load_default(size=size_px)


def _draw_text(canvas: _Canvas, text: str, xy: tuple[float, float], *, size_px: float, font_index: int) -> None:
    draw = ImageDraw.Draw(canvas.text)
    font = _font(max(6, round(size_px)), font_index)
    draw.text(xy, text, fill=255, font=font, anchor="ls")
    left, top, right, bottom = (int(round(v)) for v in draw.textbbox(xy, text, font=font, anchor="ls"))
    canvas.text_mask[max(0, top) : max(0, bottom), max(0, left) : max(0, right)] = True


def _draw_header(
    canvas: _Canvas, style: PageStyle, signals: Signals, x: float, px_mm: float, rng: np.random.Generator
) -> None:
    hr = int(rng.integers(48, 130))
    lines = [
        f"ID: {rng.integers(10**5, 10**8)}   {rng.choice(['Male', 'Female'])}   {rng.integers(18, 95)} yrs   "
        f"{rng.integers(1, 29):02d}-{rng.choice(_MONTHS)}-"
        f"{rng.integers(1995, 2026)} {rng.integers(0, 24):02d}:{rng.integers(0, 60):02d}",
        f"Vent. rate {hr} BPM   PR int {rng.integers(120, 220)} ms   QRS dur {rng.integers(70, 140)} ms   "
        f"QT/QTc {rng.integers(320, 460)}/{rng.integers(380, 500)} ms   P-R-T axes {rng.integers(-30, 90)} "
        f"{rng.integers(-30, 110)} {rng.integers(-30, 90)}",
        str(
            rng.choice(
                [
                    "Sinus rhythm",
                    "Normal sinus rhythm",
                    "Sinus bradycardia",
                    "Atrial fibrillation",
                    "Sinus tachycardia",
                    "Otherwise normal ECG",
                    "Borderline ECG",
                    "Abnormal ECG",
                ]
            )
        ),
        f"{style.mm_per_s:g} mm/s   {style.mm_per_mv:g} mm/mV   0.05-150 Hz   {signals.fs:g} Hz",
    ]
    size = float(rng.uniform(2.6, 3.6)) * px_mm
    font_index = int(rng.integers(0, 3))
    for k, line in enumerate(lines):
        if rng.random() < 0.85:
            _draw_text(canvas, line, (x, (6 + k * 5.0) * px_mm), size_px=size, font_index=font_index)


def _grid_profiles(n: int, px_mm: float, phase_mm: float, line_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Antialiased coverage of minor and major grid lines along one axis (length ``n``)."""
    pos_mm = np.arange(n) / px_mm - phase_mm
    half_px = max(0.5, line_mm * px_mm / 2)

    def coverage(period_mm: float, half: float) -> np.ndarray:
        d_px = np.abs((pos_mm + period_mm / 2) % period_mm - period_mm / 2) * px_mm
        return np.clip(half + 0.5 - d_px, 0.0, 1.0).astype(np.float32)

    return coverage(1.0, half_px), coverage(MAJOR_MM, half_px * 2)


def _grid_params(style: PageStyle) -> tuple[float, float, float]:
    # The grid phase is fixed per style so the mask and the drawing agree.
    return 0.37, 0.61, style.grid_line_mm


def _paper_and_grid(style: PageStyle, height: int, width: int) -> np.ndarray:
    """Paper with its grid, as uint8 RGB.

    Each pixel's colour depends only on its minor- and major-line coverage, quantised to 16
    levels each, so the page is one lookup into a 256-colour table.
    """
    paper = np.asarray(style.paper_rgb, np.float32)
    colors = GRID_COLORS[style.grid_color]
    if colors is None:
        return np.broadcast_to(paper.astype(np.uint8), (height, width, 3)).copy()
    phase_x, phase_y, line_mm = _grid_params(style)
    minor_x, major_x = _grid_profiles(width, style.px_per_mm, phase_x, line_mm)
    minor_y, major_y = _grid_profiles(height, style.px_per_mm, phase_y, line_mm)
    levels = np.arange(16, dtype=np.float32) / 15.0
    a_minor, a_major = np.meshgrid(levels, levels, indexing="ij")  # table index = 16 * minor + major
    if not style.minor_grid:
        a_minor = np.zeros_like(a_minor)
    table = paper + a_minor.reshape(-1, 1) * (np.asarray(colors[0], np.float32) - paper)
    table += a_major.reshape(-1, 1) * (np.asarray(colors[1], np.float32) - table)
    table = np.clip(np.round(table), 0, 255).astype(np.uint8)

    def quantised(ax: np.ndarray, ay: np.ndarray) -> np.ndarray:
        qx, qy = np.round(ax * 15).astype(np.uint8), np.round(ay * 15).astype(np.uint8)
        return np.maximum(qx[None, :], qy[:, None])

    index = quantised(minor_x, minor_y) * np.uint8(16) + quantised(major_x, major_y)
    return table[index]


def _grid_mask(shape: tuple[int, int], style: PageStyle) -> np.ndarray:
    height, width = shape
    if GRID_COLORS[style.grid_color] is None:
        return np.zeros(shape, bool)
    phase_x, phase_y, line_mm = _grid_params(style)
    minor_x, major_x = _grid_profiles(width, style.px_per_mm, phase_x, line_mm)
    minor_y, major_y = _grid_profiles(height, style.px_per_mm, phase_y, line_mm)
    if style.minor_grid:
        major_x, major_y = np.maximum(minor_x, major_x), np.maximum(minor_y, major_y)
    return (major_x[None, :] >= 0.5) | (major_y[:, None] >= 0.5)


def _fade_field(shape: tuple[int, int], strength: float, rng: np.random.Generator) -> np.ndarray:
    """A smooth multiplicative field in [0, 1] for the ink: faint stretches and gaps."""
    small = rng.random((max(2, shape[0] // 60), max(2, shape[1] // 60))).astype(np.float32)
    field_ = cv2.resize(small, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)
    field_ = (field_ - field_.min()) / max(1e-6, field_.max() - field_.min())
    gap = 0.25 * strength
    return np.clip((field_ - gap) / max(1e-6, 1 - gap) * (1 + strength) - strength * 0.3, 0, 1) ** (0.5 + strength)


def _blend(image: np.ndarray, alpha: np.ndarray, rgb) -> None:
    """Blend colour ``rgb`` into uint8 ``image`` in place with coverage ``alpha`` in [0, 1] (sparse)."""
    ys, xs = np.nonzero(alpha)
    if len(ys) == 0:
        return
    a = alpha[ys, xs, None]
    pixels = image[ys, xs].astype(np.float32)
    image[ys, xs] = np.round(pixels + a * (np.asarray(rgb, np.float32) - pixels)).astype(np.uint8)


def _composite(image: np.ndarray, canvas: _Canvas, style: PageStyle, rng: np.random.Generator) -> None:
    """Put text and ink on the paper in place.

    Where fading leaves too little ink the trace mask is cleared, so masks show visible ink only.
    """
    _blend(image, np.asarray(canvas.text, np.float32) / 255.0, (20, 20, 20))
    ink = canvas.ink.astype(np.float32) / 255.0
    if style.fade > 0:
        ink *= _fade_field(ink.shape, style.fade, rng)
        canvas.trace_labels[ink < 0.25] = 0
    _blend(image, ink, style.trace_color)
