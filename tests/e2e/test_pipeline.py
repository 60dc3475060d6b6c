"""The digitizing engine end to end, with the shipped model: pages in, calibrated signals out."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from ecgstudio.cli import main
from ecgstudio.errors import ImageSizeError, ModelError, NotAnEcgError, UnreadableImageError
from ecgstudio.io.images import read_image
from ecgstudio.io.signals import read_signals
from ecgstudio.metrics import score_record
from ecgstudio.model.weights import DEFAULT_MODEL, load_model
from ecgstudio.paper import LEAD_NAMES, get_layout
from ecgstudio.pipeline import DigitizeOptions
from ecgstudio.synth.damage import DamageSettings
from ecgstudio.synth.render import PageStyle, render_page

SAMPLE = Path(__file__).resolve().parents[2] / "resources" / "sample_scan.jpg"
SAMPLE_TRUTH = SAMPLE.with_name("sample_scan_truth")


@pytest.fixture(scope="module")
def sample_result(digitizer):
    return digitizer.digitize(read_image(SAMPLE))


def test_sample_scan_gives_twelve_calibrated_leads(sample_result) -> None:
    r = sample_result
    assert r.layout == "3x4+1"
    assert len(r.boxes) == 13 and len(r.traces) == 13
    assert r.signals.lead_names == LEAD_NAMES
    assert r.signals.fs == 500 and r.signals.mv.shape == (5000, 12)
    # The page is a 279.4 mm letter page scanned at 2038 px: about 7.3 px/mm.
    assert r.calibration.px_per_mm_x == pytest.approx(2038 / 279.4, rel=0.02)
    assert r.calibration.mm_per_s == 25 and r.calibration.mm_per_mv == 10
    # Lead II comes from the rhythm strip: all 10 s.
    assert np.isfinite(r.signals.lead("II")).mean() > 0.9
    # Short leads only where the layout plots them.
    v1 = r.signals.lead("V1")
    t = r.signals.time_s()
    assert np.isnan(v1[t < 4.9]).all() and np.isfinite(v1[(t > 5.1) & (t < 7.4)]).mean() > 0.9
    assert set(r.confidence) == set(LEAD_NAMES)
    assert r.model_version and r.timings_s["segmentation"] > 0


def test_sample_scan_matches_its_ground_truth(sample_result) -> None:
    score = score_record(read_signals(SAMPLE_TRUTH), sample_result.signals, layout=get_layout("3x4+1"))
    # The shipped model measures 10.7 dB here (r 0.95); this guards against regressions.
    assert score.mean_snr_db > 9.0
    assert score.mean_pearson_r > 0.9


def test_boxes_and_traces_are_in_scan_coordinates(sample_result) -> None:
    image = read_image(SAMPLE)
    h, w = image.shape[:2]
    dark = image.min(axis=2) < 150
    for box, trace in zip(sample_result.boxes, sample_result.traces):
        assert 0 <= box.x0 < box.x1 <= w and 0 <= box.y0 < box.y1 <= h
        pts = trace.xy[np.isfinite(trace.xy).all(axis=1)]
        ys, xs = np.round(pts[:, 1]).astype(int), np.round(pts[:, 0]).astype(int)
        near_ink = np.zeros(len(pts), bool)
        for dy in range(-2, 3):
            near_ink |= dark[np.clip(ys + dy, 0, h - 1), np.clip(xs, 0, w - 1)]
        assert near_ink.mean() > 0.85, box.lead


def test_rendered_page_round_trip(digitizer) -> None:
    page = render_page(
        style=PageStyle(layout="3x4+1", dpi=200, grid_color="pink"),
        seed=21,
        damage=DamageSettings(rotation=0.3, blur=0.3, noise=0.3, jpeg=0.3),
    )
    result = digitizer.digitize(page.image)
    assert result.layout == "3x4+1"
    score = score_record(page.signals, result.signals, layout=page.layout)
    assert score.mean_snr_db > 8.0


def test_layout_and_gain_overrides(digitizer) -> None:
    page = render_page(style=PageStyle(layout="6x2", dpi=150, mm_per_mv=20, pulse="none"), seed=5)
    result = digitizer.digitize(page.image, DigitizeOptions(layout="6x2", mm_per_mv=20, fs=250))
    assert result.layout == "6x2" and result.calibration.mm_per_mv == 20
    assert result.signals.fs == 250
    score = score_record(page.signals, result.signals, layout=page.layout)
    assert score.mean_pearson_r > 0.7


@pytest.fixture(scope="module")
def cabrera_page():
    return render_page(style=PageStyle(layout="cabrera-6x2", dpi=150, lead_labels=False), seed=3)


def test_a_cabrera_page_without_names_is_read_in_its_order_by_its_limb_leads(digitizer, cabrera_page) -> None:
    result = digitizer.digitize(cabrera_page.image)
    assert result.layout == "cabrera-6x2"
    assert score_record(cabrera_page.signals, result.signals, layout=cabrera_page.layout).mean_snr_db > 11.0


def test_a_page_taken_for_upside_down_is_turned_back_by_its_traces(digitizer, monkeypatch) -> None:
    """The printed text and trace polarity can vote wrongly; the traces' time direction (T waves
    follow QRS complexes) turns the page back."""
    import ecgstudio.pipeline as pipeline

    page = render_page(style=PageStyle(layout="3x4+1", dpi=150, lead_labels=False, header=False), seed=6)
    upright = digitizer.digitize(page.image)
    real_rectify = pipeline.rectify

    def wrong_way_up(image, turn=None, **kwargs):
        return real_rectify(image, turn=180 if turn is None else turn, **kwargs)

    monkeypatch.setattr(pipeline, "rectify", wrong_way_up)
    result = digitizer.digitize(page.image)
    assert score_record(page.signals, result.signals, layout=page.layout).mean_snr_db == pytest.approx(
        score_record(page.signals, upright.signals, layout=page.layout).mean_snr_db, abs=0.5
    )
    assert [b.y0 for b in result.boxes] == pytest.approx([b.y0 for b in upright.boxes], abs=2)


def test_a_70_dpi_page_takes_its_gain_from_its_calibration_pulses(digitizer) -> None:
    page = render_page(style=PageStyle(layout="3x4+1", dpi=70, mm_per_mv=20, header=False), seed=7)
    result = digitizer.digitize(page.image)
    assert result.calibration.mm_per_mv == 20
    assert not any(a.what == "gain" for a in result.assumptions)


def test_blank_page_is_not_an_ecg(digitizer) -> None:
    with pytest.raises(NotAnEcgError, match="^no ECG found"):
        digitizer.digitize(np.full((1200, 1600, 3), 250, np.uint8))


def test_photo_of_something_else_is_not_an_ecg(digitizer) -> None:
    rng = np.random.default_rng(0)
    # Smooth blobs of colour, like a photo of a room: no grid, no traces.
    small = rng.integers(0, 255, (12, 16, 3)).astype(np.uint8)
    photo = cv2.resize(small, (1600, 1200), interpolation=cv2.INTER_CUBIC)
    with pytest.raises(NotAnEcgError, match="^no ECG found"):
        digitizer.digitize(photo)


def test_a_logo_is_not_an_ecg(digitizer) -> None:
    """A drawing of lines, a ring and letters (a logo, a letterhead) once got leads and a label."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (1200, 800), "white")
    draw = ImageDraw.Draw(img)
    draw.ellipse((300, 150, 900, 650), outline=(20, 60, 160), width=18)
    draw.line((200, 400, 1000, 400), fill=(200, 30, 30), width=12)
    draw.polygon([(600, 200), (700, 500), (500, 500)], outline=(0, 0, 0), width=10)
    for k in range(5):
        draw.text((100, 100 + 120 * k), "ACME HEALTH " * 3, fill=(0, 0, 0))
    with pytest.raises(NotAnEcgError, match="no clear ECG grid and its marks do not look like ECG traces"):
        digitizer.digitize(np.asarray(img))


def test_a_gridless_ecg_is_still_an_ecg(digitizer) -> None:
    page = render_page(style=PageStyle(layout="3x4+1", dpi=150, grid_color="none"), seed=8)
    result = digitizer.digitize(page.image)
    assert max(result.confidence.values()) > 0.5 and len(result.boxes) == 13


def test_a_gridless_a4_page_takes_its_scale_from_its_traces_width(digitizer) -> None:
    """Without a grid the whole-letter-page guess is 6 % off on A4 paper; the traces' width (250
    mm) gives the scale, and the page says where it came from."""
    page = render_page(style=PageStyle(layout="3x4+1", dpi=180, grid_color="none", paper="a4"), seed=8)
    result = digitizer.digitize(page.image)
    truth = page.calibration.px_per_mm_x
    assert result.calibration.px_per_mm_x == pytest.approx(truth, rel=0.015)
    assert any("traces' width" in a.text for a in result.assumptions if a.what == "scale")
    assert score_record(page.signals, result.signals, layout=page.layout).mean_snr_db > 10.0


@pytest.mark.parametrize("seed", [4, 6])
def test_twelve_rows_whose_beats_line_up_are_read_upright(digitizer, seed: int) -> None:
    """On a 12x1 page the beats of all twelve rows line up down the page, banding its columns as
    much as the rows band its height; the ink alone takes these pages for sideways, and the
    trace network turns them back."""
    page = render_page(style=PageStyle(layout="12x1", dpi=150, grid_color="pink"), seed=seed)
    result = digitizer.digitize(page.image)
    assert result.layout == "12x1"
    assert score_record(page.signals, result.signals, layout=page.layout).mean_snr_db > 5.0  # sideways: about 0


def test_an_upside_down_page_whose_ink_says_nothing_is_turned_by_its_lead_names(digitizer) -> None:
    """No header text to vote, and traces whose waves point up as often as down: the page comes
    back upside down from the ink alone; its lead names read only the right way up."""
    page = render_page(style=PageStyle(layout="3x4+1", dpi=150, header=False), seed=2)
    result = digitizer.digitize(np.ascontiguousarray(np.rot90(page.image, 2)))
    assert result.layout == "3x4+1"
    assert score_record(page.signals, result.signals, layout=page.layout).mean_snr_db > 12.0


def test_tiny_image_is_refused(digitizer) -> None:
    with pytest.raises(ImageSizeError, match="too small"):
        digitizer.digitize(np.full((60, 80, 3), 255, np.uint8))


@pytest.mark.slow
def test_fifty_megapixel_scan_is_digitized(digitizer) -> None:
    page = render_page(style=PageStyle(layout="3x4+1", dpi=200), seed=2)
    huge = cv2.resize(page.image, None, fx=3.7, fy=3.7, interpolation=cv2.INTER_LINEAR)
    assert huge.shape[0] * huge.shape[1] > 48e6
    result = digitizer.digitize(huge)
    assert result.image_size == huge.shape[:2]
    assert result.calibration.px_per_mm_x == pytest.approx(200 / 25.4 * 3.7, rel=0.02)


def test_corrupt_weights_are_refused(tmp_path) -> None:
    weights = tmp_path / "model.pt"
    shutil.copy(DEFAULT_MODEL, weights)
    shutil.copy(DEFAULT_MODEL.with_suffix(".json"), weights.with_suffix(".json"))
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="does not match its card"):
        load_model(weights)
    with pytest.raises(ModelError, match="not found"):
        load_model(tmp_path / "missing.pt")


def test_cli_digitizes_files_and_folders_and_reports_failures(tmp_path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(SAMPLE, inputs / "scan.jpg")
    (inputs / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    page = render_page(style=PageStyle(layout="3x4+1", dpi=150), seed=4)
    pdf = inputs / "two.pdf"
    pil = Image.fromarray(page.image)
    pil.save(pdf, save_all=True, append_images=[pil], resolution=150)
    out = tmp_path / "out"
    code = main(["digitize", str(inputs), "--out", str(out), "--format", "wfdb,csv,json", "--overlay", "-q"])
    assert code == 1  # one file failed, the rest went on
    for stem in ("scan", "two_p1", "two_p2"):
        assert (out / f"{stem}.hea").is_file() and (out / f"{stem}.dat").is_file()
        assert (out / f"{stem}.csv").is_file() and (out / f"{stem}.json").is_file()
        assert (out / f"{stem}_overlay.png").is_file()
    signals = read_signals(out / "scan.hea")
    assert signals.lead_names == LEAD_NAMES and signals.fs == 500
    assert not (out / "broken.hea").exists()


def test_cli_explains_an_unreadable_file(tmp_path, capsys) -> None:
    bad = tmp_path / "truncated.jpg"
    bad.write_bytes(SAMPLE.read_bytes()[:2000])
    assert main(["digitize", str(bad), "--out", str(tmp_path / "o"), "-q"]) == 1
    err = capsys.readouterr().err
    assert "truncated" in err and "Traceback" not in err


def test_unreadable_image_error_names_the_file(tmp_path) -> None:
    bad = tmp_path / "empty.png"
    bad.write_bytes(b"")
    with pytest.raises(UnreadableImageError, match="empty.png"):
        read_image(bad)


@pytest.mark.shared
def test_real_pages_that_start_every_column_at_zero_are_read_that_way(digitizer, shared_data) -> None:
    """A MINSMoody render prints every column from 0 s; a tiny_testset render of the same kind of
    record prints consecutive windows.  The engine tells them apart from the rhythm strip."""
    zero = digitizer.digitize(
        read_image(shared_data / "MINSMoody-python-example-2024/TeamCode/tests/resources/example_data/00003_lr-0.png")
    )
    standard = digitizer.digitize(
        read_image(shared_data / "sara-es-PhysionetChallenge2024/tiny_testset/lr_gt/03403_lr-0.png")
    )
    assert {b.t_start_s for b in zero.boxes} == {0.0}
    assert sorted({b.t_start_s for b in standard.boxes}) == [0.0, 2.5, 5.0, 7.5]


def _exact_analysis(dpi: float, seed: int, *, extra_line_mm: float | None = None):
    """A page rendered at ``dpi``, its exact trace map (optionally with a ruled line the network
    might half believe, ``extra_line_mm`` above the first row), and the page itself."""
    from ecgstudio.training.data import trace_heatmap

    page = render_page(style=PageStyle(layout="3x4+1", dpi=dpi, pulse="none"), seed=seed)
    prob = trace_heatmap(page.traces, page.image.shape[:2])
    if extra_line_mm is not None:
        y = int(round(page.boxes[0].baseline_y - extra_line_mm * page.calibration.px_per_mm_y))
        prob[y - 1 : y + 2] = 1.0
    return page, prob, page.masks.text.astype(np.float32)


def test_a_page_read_again_from_finer_maps_keeps_its_layout_and_gains_detail() -> None:
    from ecgstudio.config import SegmentationConfig
    from ecgstudio.model.net import CANONICAL_PX_PER_MM

    FINE_PX_PER_MM = SegmentationConfig.fine_px_per_mm
    from ecgstudio.pipeline import analyse_maps, retrace

    coarse, prob, text = _exact_analysis(25.4 * CANONICAL_PX_PER_MM, 8)
    first = analyse_maps(prob, text, coarse.image, DigitizeOptions(mm_per_s=25.0, mm_per_mv=10.0))
    # the same page (same seed: same record, margins and rows) at the finer scale, with a ruled
    # line across the page that the finer maps take for trace
    fine, fine_prob, fine_text = _exact_analysis(25.4 * FINE_PX_PER_MM, 8, extra_line_mm=6.0)
    k = FINE_PX_PER_MM / CANONICAL_PX_PER_MM
    again = retrace(first, fine_prob, fine_text, fine.image, scale=k, fs=500.0)
    assert [(b.lead, b.row, b.col, b.t_start_s) for b in again.boxes] == [
        (b.lead, b.row, b.col, b.t_start_s) for b in first.boxes
    ]
    assert again.calibration.px_per_mm_x == pytest.approx(FINE_PX_PER_MM)
    truth = {(b.row, b.col): b for b in fine.boxes}
    for box, was in zip(again.boxes, first.boxes):
        # the time axis carried over (pixel centres kept by the resampling), and on the page
        assert box.x0 == pytest.approx((was.x0 + 0.5) * k - 0.5)
        assert box.x0 == pytest.approx(truth[(box.row, box.col)].x0, abs=0.3 * FINE_PX_PER_MM)
        assert box.baseline_y == pytest.approx(truth[(box.row, box.col)].baseline_y, abs=1.5 * FINE_PX_PER_MM)
    before = score_record(coarse.signals, first.signals, layout=coarse.layout).mean_snr_db
    after = score_record(fine.signals, again.signals, layout=fine.layout)
    assert after.mean_snr_db > before - 0.5, (before, after.mean_snr_db)
    assert min(s.snr_db for s in after.leads.values()) > 10  # the ruled line was not followed


def test_pages_finer_than_the_canonical_scale_are_traced_again(digitizer) -> None:
    fine = render_page(style=PageStyle(layout="3x4+1", dpi=200), seed=9)
    coarse = render_page(style=PageStyle(layout="3x4+1", dpi=150), seed=9)
    assert "fine tracing" in digitizer.digitize(fine.image).timings_s
    assert "fine tracing" not in digitizer.digitize(coarse.image).timings_s
