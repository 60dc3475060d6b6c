"""The accuracy measure (metrics.py) and the benchmark runner (evaluate.py)."""

from __future__ import annotations

import csv
import math
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import wfdb

from ecgstudio.errors import LayoutError, SignalFormatError
from ecgstudio.evaluate import (
    evaluate,
    format_images,
    format_report,
    kind_of,
    layout_from_text,
    page_truth,
    pair_key,
    pair_record_ids,
    read_corrections,
    read_pairs,
    read_plotted_windows,
)
from ecgstudio.metrics import (
    LeadScore,
    RecordScore,
    aggregate,
    resample_to_grid,
    score_lead,
    score_record,
)
from ecgstudio.paper import LEAD_NAMES, get_layout
from ecgstudio.results import Signals


def _ecg_like(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A smooth ECG-like trace in mV at times ``t`` (s): P, QRS and T bumps plus baseline wander."""
    x = 0.1 * np.sin(2 * np.pi * 0.3 * t + rng.uniform(0, 6))
    beat = rng.uniform(0.1, 0.4)
    while beat < t[-1] + 1.0:
        for dt, width, amp in ((-0.16, 0.025, 0.12), (0.0, 0.012, 1.0), (0.03, 0.01, -0.25), (0.26, 0.05, 0.3)):
            x += amp * rng.uniform(0.8, 1.2) * np.exp(-0.5 * ((t - beat - dt) / width) ** 2)
        beat += rng.uniform(0.7, 0.95)
    return x


def _record(
    fs: float, rng: np.random.Generator, duration_s: float = 10.0, leads: tuple[str, ...] = LEAD_NAMES
) -> Signals:
    t = np.arange(int(round(duration_s * fs))) / fs
    return Signals(np.column_stack([_ecg_like(t, rng) for _ in leads]), fs, leads)


# --------------------------------------------------------------------------------------------
# score_lead


def test_identical_signals_score_above_80_db() -> None:
    rng = np.random.default_rng(0)
    ref = _ecg_like(np.arange(1250) / 500, rng)
    s = score_lead(ref, ref.copy(), 500)
    assert s.snr_db > 80
    assert s.snr_db == pytest.approx(100.0)  # capped, not inf
    assert s.pearson_r == pytest.approx(1.0)
    assert s.rmse_mv < 1e-9 and s.lag_s == 0 and s.n_samples == 1250


@pytest.mark.parametrize("level", [0.0, 3.0])
def test_flat_line_scores_0_db(level: float) -> None:
    rng = np.random.default_rng(1)
    ref = _ecg_like(np.arange(1250) / 500, rng)
    s = score_lead(ref, np.full_like(ref, level), 500)
    assert abs(s.snr_db) < 0.5
    assert s.pearson_r == 0.0
    assert s.offset_mv == pytest.approx(ref.mean() - level)


def test_all_nan_prediction_scores_0_db() -> None:
    rng = np.random.default_rng(2)
    ref = _ecg_like(np.arange(1000) / 100, rng)
    s = score_lead(ref, np.full_like(ref, np.nan), 100)
    assert abs(s.snr_db) < 0.5
    assert s.lag_s == 0.0


def test_shift_within_search_is_recovered() -> None:
    fs = 500
    rng = np.random.default_rng(3)
    full = _ecg_like(np.arange(5000) / fs, rng)
    late = np.concatenate([np.full(50, np.nan), full[:-50]])  # the estimate lags by 0.1 s
    window = slice(1250, 2500)
    s = score_lead(full[window], late[window], fs)
    assert s.lag_s == pytest.approx(0.1)
    assert s.snr_db > 80
    early = np.concatenate([full[50:], np.full(50, np.nan)])
    assert score_lead(full[window], early[window], fs).lag_s == pytest.approx(-0.1)


def test_shift_beyond_search_is_not_recovered() -> None:
    fs = 500
    rng = np.random.default_rng(4)
    full = _ecg_like(np.arange(5000) / fs, rng)
    late = np.concatenate([np.zeros(150), full[:-150]])  # 0.3 s, beyond the 0.2 s search
    s = score_lead(full[1250:2500], late[1250:2500], fs)
    assert abs(s.lag_s) <= 0.2 + 1e-12
    assert s.snr_db < 20
    # allowing a wider search recovers it
    assert score_lead(full[1250:2500], late[1250:2500], fs, max_lag_s=0.35).snr_db > 80


def test_constant_offset_is_recovered() -> None:
    rng = np.random.default_rng(5)
    ref = _ecg_like(np.arange(1250) / 500, rng)
    s = score_lead(ref, ref + 0.37, 500)
    assert s.offset_mv == pytest.approx(-0.37)  # the offset added to the estimate: mean(ref - est)
    assert s.snr_db > 80


def test_known_noise_gives_expected_snr() -> None:
    fs = 500
    rng = np.random.default_rng(6)
    ref = _ecg_like(np.arange(5000) / fs, rng)
    ref_power = np.mean((ref - ref.mean()) ** 2)
    for expected_db in (5.0, 20.0):
        sigma = math.sqrt(ref_power / 10 ** (expected_db / 10))
        s = score_lead(ref, ref + rng.normal(0.0, sigma, ref.size), fs)
        assert s.snr_db == pytest.approx(expected_db, abs=0.3)
        assert s.lag_s == 0.0
        assert s.rmse_mv == pytest.approx(sigma, rel=0.05)


def test_half_missing_scores_between_flat_and_perfect() -> None:
    rng = np.random.default_rng(7)
    ref = _ecg_like(np.arange(1250) / 500, rng)
    est = ref.copy()
    est[625:] = np.nan
    s = score_lead(ref, est, 500)
    assert 1.0 < s.snr_db < 20.0
    assert 0.0 < s.pearson_r < 1.0


def test_nan_reference_samples_are_excluded() -> None:
    rng = np.random.default_rng(8)
    ref = _ecg_like(np.arange(1250) / 500, rng)
    est = ref.copy()
    ref_gappy = ref.copy()
    ref_gappy[100:300] = np.nan
    est[100:300] = 99.0  # garbage where the truth is unknown does not count
    s = score_lead(ref_gappy, est, 500)
    assert s.snr_db > 80
    assert s.n_samples == 1050


def test_score_lead_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        score_lead(np.zeros(10), np.zeros(11), 100)
    with pytest.raises(ValueError):
        score_lead(np.full(10, np.nan), np.zeros(10), 100)
    with pytest.raises(ValueError):
        score_lead(np.zeros(10), np.zeros(10), 0)


# --------------------------------------------------------------------------------------------
# resampling and records


@pytest.mark.parametrize("truth_fs, pred_fs", [(100, 500), (500, 100), (100, 333.3), (500, 360), (250, 1000)])
def test_prediction_at_another_rate_is_resampled(truth_fs: float, pred_fs: float) -> None:
    rng = np.random.default_rng(9)
    freqs = rng.uniform(0.5, 12.0, 6)
    phases = rng.uniform(0, 2 * np.pi, 6)

    def f(t: np.ndarray) -> np.ndarray:
        return (np.sin(2 * np.pi * freqs[:, None] * t + phases[:, None]) / (1 + freqs[:, None] / 4)).sum(0)

    t_truth = np.arange(int(10 * truth_fs)) / truth_fs
    t_pred = np.arange(int(10 * pred_fs)) / pred_fs
    truth = Signals(f(t_truth)[:, None], truth_fs, ("II",))
    pred = Signals(f(t_pred)[:, None], pred_fs, ("II",))
    score = score_record(truth, pred)
    assert score.leads["II"].snr_db > 30
    assert score.leads["II"].lag_s == 0.0


def test_resampling_keeps_gaps_in_place() -> None:
    fs_in, fs_out = 500, 100
    t = np.arange(5000) / fs_in
    x = np.sin(2 * np.pi * 1.0 * t)
    x[1000:1500] = np.nan  # 2.0-3.0 s missing
    y = resample_to_grid(x, fs_in, fs_out)
    assert y.shape == (1000,)
    gone = np.nonzero(np.isnan(y))[0]
    assert gone[0] == 200 and gone[-1] == 299 and gone.size == 100
    ok = ~np.isnan(y)
    np.testing.assert_allclose(y[ok][10:-10], np.sin(2 * np.pi * np.arange(1000)[ok][10:-10] / fs_out), atol=0.01)
    assert np.isnan(resample_to_grid(np.full((50, 2), np.nan), 500, 100)).all()


def test_layout_windows_restrict_the_score() -> None:
    rng = np.random.default_rng(10)
    truth = _record(500, rng)
    layout = get_layout("3x4+1")
    pred_mv = rng.normal(0.0, 2.0, truth.mv.shape)  # garbage everywhere...
    for j, lead in enumerate(truth.lead_names):
        t0, t1 = layout.plotted_window_s(lead)
        i0, i1 = int(t0 * 500), int(t1 * 500)
        pred_mv[i0:i1, j] = truth.mv[i0:i1, j]  # ...except where the lead is plotted
    pred = Signals(pred_mv, 500, truth.lead_names)

    on_page = score_record(truth, pred, layout=layout)
    assert set(on_page.leads) == set(LEAD_NAMES)
    assert all(s.snr_db > 80 for s in on_page.leads.values())
    assert on_page.leads["II"].n_samples == 5000  # the rhythm strip wins over the short cell
    assert on_page.leads["V1"].n_samples == 1250
    assert on_page.image_snr_db > 80

    whole = score_record(truth, pred)
    assert whole.mean_snr_db < 10

    only = score_record(truth, pred, windows={"aVL": (2.5, 5.0), "V6": (7.5, 10.0)})
    assert list(only.leads) == ["aVL", "V6"]
    assert all(s.snr_db > 80 for s in only.leads.values())


def test_missing_and_unshown_leads() -> None:
    rng = np.random.default_rng(11)
    truth = _record(250, rng)
    keep = [n for n in LEAD_NAMES if n != "V5"]
    pred = Signals(truth.mv[:, [LEAD_NAMES.index(n) for n in keep]], 250, tuple(keep))
    score = score_record(truth, pred, layout=get_layout("2x1"))
    assert list(score.leads) == ["II", "V5"]  # leads the layout does not show are skipped
    assert score.leads["II"].snr_db > 80
    assert abs(score.leads["V5"].snr_db) < 0.5  # a lead missing from the prediction is a flat line

    # lead names are matched in any common spelling; a short prediction is flat where it ends
    mixed = Signals(truth.mv[:1250], 250, tuple(n.upper() if n.startswith("aV") else n for n in LEAD_NAMES))
    short = score_record(truth, mixed, layout=get_layout("3x4+1"))
    assert short.leads["aVR"].snr_db > 80  # plotted 2.5-5 s, inside the 5 s given
    assert abs(short.leads["V6"].snr_db) < 0.5  # plotted 7.5-10 s, nothing given
    assert 0.5 < short.leads["II"].snr_db < 20  # rhythm strip half given

    with pytest.raises(LayoutError):
        score_record(truth, pred, windows={"X": (0.0, 1.0)})


def _lead(snr_db: float) -> LeadScore:
    sp = 100.0
    return LeadScore(snr_db, 0.9, 0.1, 0.0, 0.0, sp, sp / 10 ** (snr_db / 10), 1000)


def test_aggregates_differ_in_the_expected_direction() -> None:
    good = RecordScore({"I": _lead(40.0), "II": _lead(40.0)})
    bad = RecordScore({"I": _lead(0.0), "II": _lead(0.0)})
    assert good.image_snr_db == pytest.approx(40.0)
    summary = aggregate([good, bad])
    assert summary.n_records == 2 and summary.n_leads == 4
    assert summary.mean_snr_db == pytest.approx(20.0)
    # linear averaging over images is dominated by the best image: 10 log10((1e4 + 1) / 2)
    assert summary.image_linear_snr_db == pytest.approx(10 * math.log10((1e4 + 1) / 2))
    assert summary.image_linear_snr_db > summary.mean_snr_db
    assert math.isnan(aggregate([]).mean_snr_db)


# --------------------------------------------------------------------------------------------
# evaluate: text rules


def test_kind_of_rules() -> None:
    assert kind_of("real B&W scan of printed ecg-image-kit image") == "real scan"
    assert kind_of("phone photo of paper, creased") == "real scan"
    assert kind_of("synthetic source of the real scan") == "clean render"
    assert kind_of("synthetic, downscaled, lead boxes drawn") == "clean render"
    assert kind_of("synthetic + wrinkles + rotation") == "damaged render"
    assert kind_of("synthetic (Challenge-2024), coloured grid, handwritten text") == "damaged render"
    assert kind_of("") == "other"


def test_layout_from_text() -> None:
    assert layout_from_text("3x4+II rhythm").name == "3x4+1"
    assert layout_from_text("3x4 + 1").name == "3x4+1"
    assert layout_from_text("3x4+V1,II,V5").name == "3x4+3"
    assert layout_from_text("2x1 (2 rows, full 10 s)").name == "2x1"
    assert layout_from_text("cabrera 6x2").name == "cabrera-6x2"
    assert layout_from_text("6x2+1").name == "6x2+1"
    assert layout_from_text("3x4+V1 rhythm") is None  # 3x4+1's strip is lead II
    assert layout_from_text("4x3 Cabrera with arrows") is None
    assert layout_from_text("") is None


def test_pair_key() -> None:
    assert pair_key("a/b/c/00001_lr-0.png") == "a__b__c__00001_lr-0"
    assert pair_key("./a\\b/x.y.png") == "a__b__x.y"


def _write_record(path_dir: Path, name: str, sig: Signals) -> None:
    wfdb.wrsamp(
        name,
        fs=sig.fs,
        units=["mV"] * len(sig.lead_names),
        sig_name=list(sig.lead_names),
        p_signal=sig.mv,
        fmt=["32"] * len(sig.lead_names),
        write_dir=str(path_dir),
    )


def test_evaluate_finds_predictions_by_key_then_unique_stem(tmp_path: Path) -> None:
    rng = np.random.default_rng(12)
    truth = _record(100, rng)
    (tmp_path / "gt").mkdir()
    _write_record(tmp_path / "gt", "rec", truth)
    rows = [
        ("x/page-0.png", "synthetic, clean"),
        ("y/page-0.png", "synthetic + creases"),
        ("z/solo-0.png", "real scan of a print"),
        ("w/odd.png", "synthetic"),
        ("v/bad.png", "synthetic"),
    ]
    table = tmp_path / "pairs.csv"
    with open(table, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "ground_truth", "gt_fs_hz", "also_available", "image_kind", "layout", "extra_annotations"])
        for image, text in rows:
            layout = "mystery layout" if image == "w/odd.png" else "3x4+II rhythm"
            w.writerow([image, "gt/rec", 100, "", text, layout, ""])
    pred = tmp_path / "pred"
    pred.mkdir()
    _write_record(pred, "x__page-0", truth)  # by key
    _write_record(pred, "page-0", truth)  # ambiguous stem: must not be used for y/page-0.png
    _write_record(pred, "solo-0", truth)  # unique stem: used
    (pred / "v__bad.hea").write_text("this is not a WFDB header\n")
    report = evaluate(pred, table)
    status = {r.image: r.status for r in report.images}
    assert status == {
        "x/page-0.png": "ok",
        "y/page-0.png": "missing",
        "z/solo-0.png": "ok",
        "w/odd.png": "missing",
        "v/bad.png": "unreadable",
    }
    assert report.missing == ("y/page-0.png", "w/odd.png")
    assert report.unreadable == ("v/bad.png",) and report.n_missing() == 3
    by_image = {r.image: r for r in report.images}
    assert by_image["x/page-0.png"].score.image_snr_db > 80
    assert abs(by_image["y/page-0.png"].score.mean_snr_db) < 0.5
    assert by_image["w/odd.png"].windows_from == "whole page"
    assert by_image["w/odd.png"].score.leads["V1"].n_samples == 1000
    assert set(report.by_kind()) == {"clean render", "damaged render", "real scan"}
    text = format_report(report, per_image=True)
    assert "all" in text and "missing predictions (2)" in text and "unreadable predictions (1)" in text
    assert "z/solo-0.png" in text
    assert format_images(report).count("\n") == 1 + len(rows)


def _one_page_table(tmp_path: Path, truth: Signals) -> Path:
    (tmp_path / "gt").mkdir()
    _write_record(tmp_path / "gt", "rec", truth)
    table = tmp_path / "pairs.csv"
    table.write_text(
        'image,ground_truth,gt_fs_hz,image_kind,layout\na/page-0.png,gt/rec,100,"synthetic, clean",3x4+II rhythm\n'
    )
    return table


def test_page_printing_every_column_from_zero_is_scored_there_once_corrected(tmp_path: Path) -> None:
    truth = _record(100, np.random.default_rng(5))
    table = _one_page_table(tmp_path, truth)
    # What such a page gives: every short lead over 0-2.5 s, lead II over 10 s.
    shown = np.full(truth.mv.shape, np.nan)
    shown[:250] = truth.mv[:250]
    shown[:, LEAD_NAMES.index("II")] = truth.mv[:, LEAD_NAMES.index("II")]
    (tmp_path / "pred").mkdir()
    _write_record(tmp_path / "pred", "a__page-0", Signals(shown, 100, truth.lead_names))

    stated = evaluate(tmp_path / "pred", table).images[0]
    assert stated.windows_from == "layout 3x4+1"
    assert stated.score.leads["V4"].snr_db < 0.5 and stated.score.leads["I"].snr_db > 80

    fixes = tmp_path / "fixes.csv"
    fixes.write_text("image,columns,reason\na/page-0.png,from-zero,beats at the same places in every column\n")
    corrected = evaluate(tmp_path / "pred", table, corrections=fixes).images[0]
    assert corrected.windows_from == "layout 3x4+1 from 0 s"
    assert min(lead.snr_db for lead in corrected.score.leads.values()) > 80
    assert corrected.score.leads["II"].n_samples == 1000 and corrected.score.leads["V4"].n_samples == 250


@pytest.mark.parametrize(
    "text, message",
    [
        ("image,columns,reason\na/page-0.png,from-zero,\n", "say why"),
        ("image,columns\na/page-0.png,from-zero\n", "lacks column(s) reason"),
        ("image,columns,reason\nb/other-0.png,from-zero,seen\n", "does not list: b/other-0.png"),
        ("image,columns,reason\na/page-0.png,backwards,seen\n", "columns 'backwards' is not one of"),
    ],
)
def test_corrections_that_cannot_be_applied_say_why(tmp_path: Path, text: str, message: str) -> None:
    table = _one_page_table(tmp_path, _record(100, np.random.default_rng(6)))
    fixes = tmp_path / "fixes.csv"
    fixes.write_text(text)
    with pytest.raises(SignalFormatError, match=re.escape(message)):
        read_pairs(table, corrections=fixes)


def test_shipped_corrections_apply_to_the_shared_table(shared_data: Path) -> None:
    fixes = Path(__file__).resolve().parents[2] / "benchmarks" / "pairs_corrections.csv"
    pairs = read_pairs(shared_data / "pairs.csv", corrections=fixes)
    assert sum(p.columns == "from-zero" for p in pairs) == len(read_corrections(fixes)) == 17


# --------------------------------------------------------------------------------------------
# evaluate: the real data


def test_kind_of_every_row_of_pairs_csv(shared_data: Path) -> None:
    pairs = read_pairs(shared_data / "pairs.csv")
    kinds = Counter(p.kind for p in pairs)
    assert kinds == {"real scan": 4, "clean render": 36, "damaged render": 13}
    for p in pairs:
        text = p.image_kind.lower()
        if p.kind == "real scan":
            assert text.startswith("real")
        elif any(w in text for w in ("wrinkl", "crease", "handwrit", "rotat", "distort")):
            assert p.kind == "damaged render", p.image
        else:
            assert p.kind == "clean render", p.image
        assert layout_from_text(p.layout_text) is not None, p.layout_text


def test_record_ids_of_the_pairs_kept_out_of_training(shared_data: Path) -> None:
    ids = pair_record_ids(shared_data / "pairs.csv")
    assert len(ids) == 53
    # one id per page, as the records' own file names start: PTB-XL numbers and named records
    assert {"00001", "01612", "10173", "JS00001", "sel100"} <= set(ids)
    assert all(p.ground_truth.name.startswith(i) for p, i in zip(read_pairs(shared_data / "pairs.csv"), ids))
    assert pair_record_ids(None) == []


def test_ecg_image_kit_json_windows(shared_data: Path) -> None:
    w = read_plotted_windows(shared_data / "sara-es-PhysionetChallenge2024/tiny_testset/hr_gt/00841_hr-0.json")
    assert w is not None and set(w) == set(LEAD_NAMES)
    assert w["II"] == (0.0, 10.0) and w["aVR"] == (2.5, 5.0) and w["V6"] == (7.5, 10.0)
    assert read_plotted_windows(shared_data / "wenh06-cinc2024/test_files/00005_hr-0.json.gz")["V1"] == (5.0, 7.5)
    # some JSONs only point at other files: no windows
    pointer_only = "sara-es-PhysionetChallenge2024/tiny_testset/lr_gt_refpulse/01017_lr-0.json"
    assert read_plotted_windows(shared_data / pointer_only) is None


def test_long_record_pages_are_cut_to_their_segment(shared_data: Path) -> None:
    pairs = {p.image.rsplit("/", 1)[-1]: p for p in read_pairs(shared_data / "pairs.csv")}
    record = wfdb.rdrecord(str(shared_data / "ecg-image-kit/SampleData/QT_data/sel100"))
    page = page_truth(pairs["sel100-10.png"])
    assert page.lead_names == ("II", "V5") and page.fs == 250 and page.n_samples == 2500
    np.testing.assert_array_equal(page.mv, record.p_signal[25000:27500])


def test_evaluate_real_data(shared_data: Path, tmp_path: Path) -> None:
    table = shared_data / "pairs.csv"
    pairs = read_pairs(table)
    empty = evaluate(tmp_path, table)
    assert len(empty.missing) == len(pairs) == empty.n_missing()
    assert abs(empty.summary().mean_snr_db) < 0.5
    assert abs(empty.summary().image_linear_snr_db) < 0.5

    pred = tmp_path / "pred"
    pred.mkdir()
    for p in pairs:
        _write_record(pred, p.key, page_truth(p))
    report = evaluate(pred, table)
    assert report.n_missing() == 0
    kinds = report.by_kind()
    assert set(kinds) == {"real scan", "clean render", "damaged render"}
    for kind, s in kinds.items():
        assert s.mean_snr_db > 80, kind
        assert s.image_linear_snr_db > 80, kind
    sel = [r for r in report.images if "sel100" in r.image]
    assert sel and all(set(r.score.leads) == {"II", "V5"} for r in sel)
    assert all(r.score.n_leads == 12 for r in report.images if "sel100" not in r.image)
