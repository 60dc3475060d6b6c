"""Typed results shared by every stage: calibration, lead boxes, traces, signals, a digitization.

Coordinates are image pixels with the origin at the top-left corner, ``x`` to the right and
``y`` down, as in OpenCV and Qt.  Signals are ``(n_samples, n_leads)`` arrays in mV, like
wfdb's ``p_signal``; samples a page does not show are NaN.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from .paper import LEAD_NAMES


@dataclass(frozen=True)
class Calibration:
    """How paper maps to pixels and to physical units.

    Attributes
    ----------
    px_per_mm_x, px_per_mm_y : float
        Grid scale of the (rectified) page in pixels per millimetre along each axis.
    mm_per_s : float
        Paper speed (25 or 50 mm/s).
    mm_per_mv : float
        Gain (5, 10 or 20 mm/mV).
    """

    px_per_mm_x: float
    px_per_mm_y: float
    mm_per_s: float = 25.0
    mm_per_mv: float = 10.0

    @property
    def px_per_s(self) -> float:
        return self.px_per_mm_x * self.mm_per_s

    @property
    def px_per_mv(self) -> float:
        return self.px_per_mm_y * self.mm_per_mv

    def scaled(self, factor: float) -> Calibration:
        """The calibration of the same page resized by ``factor``."""
        return replace(self, px_per_mm_x=self.px_per_mm_x * factor, px_per_mm_y=self.px_per_mm_y * factor)


@dataclass(frozen=True)
class LeadBox:
    """The region of the page in which one lead segment is plotted.

    Attributes
    ----------
    lead : str
        Lead name from :data:`ecgstudio.paper.LEAD_NAMES`.
    x0, y0, x1, y1 : float
        Box corners in pixels (``x0 < x1``, ``y0 < y1``).  ``x0`` and ``x1`` are where the
        trace starts and ends in time; ``y0``/``y1`` bound the row band the trace lives in.
    baseline_y : float
        Pixel row of 0 mV.
    t_start_s, duration_s : float
        Time window of the record shown, in seconds from the record start.
    row, col : int
        Position in the layout.
    inverted : bool
        True where the lead is printed upside down (``-aVR``).
    """

    lead: str
    x0: float
    y0: float
    x1: float
    y1: float
    baseline_y: float
    t_start_s: float
    duration_s: float
    row: int = 0
    col: int = 0
    inverted: bool = False

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def origin_x(self) -> float:
        """Pixel x of t = 0 on this box's time axis."""
        return self.x0 - self.t_start_s * self.width / self.duration_s if self.duration_s > 0 else self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    def spanning(self, x0: float, x1: float) -> LeadBox:
        """This box from pixel ``x0`` to ``x1`` on the same time axis (:attr:`origin_x` and seconds
        per pixel kept): moved or resized, its lead's samples stay where the page's time axis puts
        them.  The left edge stops at t = 0 (a lead shows nothing before the record starts)."""
        origin = self.origin_x
        s_per_px = self.duration_s / self.width if self.width > 0 and self.duration_s > 0 else 0.0
        x0 = max(float(x0), origin)
        return replace(self, x0=x0, x1=float(x1), t_start_s=(x0 - origin) * s_per_px, duration_s=(x1 - x0) * s_per_px)

    def mapped(self, map_points: Callable[[np.ndarray], np.ndarray]) -> LeadBox:
        """This box in the frame ``map_points`` carries ``(n, 2)`` pixel points to: the bounding
        box of its mapped corners, the baseline at its mapped ends' mean height."""
        corners = np.array(
            [
                [self.x0, self.y0],
                [self.x1, self.y0],
                [self.x1, self.y1],
                [self.x0, self.y1],
                [self.x0, self.baseline_y],
                [self.x1, self.baseline_y],
            ]
        )
        p = map_points(corners)
        return replace(
            self,
            x0=float(p[:4, 0].min()),
            x1=float(p[:4, 0].max()),
            y0=float(p[:4, 1].min()),
            y1=float(p[:4, 1].max()),
            baseline_y=float(p[4:, 1].mean()),
        )


@dataclass(frozen=True, eq=False)
class Trace:
    """The pixel polyline of one plotted lead segment.

    Attributes
    ----------
    lead : str
        Lead name.
    xy : ndarray, shape (n, 2), float64
        Sub-pixel points ``(x, y)`` along the trace in image pixels; rows of NaN mark gaps.
    confidence : ndarray, shape (n,), float32, optional
        Per-point confidence in [0, 1]; None where unknown (ground truth).
    """

    lead: str
    xy: np.ndarray
    confidence: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class Signals:
    """Calibrated signals.

    Attributes
    ----------
    mv : ndarray, shape (n_samples, n_leads), float64
        Voltages in mV; NaN where the lead was not plotted or not recovered.
    fs : float
        Sampling frequency in Hz.
    lead_names : tuple of str
        Column names, usually :data:`ecgstudio.paper.LEAD_NAMES`.
    """

    mv: np.ndarray
    fs: float
    lead_names: tuple[str, ...] = LEAD_NAMES

    def __post_init__(self) -> None:
        if self.mv.ndim != 2 or self.mv.shape[1] != len(self.lead_names):
            raise ValueError(
                f"signals must be (n_samples, {len(self.lead_names)}) for leads {self.lead_names}, "
                f"got shape {self.mv.shape}"
            )
        if not self.fs > 0:
            raise ValueError(f"sampling frequency must be positive, got {self.fs}")

    @property
    def n_samples(self) -> int:
        return self.mv.shape[0]

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.fs

    def writable_mv(self) -> np.ndarray:
        """The samples as float64 for a file; records no format can hold (no samples,
        infinite values) raise ValueError."""
        mv = np.asarray(self.mv, dtype=np.float64)
        if mv.shape[0] == 0:
            raise ValueError("signals have no samples; nothing to write")
        if np.isinf(mv).any():
            raise ValueError("signals contain infinite values; replace them with NaN (missing) first")
        return mv

    def lead(self, name: str) -> np.ndarray:
        """The column of one lead."""
        return self.mv[:, self.lead_names.index(name)]

    def time_s(self) -> np.ndarray:
        return np.arange(self.n_samples) / self.fs


@dataclass(frozen=True, eq=False)
class PageMasks:
    """Per-pixel masks of a page.

    Attributes
    ----------
    trace : ndarray, shape (H, W), uint8
        0 where no trace ink is; ``k + 1`` where the ink belongs to box ``k`` (the last box drawn
        wins where traces overlap).
    grid : ndarray, shape (H, W), bool
        Grid line pixels.
    text : ndarray, shape (H, W), bool
        Printed text, lead labels and calibration pulses.
    """

    trace: np.ndarray
    grid: np.ndarray
    text: np.ndarray


#: What an :class:`Assumption` can be about.
ASSUMPTION_FIELDS = ("scale", "gain", "speed", "layout")


@dataclass(frozen=True)
class Assumption:
    """A value the engine could not measure on the page and assumed instead.

    Attributes
    ----------
    what : str
        One of :data:`ASSUMPTION_FIELDS`: the grid scale, the gain, the paper speed, the layout.
    text : str
        What was assumed and why, for a person (e.g. ``"no grid found; assuming the image is a
        whole letter page (3.51 px/mm)"``).
    """

    what: str
    text: str


@dataclass(frozen=True, eq=False)
class Digitization:
    """A digitized page: everything the studio shows and the label store keeps.

    ``boxes`` and ``traces`` are aligned: ``traces[k]`` is the polyline inside ``boxes[k]``.
    """

    image_size: tuple[int, int]  # (height, width) in pixels
    layout: str
    calibration: Calibration
    boxes: tuple[LeadBox, ...]
    traces: tuple[Trace, ...]
    signals: Signals
    confidence: dict[str, float] = field(default_factory=dict)
    masks: PageMasks | None = None
    model_version: str = ""
    timings_s: dict[str, float] = field(default_factory=dict)
    assumptions: tuple[Assumption, ...] = ()

    def __post_init__(self) -> None:
        if len(self.boxes) != len(self.traces):
            raise ValueError(f"{len(self.boxes)} boxes but {len(self.traces)} traces; they must be aligned")
