"""The ECG grid as a ruler: line signal, skew, and the millimetre scale.

ECG paper carries 1 mm minor lines and 5 mm major lines.  They are the only ruler a scan or a
photo has, so the scale measured here goes straight into every amplitude and duration the
later stages report.

Method
------
1. **Line signal.**  The darkest channel of the page (``min(R, G, B)``: coloured, grey and black
   lines all show in it) goes through a morphological black-hat, which keeps thin dark lines and
   drops paper shading, shadows and large dark areas.  Trace ink and text are far darker than
   grid lines; clipping the black-hat at a high quantile keeps them from outweighing the grid.
   The aperiodic remainder of the ink only adds noise to the spectra below.
2. **Skew.**  Projection profiles of the line signal are sharpest when the lines are aligned
   with the pixel axes; the angle is searched coarse-to-fine (a small image over +-15 deg, then
   a finer image near the best angle) and refined by a parabola through the best three scores.
   Trace baselines and text rows help, so a page without a grid still gets a skew.
3. **Scale.**  The line signal of the deskewed page is summed along rows and along columns.
   Each profile is periodic with the 5 mm period ``P`` (major lines) and has strong harmonics at
   ``5/P`` (minor lines).  A harmonic sum over a heavily zero-padded spectrum finds the dominant
   line period; a check for the sub-harmonics at 1/5 of it (major-line emphasis) or for a
   harmonic at 5 times it (minor lines) decides whether it is the 1 mm or the 5 mm period; then
   the major fundamental is refined with all its harmonics, aliased ones included, which gives
   sub-percent (typically < 0.1 %) scale.  Pages downscaled until the minor lines blur are
   measured from the major lines alone.

Sign convention for angles: ``angle_deg > 0`` means the page content appears rotated
counter-clockwise on screen (the convention of :func:`cv2.getRotationMatrix2D`); rotating the
image by ``-angle_deg`` straightens it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace

import cv2
import numpy as np

from ..config import BoxesConfig, GeometryConfig
from ..errors import ImageSizeError
from ..io.images import DEFAULT_MAX_PIXELS

logger = logging.getLogger(__name__)

__all__ = ["GridEstimate", "as_rgb", "estimate_grid", "estimate_skew", "line_signal", "major_line_near", "shear_matrix"]

#: Smallest and largest page images accepted (pixels per side, pixels in all).
MIN_SIDE_PX = 64

#: Plausible grid scales, pixels per millimetre (a 36 dpi thumbnail to a 1200 dpi scan).
MIN_PX_PER_MM = 1.4
MAX_PX_PER_MM = 48.0


@dataclass(frozen=True)
class GridEstimate:
    """The grid of a page, measured in the pixels of the image it was measured on.

    Attributes
    ----------
    px_per_mm_x, px_per_mm_y : float
        Grid scale along the image axes (after removing ``angle_deg``), pixels per millimetre.
        NaN when ``has_grid`` is False.
    angle_deg : float
        Skew of the grid lines in degrees; positive when the grid appears rotated
        counter-clockwise on screen.  Rotating the image by ``-angle_deg`` (e.g. with
        :func:`ecgstudio.geometry.deskew`) makes the lines horizontal and vertical.
    confidence : float
        In [0, 1]: the share of the line signal's power at the grid harmonics, combined over
        both axes and penalised where the two axes disagree.  0 when there is no grid.
    has_grid : bool
        True when a periodic millimetre grid was found (``confidence >= 0.2``).
    minor_resolved : bool
        True when the 1 mm lines themselves were resolved; False when the scale comes from the
        5 mm lines alone (heavily downscaled or blurred pages, grids printed without minor lines).
    shear_deg : float
        Angle of the vertical lines minus ``angle_deg``, degrees (0 for a pure rotation; flatbed
        scans show a few tenths of a degree).  Scales are measured after removing it.
    """

    px_per_mm_x: float
    px_per_mm_y: float
    angle_deg: float
    confidence: float
    has_grid: bool
    minor_resolved: bool = False
    shear_deg: float = 0.0

    @property
    def px_per_mm(self) -> float:
        """The mean of the two axes' scales (NaN without a grid)."""
        return 0.5 * (self.px_per_mm_x + self.px_per_mm_y)


def as_rgb(image: np.ndarray) -> np.ndarray:
    """Check a page image and return it as a contiguous ``(H, W, 3)`` ``uint8`` array.

    Parameters
    ----------
    image : ndarray
        ``(H, W, 3)`` RGB, ``(H, W, 4)`` RGBA (alpha is dropped) or ``(H, W)`` grey, ``uint8``.

    Returns
    -------
    ndarray, shape (H, W, 3), uint8

    Raises
    ------
    TypeError
        If the array is not ``uint8``.
    ValueError
        If the array does not have one of the shapes above.
    ImageSizeError
        If a side is shorter than 64 px or the image has more than
        :data:`~ecgstudio.io.images.DEFAULT_MAX_PIXELS`.
    """
    image = _rgb_array(image)
    h, w = image.shape[:2]
    if min(h, w) < MIN_SIDE_PX:
        raise ImageSizeError(
            f"the image is {w}x{h} px; a page needs at least {MIN_SIDE_PX} px "
            "per side to show a grid; scan at a higher resolution"
        )
    if h * w > DEFAULT_MAX_PIXELS:
        raise ImageSizeError(
            f"the image is {w}x{h} px ({h * w / 1e6:.0f} MP), more than "
            f"{DEFAULT_MAX_PIXELS / 1e6:.0f} MP; downscale it (300 dpi is plenty)"
        )
    return np.ascontiguousarray(image)


def _rgb_array(image: np.ndarray) -> np.ndarray:
    """``image`` (RGB, RGBA or grey ``uint8``) as an ``(H, W, 3)`` array, whatever its size."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise TypeError(
            f"page images must be uint8 RGB arrays, got dtype {image.dtype}; read files with ecgstudio.io.read_image"
        )
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 4:
        return image[:, :, :3]
    if not (image.ndim == 3 and image.shape[2] == 3):
        raise ValueError(f"page images must be (H, W, 3) RGB arrays, got shape {image.shape}")
    return image


def _kernel_size(shape: tuple[int, ...]) -> int:
    """Black-hat kernel side: wider than any grid line, narrower than a 1 mm gap at 300 dpi."""
    k = int(round(max(shape[:2]) / 260.0))
    return int(np.clip(k | 1, 5, 31))


def line_signal(image: np.ndarray, *, kernel: int | None = None) -> np.ndarray:
    """Thin-dark-line strength of each pixel, with ink clipped to the level of grid lines.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8
        RGB page, or any part of one (a band of rows: no size is required).
    kernel : int, optional
        Side of the square black-hat kernel in pixels; by default about 1/260 of the longer
        side (9 px for a 2200 px page).

    Returns
    -------
    ndarray, shape (H, W), float32
        0 on plain paper, up to the clip level (a grey level difference, 0-255) on lines.
    """
    rgb = _rgb_array(image)
    dark = cv2.min(cv2.min(rgb[:, :, 0], rgb[:, :, 1]), rgb[:, :, 2])
    k = kernel if kernel is not None else _kernel_size(dark.shape)
    se = cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))
    bh = cv2.morphologyEx(dark, cv2.MORPH_BLACKHAT, se)
    clip = _clip_level(bh)
    out = np.minimum(bh, np.uint8(clip)).astype(np.float32)
    return out


def major_line_near(
    image: np.ndarray,
    x: float,
    *,
    rows: tuple[float, float],
    px_per_mm: float,
    exclude: np.ndarray | None = None,
    half_width_mm: float = 12.5,
    min_emphasis: float = BoxesConfig.min_major_emphasis,
) -> float | None:
    """Sub-pixel x of the vertical 5 mm grid line nearest to column ``x``, or None when the
    grid there does not show its major lines.

    The line signal of a band of the page (``rows``: first and last pixel row) is summed down
    its columns over ``half_width_mm`` either side of ``x``; the phase of its 5 mm Fourier
    component places the major lines.  Pixels where ``exclude`` is true (trace ink, text) are
    left out.  Pages whose major lines are no heavier than the minor ones (many black-and-white
    scans) have a weak 5 mm component next to the 1 mm one (less than ``min_emphasis`` of it)
    and give None.
    """
    period = 5.0 * px_per_mm
    n = max(2, int(round(2 * half_width_mm / 5.0))) * period
    xa = int(max(0, round(x - n / 2)))
    xb = int(min(image.shape[1], round(xa + n)))
    ya, yb = int(max(0, rows[0])), int(min(image.shape[0], rows[1]))
    if xb - xa < 2 * period or yb - ya < 2 * px_per_mm:
        return None
    signal = line_signal(image[ya:yb, xa:xb], kernel=int(max(5, round(px_per_mm)) | 1))
    keep = np.ones(signal.shape, bool) if exclude is None else ~exclude[ya:yb, xa:xb]
    profile = (signal * keep).sum(0) / np.maximum(keep.sum(0), 1)
    profile = profile - profile.mean()
    cols = np.arange(xa, xb)
    major = np.sum(profile * np.exp(-2j * np.pi * cols / period))
    minor = np.sum(profile * np.exp(-10j * np.pi * cols / period))
    if abs(major) == 0 or abs(major) < min_emphasis * abs(minor):
        return None
    phase = (-np.angle(major) * period / (2 * np.pi)) % period
    return float(phase + round((x - phase) / period) * period)


def _clip_level(bh: np.ndarray) -> int:
    """Grey level at which to clip the black-hat: the 85th percentile of clearly-line pixels."""
    hist = cv2.calcHist([bh], [0], None, [256], [0, 256]).ravel().astype(np.float64)
    hist[:6] = 0.0
    total = hist.sum()
    if total <= 0:
        return 255
    cdf = np.cumsum(hist) / total
    return int(max(8, np.searchsorted(cdf, 0.85)))


def _downscale(img: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    """Area-downscale so the longer side is at most ``side``; returns (image, scale factor)."""
    h, w = img.shape[:2]
    f = min(1.0, side / max(h, w))
    if f >= 1.0:
        return img, 1.0
    out = cv2.resize(img, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
    return out, out.shape[1] / w


def _rotate_same(
    img: np.ndarray, angle_deg: float, *, border: float = 0.0, interp: int = cv2.INTER_LINEAR
) -> np.ndarray:
    """Rotate about the centre by ``angle_deg`` (counter-clockwise on screen), same canvas."""
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), angle_deg, 1.0)
    return cv2.warpAffine(img, m, (w, h), flags=interp, borderMode=cv2.BORDER_CONSTANT, borderValue=border)


def _highpass(p: np.ndarray, sigma: float) -> np.ndarray:
    """Profile minus its Gaussian smoothing (removes page-scale trends)."""
    k = int(6 * sigma) | 1
    smooth = cv2.GaussianBlur(p.reshape(1, -1).astype(np.float64), (k, 1), sigma, borderType=cv2.BORDER_REFLECT).ravel()
    return p - smooth


def _profiles(g: np.ndarray, angle_deg: float, sigma: float) -> tuple[float, float]:
    """Sharpness of the row and column profiles once ``g`` is rotated by ``-angle_deg``."""
    r = _rotate_same(g, -angle_deg) if angle_deg else g
    rows = _highpass(r.sum(axis=1, dtype=np.float64), sigma)
    cols = _highpass(r.sum(axis=0, dtype=np.float64), sigma)
    return float(np.dot(rows, rows)), float(np.dot(cols, cols))


def _parabola_peak(angles: np.ndarray, scores: np.ndarray) -> float:
    """Angle of the best score, refined by a parabola through its neighbours."""
    i = int(np.argmax(scores))
    best = float(angles[i])
    if 0 < i < len(angles) - 1:
        s0, s1, s2 = scores[i - 1], scores[i], scores[i + 1]
        den = s0 - 2 * s1 + s2
        if den < 0:
            best += float(np.clip(0.5 * (s0 - s2) / den, -0.5, 0.5)) * float(angles[1] - angles[0])
    return best


def _scores(img: np.ndarray, angles: np.ndarray, sigma: float) -> np.ndarray:
    """``(n, 2)`` row and column profile sharpness of ``img`` at each angle."""
    return np.array([_profiles(img, float(a), sigma) for a in angles])


def _line_angles(
    g: np.ndarray, max_angle: float, config: GeometryConfig, *, coarse: bool = True, centre: float = 0.0
) -> tuple[float, float, float]:
    """Angles of the horizontal and of the vertical lines of a line-signal image.

    Three levels (on copies of ``config.skew_sides_px``): 1 deg steps over ``+-max_angle`` on a
    320 px copy (both families together), 0.25 deg steps over +-3 deg on a 640 px copy (each
    family on its own, so shear up to 3 deg is found), 0.05 deg steps over +-0.3 deg on an 800 px
    copy, each refined by a parabola.  ``coarse=False`` starts at the second level around
    ``centre``.

    Returns ``(angle_h, angle_v, contrast)`` in degrees (positive counter-clockwise on
    screen); ``contrast`` (>= 1) is how much sharper the best column profile is than the
    median one at the second level, a measure of vertical-line evidence.
    """
    coarse_side, mid_side, fine_side = config.skew_sides_px
    if coarse:
        small, _ = _downscale(g, coarse_side)
        n = int(math.ceil(max_angle))
        angles = np.arange(-n, n + 1, dtype=np.float64)
        sc = _scores(small, angles, 1.0)
        combined = sc[:, 0] / max(sc[:, 0].max(), 1e-30) + sc[:, 1] / max(sc[:, 1].max(), 1e-30)
        centre = _parabola_peak(angles, combined)
    mid, _ = _downscale(g, mid_side)
    angles = centre + np.arange(-12, 13) * 0.25
    sc = _scores(mid, angles, 1.5)
    contrast = float(sc[:, 1].max() / max(np.median(sc[:, 1]), 1e-30))
    fine_img, _ = _downscale(g, fine_side)
    out = []
    for col in (0, 1):
        c = _parabola_peak(angles, sc[:, col])
        fa = c + np.arange(-6, 7) * 0.05
        fs = _scores(fine_img, fa, 1.5)[:, col]
        out.append(float(np.clip(_parabola_peak(fa, fs), -max_angle, max_angle)))
    return out[0], out[1], contrast


def line_angles(
    g: np.ndarray, max_angle: float, config: GeometryConfig, *, centre: float | None = None
) -> tuple[float, float]:
    """Angles ``(angle_h, angle_v)`` of a line-signal image's horizontal and vertical lines
    (see :func:`_line_angles`; ``centre`` skips the coarse search around it).  The vertical
    lines take the horizontal ones' angle unless they show clearly and lean at most
    ``config.max_shear_deg`` apart (shear)."""
    if centre is None:
        ah, av, contrast = _line_angles(g, max_angle, config)
    else:
        ah, av, contrast = _line_angles(g, max_angle, config, coarse=False, centre=centre)
    if contrast < config.min_shear_contrast or abs(av - ah) > config.max_shear_deg:
        av = ah
    return ah, av


def estimate_skew(
    image: np.ndarray, *, max_angle: float | None = None, config: GeometryConfig = GeometryConfig()
) -> float:
    """Skew of a page in degrees, from its grid lines, trace baselines and text rows.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8
        RGB page, upright within ``max_angle`` (see :func:`ecgstudio.geometry.quarter_turn`
        for pages turned sideways).
    max_angle : float, optional
        Largest skew searched, degrees (default ``config.max_skew_deg``, 15).
    config : GeometryConfig
        The stage's settings.

    Returns
    -------
    float
        Angle of the horizontal lines (grid lines, trace baselines) in degrees; positive when
        the content appears rotated counter-clockwise on screen.  ``deskew(image, angle)``
        straightens the page.  It lies in ``[-max_angle, max_angle]``.

    Notes
    -----
    A coarse search (1 deg steps on a 320 px copy) is refined on 640 px and 800 px copies
    (0.25 and 0.05 deg steps, then a parabola); synthetic rotations are recovered within
    about 0.05 deg.
    """
    angle = config.max_skew_deg if max_angle is None else max_angle
    return _line_angles(line_signal(as_rgb(image)), angle, config)[0]


def shear_matrix(angle_h: float, angle_v: float, size: tuple[int, int]) -> np.ndarray:
    """2x3 affine that makes lines at ``angle_h`` horizontal and lines at ``angle_v`` vertical.

    Parameters
    ----------
    angle_h, angle_v : float
        Angles of the horizontal and of the vertical lines, degrees, counter-clockwise positive.
    size : (width, height)
        Image size; the centre stays in place.

    Returns
    -------
    ndarray, shape (2, 3), float64
        Maps input pixel coordinates to corrected ones (a pure rotation when the angles agree).
    """
    th, tv = math.radians(angle_h), math.radians(angle_v)
    # Columns: where the canonical x and y axes go in the image (y down, CCW positive).
    m = np.array([[math.cos(th), math.sin(tv)], [-math.sin(th), math.cos(tv)]])
    inv = np.linalg.inv(m)
    w, h = size
    c = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
    return np.hstack([inv, (c - inv @ c)[:, None]])


# --------------------------------------------------------------------------------------------
# Period estimation


@dataclass(frozen=True)
class _AxisScale:
    px_per_mm: float
    share: float  # share of profile power at the grid harmonics, 0..1
    minor_resolved: bool


_NO_AXIS = _AxisScale(float("nan"), 0.0, False)


def _spectrum(p: np.ndarray, pad: int) -> tuple[np.ndarray, float]:
    """Power spectrum of a Hann-windowed profile; returns (power, bins per cycle/px)."""
    n = len(p)
    x = (p - p.mean()) * np.hanning(n)
    nfft = 1 << int(math.ceil(math.log2(n * pad)))
    spec = np.fft.rfft(x, nfft)
    return (spec.real**2 + spec.imag**2), float(nfft)


def _alias(f: np.ndarray) -> np.ndarray:
    """Fold frequencies (cycles/px) into [0, 0.5] as sampling does."""
    return np.abs(f - np.round(f))


def _harmonic_sum(power: np.ndarray, nfft: float, freqs: np.ndarray, ks: np.ndarray) -> np.ndarray:
    """Sum of the power at harmonics ``ks`` of each fundamental in ``freqs`` (interpolated)."""
    bins = _alias(freqs[:, None] * ks[None, :]) * nfft
    return np.interp(bins, np.arange(len(power)), power).sum(axis=1)


class _Spectrum:
    """Power spectrum of a line-signal profile with peak measurements."""

    pad = 8

    def __init__(self, profile: np.ndarray) -> None:
        n = len(profile)
        self.n = n
        # Remove page-scale trends (margins, trace rows) that would leak into the grid band.
        p = _highpass(profile.astype(np.float64), sigma=max(8.0, n / 60.0))
        self.power, self.nfft = _spectrum(p, self.pad)
        self.half = float(self.pad)  # half the Hann main lobe, in padded bins
        self.fmin = max(8.0 / n, 1.0 / (5 * MAX_PX_PER_MM))
        self.lo = int(math.ceil(self.fmin * self.nfft))
        self.total = float(self.power[self.lo :].sum())

    def peak(self, f: float) -> float:
        """Largest power within half a main lobe of ``f`` (cycles/px); NaN above Nyquist."""
        if not 0 < f <= 0.5:
            return float("nan")
        c = f * self.nfft
        a = max(0, int(math.floor(c - 0.5 * self.half)))
        b = min(len(self.power), int(math.ceil(c + 0.5 * self.half)) + 1)
        return float(self.power[a:b].max())

    def prominence(self, f: float) -> float:
        """Peak power at ``f`` over the median power of its neighbourhood (lobe excluded)."""
        pk = self.peak(f)
        if not np.isfinite(pk):
            return 0.0
        c = f * self.nfft
        w = max(4 * self.half, min(0.45 * c, 24 * self.half))
        a, b = max(0, int(c - w)), min(len(self.power), int(c + w) + 1)
        i0, i1 = int(c - 2 * self.half), int(c + 2 * self.half) + 1
        band = np.concatenate([self.power[a : max(a, i0)], self.power[min(b, i1) : b]])
        if band.size == 0:
            return 0.0
        return pk / max(float(np.median(band)), 1e-30)

    def strongest(self) -> float:
        """Frequency of the largest power in the grid band, cycles/px."""
        seg = self.power[self.lo : int(0.5 * self.nfft) + 1]
        return (self.lo + int(np.argmax(seg))) / self.nfft


def _axis_scale(profile: np.ndarray, length_px: int, config: GeometryConfig) -> _AxisScale:
    """Millimetre scale from one projection profile of the line signal."""
    if len(profile) < 32 or not np.any(profile):
        return _NO_AXIS
    sp = _Spectrum(profile)
    if sp.total <= 0:
        return _NO_AXIS
    f_peak = sp.strongest()
    p_peak = sp.peak(f_peak)

    prominent, relative = config.line_prominence, config.line_relative_power

    def present(f: float) -> bool:
        return f >= sp.fmin and sp.peak(f) >= relative * p_peak and sp.prominence(f) >= prominent

    if sp.prominence(f_peak) < prominent:
        return _NO_AXIS

    # 1. The pattern fundamental: the lowest sub-harmonic f_peak/d all of whose multiples
    #    below f_peak are present (d = 5 when f_peak is the 1 mm line and the 5 mm lines
    #    stand out; d = 1 when f_peak is the 5 mm line itself).  Below 2 px/mm the 1 mm lines
    #    alias: f_peak may then be the alias of 1 - f_peak, and (1 - f_peak)/5 the 5 mm line.
    d_best, f0, aliased = 1, f_peak, False
    for d in range(2, 11):
        if all(present(f_peak * j / d) for j in range(1, d)):
            d_best, f0 = d, f_peak / d
    if d_best < 5 and f_peak > 0.3:
        f_alias = (1.0 - f_peak) / 5.0
        if all(present(f_alias * j) for j in range(1, 5)):
            f0, aliased = f_alias, True

    # 2. Is f0 the 5 mm period (its 5th harmonic boosted by the minor lines) or ambiguous?
    minor = False
    if aliased:
        minor = True
    elif present(5 * f0):
        neighbours = [v for v in (sp.peak(4 * f0), sp.peak(6 * f0)) if np.isfinite(v) and v > 0]
        if neighbours:
            ratio = sp.peak(5 * f0) / float(np.exp(np.mean(np.log(neighbours))))
            minor = ratio > 2.0
    if minor or length_px * f0 * 5.0 <= 450.0:
        f_major = f0
    else:
        # A single line family that would make the image implausibly wide (> 450 mm of paper)
        # as 5 mm lines: it is the 1 mm grid without visible major emphasis.
        f_major, minor = f0 / 5.0, True
    minor = minor and not aliased

    # 3. Refine the major fundamental with its significant harmonics.
    ks_all = np.arange(1, int(0.5 / f_major) + 1, dtype=np.float64)
    sig = np.array([present(k * f_major) for k in ks_all], dtype=bool)
    ks = ks_all[sig] if sig.any() else ks_all[:1]
    for rel in (2e-3, 2e-4):
        grid = f_major * (1.0 + rel * np.linspace(-1, 1, 41))
        h = _harmonic_sum(sp.power, sp.nfft, grid, ks)
        i = int(np.argmax(h))
        if 0 < i < len(grid) - 1:
            den = h[i - 1] - 2 * h[i] + h[i + 1]
            off = 0.5 * (h[i - 1] - h[i + 1]) / den if den < 0 else 0.0
            f_major = float(grid[i] + off * (grid[1] - grid[0]))
        else:
            f_major = float(grid[i])

    # 4. Share of the profile's power in the main lobes of the grid harmonics.
    in_peaks = 0.0
    for k in ks_all:
        c = k * f_major * sp.nfft
        a = max(sp.lo, int(math.floor(c - 2 * sp.half)))
        b = min(len(sp.power), int(math.ceil(c + 2 * sp.half)) + 1)
        if b > a:
            in_peaks += float(sp.power[a:b].sum())
    share = float(np.clip(in_peaks / sp.total, 0.0, 1.0))
    px_per_mm = 1.0 / (5.0 * f_major)
    if not (MIN_PX_PER_MM <= px_per_mm <= MAX_PX_PER_MM):
        return _AxisScale(px_per_mm, 0.0, minor)
    return _AxisScale(px_per_mm, share, minor)


def estimate_grid(
    image: np.ndarray, *, max_angle: float | None = None, config: GeometryConfig = GeometryConfig()
) -> GridEstimate:
    """Measure the millimetre grid of a page: scale along both axes, skew and confidence.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8
        RGB page (grey ``(H, W)`` and RGBA are accepted too), upright within ``max_angle``.
        The grid may be red, pink, orange, green, blue, grey or black; it may be missing.
    max_angle : float, optional
        Largest skew searched, degrees (default ``config.max_skew_deg``).
    config : GeometryConfig
        The stage's settings.

    Returns
    -------
    GridEstimate
        Scale in pixels per millimetre of this image, measured along the grid's own axes;
        NaN scales, ``has_grid=False`` and ``confidence=0`` when no periodic grid is found
        (blank paper, noise, plain photos).

    Notes
    -----
    Perspective and paper curl make the period vary across the page; the estimate is then an
    average and ``px_per_mm_x`` and ``px_per_mm_y`` may disagree.  Run
    :func:`ecgstudio.geometry.rectify` first on photos.
    """
    rgb = as_rgb(image)
    g = line_signal(rgb)
    return grid_from_signal(g, config, max_angle=max_angle)


def grid_from_signal(
    g: np.ndarray, config: GeometryConfig, *, max_angle: float | None = None, near: float | None = None
) -> GridEstimate:
    """Grid of a line-signal image; ``near`` skips the coarse angle search around it."""
    if float(g.max(initial=0.0)) <= 0.0:
        return GridEstimate(float("nan"), float("nan"), 0.0, 0.0, False)
    angle = config.max_skew_deg if max_angle is None else max_angle
    ah, av = line_angles(g, angle, config, centre=near)
    h, w = g.shape
    if abs(ah) > 0.005 or abs(av) > 0.005:
        m = shear_matrix(ah, av, (w, h))
        r = cv2.warpAffine(g, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    else:
        r = g
    ax_y = _axis_scale(r.sum(axis=1, dtype=np.float64), h, config)
    ax_x = _axis_scale(r.sum(axis=0, dtype=np.float64), w, config)
    ax_x, ax_y = _reconcile(ax_x, ax_y, max(h, w))
    conf, x, y = _combine(ax_x, ax_y)
    if conf < config.has_grid_confidence:
        return GridEstimate(float("nan"), float("nan"), ah, 0.0, False, shear_deg=av - ah)
    return GridEstimate(x, y, ah, conf, True, ax_x.minor_resolved and ax_y.minor_resolved, shear_deg=av - ah)


#: Width of paper (mm) a page image plausibly shows along its longer side.
_PLAUSIBLE_PAGE_MM = (150.0, 450.0)


def _reconcile(ax_x: _AxisScale, ax_y: _AxisScale, long_side_px: int) -> tuple[_AxisScale, _AxisScale]:
    """Mend an axis that locked onto a multiple of the 5 mm period.

    Evenly spaced trace rows or text lines can make every sub-harmonic of the major lines look
    present along one axis, which then reads 2-5 times too many pixels per mm; where only the
    5 mm lines are printed, their second harmonic can be the strongest peak and the axis
    reads a half-integer factor (7/2) too many.  When the two axes disagree by such a factor,
    the one implying a plausible paper width is taken for both; where both do, the one whose
    1 mm lines are resolved (the 5 mm lines standing out among them).
    """
    x, y = ax_x.px_per_mm, ax_y.px_per_mm
    if not (ax_x.share > 0 and ax_y.share > 0 and np.isfinite(x) and np.isfinite(y)):
        return ax_x, ax_y
    ratio = max(x, y) / min(x, y)
    if ratio < 1.4 or abs(2 * ratio - round(2 * ratio)) > 0.06 * ratio:
        return ax_x, ax_y
    lo, hi = _PLAUSIBLE_PAGE_MM
    plausible = [ax for ax in (ax_x, ax_y) if lo <= long_side_px / ax.px_per_mm <= hi]
    if len(plausible) == 2:
        plausible = [ax for ax in plausible if ax.minor_resolved]
    if len(plausible) != 1:
        return ax_x, ax_y
    good = plausible[0]
    return replace(ax_x, px_per_mm=good.px_per_mm), replace(ax_y, px_per_mm=good.px_per_mm)


def _combine(ax_x: _AxisScale, ax_y: _AxisScale) -> tuple[float, float, float]:
    """Confidence and per-axis scale from two axis measurements."""
    sx, sy = ax_x.share, ax_y.share
    x, y = ax_x.px_per_mm, ax_y.px_per_mm
    if not (sx > 0 and sy > 0 and np.isfinite(x) and np.isfinite(y)):
        return 0.0, float("nan"), float("nan")
    ratio = max(x, y) / min(x, y)
    # Square grids: the axes agree within a few percent unless the page is in perspective.
    agree = float(np.clip(1.0 - (ratio - 1.03) / 0.2, 0.0, 1.0))
    conf = math.sqrt(sx * sy) * agree
    return float(np.clip(conf, 0.0, 1.0)), x, y
