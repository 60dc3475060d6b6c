"""Page geometry: grid scale, skew, quarter turns, paper outline, rectification.

Synthetic pages are drawn here with OpenCV at 4x and area-downsampled, so grid lines sit at
exact sub-pixel positions: 1 mm = ``px_per_mm`` pixels by construction.  Real pages come from
``../shared/data`` (skipped when absent).
"""

from __future__ import annotations

import csv
import math
from dataclasses import replace

import cv2
import numpy as np
import pytest

from ecgstudio.config import GeometryConfig
from ecgstudio.errors import ImageSizeError, NotAnEcgError
from ecgstudio.geometry import (
    GridEstimate,
    RectifiedPage,
    deskew,
    estimate_grid,
    estimate_skew,
    find_paper,
    invert_points,
    map_points,
    quarter_turn,
    rectify,
    rotate_quarter,
)
from ecgstudio.results import Calibration

# --------------------------------------------------------------------------------------------
# Synthetic pages

_SS = 4  # supersampling factor of the drawings


def _beat(t: np.ndarray) -> np.ndarray:
    """A crude P-QRS-T complex (mV) for t in seconds from the R peak, upward R wave."""
    p = 0.12 * np.exp(-(((t + 0.18) / 0.03) ** 2))
    q = -0.1 * np.exp(-(((t + 0.03) / 0.008) ** 2))
    r = 1.2 * np.exp(-((t / 0.012) ** 2))
    s = -0.25 * np.exp(-(((t - 0.03) / 0.01) ** 2))
    tw = 0.3 * np.exp(-(((t - 0.28) / 0.06) ** 2))
    return p + q + r + s + tw


def make_page(
    px_per_mm: float,
    size: tuple[int, int] = (1400, 1000),
    *,
    traces: bool = True,
    seed: int = 0,
    minor_color=(255, 205, 215),
    major_color=(235, 120, 150),
) -> np.ndarray:
    """A pink ECG grid with black traces, ``size = (width, height)`` pixels, RGB uint8."""
    rng = np.random.default_rng(seed)
    w, h = size
    big = np.full((h * _SS, w * _SS, 3), 255, np.uint8)
    step = px_per_mm * _SS
    minor_t = max(1, int(round(0.08 * step)))
    major_t = max(2, int(round(0.16 * step)))
    for axis_len, vertical in ((w * _SS, True), (h * _SS, False)):
        for k in range(int(axis_len / step) + 1):
            pos = int(round(k * step))
            colour, thick = (major_color, major_t) if k % 5 == 0 else (minor_color, minor_t)
            if vertical:
                cv2.line(big, (pos, 0), (pos, h * _SS - 1), colour, thick)
            else:
                cv2.line(big, (0, pos), (w * _SS - 1, pos), colour, thick)
    if traces:
        mm_per_s, mm_per_mv = 25.0, 10.0
        n_rows = 4
        x = np.arange(int(0.04 * w * _SS), int(0.96 * w * _SS), 2)
        t = x / (step * mm_per_s)
        thick = max(2, int(round(0.3 * step)))
        for row in range(n_rows):
            base = (row + 1) * h * _SS / (n_rows + 1)
            rr = 60.0 / rng.uniform(55, 95)
            phase = rng.uniform(0, rr)
            mv = _beat(((t - phase + rr / 2) % rr) - rr / 2) + 0.05 * np.sin(2 * np.pi * 0.3 * t + row)
            y = base - mv * mm_per_mv * step
            pts = np.stack([x, y], axis=1).round().astype(np.int32)
            cv2.polylines(big, [pts], False, (20, 20, 20), thick, lineType=cv2.LINE_AA)
            cv2.putText(
                big,
                ["I", "II", "V1", "V5"][row],
                (int(0.05 * w * _SS), int(base + 8 * step)),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.25 * step,
                (20, 20, 20),
                thick,
            )
    return cv2.resize(big, (w, h), interpolation=cv2.INTER_AREA)


def rotate(page: np.ndarray, angle: float, border=(255, 255, 255)) -> tuple[np.ndarray, np.ndarray]:
    """Rotate counter-clockwise by ``angle`` degrees about the centre (same canvas)."""
    h, w = page.shape[:2]
    m = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), angle, 1.0)
    out = cv2.warpAffine(page, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=border)
    return out, np.vstack([m, [0, 0, 1]])


@pytest.fixture(scope="module")
def page_7874() -> np.ndarray:
    return make_page(7.874, (1400, 1000))


# --------------------------------------------------------------------------------------------
# Grid scale


@pytest.mark.parametrize(
    ("px_per_mm", "size"),
    [
        (3.4, (956, 739)),
        (5.0, (1100, 850)),
        (7.874, (1400, 1000)),
        (11.8, (1600, 1200)),
    ],
)
def test_grid_scale_synthetic(px_per_mm, size):
    g = estimate_grid(make_page(px_per_mm, size, seed=int(px_per_mm * 10)))
    assert isinstance(g, GridEstimate)
    assert g.has_grid and g.confidence > 0.5
    assert g.minor_resolved
    assert g.px_per_mm_x == pytest.approx(px_per_mm, rel=0.005)
    assert g.px_per_mm_y == pytest.approx(px_per_mm, rel=0.005)
    assert abs(g.angle_deg) < 0.1


def test_grid_scale_blurred_minor_lines():
    """Downscaled until the 1 mm lines merge: the 5 mm lines still give the scale."""
    page = make_page(7.874, (1400, 1000))
    small = cv2.resize(page, (310, 221), interpolation=cv2.INTER_AREA)  # 1.74 px/mm
    g = estimate_grid(small)
    assert g.has_grid
    assert g.px_per_mm_x == pytest.approx(7.874 * 310 / 1400, rel=0.02)


@pytest.mark.parametrize(
    "colors",
    [
        ((200, 230, 200), (90, 170, 90)),  # green
        ((205, 215, 250), (90, 110, 220)),  # blue
        ((215, 215, 215), (140, 140, 140)),  # grey, as in black-and-white printouts
    ],
)
def test_grid_scale_colours(colors):
    page = make_page(6.3, (1100, 800), minor_color=colors[0], major_color=colors[1])
    g = estimate_grid(page)
    assert g.has_grid
    assert g.px_per_mm == pytest.approx(6.3, rel=0.005)


@pytest.mark.parametrize("angle", [3.0, -3.0, 8.0, -8.0])
def test_rotated_grid(page_7874, angle):
    rot, _ = rotate(page_7874, angle)
    g = estimate_grid(rot)
    assert g.angle_deg == pytest.approx(angle, abs=0.2)
    assert abs(g.shear_deg) < 0.2
    assert g.px_per_mm_x == pytest.approx(7.874, rel=0.01)
    assert g.px_per_mm_y == pytest.approx(7.874, rel=0.01)
    assert estimate_skew(rot) == pytest.approx(angle, abs=0.2)


def test_skew_range_and_black_borders(page_7874):
    rot, _ = rotate(page_7874, -14.0, border=(0, 0, 0))
    assert estimate_skew(rot) == pytest.approx(-14.0, abs=0.2)


def test_no_grid_blank_and_noise():
    blank = np.full((600, 800, 3), 255, np.uint8)
    g = estimate_grid(blank)
    assert not g.has_grid and g.confidence == 0.0
    assert math.isnan(g.px_per_mm_x) and math.isnan(g.px_per_mm_y)
    noise = np.random.default_rng(1).integers(0, 256, (600, 800, 3), dtype=np.uint8)
    assert not estimate_grid(noise).has_grid
    assert estimate_grid(noise).confidence < 0.2


def test_traces_without_grid_have_no_grid():
    page = make_page(7.874, (1100, 800), minor_color=(255, 255, 255), major_color=(255, 255, 255))
    assert not estimate_grid(page).has_grid


def test_input_checks():
    with pytest.raises(ImageSizeError):
        estimate_grid(np.zeros((20, 400, 3), np.uint8))
    with pytest.raises(TypeError):
        estimate_grid(np.zeros((200, 400, 3), np.float32))
    with pytest.raises(ValueError):
        estimate_grid(np.zeros((200, 400, 2), np.uint8))
    grey = cv2.cvtColor(make_page(5.0, (800, 600), traces=False), cv2.COLOR_RGB2GRAY)
    assert estimate_grid(grey).px_per_mm == pytest.approx(5.0, rel=0.005)


# --------------------------------------------------------------------------------------------
# Deskew, quarter turns


def test_deskew_matrix_maps_points(page_7874):
    rot, m_rot = rotate(page_7874, 5.0)
    out, m = deskew(rot, 5.0)
    assert m.shape == (2, 3)
    pts = np.array([[100.0, 120.0], [700.0, 500.0], [1300.0, 900.0]])
    # rotate then deskew brings the page back: the composition is a translation.
    comp = np.vstack([m, [0, 0, 1]]) @ m_rot
    np.testing.assert_allclose(comp[:2, :2], np.eye(2), atol=1e-9)
    moved = map_points(np.vstack([m, [0, 0, 1]]), pts)
    assert np.all(moved >= 0) and np.all(moved[:, 0] < out.shape[1]) and np.all(moved[:, 1] < out.shape[0])
    assert abs(estimate_skew(out)) < 0.2


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_quarter_turn(page_7874, k):
    turned = np.ascontiguousarray(np.rot90(page_7874, k))
    q = quarter_turn(turned)
    assert q == 90 * k
    back, hq = rotate_quarter(turned, q)
    np.testing.assert_array_equal(back, page_7874)
    _h, w = turned.shape[:2]
    # the matrix maps pixel centres exactly like the array rotation
    pts = np.array([[0.0, 0.0], [w - 1.0, 0.0], [3.0, 7.0]])
    for (x, y), (u, v) in zip(pts, map_points(hq, pts)):
        np.testing.assert_array_equal(back[int(round(v)), int(round(u))], turned[int(y), int(x)])


@pytest.mark.shared
def test_upside_down_pages_are_turned_back_and_upright_ones_kept(shared_data):
    """Printed text decides up or down where trace polarity cannot: an upright page is never
    turned over, and most pages given upside down are recognised."""
    rows = [
        r
        for r in _pairs(shared_data)
        if "real_images" in r["image"] or "tiny_testset/hr_gt" in r["image"] or "HandwrittenText/000" in r["image"]
    ]
    assert len(rows) >= 10
    found = 0
    for row in rows:
        img = _read_rgb(shared_data / row["image"])
        assert quarter_turn(img) == 0, row["image"]
        found += quarter_turn(np.ascontiguousarray(img[::-1, ::-1])) == 180
    assert found >= 0.7 * len(rows)


# --------------------------------------------------------------------------------------------
# Paper outline and perspective


def _photo(page: np.ndarray, corners: np.ndarray, size: tuple[int, int], seed: int = 0) -> np.ndarray:
    """Warp a page onto a dark, textured background at ``corners`` (TL, TR, BR, BL)."""
    rng = np.random.default_rng(seed)
    w, h = size
    bg = (rng.normal(60, 12, (h, w, 3))).clip(0, 255).astype(np.uint8)
    bg = cv2.GaussianBlur(bg, (7, 7), 0)
    ph, pw = page.shape[:2]
    src = np.array([[0, 0], [pw - 1, 0], [pw - 1, ph - 1], [0, ph - 1]], np.float32)
    hmat = cv2.getPerspectiveTransform(src, corners.astype(np.float32))
    warped = cv2.warpPerspective(page, hmat, (w, h))
    mask = cv2.warpPerspective(np.full((ph, pw), 255, np.uint8), hmat, (w, h)) > 127
    out = bg.copy()
    out[mask] = warped[mask]
    return out


def test_find_paper_in_photo(page_7874):
    corners = np.array([[180, 120], [1320, 170], [1380, 930], [120, 880]], np.float64)
    photo = _photo(page_7874, corners, (1500, 1050))
    found = find_paper(photo)
    assert found is not None
    np.testing.assert_allclose(found, corners, atol=6.0)
    assert find_paper(page_7874) is None  # paper fills the frame: no outline


def test_rectify_photo_with_paper_outline(page_7874):
    corners = np.array([[180, 120], [1320, 170], [1380, 930], [120, 880]], np.float64)
    photo = _photo(page_7874, corners, (1500, 1050))
    page = rectify(photo)
    assert page.perspective.startswith("paper")
    assert page.quarter_turn == 0
    # The paper corners land on the corners of an upright rectangle.
    out = map_points(page.homography, corners)
    assert abs(out[0, 1] - out[1, 1]) < 2 and abs(out[3, 1] - out[2, 1]) < 2
    assert abs(out[0, 0] - out[3, 0]) < 2 and abs(out[1, 0] - out[2, 0]) < 2
    # The grid is square again and its scale consistent with the page size on the output.
    g = page.grid
    assert g.has_grid
    assert g.px_per_mm_x == pytest.approx(g.px_per_mm_y, rel=0.005)
    width_mm = (out[1, 0] - out[0, 0]) / g.px_per_mm_x
    assert width_mm == pytest.approx(1400 / 7.874, rel=0.01)


def test_rectify_grid_perspective_without_edges():
    """A photo cropped inside the paper: the converging grid lines give the perspective."""
    page = make_page(7.874, (1600, 1100), seed=3)
    h, w = page.shape[:2]
    src = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], np.float32)
    dst = np.array([[70, 40], [w - 71, 0], [w - 1, h - 1], [0, h - 41]], np.float32)
    keystone = cv2.getPerspectiveTransform(src, dst)
    photo = cv2.warpPerspective(page, keystone, (w, h), borderValue=(255, 255, 255))
    photo = photo[60:-60, 80:-80].copy()  # crop so that no paper edge is visible
    crop = np.array([[1, 0, -80], [0, 1, -60], [0, 0, 1]], np.float64)
    page_ = rectify(photo)
    assert page_.perspective == "grid"
    # page -> photo -> rectified is a similarity: right angles and equal scales.
    total = page_.homography @ crop @ keystone
    pts = np.array([[400.0, 300.0], [1200.0, 300.0], [1200.0, 800.0], [400.0, 800.0]])
    q = map_points(total, pts)
    top, right = q[1] - q[0], q[2] - q[1]
    assert abs(math.degrees(math.atan2(top[1], top[0]))) < 0.5
    assert abs(math.degrees(math.atan2(right[0], right[1]))) < 0.5
    assert np.linalg.norm(top) / 800 == pytest.approx(np.linalg.norm(right) / 500, rel=0.01)
    scale = np.linalg.norm(top) / 800
    assert page_.grid.px_per_mm_x == pytest.approx(7.874 * scale, rel=0.015)


# --------------------------------------------------------------------------------------------
# rectify


def test_rectify_rotated_page(page_7874):
    rot, m_rot = rotate(page_7874, 4.0)
    page = rectify(rot)
    assert isinstance(page, RectifiedPage)
    assert page.perspective == "none" and page.quarter_turn == 0
    assert page.grid.px_per_mm == pytest.approx(7.874, rel=0.005)
    assert abs(page.grid.angle_deg) < 0.1
    assert isinstance(page.calibration_hint, Calibration)
    assert page.calibration_hint.px_per_mm_x == page.grid.px_per_mm_x
    assert page.calibration_hint.mm_per_s == 25.0 and page.calibration_hint.mm_per_mv == 10.0
    # The homography undoes the rotation: page -> rotated -> rectified is a translation.
    total = page.homography @ m_rot
    total = total / total[2, 2]
    np.testing.assert_allclose(total[:2, :2], np.eye(2), atol=0.003)
    np.testing.assert_allclose(total[2, :2], 0.0, atol=1e-9)


def test_rectify_homography_is_the_warp(page_7874):
    rot, _ = rotate(page_7874, -2.5)
    turned = np.ascontiguousarray(np.rot90(rot, 1))
    page = rectify(turned)
    assert page.quarter_turn == 90
    h, w = page.image.shape[:2]
    again = cv2.warpPerspective(turned, page.homography, (w, h), flags=cv2.INTER_LINEAR, borderValue=(255, 255, 255))
    assert np.abs(again.astype(int) - page.image.astype(int)).max() <= 1
    # Round trip of points through invert_points.
    rng = np.random.default_rng(2)
    xy = rng.uniform([0, 0], [turned.shape[1], turned.shape[0]], (50, 2))
    np.testing.assert_allclose(invert_points(page, map_points(page.homography, xy)), xy, atol=1e-6)
    assert invert_points(page, np.array([np.nan, np.nan])).shape == (2,)


def test_rectify_given_corners_and_turn(page_7874):
    corners = np.array([[180, 120], [1320, 170], [1380, 930], [120, 880]], np.float64)
    photo = _photo(page_7874, corners, (1500, 1050))
    page = rectify(photo, corners=corners[[2, 0, 3, 1]], turn=0)
    np.testing.assert_allclose(page.paper_corners, corners, atol=1e-6)


def test_rectify_blank_raises():
    with pytest.raises(NotAnEcgError):
        rectify(np.full((500, 700, 3), 255, np.uint8))


def test_rectify_without_grid_guesses_letter():
    page = make_page(7.874, (1400, 1000), minor_color=(255, 255, 255), major_color=(255, 255, 255))
    out = rectify(page)
    assert not out.grid.has_grid
    assert out.calibration_hint.px_per_mm_x == pytest.approx(out.image.shape[1] / 279.4)


def test_flat_pages_get_square_cells_unless_the_config_allows_them_apart(page_7874):
    # A scanner that scales the axes apart by 4 %: the grid cells come back square by default.
    h, w = page_7874.shape[:2]
    stretched = cv2.resize(page_7874, (round(w * 1.04), h), interpolation=cv2.INTER_AREA)
    page = rectify(stretched, perspective=False)
    assert page.grid.px_per_mm_x == page.grid.px_per_mm_y == pytest.approx(7.874 * 1.04, rel=0.01)
    assert page.image.shape[0] == pytest.approx(h * 1.04, rel=0.01)
    # A tolerance beyond the stretch keeps the pixels as they are.
    kept = rectify(stretched, perspective=False, config=GeometryConfig(square_flat=0.1))
    assert kept.image.shape[:2] == stretched.shape[:2]
    assert kept.grid.px_per_mm_x / kept.grid.px_per_mm_y == pytest.approx(1.04, rel=0.01)


def test_the_config_decides_what_counts_as_a_grid(page_7874):
    found = estimate_grid(page_7874)
    assert found.has_grid
    strict = estimate_grid(page_7874, config=GeometryConfig(has_grid_confidence=found.confidence + 0.01))
    assert not strict.has_grid and math.isnan(strict.px_per_mm)


# --------------------------------------------------------------------------------------------
# Real pages (../shared/data)

#: Grid scale of pairs.csv pages whose grid is not ecg-image-kit's 200 dpi (older releases
#: scaled the grid to the page).  Each value was checked three ways, all within 0.1 %: a
#: least-squares fit of the positions of every grid line on the page, the 10-s rhythm strip
#: in the trace masks (250 mm at 25 mm/s) where a mask exists, and the lead boxes.
_NOT_200_DPI = {
    "ecg-image-kit/SampleData/12lead_generated/JS00001-0.png": 7.328,
    "ecg-image-kit/SampleData/DistortionData/HandwrittenText/JS00001-0.png": 5.868,
    "ecg-image-kit/SampleData/PTB_XL_op/00001_lr-0.png": 7.848,
    "ecg-image-kit/SampleData/PTB_XL_op/00002_lr-0.png": 7.796,
    "ecg-image-kit/SampleData/GeneratedData/sel100-0.png": 7.024,
    "ecg-image-kit/SampleData/GeneratedData/sel100-1.png": 6.800,
    "ecg-image-kit/SampleData/GeneratedData/sel100-10.png": 6.408,
    "ecg-image-kit/SampleData/DistortionData/HandwrittenText/sel100-1.png": 6.154,
    # 956x739 downscales of renders at 5.87 and 7.85 px/mm (not of 200 dpi pages)
    "ecg-image-kit/SampleData/PTB_XL_op/Distortionless/00001_lr-0.png": 3.391,
    "ecg-image-kit/SampleData/PTB_XL_op/Distortionless/00002_lr-0.png": 2.554,
    "ecg-image-kit/SampleData/PTB_XL_op/Distortionless/00003_lr-0.png": 2.554,
}

#: The four real scans print a 200 dpi page and were scanned at 2038 px across; registering
#: each scan on its source render (ORB features on traces and text, RANSAC similarity) gives
#: 0.930-0.932 of 7.874 px/mm, i.e. 7.325-7.338; a line-position fit gives 7.322-7.336.
_REAL_SCAN_PX_PER_MM = 7.33


def _pairs(shared_data):
    with open(shared_data / "pairs.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _read_rgb(path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None, path
    return np.ascontiguousarray(img[:, :, ::-1])


@pytest.mark.shared
def test_real_pages_scale(shared_data):
    failures = []
    n_200 = 0
    for row in _pairs(shared_data):
        name = row["image"]
        img = _read_rgb(shared_data / name)
        _h, w = img.shape[:2]
        g = estimate_grid(img)
        if "real_images" in name:
            expected, tol = _REAL_SCAN_PX_PER_MM, 0.01
        elif name in _NOT_200_DPI:
            expected, tol = _NOT_200_DPI[name], (0.005 if w == 2200 else 0.02)
        else:
            expected, tol = 7.874 * w / 2200, (0.01 if w == 2200 else 0.02)
            n_200 += w == 2200
        for axis, value in (("x", g.px_per_mm_x), ("y", g.px_per_mm_y)):
            if not (g.has_grid and abs(value / expected - 1) <= tol):
                failures.append(f"{name} {axis}: {value:.4f} px/mm, expected {expected:.4f} +-{tol:.1%}")
    assert n_200 >= 30
    assert not failures, "\n".join(failures)


@pytest.mark.shared
def test_real_scans_skew_and_rectify(shared_data):
    """The scans are skewed by -0.2..-0.5 deg and sheared (vertical lines ~0.25 deg off)."""
    for row in _pairs(shared_data):
        if "real_images" not in row["image"]:
            continue
        img = _read_rgb(shared_data / row["image"])
        g = estimate_grid(img)
        assert -0.6 < g.angle_deg < 0.0
        assert abs(g.shear_deg) < 0.5
        page = rectify(img)
        assert page.quarter_turn == 0
        assert page.perspective == "none"
        assert page.grid.px_per_mm == pytest.approx(_REAL_SCAN_PX_PER_MM, rel=0.01)
        assert abs(page.grid.angle_deg) < 0.1


def test_an_axis_locked_on_a_multiple_of_the_major_period_is_mended():
    from ecgstudio.geometry.grid import _AxisScale, _reconcile

    good, tripled = _AxisScale(7.29, 0.9, False), _AxisScale(21.88, 0.9, False)
    x, y = _reconcile(good, tripled, 2038)
    assert x.px_per_mm == y.px_per_mm == 7.29
    x, y = _reconcile(tripled, good, 2038)
    assert x.px_per_mm == y.px_per_mm == 7.29
    # only the 5 mm lines printed: one axis read 7/2 times too fine (a rendered page of 1494 px)
    major_only, half_integer = _AxisScale(5.35, 0.65, False), _AxisScale(18.71, 0.51, False)
    x, y = _reconcile(half_integer, major_only, 1494)
    assert x.px_per_mm == y.px_per_mm == 5.35
    # both plausible as paper widths (a 2255 px A4 page): the axis with its 1 mm lines resolved
    resolved, three_halves = _AxisScale(7.54, 0.9, True), _AxisScale(11.32, 0.37, False)
    x, y = _reconcile(three_halves, resolved, 2255)
    assert x.px_per_mm == y.px_per_mm == 7.54
    unresolved = replace(resolved, minor_resolved=False)
    assert _reconcile(three_halves, unresolved, 2255) == (three_halves, unresolved)
    # perspective (a fractional disagreement) and implausible pages are left alone
    stretched = _AxisScale(8.1, 0.9, False)
    assert _reconcile(good, stretched, 2038) == (good, stretched)
    assert _reconcile(good, tripled, 200) == (good, tripled)
