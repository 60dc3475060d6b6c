"""Make a clean synthetic ECG page look like a real scan or phone photo, with exact ground truth.

:func:`apply_damage` works in three stages, in the order the damage happens in the real world:

1. **On the paper**, in page coordinates: wrinkle and fold shading, coffee and water stains,
   handwriting, pen marks and rubber stamps.  Handwriting and stamps are added to
   ``masks.text``.
2. **Geometry**: quarter turns, skew, phone perspective, paper curl and lens distortion,
   the small shifts along wrinkles, and the crop (or a border of desk or scanner bed).  All of
   it is composed into one inverse map and applied with a single :func:`cv2.remap`, bilinear
   for the image and nearest-neighbour for the masks.
3. **Camera and scanner**, in image coordinates: uneven lighting and shadows, blur, sensor
   noise, scanner streaks, grey or black-and-white output, JPEG compression.

The geometric part is a :class:`Warp`: a homography composed with a smooth displacement
that is defined *forward* and analytically (a point on the page moves to
``H @ (p + d(p))``).  :meth:`Warp.map_points` evaluates it directly; the image map is its
numerical inverse, computed by fixed-point iteration on a coarse grid and upsampled, and agrees
with it to a small fraction of a pixel.  Trace polylines, boxes and calibration marks can
therefore be carried onto the damaged image with :meth:`Warp.map_points`.

Coordinates follow OpenCV: pixel centres at integer ``(x, y)``, ``x`` to the right, ``y`` down.
Pixel sizes of the effects (line widths, blur, wrinkle widths) scale with the page diagonal,
relative to a 2200 x 1700 page (US letter at 200 dpi).
"""

from __future__ import annotations

import logging
import math
import numbers
from dataclasses import dataclass, fields
from statistics import NormalDist
from typing import Any

import cv2
import numpy as np

from ..results import PageMasks

logger = logging.getLogger(__name__)

__all__ = ["DamageSettings", "DamagedPage", "Warp", "apply_damage", "crumple"]

#: Diagonal in pixels of the reference page (2200 x 1700) that effect sizes are tuned for.
_REF_DIAG_PX = math.hypot(2200.0, 1700.0)


# --------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DamageSettings:
    """How strongly each kind of damage is applied.

    Every field is a strength in ``[0, 1]``: 0 switches that damage off, 1 is the strongest
    level still seen on real pages.  The random details (angles, positions, colours) are drawn
    by :func:`apply_damage` from its generator; the strength scales their range.

    Attributes
    ----------
    rotation : float
        In-plane skew; 1 gives up to +-10 degrees.
    quarter_turn : float
        Probability that the page is turned by 90, 180 or 270 degrees.
    perspective : float
        Phone-photo keystone; 1 moves the paper corners by up to about 12 % of the side.  The
        paper then no longer fills the frame and a desk shows around it.
    curl : float
        Lens distortion and paper curl: a smooth non-linear displacement of the page.
    crop : float
        Cuts up to about 8 % off random edges (possibly through traces), or adds a border of
        background (desk for photos, scanner bed for scans).
    lighting : float
        Uneven illumination, vignetting, colour cast, soft shadows (of a phone or a hand),
        glare and lifted blacks.
    wrinkles : float
        Crumple wrinkles and fold creases: soft light/dark shading bands along random curves
        and lines, and a slight local displacement across them.
    stains : float
        Coffee, tea and water stains: semi-transparent blobs with darker tide-line edges.
    streaks : float
        Scanner streaks: thin light or dark lines and faint bands along the scan direction.
    scribbles : float
        Handwritten words, scrawls and pen marks, and rubber stamps (rings or rectangles with
        text); they may overlap the traces.
    blur : float
        Defocus and motion blur.
    noise : float
        Sensor noise, luminance and colour.
    jpeg : float
        JPEG compression; 1 goes down to quality about 25.
    grayscale : float
        Probability of a grey scan; half of those are binarized (thresholded, like a fax).
    """

    rotation: float = 0.0
    quarter_turn: float = 0.0
    perspective: float = 0.0
    curl: float = 0.0
    crop: float = 0.0
    lighting: float = 0.0
    wrinkles: float = 0.0
    stains: float = 0.0
    streaks: float = 0.0
    scribbles: float = 0.0
    blur: float = 0.0
    noise: float = 0.0
    jpeg: float = 0.0
    grayscale: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"DamageSettings.{f.name} must be a strength in [0, 1] (0 = off), got {value!r}")
            object.__setattr__(self, f.name, float(value))

    @classmethod
    def none(cls) -> DamageSettings:
        """No damage at all: :func:`apply_damage` returns the page unchanged."""
        return cls()

    @classmethod
    def all(cls, strength: float = 1.0) -> DamageSettings:
        """Every damage at the same ``strength`` (``quarter_turn`` stays 0)."""
        return cls(**{f.name: strength for f in fields(cls) if f.name != "quarter_turn"})

    @classmethod
    def random(cls, rng: np.random.Generator, *, severity: float = 0.5) -> DamageSettings:
        """A realistic random mix of damage for training.

        About one page in ten stays clean (at most a little JPEG); the others look like a scan
        (small skew, streaks, grey or binarized, stains and handwriting) or, a little more
        often, like a phone photo (perspective with a desk around, curl, lighting, blur, noise,
        JPEG).  Each damage is switched on with a probability that depends on the kind of page,
        with a strength whose mean grows with ``severity``.

        Parameters
        ----------
        rng : numpy.random.Generator
            Source of randomness.
        severity : float, keyword-only
            Overall severity in ``[0, 1]``; 0 gives almost clean pages.
        """
        if isinstance(severity, bool) or not isinstance(severity, numbers.Real) or not 0.0 <= severity <= 1.0:
            raise ValueError(f"severity must be in [0, 1], got {severity!r}")
        severity = float(severity)

        def draw(p: float, cap: float = 1.0) -> float:
            if rng.random() >= p or severity == 0.0:
                return 0.0
            return float(np.clip(2.0 * severity * rng.beta(2.0, 2.0), 0.05, 1.0) * cap)

        kind = rng.random()
        quarter = min(1.0, 0.2 * severity)
        if kind < 0.1:
            return cls(jpeg=draw(0.5, 0.3))
        if kind < 0.5:  # flatbed scan or fax
            return cls(
                rotation=draw(0.7, 0.35),
                quarter_turn=quarter,
                perspective=0.0,
                curl=draw(0.1, 0.3),
                crop=draw(0.4),
                lighting=draw(0.2, 0.4),
                wrinkles=draw(0.3),
                stains=draw(0.2),
                streaks=draw(0.35),
                scribbles=draw(0.35),
                blur=draw(0.3, 0.5),
                noise=draw(0.5, 0.6),
                jpeg=draw(0.6),
                grayscale=0.45 if rng.random() < 0.8 else 0.0,
            )
        return cls(  # phone photo
            rotation=draw(0.6, 0.6),
            quarter_turn=quarter,
            perspective=draw(0.85),
            curl=draw(0.6),
            crop=draw(0.6),
            lighting=draw(0.9),
            wrinkles=draw(0.35),
            stains=draw(0.15),
            streaks=draw(0.02),
            scribbles=draw(0.3),
            blur=draw(0.5),
            noise=draw(0.8),
            jpeg=draw(0.85),
            grayscale=0.05,
        )

    @property
    def is_none(self) -> bool:
        """True when every strength is 0."""
        return all(getattr(self, f.name) == 0.0 for f in fields(self))


# --------------------------------------------------------------------------------------------
# Smooth displacement fields (forward, analytic, in page coordinates)
# --------------------------------------------------------------------------------------------


def _json(value: Any) -> Any:
    """Numpy scalars and arrays as plain Python values, recursively."""
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


@dataclass(frozen=True)
class _Curl:
    """Lens distortion and paper curl: radial term, bows, an edge lift and low-frequency waves.

    Displacements are in pixels of the page.  Coordinates are clamped to the page grown by
    10 % on each side, so the field stays bounded (and invertible) far outside the paper.
    """

    width: int
    height: int
    k_radial: float  # displacement at the half-diagonal, as a fraction of it
    bow_y: float  # px, vertical displacement of the centre row relative to the side edges
    bow_x: float  # px, horizontal counterpart
    bow_tilt: float  # how much the vertical bow grows from top to bottom (-1..1)
    edge: int  # 0 left, 1 top, 2 right, 3 bottom
    edge_amp_x: float  # px at the edge
    edge_amp_y: float
    edge_len: float  # px, decay length away from the edge
    edge_ramp: float  # -1..1, one corner of the edge lifts more than the other
    waves: tuple[tuple[float, float, float, float, float], ...]  # (kx, ky, phase, ax, ay)

    def __call__(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        w, h = float(self.width), float(self.height)
        x = np.clip(x, -0.1 * w, 1.1 * w)
        y = np.clip(y, -0.1 * h, 1.1 * h)
        cx, cy = (w - 1.0) / 2.0, (h - 1.0) / 2.0
        half_diag = 0.5 * math.hypot(w, h)
        ux, uy = (x - cx) / (w / 2.0), (y - cy) / (h / 2.0)
        r2 = ((x - cx) ** 2 + (y - cy) ** 2) / half_diag**2
        dx = (x - cx) * (self.k_radial * r2)
        dy = (y - cy) * (self.k_radial * r2)
        dy = dy + self.bow_y * (ux * ux - 1.0 / 3.0) * (1.0 + self.bow_tilt * uy) / (1.0 + abs(self.bow_tilt))
        dx = dx + self.bow_x * (uy * uy - 1.0 / 3.0)
        # distance from the lifted edge and position along it (-1..1)
        if self.edge == 0:
            dist, along = x, uy
        elif self.edge == 1:
            dist, along = y, ux
        elif self.edge == 2:
            dist, along = (w - 1.0) - x, uy
        else:
            dist, along = (h - 1.0) - y, ux
        ramp = (1.0 + self.edge_ramp * along) / (1.0 + abs(self.edge_ramp))
        lift = np.exp(-np.maximum(dist, 0.0) / self.edge_len) * ramp
        dx = dx + self.edge_amp_x * lift
        dy = dy + self.edge_amp_y * lift
        for kx, ky, phase, ax, ay in self.waves:
            s = np.sin(kx * x + ky * y + phase)
            dx = dx + ax * s
            dy = dy + ay * s
        return dx, dy

    def describe(self) -> dict:
        return _json({"type": "curl", **{f.name: getattr(self, f.name) for f in fields(self)}})


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


@dataclass(frozen=True)
class _Crease:
    """One wrinkle or fold along a gently curved line.

    ``u`` runs along the crease, ``s`` across it (signed, in px).  Across the crease the paper
    shifts by ``shift * b(s / disp_width)`` along the normal, with ``b(q) = q exp((1 - q^2)/2)``
    (peak 1 at ``|q| = 1``), faded out beyond the crease ends.
    """

    x0: float
    y0: float
    angle: float  # direction of the normal, radians
    half_length: float  # px; a fold across the whole page has a half length beyond the page
    taper: float  # px over which the crease fades out at its ends
    wobble_amp: float  # px
    wobble_k: float  # rad/px
    wobble_phase: float
    shade_width: float  # px, distance of the light and dark shading peaks from the crease
    light: float  # signed strength of the light/dark pair (sign says which side is lit)
    dark: float  # strength of the dark core along the crease
    core_width: float  # px
    disp_width: float  # px
    shift: float  # px, signed

    def coords(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(s, u, envelope)`` of points."""
        nx, ny = math.cos(self.angle), math.sin(self.angle)
        rx, ry = x - self.x0, y - self.y0
        u = -ny * rx + nx * ry
        s = nx * rx + ny * ry + self.wobble_amp * np.sin(self.wobble_k * u + self.wobble_phase)
        env = _smoothstep((self.half_length + self.taper - np.abs(u)) / (2.0 * self.taper))
        return s, u, env

    def __call__(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s, _, env = self.coords(x, y)
        q = s / self.disp_width
        m = self.shift * env * q * np.exp(0.5 * (1.0 - q * q))
        return math.cos(self.angle) * m, math.sin(self.angle) * m

    def shading(self, x: np.ndarray, y: np.ndarray, *, core: bool = True) -> np.ndarray:
        """Relative brightness change (0 = none) at the points, with or without the dark core."""
        s, _, env = self.coords(x, y)
        q = s / self.shade_width
        out = -self.light * q * np.exp(0.5 * (1.0 - q * q))
        if core:
            c = s / self.core_width
            out = out - self.dark * np.exp(-0.5 * c * c)
        return env * out

    def box(self, reach: float) -> tuple[float, float, float, float]:
        """Axis-aligned ``(x0, y0, x1, y1)`` outside which ``|s| > reach`` or the envelope is 0."""
        nx, ny = math.cos(self.angle), math.sin(self.angle)
        a = self.half_length + self.taper
        b = reach + abs(self.wobble_amp)
        ex = abs(ny) * a + abs(nx) * b
        ey = abs(nx) * a + abs(ny) * b
        return self.x0 - ex, self.y0 - ey, self.x0 + ex, self.y0 + ey

    def describe(self) -> dict:
        return _json({"type": "crease", **{f.name: getattr(self, f.name) for f in fields(self)}})


_Field = _Curl | _Crease


# --------------------------------------------------------------------------------------------
# The warp
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Warp:
    """The geometric transform from the clean page to the damaged image.

    A page point ``p`` first moves by the smooth displacement ``d(p)`` (paper curl, lens
    distortion, wrinkles; the sum of ``displacement``), then through ``homography``:
    ``q ~ homography @ (p + d(p), 1)``.

    Attributes
    ----------
    homography : ndarray, shape (3, 3), float64
        Projective part: quarter turns, skew, perspective and crop offsets.
    output_size : tuple of int
        ``(height, width)`` of the damaged image in pixels.
    input_size : tuple of int
        ``(height, width)`` of the clean page in pixels.
    displacement : tuple
        The smooth displacement fields, summed; empty for a purely projective warp.
    params : dict
        The drawn parameters (angles, corners, crop), for :meth:`describe`.
    """

    homography: np.ndarray
    output_size: tuple[int, int]
    input_size: tuple[int, int]
    displacement: tuple[_Field, ...] = ()
    params: dict | None = None

    @classmethod
    def identity(cls, size: tuple[int, int]) -> Warp:
        """The warp that changes nothing on a page of ``size = (height, width)``."""
        size = (int(size[0]), int(size[1]))
        return cls(np.eye(3), size, size, (), {"quarter_turns": 0})

    @property
    def is_identity(self) -> bool:
        """True when the warp leaves every pixel where it is."""
        return (
            not self.displacement
            and self.output_size == self.input_size
            and bool(np.array_equal(self.homography, np.eye(3)))
        )

    def displace(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The smooth displacement ``d(p)`` in page pixels at page points ``(x, y)``."""
        dx = np.zeros_like(x, dtype=np.float64)
        dy = np.zeros_like(y, dtype=np.float64)
        for field_ in self.displacement:
            fx, fy = field_(x, y)
            dx += fx
            dy += fy
        return dx, dy

    def map_points(self, xy: np.ndarray) -> np.ndarray:
        """Where page points land on the damaged image.

        Parameters
        ----------
        xy : array_like, shape (n, 2)
            Page pixel coordinates ``(x, y)``; rows of NaN (gaps in a trace) stay NaN.

        Returns
        -------
        ndarray, shape (n, 2), float64
            Damaged-image pixel coordinates.  Ink drawn at a page point appears at its mapped
            location (the image warp agrees to a small fraction of a pixel).
        """
        xy = np.asarray(xy, dtype=np.float64)
        if xy.ndim != 2 or xy.shape[1] != 2:
            raise ValueError(f"points must be an (n, 2) array of (x, y), got shape {xy.shape}")
        x, y = xy[:, 0], xy[:, 1]
        dx, dy = self.displace(x, y)
        x, y = x + dx, y + dy
        h = self.homography
        den = h[2, 0] * x + h[2, 1] * y + h[2, 2]
        return np.stack(
            [(h[0, 0] * x + h[0, 1] * y + h[0, 2]) / den, (h[1, 0] * x + h[1, 1] * y + h[1, 2]) / den], axis=1
        )

    def describe(self) -> dict:
        """The warp's parameters as plain JSON-able values (for ground-truth files)."""
        return _json(
            {
                "input_size": list(self.input_size),
                "output_size": list(self.output_size),
                "homography": self.homography,
                **(self.params or {}),
                "displacement": [f.describe() for f in self.displacement],
            }
        )

    def inverse_grid(self, step: int) -> np.ndarray:
        """Page coordinates of damaged-image points on a coarse padded grid.

        Sample ``(i, j)`` is at image point ``((j - 1) * step + (step - 1) / 2, (i - 1) * step
        + (step - 1) / 2)``, so that :func:`cv2.resize` by ``step`` followed by dropping
        ``step`` rows and columns on the top and left interpolates it at every image pixel.

        Returns
        -------
        ndarray, shape (ny, nx, 2), float64
            ``(x, y)`` page coordinates.
        """
        out_h, out_w = self.output_size
        nx, ny = -(-out_w // step) + 2, -(-out_h // step) + 2
        gx = (np.arange(nx) - 1.0) * step + (step - 1) / 2.0
        gy = (np.arange(ny) - 1.0) * step + (step - 1) / 2.0
        qx, qy = np.meshgrid(gx, gy)
        hi = np.linalg.inv(self.homography)
        den = hi[2, 0] * qx + hi[2, 1] * qy + hi[2, 2]
        tx = (hi[0, 0] * qx + hi[0, 1] * qy + hi[0, 2]) / den
        ty = (hi[1, 0] * qx + hi[1, 1] * qy + hi[1, 2]) / den
        if self.displacement:
            tx, ty = _invert_displacement(self.displacement, tx.ravel(), ty.ravel())
            tx, ty = tx.reshape(ny, nx), ty.reshape(ny, nx)
        return np.stack([tx, ty], axis=-1)


def _invert_displacement(
    displacement: tuple[_Field, ...], tx: np.ndarray, ty: np.ndarray, *, tol: float = 1e-3, max_iter: int = 60
) -> tuple[np.ndarray, np.ndarray]:
    """Solve ``p + d(p) = t`` for ``p`` by fixed-point iteration ``p <- t - d(p)``.

    The fields are built with ``|grad d| < 1``, so the iteration contracts.  Creases are only
    evaluated near their support (they are below 1e-6 px elsewhere).
    """
    smooth = [f for f in displacement if not isinstance(f, _Crease)]
    creases = [f for f in displacement if isinstance(f, _Crease)]
    bound = 2.0
    for f in smooth:
        dx, dy = f(tx, ty)
        bound += float(np.max(np.hypot(dx, dy), initial=0.0)) * 1.5
    bound += sum(abs(c.shift) for c in creases)
    subsets = []
    for c in creases:
        x0, y0, x1, y1 = c.box(7.0 * c.disp_width)
        idx = np.flatnonzero((tx > x0 - bound) & (tx < x1 + bound) & (ty > y0 - bound) & (ty < y1 + bound))
        if idx.size:
            subsets.append((c, idx))

    def d(px: np.ndarray, py: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dx = np.zeros_like(px)
        dy = np.zeros_like(py)
        for f in smooth:
            fx, fy = f(px, py)
            dx += fx
            dy += fy
        for c, idx in subsets:
            fx, fy = c(px[idx], py[idx])
            dx[idx] += fx
            dy[idx] += fy
        return dx, dy

    px, py = tx.copy(), ty.copy()
    for it in range(max_iter):  # noqa: B007 (the count is logged after the loop)
        dx, dy = d(px, py)
        nx, ny = tx - dx, ty - dy
        change = float(np.max(np.abs(nx - px) + np.abs(ny - py), initial=0.0))
        px, py = nx, ny
        if change < tol:
            break
    else:
        logger.warning("displacement inverse did not converge (last change %.3g px)", change)
    logger.debug("displacement inverse: %d iterations", it + 1)
    return px, py


def _upsample_grid(low: np.ndarray, step: int, out_h: int, out_w: int) -> np.ndarray:
    """Bilinear upsampling of a grid from :meth:`Warp.inverse_grid` to every image pixel."""
    ny, nx = low.shape[:2]
    big = cv2.resize(low, (nx * step, ny * step), interpolation=cv2.INTER_LINEAR)
    return big[step : step + out_h, step : step + out_w]


def _quarter_turn_matrix(k: int, h: int, w: int) -> np.ndarray:
    """Homography of ``numpy.rot90(image, k)`` (counter-clockwise) on pixel centres."""
    k %= 4
    if k == 0:
        return np.eye(3)
    if k == 1:
        return np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, w - 1.0], [0.0, 0.0, 1.0]])
    if k == 2:
        return np.array([[-1.0, 0.0, w - 1.0], [0.0, -1.0, h - 1.0], [0.0, 0.0, 1.0]])
    return np.array([[0.0, -1.0, h - 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])


def _translation(tx: float, ty: float) -> np.ndarray:
    return np.array([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]])


# --------------------------------------------------------------------------------------------
# Drawing the random geometry
# --------------------------------------------------------------------------------------------


def _draw_curl(rng: np.random.Generator, strength: float, h: int, w: int) -> _Curl:
    diag = math.hypot(h, w)
    s = strength
    waves = []
    for _ in range(3):
        wavelength = rng.uniform(0.5, 1.5) * diag
        direction = rng.uniform(0.0, 2.0 * math.pi)
        k = 2.0 * math.pi / wavelength
        amp = rng.uniform(0.3, 1.0) * 0.004 * s * diag
        amp_dir = rng.uniform(0.0, 2.0 * math.pi)
        waves.append(
            (
                k * math.cos(direction),
                k * math.sin(direction),
                rng.uniform(0, 2 * math.pi),
                amp * math.cos(amp_dir),
                amp * math.sin(amp_dir),
            )
        )
    edge = int(rng.integers(0, 4))
    edge_len = rng.uniform(0.06, 0.15) * (w if edge in (0, 2) else h)
    lift = rng.uniform(0.0, 0.015) * s * diag
    lift_dir = rng.uniform(0.0, 2.0 * math.pi)
    return _Curl(
        width=w,
        height=h,
        k_radial=float(rng.uniform(-1.0, 1.0) * 0.02 * s),
        bow_y=float(rng.uniform(-1.0, 1.0) * 0.018 * s * diag),
        bow_x=float(rng.uniform(-1.0, 1.0) * 0.005 * s * diag),
        bow_tilt=float(rng.uniform(-1.0, 1.0)),
        edge=edge,
        edge_amp_x=float(lift * math.cos(lift_dir)),
        edge_amp_y=float(lift * math.sin(lift_dir)),
        edge_len=float(edge_len),
        edge_ramp=float(rng.uniform(-1.0, 1.0)),
        waves=tuple(tuple(float(v) for v in wave) for wave in waves),
    )


def _draw_creases(rng: np.random.Generator, strength: float, h: int, w: int, scale: float) -> tuple[_Crease, ...]:
    diag = math.hypot(h, w)
    s = strength
    creases = []
    n_folds = int(rng.random() < 0.7 * s) + int(rng.random() < 0.3 * s)
    n_wrinkles = int(round(s * rng.uniform(4.0, 24.0)))
    for i in range(n_folds + n_wrinkles):
        fold = i < n_folds
        if fold:  # straight folds across the page, near halves and thirds
            vertical = rng.random() < 0.6
            frac = rng.choice([0.5, 1.0 / 3.0, 2.0 / 3.0]) + rng.normal(0.0, 0.02)
            x0 = frac * w if vertical else rng.uniform(0.3, 0.7) * w
            y0 = rng.uniform(0.3, 0.7) * h if vertical else frac * h
            angle = (0.0 if vertical else math.pi / 2.0) + rng.normal(0.0, 0.02)
            half_length, taper = diag, 0.05 * diag
            wobble_amp = rng.uniform(0.0, 2.0) * scale
            shade_width = rng.uniform(6.0, 14.0) * scale
            light = rng.uniform(0.06, 0.16) * s
            dark = rng.uniform(0.12, 0.3) * s
            core_width = rng.uniform(1.5, 3.0) * scale
        else:  # crumple wrinkles: shorter, curved, softer
            x0, y0 = rng.uniform(-0.05, 1.05) * w, rng.uniform(-0.05, 1.05) * h
            angle = rng.uniform(0.0, math.pi)
            half_length = rng.uniform(0.05, 0.3) * diag
            taper = max(0.3 * half_length, 20.0 * scale)
            wobble_amp = rng.uniform(0.0, 0.06) * half_length
            shade_width = rng.uniform(10.0, 35.0) * scale
            light = rng.uniform(0.04, 0.14) * s
            dark = rng.uniform(0.02, 0.12) * s
            core_width = rng.uniform(0.2, 0.5) * shade_width
        wobble_k = 2.0 * math.pi / (rng.uniform(1.0, 3.0) * (half_length if not fold else 0.4 * diag))
        creases.append(
            _Crease(
                x0=float(x0),
                y0=float(y0),
                angle=float(angle),
                half_length=float(half_length),
                taper=float(taper),
                wobble_amp=float(wobble_amp),
                wobble_k=float(wobble_k),
                wobble_phase=float(rng.uniform(0.0, 2.0 * math.pi)),
                shade_width=float(shade_width),
                light=float(light * rng.choice([-1.0, 1.0])),
                dark=float(dark),
                core_width=float(core_width),
                disp_width=float(rng.uniform(16.0, 36.0) * scale),
                shift=float(rng.uniform(-1.0, 1.0) * 1.2 * s * scale),
            )
        )
    return tuple(creases)


def _draw_warp(
    settings: DamageSettings,
    rng: np.random.Generator,
    h: int,
    w: int,
    creases: tuple[_Crease, ...],
    photo: bool,
) -> Warp:
    """Draw the projective part and the curl, and compose them with the creases."""
    params: dict[str, Any] = {}
    k = 0
    if settings.quarter_turn > 0 and rng.random() < settings.quarter_turn:
        k = int(rng.integers(1, 4))
    params["quarter_turns"] = k
    hom = _quarter_turn_matrix(k, h, w)
    h1, w1 = (w, h) if k % 2 else (h, w)

    if settings.rotation > 0:
        angle = float(rng.uniform(0.05, 1.0) * rng.choice([-1.0, 1.0]) * 10.0 * settings.rotation)
        c = ((w1 - 1) / 2.0, (h1 - 1) / 2.0)
        rot = np.vstack([cv2.getRotationMatrix2D(c, angle, 1.0), [0.0, 0.0, 1.0]])
        hom = rot @ hom
        params["rotation_deg"] = angle

    if settings.perspective > 0:
        s = settings.perspective
        src = np.array([[0, 0], [w1 - 1, 0], [w1 - 1, h1 - 1], [0, h1 - 1]], dtype=np.float64)
        dst = src.copy()
        size = np.array([w1, h1], dtype=np.float64)
        inset = rng.uniform(0.01, 0.04, size=4) * s  # left, top, right, bottom
        dst[:, 0] += np.array([inset[0], -inset[2], -inset[2], inset[0]]) * w1
        dst[:, 1] += np.array([inset[1], inset[1], -inset[3], -inset[3]]) * h1
        kv, kh = rng.uniform(-1.0, 1.0, size=2) * 0.06 * s  # keystone: shorter top/bottom, left/right edge
        if kv > 0:
            dst[[0, 1], 0] += np.array([kv, -kv]) * w1
        else:
            dst[[3, 2], 0] += np.array([-kv, kv]) * w1
        if kh > 0:
            dst[[0, 3], 1] += np.array([kh, -kh]) * h1
        else:
            dst[[1, 2], 1] += np.array([-kh, kh]) * h1
        dst += rng.uniform(-0.02, 0.02, size=(4, 2)) * s * size
        dst += rng.uniform(-0.015, 0.015, size=2) * s * size
        pers = cv2.getPerspectiveTransform(src.astype(np.float32), dst.astype(np.float32)).astype(np.float64)
        hom = pers @ hom
        params["perspective_corners"] = dst

    out_h, out_w = h1, w1
    if settings.crop > 0:
        s = settings.crop
        border = rng.random() < (0.65 if photo else 0.3)
        edges = rng.random(4) < 0.5
        edges[int(rng.integers(0, 4))] = True
        amount = np.where(edges, rng.uniform(0.2, 1.0, size=4) * 0.08 * s, 0.0)
        px = np.round(amount * np.array([w1, h1, w1, h1])).astype(int)  # left, top, right, bottom
        if border:
            hom = _translation(px[0], px[1]) @ hom
            out_w, out_h = w1 + px[0] + px[2], h1 + px[1] + px[3]
        else:
            hom = _translation(-px[0], -px[1]) @ hom
            out_w, out_h = w1 - px[0] - px[2], h1 - px[1] - px[3]
        params["crop"] = {
            "mode": "border" if border else "cut",
            "left": px[0],
            "top": px[1],
            "right": px[2],
            "bottom": px[3],
        }

    displacement: list[_Field] = []
    if settings.curl > 0:
        displacement.append(_draw_curl(rng, settings.curl, h, w))
    displacement.extend(creases)
    return Warp(hom, (int(out_h), int(out_w)), (h, w), tuple(displacement), params)


# --------------------------------------------------------------------------------------------
# Random textures and blending helpers
# --------------------------------------------------------------------------------------------


def _noise_field(rng: np.random.Generator, shape: tuple[int, int], cells: float, octaves: int = 1) -> np.ndarray:
    """Smooth random field of unit standard deviation, ``cells`` blobs along the long side."""
    h, w = shape
    out = np.zeros((h, w), np.float32)
    amp = 1.0
    for _ in range(octaves):
        ny = max(2, int(round(cells * h / max(h, w))) + 1)
        nx = max(2, int(round(cells * w / max(h, w))) + 1)
        small = rng.standard_normal((ny, nx)).astype(np.float32)
        out += amp * cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
        amp *= 0.5
        cells *= 2.0
    std = float(out.std())
    return out / std if std > 0 else out


def crumple(image: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """A sheet crumpled, flattened again and scanned or photographed: large facets lit from one
    side with sharp creases between them, blotchy shade, faded colours and tinted paper.

    ``image`` is an RGB uint8 page and ``strength`` in [0, 1] how dark and grey it gets (1: the
    darkest facets keep about half their light).  Nothing moves, so the page's ground truth
    holds as it is.
    """
    h, w = image.shape[:2]
    sh, sw = max(16, h // 4), max(16, w // 4)
    # Creases where a field crosses 0, at three scales: a few large facets, smaller ones on them.
    height = sum(0.45**k * np.abs(_noise_field(rng, (sh, sw), 3.0 * 2**k)) for k in range(3))
    gy, gx = np.gradient(height * sh / 5.0)
    angle = rng.uniform(0.0, 2.0 * math.pi)
    light = math.cos(angle) * gx + math.sin(angle) * gy
    light /= float(np.percentile(np.abs(light), 95)) + 1e-9
    dark = np.clip(0.5 - 0.5 * light, 0.0, 1.0) ** 1.5
    blotch = np.clip(_noise_field(rng, (sh, sw), 4.0), -2.0, 2.0) / 4.0 + 0.5
    gain = cv2.resize(1.0 - strength * (0.45 * dark + 0.25 * blotch), (w, h), interpolation=cv2.INTER_LINEAR)
    grey = cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    faded = cv2.addWeighted(image, 1.0 - 0.5 * strength, grey, 0.5 * strength, 0.0)
    tint = 1.0 - strength * rng.uniform(0.0, 0.15, size=3)
    return _apply_gain(faded, _u16_gain(gain[..., None] * tint.astype(np.float32)))


_GAIN_ONE = 16384.0  # fixed-point scale of uint16 gain images


def _u16_gain(gain: np.ndarray) -> np.ndarray:
    """A float gain (1 = unchanged, at most 4) as fixed-point uint16."""
    return np.clip(gain * _GAIN_ONE + 0.5, 0.0, 65535.0).astype(np.uint16)


def _apply_gain(img: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """``img * gain`` for a uint8 RGB image and a uint16 fixed-point gain, (H, W) or (H, W, 3).

    Full-resolution fields are kept at 16 bits or less: 3-channel float32 images of a page
    cost more to allocate than to compute with.
    """
    if gain.ndim == 2:
        gain = cv2.merge([gain, gain, gain])
    return cv2.multiply(img, gain, scale=1.0 / _GAIN_ONE, dtype=cv2.CV_8U)


def _tint(img: np.ndarray, alpha: np.ndarray, x0: int, y0: int, colour: np.ndarray) -> np.ndarray | None:
    """Multiply ``img`` in place by ``1 - alpha * (1 - colour / 255)`` over a patch at ``(x0, y0)``.

    Returns the clipped ``alpha`` actually used (or None when the patch is off the image), so the
    caller can update a mask over the same region.
    """
    h, w = img.shape[:2]
    ph, pw = alpha.shape
    xa, ya, xb, yb = max(x0, 0), max(y0, 0), min(x0 + pw, w), min(y0 + ph, h)
    if xa >= xb or ya >= yb:
        return None
    a = alpha[ya - y0 : yb - y0, xa - x0 : xb - x0]
    region = img[ya:yb, xa:xb].astype(np.float32)
    factor = 1.0 - a[..., None] * (1.0 - np.asarray(colour, np.float32) / 255.0)
    img[ya:yb, xa:xb] = np.clip(region * factor + 0.5, 0, 255).astype(np.uint8)
    return a


def _mark_text(text: np.ndarray, alpha: np.ndarray | None, x0: int, y0: int, threshold: float = 0.3) -> None:
    if alpha is None:
        return
    ya, xa = max(y0, 0), max(x0, 0)
    text[ya : ya + alpha.shape[0], xa : xa + alpha.shape[1]] |= alpha > threshold


def _rotate_patch(patch: np.ndarray, angle_deg: float) -> np.ndarray:
    """Rotate a single-channel float patch about its centre, growing the canvas to fit."""
    h, w = patch.shape
    m = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), angle_deg, 1.0)
    c, s = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(math.ceil(h * s + w * c)) + 2, int(math.ceil(h * c + w * s)) + 2
    m[0, 2] += (nw - w) / 2.0
    m[1, 2] += (nh - h) / 2.0
    return cv2.warpAffine(patch, m, (nw, nh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


# --------------------------------------------------------------------------------------------
# Stage 1: on the paper
# --------------------------------------------------------------------------------------------


def _shade_creases(img: np.ndarray, creases: tuple[_Crease, ...], scale: float) -> None:
    """Light/dark shading bands along the creases, in place.

    The broad bands are computed at 1/4 resolution and upsampled; thin dark cores (sharp
    folds) are drawn as anti-aliased lines at full resolution.
    """
    if not creases:
        return
    h, w = img.shape[:2]
    f = 4
    lh, lw = -(-h // f), -(-w // f)
    gain = np.zeros((lh, lw), np.float32)
    xs = (np.arange(lw) + 0.5) * f - 0.5
    ys = (np.arange(lh) + 0.5) * f - 0.5
    thin = []
    for c in creases:
        wide_core = c.core_width >= f
        if not wide_core:
            thin.append(c)
        reach = 5.0 * max(c.shade_width, c.core_width)
        x0, y0, x1, y1 = c.box(reach)
        ja, jb = np.searchsorted(xs, [x0, x1])
        ia, ib = np.searchsorted(ys, [y0, y1])
        if ja >= jb or ia >= ib:
            continue
        gx, gy = np.meshgrid(xs[ja:jb], ys[ia:ib])
        gain[ia:ib, ja:jb] += c.shading(gx, gy, core=wide_core).astype(np.float32)
    base = 1.0 - 0.5 * min(0.12, 0.01 * len(creases))  # crumpled paper is a little darker overall
    gain = np.clip(base * (1.0 + gain), 0.3, 1.2)
    full = cv2.resize(gain, (w, h), interpolation=cv2.INTER_LINEAR)
    if thin:
        layer = np.zeros((h, w), np.float32)
        reach = 1.5 * max(h, w)
        for c in thin:
            nx, ny = math.cos(c.angle), math.sin(c.angle)
            end = min(c.half_length + c.taper, reach)
            u = np.linspace(-end, end, 300)
            v = -c.wobble_amp * np.sin(c.wobble_k * u + c.wobble_phase)
            pts = np.round(np.stack([c.x0 - ny * u + nx * v, c.y0 + nx * u + ny * v], axis=1) * 16).astype(np.int32)
            _, _, env = c.coords(pts[:, 0] / 16.0, pts[:, 1] / 16.0)
            width = max(1, int(round(c.core_width)))
            for i in range(len(pts) - 1):
                level = float(c.dark * 0.5 * (env[i] + env[i + 1]))
                if level > 1e-3:
                    cv2.line(layer, tuple(pts[i]), tuple(pts[i + 1]), level, width, cv2.LINE_AA, shift=4)
        layer = cv2.GaussianBlur(layer, (0, 0), 0.5 * max(c.core_width for c in thin))
        full = cv2.multiply(full, 1.0 - np.clip(layer, 0.0, 0.9))
    img[...] = _apply_gain(img, _u16_gain(full))


_STAIN_COLOURS = {
    "coffee": ((150, 95, 45), (185, 130, 75)),
    "tea": ((190, 150, 90), (215, 180, 120)),
    "water": ((175, 170, 160), (205, 200, 185)),
}


def _add_stains(img: np.ndarray, rng: np.random.Generator, strength: float, scale: float) -> None:
    """Coffee, tea and water stains with irregular outlines and tide-line edges (in place)."""
    h, w = img.shape[:2]
    n = max(1, int(round(strength * rng.uniform(1.0, 4.0))))
    for _ in range(n):
        kind = str(rng.choice(["coffee", "coffee", "tea", "water"]))
        ring_only = kind == "coffee" and rng.random() < 0.4  # a mug ring
        radius = rng.uniform(0.03, 0.12) * min(h, w) * (0.5 + 0.5 * strength)
        if ring_only:
            radius = rng.uniform(0.08, 0.12) * min(h, w)
        cx, cy = rng.uniform(0.0, w), rng.uniform(0.0, h)
        f = 4  # patch computed at 1/4 resolution
        half = int(radius * 1.5) + 4
        n_low = max(8, (2 * half) // f)
        g = (np.arange(n_low, dtype=np.float32) + 0.5) * (2 * half / n_low) - half
        gx, gy = np.meshgrid(g, g)
        theta = np.arctan2(gy, gx)
        r_theta = np.ones_like(theta)
        for k in range(2, 7):
            amp = rng.uniform(0.0, 0.12 if not ring_only else 0.02) / k * 2.0
            r_theta += amp * np.cos(k * theta + rng.uniform(0, 2 * math.pi))
        rough = _noise_field(rng, gx.shape, 10.0, octaves=2) * (0.04 if not ring_only else 0.015)
        rel = np.hypot(gx, gy) / (radius * r_theta) + rough  # < 1 inside
        edge_w = rng.uniform(0.03, 0.07) if not ring_only else rng.uniform(0.015, 0.03)
        inside = _smoothstep((1.0 - rel) / 0.02)
        ring = np.exp(-0.5 * ((rel - (1.0 - edge_w)) / edge_w) ** 2) * inside + 0.3 * np.exp(
            -0.5 * ((rel - 1.0) / 0.01) ** 2
        )
        mottled = np.clip(0.75 + 0.35 * _noise_field(rng, gx.shape, 6.0, octaves=2), 0.2, 1.3)
        opacity = rng.uniform(0.5, 1.0) * (0.4 + 0.6 * strength)
        if kind == "water":
            a_in, a_ring = 0.06, 0.35
        elif ring_only:
            a_in, a_ring = 0.0, 0.55
            ring *= np.clip(0.6 + 0.8 * _noise_field(rng, gx.shape, 3.0), 0.0, 1.0)  # broken ring
        else:
            a_in, a_ring = rng.uniform(0.12, 0.3), rng.uniform(0.3, 0.55)
        alpha = opacity * (a_in * inside * mottled + a_ring * ring)
        alpha = np.clip(alpha, 0.0, 0.85).astype(np.float32)
        full = cv2.resize(alpha, (2 * half, 2 * half), interpolation=cv2.INTER_LINEAR)
        lo, hi = _STAIN_COLOURS[kind]
        colour = np.array(lo) + rng.random() * (np.array(hi) - np.array(lo))
        _tint(img, full, int(cx) - half, int(cy) - half, colour)
        # a few splash droplets around coffee stains
        if kind != "water" and not ring_only and rng.random() < 0.5:
            for _ in range(int(rng.integers(1, 6))):
                rr = rng.uniform(2.0, 10.0) * scale
                a = rng.uniform(0.0, 2 * math.pi)
                dist = radius * rng.uniform(1.1, 1.8)
                drop = np.zeros((int(4 * rr) + 3, int(4 * rr) + 3), np.float32)
                cv2.circle(drop, (drop.shape[1] // 2, drop.shape[0] // 2), max(1, int(rr)), 1.0, -1, cv2.LINE_AA)
                drop *= opacity * rng.uniform(0.15, 0.4)
                _tint(
                    img,
                    drop,
                    int(cx + dist * math.cos(a)) - drop.shape[1] // 2,
                    int(cy + dist * math.sin(a)) - drop.shape[0] // 2,
                    colour,
                )


_PEN_COLOURS = (
    ((25, 50, 150), 0.9),  # blue ballpoint
    ((20, 30, 90), 0.92),  # dark blue
    ((30, 30, 35), 0.9),  # black
    ((175, 25, 35), 0.88),  # red
    ((30, 40, 120), 0.9),  # blue-black
    ((95, 95, 100), 0.55),  # pencil
)
_STAMP_COLOURS = ((40, 60, 170), (190, 35, 45), (110, 45, 140), (35, 120, 70), (40, 40, 50))
_WORDS = (
    "NSR",
    "AF?",
    "old MI",
    "rpt ECG",
    "seen",
    "cardiology",
    "HR 72",
    "LBBB",
    "RBBB",
    "ok",
    "chest pain",
    "Dr. K",
    "copy",
    "urgent",
    "ST elev?",
    "compare",
    "sinus",
    "no change",
    "?ischaemia",
    "V1-V3",
    "review",
    "QTc 440",
    "pre-op",
    "discharge",
    "ward 7",
    "bed 12",
    "normal",
    "see notes",
    "post PCI",
    "fax to GP",
    "K+ 5.9",
    "SVT",
    "trop neg",
    "Pt. name",
    "signed",
    "baseline",
    "follow up",
)
_STAMP_WORDS = (
    "RECEIVED",
    "REVIEWED",
    "COPY",
    "CONFIDENTIAL",
    "CARDIOLOGY",
    "ECG DEPT",
    "VERIFIED",
    "URGENT",
    "ARCHIVE",
    "MEDICAL RECORDS",
    "SCANNED",
    "ORIGINAL",
    "FILED",
)
_STAMP_NAMES = ("ST. MARY HOSPITAL", "CITY CLINIC", "GENERAL HOSPITAL", "HEART CENTRE", "DEPT OF MEDICINE")


def _random_date(rng: np.random.Generator) -> str:
    months = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
    return f"{int(rng.integers(1, 29)):02d} {months[int(rng.integers(0, 12))]} {int(rng.integers(1995, 2025))}"


# Single-stroke cursive glyphs: control points (x, y) with the baseline at y = 0, the x-height at
# y = 1, ascenders up to 2 and descenders down to -1; strokes enter on the left and leave on the
# right so that letters join.  Extra strokes (dots, bars) follow after a None.
_GLYPHS: dict[str, tuple] = {
    "a": (
        (0.0, 0.3),
        (0.6, 0.95),
        (0.2, 0.9),
        (0.0, 0.4),
        (0.2, 0.0),
        (0.6, 0.5),
        (0.65, 1.0),
        (0.65, 0.15),
        (0.9, 0.05),
    ),
    "b": (
        (0.0, 0.1),
        (0.45, 1.7),
        (0.35, 2.0),
        (0.15, 1.6),
        (0.1, 0.0),
        (0.5, 0.6),
        (0.3, 0.8),
        (0.2, 0.5),
        (0.7, 0.6),
    ),
    "c": ((0.0, 0.2), (0.6, 0.9), (0.35, 1.0), (0.05, 0.5), (0.25, 0.0), (0.7, 0.2)),
    "d": (
        (0.0, 0.3),
        (0.6, 0.95),
        (0.2, 0.9),
        (0.0, 0.4),
        (0.2, 0.0),
        (0.6, 0.5),
        (0.7, 2.0),
        (0.65, 0.15),
        (0.9, 0.05),
    ),
    "e": ((0.0, 0.2), (0.5, 0.55), (0.5, 0.9), (0.2, 0.85), (0.05, 0.4), (0.3, 0.0), (0.7, 0.2)),
    "f": ((0.0, 0.2), (0.5, 1.6), (0.4, 2.0), (0.25, 1.5), (0.2, -0.9), (0.05, -0.6), (0.3, 0.1), (0.7, 0.3)),
    "g": (
        (0.0, 0.3),
        (0.6, 0.95),
        (0.2, 0.9),
        (0.0, 0.4),
        (0.2, 0.0),
        (0.6, 0.5),
        (0.65, 1.0),
        (0.6, -0.8),
        (0.3, -1.0),
        (0.15, -0.6),
        (0.8, 0.1),
    ),
    "h": (
        (0.0, 0.1),
        (0.45, 1.7),
        (0.35, 2.0),
        (0.15, 1.6),
        (0.1, 0.0),
        (0.3, 0.8),
        (0.55, 0.85),
        (0.55, 0.05),
        (0.8, 0.1),
    ),
    "i": ((0.0, 0.2), (0.3, 1.0), (0.3, 0.15), (0.55, 0.05), None, (0.3, 1.45), (0.33, 1.5)),
    "k": (
        (0.0, 0.1),
        (0.45, 1.7),
        (0.35, 2.0),
        (0.15, 1.6),
        (0.1, 0.0),
        (0.2, 0.6),
        (0.6, 0.95),
        (0.25, 0.5),
        (0.6, 0.0),
        (0.8, 0.1),
    ),
    "l": ((0.0, 0.2), (0.5, 1.5), (0.4, 2.0), (0.2, 1.6), (0.3, 0.2), (0.6, 0.05)),
    "m": ((0.0, 0.0), (0.15, 0.9), (0.25, 0.0), (0.4, 0.95), (0.55, 0.0), (0.7, 0.95), (0.85, 0.05), (1.0, 0.15)),
    "n": ((0.0, 0.0), (0.15, 0.9), (0.25, 0.0), (0.45, 0.95), (0.6, 0.05), (0.8, 0.15)),
    "o": ((0.0, 0.5), (0.3, 1.0), (0.05, 0.6), (0.25, 0.0), (0.55, 0.5), (0.35, 1.0), (0.75, 0.9)),
    "p": ((0.0, 0.2), (0.25, 1.0), (0.15, -1.0), (0.2, 0.6), (0.55, 0.9), (0.5, 0.1), (0.2, 0.2), (0.75, 0.2)),
    "q": (
        (0.0, 0.3),
        (0.6, 0.95),
        (0.2, 0.9),
        (0.0, 0.4),
        (0.2, 0.0),
        (0.6, 0.5),
        (0.6, -1.0),
        (0.7, -0.3),
        (0.9, 0.1),
    ),
    "r": ((0.0, 0.0), (0.2, 0.9), (0.35, 0.7), (0.5, 0.9), (0.5, 0.0), (0.7, 0.1)),
    "s": ((0.0, 0.0), (0.3, 1.0), (0.5, 0.35), (0.15, 0.05), (0.6, 0.1)),
    "t": ((0.0, 0.2), (0.3, 1.7), (0.3, 0.1), (0.6, 0.05), None, (0.05, 1.1), (0.6, 1.15)),
    "u": ((0.0, 0.9), (0.05, 0.1), (0.3, 0.0), (0.5, 0.9), (0.5, 0.1), (0.75, 0.05)),
    "v": ((0.0, 0.9), (0.25, 0.0), (0.5, 0.95), (0.4, 0.7), (0.7, 0.8)),
    "w": ((0.0, 0.9), (0.15, 0.0), (0.35, 0.8), (0.55, 0.0), (0.7, 0.95), (0.6, 0.7), (0.9, 0.8)),
    "x": ((0.0, 0.0), (0.25, 0.6), (0.55, 0.95), None, (0.05, 0.95), (0.6, 0.0)),
    "y": ((0.0, 0.9), (0.05, 0.1), (0.3, 0.0), (0.5, 0.9), (0.45, -0.8), (0.2, -1.0), (0.1, -0.6), (0.75, 0.1)),
    "z": ((0.0, 0.9), (0.55, 0.95), (0.0, 0.0), (0.6, 0.05)),
    "0": ((0.4, 2.0), (0.0, 1.0), (0.35, 0.0), (0.8, 1.0), (0.45, 2.0)),
    "1": ((0.1, 1.6), (0.4, 2.0), (0.4, 0.0)),
    "2": ((0.0, 1.6), (0.4, 2.0), (0.8, 1.6), (0.0, 0.0), (0.9, 0.05)),
    "3": ((0.0, 1.8), (0.5, 2.0), (0.7, 1.5), (0.3, 1.0), (0.8, 0.5), (0.4, 0.0), (0.0, 0.2)),
    "4": ((0.6, 0.0), (0.6, 2.0), (0.0, 0.6), (0.9, 0.6)),
    "5": ((0.8, 2.0), (0.15, 2.0), (0.05, 1.1), (0.5, 1.3), (0.8, 0.6), (0.4, 0.0), (0.0, 0.2)),
    "6": ((0.7, 2.0), (0.1, 1.0), (0.2, 0.05), (0.7, 0.3), (0.6, 1.0), (0.1, 0.7)),
    "7": ((0.0, 2.0), (0.8, 2.0), (0.3, 0.0)),
    "8": ((0.6, 1.8), (0.3, 2.0), (0.05, 1.6), (0.7, 0.5), (0.4, 0.0), (0.05, 0.5), (0.7, 1.6), (0.4, 2.0)),
    "9": ((0.7, 1.5), (0.3, 1.0), (0.1, 1.6), (0.4, 2.0), (0.7, 1.6), (0.6, 0.0)),
    "/": ((0.0, -0.2), (0.6, 2.0)),
    "-": ((0.0, 0.8), (0.5, 0.8)),
    "+": ((0.0, 0.8), (0.7, 0.8), None, (0.35, 0.4), (0.35, 1.3)),
    ".": ((0.1, 0.0), (0.15, 0.05)),
    ":": ((0.1, 0.0), (0.15, 0.05), None, (0.1, 0.8), (0.15, 0.85)),
    "?": ((0.0, 1.6), (0.4, 2.0), (0.7, 1.6), (0.35, 1.0), (0.35, 0.6), None, (0.35, 0.05), (0.38, 0.1)),
}
_LIFT_AFTER = set("0123456789/-+.:?")  # the pen lifts after these (no joining stroke)


def _catmull_rom(pts: np.ndarray, samples: int = 6) -> np.ndarray:
    """A smooth curve through control points (centripetal-free, uniform Catmull-Rom)."""
    if len(pts) < 3:
        return pts
    p = np.vstack([pts[:1], pts, pts[-1:]])
    t = np.linspace(0.0, 1.0, samples, endpoint=False)[:, None]
    out = []
    for i in range(1, len(p) - 2):
        p0, p1, p2, p3 = p[i - 1], p[i], p[i + 1], p[i + 2]
        out.append(
            0.5
            * ((2 * p1) + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2 + (-p0 + 3 * p1 - 3 * p2 + p3) * t**3)
        )
    out.append(pts[-1:])
    return np.vstack(out)


def _cursive_strokes(rng: np.random.Generator, text: str, x_height: float) -> list[np.ndarray]:
    """Polylines (px, y down) of ``text`` in a loose cursive hand; unknown letters get a random glyph."""
    strokes: list[np.ndarray] = []
    current: list[np.ndarray] = []
    x = 0.0
    letters = list("aceimnorsuvw")
    wobble = rng.uniform(0.04, 0.1)
    size_var = rng.uniform(0.05, 0.15)
    for ch in text:
        if ch == " ":
            if current:
                strokes.append(np.vstack(current))
                current = []
            x += rng.uniform(0.6, 1.0)
            continue
        key = ch.lower() if ch.lower() in _GLYPHS else str(rng.choice(letters))
        glyph = _GLYPHS[key]
        big = 1.35 if ch.isupper() else 1.0
        size = big * (1.0 + rng.normal(0.0, size_var))
        stretch = 1.3  # the glyph table is drawn narrow
        parts: list[list[tuple[float, float]]] = [[]]
        for pt in glyph:
            if pt is None:
                parts.append([])
            else:
                parts[-1].append(pt)
        width = max(p[0] for p in parts[0]) if parts[0] else 0.5
        for k, part in enumerate(parts):
            arr = np.array(part, np.float64) * size * np.array([stretch, 1.0])
            arr = arr + rng.normal(0.0, wobble, arr.shape)
            arr[:, 0] += x
            if k == 0:
                current.append(arr)
            else:  # dots and bars are separate strokes
                strokes.append(arr)
        if key in _LIFT_AFTER and current:
            strokes.append(np.vstack(current))
            current = []
        x += width * size * stretch + rng.uniform(0.0, 0.15)
    if current:
        strokes.append(np.vstack(current))
    out = []
    for s in strokes:
        curve = _catmull_rom(s) if len(s) > 2 else s
        out.append(np.stack([curve[:, 0] * x_height, -curve[:, 1] * x_height], axis=1))
    return out


def _draw_strokes(strokes: list[np.ndarray], thick: int, slant: float, pad: float) -> np.ndarray:
    """Alpha patch (float32) of polylines drawn anti-aliased, sheared by ``slant``."""
    pts_all = np.vstack(strokes)
    shear = lambda p: np.stack([p[:, 0] - slant * p[:, 1], p[:, 1]], axis=1)  # noqa: E731
    lo = shear(pts_all).min(axis=0) - pad
    hi = shear(pts_all).max(axis=0) + pad
    size = np.ceil(hi - lo).astype(int) + 1
    patch = np.zeros((size[1], size[0]), np.uint8)
    for s in strokes:
        p = np.round((shear(s) - lo) * 16).astype(np.int32)
        if len(p) == 1 or np.all(p == p[0]):
            cv2.circle(patch, tuple(p[0]), max(1, thick) * 8, 255, -1, cv2.LINE_AA, shift=4)
        else:
            cv2.polylines(patch, [p], False, 255, thick, cv2.LINE_AA, shift=4)
    return patch.astype(np.float32) / 255.0


def _handwriting(rng: np.random.Generator, scale: float) -> np.ndarray:
    """Alpha patch of one to three lines of handwritten notes."""
    x_height = rng.uniform(10.0, 22.0) * scale
    thick = max(1, int(round(x_height / 10.0 * rng.uniform(0.6, 1.2))))
    slant = rng.uniform(-0.05, 0.45)
    line_gap = x_height * rng.uniform(3.2, 4.2)
    strokes = []
    for i in range(int(rng.integers(1, 4))):
        words = [str(rng.choice(_WORDS)) for _ in range(int(rng.integers(1, 4)))]
        if rng.random() < 0.15:
            words.append(f"{int(rng.integers(1, 29))}/{int(rng.integers(1, 13))}")
        line = _cursive_strokes(rng, " ".join(words), x_height)
        dx = rng.uniform(0.0, 2.0) * x_height
        drift = rng.normal(0.0, 0.03)
        for s in line:
            strokes.append(np.stack([s[:, 0] + dx, s[:, 1] + i * line_gap + drift * s[:, 0]], axis=1))
    patch = _draw_strokes(strokes, thick, slant, 3.0 * x_height)
    return _rotate_patch(patch, rng.normal(0.0, 4.0))


def _scrawl(rng: np.random.Generator, scale: float) -> np.ndarray:
    """Alpha patch of a cursive-looking scrawl (a signature or hurried word) or a pen mark."""
    thick = max(1, int(round(rng.uniform(1.2, 2.8) * scale)))
    kind = rng.random()
    if kind < 0.5:  # a signature or initials: a quick, large, slanted cursive word
        x_height = rng.uniform(14.0, 30.0) * scale
        letters = "abcdeghiklmnorstuvwy"
        name = "".join(letters[int(i)] for i in rng.integers(0, len(letters), int(rng.integers(3, 9))))
        name = name[0].upper() + name[1:]
        if rng.random() < 0.4:
            name = letters[int(rng.integers(0, len(letters)))].upper() + ". " + name
        strokes = _cursive_strokes(rng, name, x_height)
        pts = np.vstack(strokes)
        if rng.random() < 0.6:  # a flourish underneath, back towards the start
            t = np.linspace(0.0, 1.0, 30)
            x0, x1 = pts[:, 0].max(), pts[:, 0].min()
            base = pts[:, 1].max() + 0.3 * x_height
            strokes.append(
                np.stack(
                    [
                        x0 + (x1 - x0) * t * rng.uniform(0.7, 1.1),
                        base + 0.4 * x_height * np.sin(t * math.pi) * rng.uniform(-1, 1),
                    ],
                    axis=1,
                )
            )
        thick = max(1, int(round(x_height / 10.0 * rng.uniform(0.6, 1.2))))
        patch = _draw_strokes(strokes, thick, rng.uniform(0.2, 0.6), 3.0 * x_height)
        return _rotate_patch(patch, rng.normal(0.0, 8.0))
    if kind < 0.7:  # a loose ellipse drawn around something
        rx, ry = rng.uniform(60.0, 250.0) * scale, rng.uniform(25.0, 90.0) * scale
        t0 = rng.uniform(0.0, 2.0 * math.pi)
        t = np.linspace(t0, t0 + 2.0 * math.pi * rng.uniform(1.05, 1.25), 160)
        wob = 1.0 + 0.04 * np.sin(3.0 * t + rng.uniform(0, 6)) + 0.02 * rng.standard_normal() * np.cos(5.0 * t)
        grow = np.linspace(1.0, rng.uniform(0.88, 1.0), t.size)
        pts = np.stack([rx * wob * grow * np.cos(t), ry * wob * grow * np.sin(t)], axis=1)
    elif kind < 0.85:  # underline or strike-through, slightly wavy
        length = rng.uniform(80.0, 400.0) * scale
        x = np.linspace(0.0, length, 60)
        y = 3.0 * scale * np.sin(x / length * math.pi * rng.uniform(1, 3)) + x * rng.normal(0.0, 0.03)
        pts = np.stack([x, y], axis=1)
    elif kind < 0.93:  # check mark
        a = rng.uniform(12.0, 30.0) * scale
        pts = np.array([[0.0, 0.0], [0.35 * a, 0.5 * a], [1.2 * a, -0.9 * a]]) + rng.normal(0.0, 0.05 * a, (3, 2))
    else:  # arrow
        length = rng.uniform(60.0, 200.0) * scale
        pts = np.array([[0.0, 0.0], [length, rng.normal(0.0, 0.1 * length)]])
    pts = pts - pts.min(axis=0) + 4.0 * thick + 2.0
    size = np.ceil(pts.max(axis=0) + 4.0 * thick + 2.0).astype(int)
    patch = np.zeros((size[1], size[0]), np.uint8)
    cv2.polylines(patch, [np.round(pts * 16).astype(np.int32)], False, 255, thick, cv2.LINE_AA, shift=4)
    if kind >= 0.93:  # arrow head
        tip, back = pts[-1], pts[-2]
        d = (tip - back) / max(np.linalg.norm(tip - back), 1e-6)
        n = np.array([-d[1], d[0]])
        for sgn in (-1.0, 1.0):
            end = tip - d * 14.0 * scale + sgn * n * 8.0 * scale
            cv2.line(
                patch,
                tuple(np.round(tip * 16).astype(int)),
                tuple(np.round(end * 16).astype(int)),
                255,
                thick,
                cv2.LINE_AA,
                shift=4,
            )
    return _rotate_patch(patch.astype(np.float32) / 255.0, rng.normal(0.0, 12.0))


def _fit_text(text: str, font: int, width: float, height: float, thick: int) -> float:
    """Font scale at which ``text`` fits in ``width`` x ``height`` px."""
    fs = cv2.getFontScaleFromHeight(font, max(3, int(height)), thick)
    tw = cv2.getTextSize(text, font, fs, thick)[0][0]
    return fs * min(1.0, width / max(tw, 1))


def _put_centered(patch: np.ndarray, text: str, font: int, fs: float, thick: int, cx: float, cy: float) -> None:
    (tw, th), _ = cv2.getTextSize(text, font, fs, thick)
    cv2.putText(patch, text, (int(cx - tw / 2), int(cy + th / 2)), font, fs, 255, thick, cv2.LINE_AA)


def _stamp(rng: np.random.Generator, scale: float) -> np.ndarray:
    """Alpha patch of a rubber stamp: a ring with text around it, or a framed rectangle."""
    font = (cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_TRIPLEX)[int(rng.integers(0, 3))]
    thick = max(1, int(round(rng.uniform(2.0, 3.5) * scale)))
    if rng.random() < 0.5:  # ring stamp
        r_out = rng.uniform(90.0, 170.0) * scale
        band = r_out * rng.uniform(0.24, 0.32)
        r_in = r_out - band
        size = int(2 * r_out + 8)
        c = (size - 1) / 2.0
        patch = np.zeros((size, size), np.uint8)
        cv2.circle(patch, (int(c * 16), int(c * 16)), int((r_out - thick) * 16), 255, thick + 1, cv2.LINE_AA, shift=4)
        cv2.circle(patch, (int(c * 16), int(c * 16)), int(r_in * 16), 255, thick, cv2.LINE_AA, shift=4)
        # text around the ring: draw it on a strip and bend the strip into the ring
        r_mid = 0.5 * (r_out + r_in)
        strip_w, strip_h = int(2.0 * math.pi * r_mid), max(6, int(band * 0.9))
        strip = np.zeros((strip_h, strip_w), np.uint8)
        words = f"{rng.choice(_STAMP_NAMES)} * {rng.choice(_STAMP_WORDS)} * "
        fs = _fit_text(words, font, strip_w * 0.98, strip_h * 0.5, max(1, thick - 1))
        (tw, th), _ = cv2.getTextSize(words, font, fs, max(1, thick - 1))
        cv2.putText(
            strip,
            words,
            (int((strip_w - tw) / 2), int((strip_h + th) / 2)),
            font,
            fs,
            255,
            max(1, thick - 1),
            cv2.LINE_AA,
        )
        gx, gy = np.meshgrid(np.arange(size, dtype=np.float32) - c, np.arange(size, dtype=np.float32) - c)
        theta = (np.arctan2(gy, gx) + math.pi / 2.0 + rng.uniform(-1.0, 1.0)) % (2.0 * math.pi)
        rad = np.hypot(gx, gy)
        mx = (theta * (strip_w / (2.0 * math.pi))).astype(np.float32)
        my = ((r_out - thick - rad) / (band - thick) * strip_h).astype(np.float32)
        bent = cv2.remap(strip, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        patch = np.maximum(patch, bent)
        centre = str(rng.choice(["*", _random_date(rng)[-4:], "OK", "ECG", "MD"]))
        fs = _fit_text(centre, font, 1.4 * r_in, 0.45 * r_in, thick)
        _put_centered(patch, centre, font, fs, thick, c, c)
    else:  # rectangle stamp
        pw = int(rng.uniform(260.0, 520.0) * scale)
        ph = int(pw * rng.uniform(0.3, 0.45))
        patch = np.zeros((ph + 8, pw + 8), np.uint8)
        cv2.rectangle(patch, (3, 3), (pw + 4, ph + 4), 255, thick + 1, cv2.LINE_AA)
        if rng.random() < 0.5:
            m = 3 * thick + 3
            cv2.rectangle(patch, (3 + m, 3 + m), (pw + 4 - m, ph + 4 - m), 255, max(1, thick - 1), cv2.LINE_AA)
        lines = [str(rng.choice(_STAMP_WORDS))]
        if rng.random() < 0.7:
            lines.append(_random_date(rng))
        for i, t in enumerate(lines):
            hgt = ph * (0.36 if i == 0 else 0.22)
            fs = _fit_text(t, font, pw * 0.8, hgt, thick)
            cy = 4 + ph * ((i + 0.5) / len(lines)) if len(lines) > 1 else 4 + ph / 2
            _put_centered(patch, t, font, fs, thick, 4 + pw / 2, cy)
    alpha = patch.astype(np.float32) / 255.0
    h, w = alpha.shape
    # uneven inking: pressure gradient, blotches and tiny dropouts
    gx, gy = np.meshgrid(np.linspace(-1, 1, w, dtype=np.float32), np.linspace(-1, 1, h, dtype=np.float32))
    a = rng.uniform(0.0, 2.0 * math.pi)
    pressure = 0.75 + 0.25 * (math.cos(a) * gx + math.sin(a) * gy)
    blotch = np.clip(0.85 + 0.3 * _noise_field(rng, (h, w), 6.0, octaves=2), 0.25, 1.0)
    speck = (rng.random((h, w)) > 0.08).astype(np.float32)
    speck = cv2.GaussianBlur(speck, (3, 3), 0.7)
    alpha *= pressure * blotch * speck * rng.uniform(0.55, 0.85)
    return _rotate_patch(alpha, rng.uniform(-35.0, 35.0))


def _add_scribbles(img: np.ndarray, text: np.ndarray, rng: np.random.Generator, strength: float, scale: float) -> None:
    """Handwriting, pen marks and stamps, blended like ink; their pixels are added to ``text``."""
    h, w = img.shape[:2]
    n_words = int(rng.integers(1, 2 + int(round(2 * strength))))
    n_marks = int(rng.integers(0, 1 + int(round(3 * strength))))
    n_stamps = int(rng.random() < 0.25 + 0.5 * strength) + int(rng.random() < 0.15 * strength)
    items = ["words"] * n_words + ["mark"] * n_marks + ["stamp"] * n_stamps
    pen = _PEN_COLOURS[int(rng.integers(0, len(_PEN_COLOURS)))]  # one pen per page, mostly
    for item in items:
        if item == "words":
            alpha = _handwriting(rng, scale)
        elif item == "mark":
            alpha = _scrawl(rng, scale)
        else:
            alpha = _stamp(rng, scale)
        if item == "stamp":
            colour = np.array(_STAMP_COLOURS[int(rng.integers(0, len(_STAMP_COLOURS)))], np.float32)
            opacity = 1.0
        else:
            if rng.random() < 0.2:
                pen = _PEN_COLOURS[int(rng.integers(0, len(_PEN_COLOURS)))]
            colour = np.array(pen[0], np.float32)
            opacity = pen[1] * rng.uniform(0.85, 1.0)
        ph, pw = alpha.shape
        x0 = int(rng.uniform(-0.1 * pw, w - 0.9 * pw))
        y0 = int(rng.uniform(-0.1 * ph, h - 0.9 * ph))
        used = _tint(img, alpha * opacity, x0, y0, colour)
        _mark_text(text, used, x0, y0)


# --------------------------------------------------------------------------------------------
# Stage 2: geometry
# --------------------------------------------------------------------------------------------

_DESK_COLOURS = (
    (190, 150, 105),
    (150, 105, 65),
    (105, 72, 45),
    (120, 120, 125),
    (205, 205, 200),
    (40, 40, 44),
    (85, 95, 110),
    (70, 90, 78),
    (165, 160, 150),
)


def _background(rng: np.random.Generator, out_h: int, out_w: int, photo: bool, scale: float) -> np.ndarray:
    """An RGB uint8 background: a textured desk for photos, a plain scanner bed for scans."""
    f = 4
    lh, lw = max(2, -(-out_h // f)), max(2, -(-out_w // f))
    if photo:
        base = np.array(_DESK_COLOURS[int(rng.integers(0, len(_DESK_COLOURS)))], np.float32)
        base *= rng.uniform(0.85, 1.1)
        lum = 1.0 + 0.08 * _noise_field(rng, (lh, lw), 4.0, octaves=3)
        if rng.random() < 0.5:  # wood grain or fabric: noise stretched along one direction
            grain = _noise_field(rng, (lh, max(2, lw // 20)), 30.0)
            grain = cv2.resize(grain, (lw, lh), interpolation=cv2.INTER_LINEAR)
            if rng.random() < 0.5:
                grain = cv2.resize(grain.T.copy(), (lw, lh), interpolation=cv2.INTER_LINEAR)
            lum += 0.06 * grain
        low = base[None, None, :] * lum[..., None]
    else:
        grey = 245.0 if rng.random() < 0.7 else rng.uniform(15.0, 60.0)
        low = np.full((lh, lw, 3), grey, np.float32) + rng.normal(0.0, 2.0, 3).astype(np.float32)
    low = np.clip(low, 0, 255).astype(np.uint8)
    return cv2.resize(low, (out_w, out_h), interpolation=cv2.INTER_LINEAR)


def _grid_step(scale: float) -> int:
    return int(np.clip(round(8.0 * scale), 3, 8))


def _pixel_hull(low: np.ndarray, step: int, out_h: int, out_w: int) -> np.ndarray:
    """Grid samples whose convex hulls per cell contain every upsampled pixel value.

    The padded samples of :meth:`Warp.inverse_grid` lie outside the image; they are replaced by
    the interpolated values at the first and last pixel row and column, so that bounds of the
    returned grid are bounds of the full-resolution map.
    """
    g = low.copy()
    for axis, n_out in ((1, out_w), (0, out_h)):
        for pix, first in ((0, True), (n_out - 1, False)):
            c = (pix + 0.5) / step + 0.5
            j = int(math.floor(c))
            t = c - j
            a = np.take(g, j, axis=axis)
            b = np.take(g, min(j + 1, g.shape[axis] - 1), axis=axis)
            edge = np.expand_dims(a * (1.0 - t) + b * t, axis)
            index = [slice(None)] * g.ndim
            index[axis] = slice(0, j + 1) if first else slice(j + 1, None)
            g[tuple(index)] = edge
    return g


def _apply_warp(
    img: np.ndarray,
    masks: PageMasks,
    text: np.ndarray,
    warp: Warp,
    rng: np.random.Generator,
    photo: bool,
    scale: float,
) -> tuple[np.ndarray, PageMasks]:
    """Warp the image (bilinear, with background outside the paper) and the masks (nearest)."""
    h, w = img.shape[:2]
    out_h, out_w = warp.output_size
    step = _grid_step(scale)
    low64 = warp.inverse_grid(step)
    low = low64.astype(np.float32)
    mapxy = _upsample_grid(low, step, out_h, out_w)
    hull = _pixel_hull(low64, step, out_h, out_w)
    tol = 1e-3
    fully_inside = bool(
        hull[..., 0].min() >= -tol
        and hull[..., 0].max() <= w - 1 + tol
        and hull[..., 1].min() >= -tol
        and hull[..., 1].max() <= h - 1 + tol
    )
    stacked = np.dstack([masks.trace, masks.grid.view(np.uint8), text.view(np.uint8)])
    m = cv2.remap(stacked, mapxy, None, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    new_masks = PageMasks(trace=m[..., 0].copy(), grid=m[..., 1] > 0, text=m[..., 2] > 0)
    if fully_inside:
        out = cv2.remap(img, mapxy, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return out, new_masks
    rgba = cv2.cvtColor(img, cv2.COLOR_RGB2RGBA)
    warped = cv2.remap(rgba, mapxy, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    bg = _background(rng, out_h, out_w, photo, scale)
    if photo:  # the paper casts a soft shadow on the desk
        inside = (low[..., 0] >= 0) & (low[..., 0] <= w - 1) & (low[..., 1] >= 0) & (low[..., 1] <= h - 1)
        blur = max(1.0, 12.0 * scale / step)
        shadow = cv2.GaussianBlur(inside.astype(np.float32), (0, 0), blur)
        dx, dy = rng.uniform(-1.0, 1.0, 2) * blur
        shift = np.array([[1, 0, dx], [0, 1, dy]], np.float32)
        shadow = cv2.warpAffine(shadow, shift, (shadow.shape[1], shadow.shape[0]))
        shade = _u16_gain(1.0 - rng.uniform(0.2, 0.45) * shadow)
        bg = _apply_gain(bg, _upsample_grid(shade, step, out_h, out_w))
    inv = cv2.bitwise_not(warped[..., 3])
    bg = cv2.multiply(bg, cv2.merge([inv, inv, inv]), scale=1.0 / 255.0)
    out = cv2.add(warped[..., :3], bg)
    return out, new_masks


# --------------------------------------------------------------------------------------------
# Stage 3: camera and scanner
# --------------------------------------------------------------------------------------------


def _blur(img: np.ndarray, rng: np.random.Generator, strength: float, scale: float) -> np.ndarray:
    kind = rng.random()
    out = img
    if kind < 0.75:  # defocus
        sigma = rng.uniform(0.6, 1.8) * strength * max(scale, 0.6)
        out = cv2.GaussianBlur(out, (0, 0), sigma)
    if kind >= 0.6:  # motion
        length = max(3.0, rng.uniform(3.0, 9.0) * strength * max(scale, 0.6))
        n = int(math.ceil(length)) | 1
        kernel = np.zeros((n, n), np.float32)
        a = rng.uniform(0.0, math.pi)
        c = (n - 1) / 2.0
        d = 0.5 * (length - 1.0)
        p0 = (int(round((c - d * math.cos(a)) * 16)), int(round((c - d * math.sin(a)) * 16)))
        p1 = (int(round((c + d * math.cos(a)) * 16)), int(round((c + d * math.sin(a)) * 16)))
        cv2.line(kernel, p0, p1, 1.0, 1, cv2.LINE_AA, shift=4)
        kernel /= kernel.sum()
        out = cv2.filter2D(out, -1, kernel, borderType=cv2.BORDER_REFLECT)
    return out


def _lighting_fields(
    rng: np.random.Generator, strength: float, out_h: int, out_w: int
) -> tuple[np.ndarray, np.ndarray]:
    """Low-resolution multiplicative gain (ly, lx, 3) and additive lift (ly, lx), float32."""
    s = strength
    f = 8
    lh, lw = max(2, -(-out_h // f)), max(2, -(-out_w // f))
    gx, gy = np.meshgrid(np.linspace(-1, 1, lw, dtype=np.float32), np.linspace(-1, 1, lh, dtype=np.float32))
    exposure = rng.uniform(1.0 - 0.25 * s, 1.0 + 0.04 * s)
    a = rng.uniform(-1.0, 1.0, 2) * 0.3 * s
    illum = exposure * (1.0 + a[0] * gx + a[1] * gy)
    cx, cy = rng.uniform(-0.4, 0.4, 2)
    illum *= 1.0 - rng.uniform(0.0, 0.35) * s * ((gx - cx) ** 2 + (gy - cy) ** 2) / 2.0
    illum *= 1.0 + 0.06 * s * _noise_field(rng, (lh, lw), 3.0)
    gain = np.repeat(illum[..., None], 3, axis=2)
    temp = rng.uniform(-1.0, 1.0) * 0.12 * s  # warm (>0) or cool colour cast
    tint = rng.uniform(-1.0, 1.0) * 0.04 * s
    gain *= np.array([1.0 + temp, 1.0 + tint, 1.0 - temp], np.float32)
    # soft shadows of a phone or a hand reaching in from an edge
    for _ in range(int(rng.random() < 0.7 * s) + int(rng.random() < 0.2 * s)):
        poly = np.zeros((lh, lw), np.float32)
        edge = int(rng.integers(0, 4))
        t0, t1 = np.sort(rng.uniform(-0.2, 1.2, 2))
        depth = rng.uniform(0.15, 0.55)
        base = np.array([[t0, 0.0], [t1, 0.0], [t1 + rng.normal(0, 0.1), depth], [t0 + rng.normal(0, 0.1), depth]])
        if rng.random() < 0.5:  # rounded tip (a finger or phone corner)
            base = np.vstack([base[:3], [[0.5 * (t0 + t1), depth * rng.uniform(1.1, 1.3)]], base[3:]])
        if edge == 0:
            pts = base
        elif edge == 1:
            pts = base[:, ::-1]
        elif edge == 2:
            pts = np.stack([base[:, 0], 1.0 - base[:, 1]], axis=1)
        else:
            pts = np.stack([1.0 - base[:, 1], base[:, 0]], axis=1)
        px = np.round(pts * np.array([lw - 1, lh - 1]) * 16).astype(np.int32)
        cv2.fillPoly(poly, [px], 1.0, cv2.LINE_AA, shift=4)
        poly = cv2.GaussianBlur(poly, (0, 0), rng.uniform(0.03, 0.08) * max(lh, lw))
        darkness = rng.uniform(0.1, 0.35) * s
        shade = 1.0 - darkness * poly
        gain *= np.stack([shade * 0.97 + 0.03, shade, shade * 0.99 + 0.01], axis=2)  # shadows are a bit blue
    lift = np.full((lh, lw), rng.uniform(0.0, 18.0) * s, np.float32)  # flare lifts the blacks
    if rng.random() < 0.3 * s:  # glare on glossy thermal paper
        gx0, gy0 = rng.uniform(-0.8, 0.8, 2)
        rad = rng.uniform(0.1, 0.35)
        lift += rng.uniform(30.0, 90.0) * s * np.exp(-((gx - gx0) ** 2 + (gy - gy0) ** 2) / (2 * rad * rad))
    return gain.astype(np.float32), lift.astype(np.float32)


def _streaks(img: np.ndarray, rng: np.random.Generator, strength: float, scale: float) -> None:
    """Scanner streaks along the scan direction, in place on a uint8 image."""
    vertical = rng.random() < 0.75
    arr = img if vertical else img.transpose(1, 0, 2)
    length, across = arr.shape[:2]
    n_lines = int(rng.integers(1, 2 + int(round(5 * strength))))
    n_bands = int(rng.integers(0, 1 + int(round(2 * strength))))
    t = np.linspace(0.0, 1.0, length, dtype=np.float32)
    for i in range(n_lines + n_bands):
        band = i >= n_lines
        width = rng.uniform(15.0, 120.0) * scale if band else rng.uniform(0.8, 3.5) * scale
        pos = rng.uniform(0.0, across)
        a, b = int(max(0, pos - width)), int(min(across, pos + width + 1))
        if band:
            amp = rng.uniform(0.03, 0.1) * strength * rng.choice([-1.0, 1.0])
        else:
            amp = rng.uniform(0.15, 0.6) * strength * rng.choice([-1.0, 1.0], p=[0.7, 0.3])
        # along the scan direction: full length, or starting/ending somewhere, fading a little
        start, stop = (0.0, 1.0) if rng.random() < 0.6 else np.sort(rng.uniform(0.0, 1.0, 2))
        wave = rng.uniform(1.0, 6.0)
        if a >= b:
            continue
        x = np.arange(a, b, dtype=np.float32)
        prof = np.exp(-0.5 * ((x - pos) / max(width / 2.0, 0.5)) ** 2)
        along = _smoothstep((t - start) / 0.02) * _smoothstep((stop - t) / 0.02) * (0.8 + 0.2 * np.cos(wave * t))
        k = (amp * along[:, None] * prof[None, :]).astype(np.float32)[..., None]
        seg = arr[:, a:b].astype(np.float32)
        seg = seg * (1.0 + k) if amp < 0 else seg + (255.0 - seg) * k
        arr[:, a:b] = np.clip(seg + 0.5, 0, 255).astype(np.uint8)


#: Quantiles of the standard normal distribution at the centres of 256 equal bins.
_NORMAL_QUANTILES = np.array([NormalDist().inv_cdf((i + 0.5) / 256.0) for i in range(256)])


def _gaussian_lut(sigma: float) -> np.ndarray:
    """256-entry table turning uniform random bytes into N(0, sigma^2) samples (float32)."""
    return (sigma * _NORMAL_QUANTILES).astype(np.float32)


def _noise(img: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Luminance noise per pixel and blotchy colour noise; returns a new uint8 image."""
    h, w = img.shape[:2]
    sigma_l = rng.uniform(0.4, 1.0) * 14.0 * strength
    sigma_c = rng.uniform(0.2, 1.0) * 8.0 * strength
    u = np.frombuffer(rng.bytes(h * w), np.uint8).reshape(h, w)
    lum = cv2.LUT(u, np.round(_gaussian_lut(sigma_l)).astype(np.int16))
    ch, cw = max(2, h // 3), max(2, w // 3)
    chroma = np.round(rng.standard_normal((ch, cw, 3), dtype=np.float32) * np.float32(sigma_c)).astype(np.int16)
    noise = cv2.resize(chroma, (w, h), interpolation=cv2.INTER_LINEAR)
    noise = cv2.add(noise, cv2.merge([lum, lum, lum]))
    return cv2.add(img, noise, dtype=cv2.CV_8U)


def _grey_or_binary(img: np.ndarray, rng: np.random.Generator, scale: float) -> tuple[np.ndarray, str]:
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    if rng.random() < 0.5:
        return grey, "grey"
    if rng.random() < 0.5:
        _, binary = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    else:
        block = int(round(rng.uniform(25.0, 61.0) * max(scale, 0.3))) | 1
        binary = cv2.adaptiveThreshold(
            grey, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, max(block, 3), rng.uniform(8.0, 20.0)
        )
    return binary, "binary"


def _camera(
    img: np.ndarray, settings: DamageSettings, rng: np.random.Generator, scale: float
) -> tuple[np.ndarray, dict]:
    """Lighting, blur, noise, streaks, grey/binary and JPEG; returns the image and what was done."""
    s = settings
    info: dict[str, Any] = {}
    out_h, out_w = img.shape[:2]
    if s.blur > 0:
        img = _blur(img, rng, s.blur, scale)
    if s.lighting > 0:
        gain, lift = _lighting_fields(rng, s.lighting, out_h, out_w)
        gain *= (1.0 - lift / 255.0)[..., None]  # flare lifts the blacks and lowers the contrast
        img = _apply_gain(img, cv2.resize(_u16_gain(gain), (out_w, out_h), interpolation=cv2.INTER_LINEAR))
        lift = np.clip(lift + 0.5, 0, 255).astype(np.uint8)
        lift = cv2.resize(lift, (out_w, out_h), interpolation=cv2.INTER_LINEAR)
        img = cv2.add(img, cv2.merge([lift, lift, lift]))
    if s.streaks > 0:
        img = np.ascontiguousarray(img)
        _streaks(img, rng, s.streaks, scale)
    if s.noise > 0:
        img = _noise(img, rng, s.noise)
    channels = 3
    if s.grayscale > 0 and rng.random() < s.grayscale:
        img, info["colour"] = _grey_or_binary(img, rng, scale)
        channels = 1
    if s.jpeg > 0:
        quality = int(round(95.0 - 70.0 * s.jpeg * rng.uniform(0.5, 1.0)))
        info["jpeg_quality"] = quality
        enc = img if channels == 1 else cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
        ok, buf = cv2.imencode(".jpg", enc, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok:
            dec = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
            img = dec if channels == 1 else cv2.cvtColor(dec, cv2.COLOR_BGR2RGB)
        else:  # pragma: no cover - OpenCV always encodes uint8 images
            logger.warning("JPEG encoding failed; the page is left uncompressed")
    if channels == 1:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    return img, info


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class DamagedPage:
    """A damaged page and its ground truth carried through the damage.

    Attributes
    ----------
    image : ndarray, shape (H', W', 3), uint8
        RGB image.
    masks : PageMasks
        Masks warped with nearest neighbour, ``(H', W')``.  Handwriting and stamps are added to
        ``masks.text`` (they may cover traces, which stay in ``masks.trace``).
    warp : Warp
        Where page points went; use :meth:`Warp.map_points` for traces and boxes.
    effects : dict
        JSON-able record of the photometric choices (grey or binary output, JPEG quality).
    """

    image: np.ndarray
    masks: PageMasks
    warp: Warp
    effects: dict | None = None


def _check_inputs(image: np.ndarray, masks: PageMasks) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        got = f"{image.dtype} array of shape {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"image must be an (H, W, 3) uint8 RGB array, got {got}")
    if min(image.shape[:2]) < 16:
        raise ValueError(f"image of shape {image.shape} is too small to damage; pages must be at least 16 px a side")
    for name, dtype in (("trace", np.uint8), ("grid", np.bool_), ("text", np.bool_)):
        m = getattr(masks, name)
        if m.shape != image.shape[:2] or m.dtype != dtype:
            raise ValueError(
                f"masks.{name} must be a {np.dtype(dtype)} array of shape {image.shape[:2]} like the image, "
                f"got {m.dtype} {m.shape}"
            )


def apply_damage(
    image: np.ndarray, masks: PageMasks, settings: DamageSettings, rng: np.random.Generator
) -> DamagedPage:
    """Damage a clean page like a real scan or phone photo, carrying its ground truth along.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8
        The clean RGB page.
    masks : PageMasks
        Its masks, ``(H, W)`` each.
    settings : DamageSettings
        Strength of each damage; :meth:`DamageSettings.none` returns the page unchanged.
    rng : numpy.random.Generator
        Source of every random choice; the same state gives the same result.

    Returns
    -------
    DamagedPage
        The damaged image, masks aligned with it, and the :class:`Warp` that maps page points
        to image points.

    Raises
    ------
    ValueError
        If the image is not an ``(H, W, 3)`` uint8 array or the masks do not match it.
    """
    _check_inputs(image, masks)
    h, w = image.shape[:2]
    s = settings
    scale = math.hypot(h, w) / _REF_DIAG_PX
    photo = s.perspective > 0 or s.curl > 0
    img = image.copy()
    text = masks.text.copy()

    # 1. on the paper
    creases = _draw_creases(rng, s.wrinkles, h, w, scale) if s.wrinkles > 0 else ()
    _shade_creases(img, creases, scale)
    if s.stains > 0:
        _add_stains(img, rng, s.stains, scale)
    if s.scribbles > 0:
        _add_scribbles(img, text, rng, s.scribbles, scale)

    # 2. geometry
    warp = _draw_warp(s, rng, h, w, creases, photo)
    if warp.is_identity:
        out_masks = PageMasks(trace=masks.trace.copy(), grid=masks.grid.copy(), text=text)
    else:
        img, out_masks = _apply_warp(img, masks, text, warp, rng, photo, scale)

    # 3. camera and scanner
    img, effects = _camera(img, s, rng, scale)
    return DamagedPage(image=np.ascontiguousarray(img), masks=out_masks, warp=warp, effects=_json(effects))
