"""Tests of :mod:`ecgstudio.synth.damage`: shapes, determinism, and exact geometry."""

from __future__ import annotations

import json
from dataclasses import fields

import cv2
import numpy as np
import pytest

from ecgstudio.results import PageMasks
from ecgstudio.synth.damage import DamagedPage, DamageSettings, Warp, apply_damage, crumple

H, W = 340, 440  # a small landscape page keeps the tests fast
GEOMETRIC = DamageSettings(rotation=1.0, perspective=1.0, curl=1.0, crop=1.0, quarter_turn=1.0)


def _page(h: int = H, w: int = W, *, thick: int = 3) -> tuple[np.ndarray, PageMasks]:
    """A pink mm grid with three black wavy traces and a label, and its exact masks."""
    img = np.full((h, w, 3), (255, 250, 248), np.uint8)
    grid = np.zeros((h, w), bool)
    grid[:, ::8] = True
    grid[::8, :] = True
    img[grid] = (245, 170, 175)
    trace = np.zeros((h, w), np.uint8)
    x = np.arange(20, w - 20, dtype=np.float64)
    for k in range(3):
        y = (k + 1) * h / 4 + 18 * np.sin(x / 23.0 + k) + 8 * np.sin(x / 5.0)
        pts = np.round(np.stack([x, y], axis=1)).astype(np.int32)
        cv2.polylines(img, [pts], False, (20, 20, 20), thick, cv2.LINE_8)
        cv2.polylines(trace, [pts], False, k + 1, thick, cv2.LINE_8)
    text = np.zeros((h, w), np.uint8)
    cv2.putText(img, "II", (8, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (20, 20, 20), 2, cv2.LINE_8)
    cv2.putText(text, "II", (8, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.8, 1, 2, cv2.LINE_8)
    grid &= trace == 0
    return img, PageMasks(trace=trace, grid=grid, text=text > 0)


def _check_page(out: DamagedPage) -> None:
    h, w = out.warp.output_size
    assert out.image.shape == (h, w, 3) and out.image.dtype == np.uint8
    assert out.masks.trace.shape == (h, w) and out.masks.trace.dtype == np.uint8
    assert out.masks.grid.shape == (h, w) and out.masks.grid.dtype == np.bool_
    assert out.masks.text.shape == (h, w) and out.masks.text.dtype == np.bool_
    json.dumps(out.warp.describe())
    json.dumps(out.effects)


# ---------------------------------------------------------------------------------------------
# settings
# ---------------------------------------------------------------------------------------------


def test_settings_constructors_and_validation() -> None:
    assert DamageSettings.none().is_none
    everything = DamageSettings.all(0.7)
    for f in fields(DamageSettings):
        assert getattr(everything, f.name) == (0.0 if f.name == "quarter_turn" else 0.7)
    for bad in (1.5, -0.1, float("nan"), True, "1"):
        with pytest.raises(ValueError, match="rotation"):
            DamageSettings(rotation=bad)
    with pytest.raises(ValueError, match="severity"):
        DamageSettings.random(np.random.default_rng(0), severity=2.0)


def test_random_settings_are_a_realistic_mix() -> None:
    rng = np.random.default_rng(0)
    mixes = [DamageSettings.random(rng, severity=0.5) for _ in range(300)]
    active = np.array([sum(getattr(m, f.name) > 0 for f in fields(m)) for m in mixes])
    photos = sum(m.perspective > 0 for m in mixes)
    scans = sum(m.perspective == 0 and m.grayscale > 0.2 for m in mixes)
    assert 0.03 < np.mean(active <= 1) < 0.25  # some clean pages
    assert 3.0 < active.mean() < 9.0  # most get a few damages
    assert photos > 60 and scans > 60
    again = DamageSettings.random(np.random.default_rng(0), severity=0.5)
    assert again == mixes[0]


# ---------------------------------------------------------------------------------------------
# apply_damage basics
# ---------------------------------------------------------------------------------------------


def test_none_returns_the_page_unchanged_with_an_identity_warp() -> None:
    img, masks = _page()
    out = apply_damage(img, masks, DamageSettings.none(), np.random.default_rng(0))
    np.testing.assert_array_equal(out.image, img)
    np.testing.assert_array_equal(out.masks.trace, masks.trace)
    np.testing.assert_array_equal(out.masks.grid, masks.grid)
    np.testing.assert_array_equal(out.masks.text, masks.text)
    assert out.warp.is_identity and out.warp.output_size == (H, W)
    np.testing.assert_array_equal(out.warp.homography, np.eye(3))
    pts = np.array([[0.0, 0.0], [12.5, 7.25], [np.nan, np.nan]])
    np.testing.assert_array_equal(out.warp.map_points(pts), pts)


@pytest.mark.parametrize("name", [f.name for f in fields(DamageSettings)])
def test_each_damage_alone_changes_the_image_and_keeps_types(name: str) -> None:
    img, masks = _page()
    before = (img.copy(), masks.trace.copy(), masks.text.copy())
    out = apply_damage(img, masks, DamageSettings(**{name: 1.0}), np.random.default_rng(3))
    _check_page(out)
    assert out.image.shape != img.shape or np.count_nonzero(out.image != img) > 100
    geometric = {"rotation", "quarter_turn", "perspective", "curl", "crop", "wrinkles"}
    if name not in geometric:
        assert out.warp.is_identity and out.image.shape == img.shape
        np.testing.assert_array_equal(out.masks.trace, masks.trace)
    # the inputs are left alone
    np.testing.assert_array_equal(img, before[0])
    np.testing.assert_array_equal(masks.trace, before[1])
    np.testing.assert_array_equal(masks.text, before[2])


def test_a_crumpled_sheet_is_shaded_in_facets_but_nothing_moves() -> None:
    img, masks = _page()
    out = crumple(img, np.random.default_rng(3), 1.0)
    assert out.shape == img.shape and out.dtype == np.uint8
    paper = masks.trace == 0
    shade = out[..., 1].astype(float)[paper] / img[..., 1].astype(float)[paper]
    assert 0.5 < shade.mean() < 0.95 and shade.std() > 0.03  # darker, and unevenly
    ink = masks.trace > 0
    assert out[ink].mean() < out[paper].mean() - 60  # the traces still stand out where they were
    again = crumple(img, np.random.default_rng(3), 1.0)
    np.testing.assert_array_equal(out, again)
    assert np.abs(crumple(img, np.random.default_rng(3), 0.0).astype(int) - img).max() <= 1


def test_scribbles_are_added_to_the_text_mask() -> None:
    img, masks = _page()
    out = apply_damage(img, masks, DamageSettings(scribbles=1.0), np.random.default_rng(1))
    assert out.masks.text.sum() > masks.text.sum() + 50
    assert (out.masks.text | ~masks.text).all()  # printed text is kept


def test_deterministic_for_a_given_rng_state() -> None:
    img, masks = _page()
    settings = DamageSettings.all(1.0)
    a = apply_damage(img, masks, settings, np.random.default_rng(42))
    b = apply_damage(img, masks, settings, np.random.default_rng(42))
    c = apply_damage(img, masks, settings, np.random.default_rng(43))
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.masks.trace, b.masks.trace)
    np.testing.assert_array_equal(a.masks.text, b.masks.text)
    assert json.dumps(a.warp.describe()) == json.dumps(b.warp.describe())
    assert a.image.shape != c.image.shape or not np.array_equal(a.image, c.image)


def test_all_damage_on_tiny_and_random_pages_does_not_fail() -> None:
    rng = np.random.default_rng(7)
    img, masks = _page(48, 64, thick=1)
    _check_page(apply_damage(img, masks, DamageSettings.all(1.0), rng))
    img, masks = _page()
    for _ in range(4):
        _check_page(apply_damage(img, masks, DamageSettings.random(rng, severity=1.0), rng))


def test_rejects_wrong_inputs() -> None:
    img, masks = _page()
    with pytest.raises(ValueError, match="uint8 RGB"):
        apply_damage(img.astype(np.float32), masks, DamageSettings.none(), np.random.default_rng(0))
    bad = PageMasks(trace=masks.trace[:-1], grid=masks.grid, text=masks.text)
    with pytest.raises(ValueError, match="masks.trace"):
        apply_damage(img, bad, DamageSettings.none(), np.random.default_rng(0))


# ---------------------------------------------------------------------------------------------
# geometry
# ---------------------------------------------------------------------------------------------


def _dot_page(h: int, w: int, pts: np.ndarray, sigma: float = 1.5) -> np.ndarray:
    """A white page with a Gaussian ink dot centred exactly at each point."""
    dark = np.zeros((h, w), np.float64)
    r = 8
    for x, y in pts:
        x0, y0 = int(x) - r, int(y) - r
        yy, xx = np.mgrid[y0 : y0 + 2 * r + 1, x0 : x0 + 2 * r + 1]
        dark[y0 : y0 + 2 * r + 1, x0 : x0 + 2 * r + 1] += np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
    return np.repeat((255 - 200 * np.clip(dark, 0, 1))[..., None], 3, axis=2).round().astype(np.uint8)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("wrinkle_shift", [False, True])
def test_map_points_agrees_with_the_image_warp(seed: int, wrinkle_shift: bool, monkeypatch) -> None:
    """Ink at page point p appears at map_points(p), within 0.5 px, under every geometric damage."""
    h, w = 600, 800
    rng = np.random.default_rng(100 + seed)
    gx, gy = np.meshgrid(np.linspace(30, w - 30, 12), np.linspace(30, h - 30, 9))
    pts = np.stack([gx.ravel(), gy.ravel()], axis=1) + rng.uniform(-0.5, 0.5, (gx.size, 2))
    img = _dot_page(h, w, pts)
    blank = PageMasks(np.zeros((h, w), np.uint8), np.zeros((h, w), bool), np.zeros((h, w), bool))
    settings = GEOMETRIC
    if wrinkle_shift:  # the wrinkle displacement, without its shading (which would bias centroids)
        import ecgstudio.synth.damage as damage

        monkeypatch.setattr(damage, "_shade_creases", lambda *args, **kwargs: None)
        settings = DamageSettings(rotation=1.0, perspective=1.0, curl=1.0, crop=1.0, quarter_turn=1.0, wrinkles=1.0)
    out = apply_damage(img, blank, settings, np.random.default_rng(seed))
    assert out.warp.displacement  # curl (and creases) are really there
    q = out.warp.map_points(pts)
    lum = out.image.astype(np.float64).mean(axis=2)
    oh, ow = lum.shape
    errors = []
    r = 7
    for qx, qy in q:
        cx, cy = int(round(qx)), int(round(qy))
        if cx - r - 1 < 0 or cy - r - 1 < 0 or cx + r + 2 > ow or cy + r + 2 > oh:
            continue
        win = lum[cy - r : cy + r + 1, cx - r : cx + r + 1]
        rim = np.concatenate([win[0], win[-1], win[:, 0], win[:, -1]])
        if rim.min() < 250:  # the paper edge or a neighbouring dot is in the window
            continue
        d = np.clip(255.0 - win, 0.0, None)
        yy, xx = np.mgrid[cy - r : cy + r + 1, cx - r : cx + r + 1]
        errors.append(np.hypot((d * xx).sum() / d.sum() - qx, (d * yy).sum() / d.sum() - qy))
    errors = np.array(errors)
    assert len(errors) > 60
    assert errors.max() < 0.5, f"max {errors.max():.3f} px"
    assert errors.mean() < 0.15


def test_masks_stay_aligned_with_the_ink() -> None:
    img, masks = _page(thick=4)
    settings = DamageSettings(rotation=1.0, perspective=1.0, curl=1.0, crop=1.0, wrinkles=1.0, quarter_turn=1.0)
    for seed in range(3):
        out = apply_damage(img, masks, settings, np.random.default_rng(seed))
        lum = out.image.astype(np.float64).mean(axis=2)
        on_trace = lum[out.masks.trace > 0]
        assert on_trace.size > 0.5 * (masks.trace > 0).sum()
        assert np.mean(on_trace < 110) > 0.95
        assert set(np.unique(out.masks.trace)) <= {0, 1, 2, 3}
        assert np.median(lum[out.masks.grid]) > np.median(on_trace) + 80  # grid pixels are light pink


@pytest.mark.parametrize("k", [1, 2, 3])
def test_quarter_turns_map_corners_and_pixels_exactly(k: int) -> None:
    img, masks = _page()
    out = None
    for seed in range(200):
        candidate = apply_damage(img, masks, DamageSettings(quarter_turn=1.0), np.random.default_rng(seed))
        if candidate.warp.describe()["quarter_turns"] == k:
            out = candidate
            break
    assert out is not None
    np.testing.assert_array_equal(out.image, np.rot90(img, k))
    np.testing.assert_array_equal(out.masks.trace, np.rot90(masks.trace, k))
    np.testing.assert_array_equal(out.masks.grid, np.rot90(masks.grid, k))
    corners = np.array([[0.0, 0.0], [W - 1.0, 0.0], [W - 1.0, H - 1.0], [0.0, H - 1.0]])
    mapped = out.warp.map_points(corners)
    # numpy.rot90 turns counter-clockwise: after one turn the top-right corner is top-left
    expected = {
        1: [[0, W - 1], [0, 0], [H - 1, 0], [H - 1, W - 1]],
        2: [[W - 1, H - 1], [0, H - 1], [0, 0], [W - 1, 0]],
        3: [[H - 1, 0], [H - 1, W - 1], [0, W - 1], [0, 0]],
    }[k]
    np.testing.assert_allclose(mapped, expected, atol=1e-9)
    for (x, y), (qx, qy) in zip(corners.astype(int), np.round(mapped).astype(int)):
        np.testing.assert_array_equal(out.image[qy, qx], img[y, x])


def test_map_points_keeps_nan_rows_and_checks_shape() -> None:
    img, masks = _page()
    out = apply_damage(img, masks, GEOMETRIC, np.random.default_rng(5))
    pts = np.array([[10.0, 20.0], [np.nan, np.nan], [300.0, 200.0]])
    mapped = out.warp.map_points(pts)
    assert np.isnan(mapped[1]).all() and np.isfinite(mapped[[0, 2]]).all()
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        out.warp.map_points(np.zeros(4))
    assert isinstance(out.warp, Warp)


def test_photo_perspective_shows_a_desk_around_the_paper() -> None:
    img, masks = _page()
    out = apply_damage(img, masks, DamageSettings(perspective=1.0), np.random.default_rng(2))
    corners = np.array([[0.0, 0.0], [W - 1.0, 0.0], [W - 1.0, H - 1.0], [0.0, H - 1.0]])
    quad = out.warp.map_points(corners).astype(np.float32)
    inside = np.zeros(out.image.shape[:2], np.uint8)
    cv2.fillConvexPoly(inside, np.round(quad).astype(np.int32), 1)
    assert (inside == 0).mean() > 0.02  # some background is visible
    assert (out.masks.trace[inside == 0] == 0).all()
