"""Readers and writers of ``ecgstudio.io``: image formats, signal formats, round trips, bad files."""

from __future__ import annotations

import csv
import hashlib
import json
import types
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from PIL import Image

from ecgstudio import __version__
from ecgstudio.errors import ImageSizeError, SignalFormatError, UnreadableImageError
from ecgstudio.io import (
    SUPPORTED_SUFFIXES,
    Page,
    collect_inputs,
    file_sha256,
    iter_pages,
    read_edf,
    read_image,
    read_pages,
    read_signals,
    write_csv,
    write_edf,
    write_json_sidecar,
    write_signals,
    write_wfdb,
)
from ecgstudio.paper import LEAD_NAMES, lead_index
from ecgstudio.results import Calibration, Signals

# --------------------------------------------------------------------------------------------
# helpers


def _gradient_rgb(h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.dstack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x + y) % 256]).astype(np.uint8)


def _random_signals(rng: np.random.Generator, fs: float, n: int, n_leads: int = 12) -> Signals:
    """Random ECG-sized signals with NaN gaps, a missing lead and a flat lead."""
    mv = rng.normal(0.0, 0.8, size=(n, n_leads)).cumsum(axis=0) * 0.05 + rng.normal(0, 0.3, n_leads)
    for j in range(n_leads):  # a gap in every lead, at different places
        start = int(rng.integers(1, n // 2))
        mv[start : start + int(rng.integers(1, n // 4)), j] = np.nan
    mv[:, 4] = np.nan  # a lead not plotted at all
    mv[:, 7] = np.where(np.isnan(mv[:, 7]), np.nan, 0.25)  # a flat lead
    mv[-1, :] = rng.normal(size=n_leads)  # the last sample is real in every lead
    mv[-1, 4] = np.nan
    return Signals(mv, fs, LEAD_NAMES[:n_leads])


def _edf_header(path: Path) -> dict:
    """The EDF header fields a test needs, parsed independently of the reader under test."""
    raw = path.read_bytes()
    ns = int(raw[252:256])
    sig = raw[256 : 256 * (ns + 1)].decode("ascii")

    def fields(offset: int, width: int) -> list[str]:
        return [sig[offset * ns + k * width : offset * ns + (k + 1) * width].strip() for k in range(ns)]

    return {
        "raw": raw,
        "reserved": raw[192:236].decode().strip(),
        "n_records": int(raw[236:244]),
        "record_s": float(raw[244:252]),
        "ns": ns,
        "labels": fields(0, 16),
        "units": fields(96, 8),
        "pmin": [float(v) for v in fields(104, 8)],
        "pmax": [float(v) for v in fields(112, 8)],
        "dmin": [int(v) for v in fields(120, 8)],
        "dmax": [int(v) for v in fields(128, 8)],
        "spr": [int(v) for v in fields(216, 8)],
    }


# --------------------------------------------------------------------------------------------
# images: formats


@pytest.mark.parametrize("mode", ["RGB", "L", "I;16", "P", "RGBA", "LA", "1"])
def test_png_modes_load_as_rgb_uint8(tmp_path: Path, mode: str) -> None:
    rgb = _gradient_rgb(120, 160)
    if mode == "I;16":
        grey = (np.linspace(0, 65535, 160)[None, :].repeat(120, axis=0)).astype(np.uint16)
        img = Image.fromarray(grey)
        assert img.mode == "I;16"
    elif mode == "RGBA":
        alpha = np.full((120, 160), 255, np.uint8)
        alpha[:, :40] = 0  # transparent strip
        img = Image.fromarray(np.dstack([rgb, alpha]))
    elif mode == "LA":
        img = Image.fromarray(rgb).convert("LA")
        img.putalpha(Image.fromarray(np.where(np.arange(160) < 40, 0, 255).astype(np.uint8)[None].repeat(120, 0)))
    else:
        img = Image.fromarray(rgb).convert(mode)
    path = tmp_path / f"page_{mode.replace(';', '')}.png"
    img.save(path)

    out = read_image(path)
    assert out.dtype == np.uint8 and out.shape == (120, 160, 3)
    if mode == "RGB":
        assert_array_equal(out, rgb)
    elif mode == "I;16":
        assert_array_equal(out[0, [0, -1]], [[0, 0, 0], [255, 255, 255]])
        assert abs(int(out[0, 80, 0]) - 128) <= 1
    elif mode in ("RGBA", "LA"):
        assert (out[:, :40] == 255).all()  # transparency composited on white
        assert_array_equal(out[:, 40:, 0] == 255, np.asarray(img.convert("RGB"))[:, 40:, 0] == 255)
    elif mode == "P":
        assert_array_equal(out, np.asarray(img.convert("RGB")))
    else:  # L, 1: grey replicated into three equal channels
        assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()


def test_palette_png_with_transparent_index_is_white(tmp_path: Path) -> None:
    img = Image.new("P", (120, 110), 1)
    img.putpalette([0, 0, 0, 200, 10, 10] + [0] * 762)
    img.paste(0, (0, 0, 60, 110))
    path = tmp_path / "pal.png"
    img.save(path, transparency=0)
    out = read_image(path)
    assert (out[:, :60] == 255).all()
    assert_array_equal(out[5, 100], [200, 10, 10])


def test_png_dpi_stem_and_page_fields(tmp_path: Path) -> None:
    path = tmp_path / "scan 7.png"
    Image.fromarray(_gradient_rgb(150, 200)).save(path, dpi=(300, 300))
    (page,) = read_pages(path)
    assert isinstance(page, Page)
    assert (page.page_index, page.n_pages, page.source, page.stem) == (0, 1, path, "scan 7")
    assert page.dpi == pytest.approx(300, abs=0.01)
    assert page.shape == (150, 200)
    with pytest.raises(AttributeError):
        page.page_index = 3  # type: ignore[misc]  # frozen


def test_jpeg_exif_orientation_6_is_rotated(tmp_path: Path) -> None:
    # Stored as 200 wide x 120 high, red on the left half; orientation 6 = rotate 90 deg clockwise.
    stored = np.zeros((120, 200, 3), np.uint8)
    stored[:, :100] = (255, 0, 0)
    stored[:, 100:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "photo.jpg"
    Image.fromarray(stored).save(path, exif=exif, quality=95)

    out = read_image(path)
    assert out.shape == (200, 120, 3)  # portrait after rotation
    # Rotating clockwise takes the stored left half to the top.
    assert out[20, 60, 0] > 200 and out[20, 60, 2] < 50
    assert out[180, 60, 2] > 200 and out[180, 60, 0] < 50


def test_jpeg_without_exif_and_bmp(tmp_path: Path) -> None:
    rgb = _gradient_rgb(130, 170)
    Image.fromarray(rgb).save(tmp_path / "a.jpeg", quality=98)
    Image.fromarray(rgb).save(tmp_path / "a.bmp")
    jpg = read_image(tmp_path / "a.jpeg")
    assert jpg.shape == (130, 170, 3)
    assert np.abs(jpg.astype(int) - rgb).mean() < 4
    assert_array_equal(read_image(tmp_path / "a.bmp"), rgb)


def test_multipage_tiff_pages_and_stems(tmp_path: Path) -> None:
    sizes = [(120, 150), (200, 110), (130, 130)]
    frames = [Image.fromarray(np.full((h, w, 3), 40 * k, np.uint8)) for k, (h, w) in enumerate(sizes, 1)]
    path = tmp_path / "batch.tiff"
    frames[0].save(path, save_all=True, append_images=frames[1:], compression="tiff_deflate")

    gen = iter_pages(path)
    assert isinstance(gen, types.GeneratorType)
    first = next(gen)  # pages come one at a time
    assert (first.page_index, first.n_pages, first.stem) == (0, 3, "batch_p1")
    gen.close()

    pages = read_pages(path)
    assert [p.shape for p in pages] == sizes
    assert [p.stem for p in pages] == ["batch_p1", "batch_p2", "batch_p3"]
    assert [int(p.image[0, 0, 0]) for p in pages] == [40, 80, 120]
    assert_array_equal(read_image(path), pages[0].image)


def test_two_page_pdf_rendered_at_pdf_dpi(tmp_path: Path) -> None:
    a = Image.new("RGB", (300, 200), (255, 0, 0))
    b = Image.new("RGB", (200, 300), (0, 0, 255))
    path = tmp_path / "report.pdf"
    a.save(path, save_all=True, append_images=[b], resolution=100)  # 3 x 2 in, then 2 x 3 in

    pages = read_pages(path, pdf_dpi=50)
    assert [p.shape for p in pages] == [(100, 150), (150, 100)]
    assert [p.stem for p in pages] == ["report_p1", "report_p2"]
    assert all(p.dpi == 50 and p.n_pages == 2 for p in pages)
    assert pages[0].image[50, 75, 0] > 240 and pages[0].image[50, 75, 2] < 15
    assert pages[1].image[75, 50, 2] > 240 and pages[1].image[75, 50, 0] < 15
    assert read_pages(path)[0].shape == (400, 600)  # default 200 dpi


def test_format_is_read_from_content_not_suffix(tmp_path: Path) -> None:
    path = tmp_path / "really_a_png.jpg"
    Image.fromarray(_gradient_rgb(110, 120)).save(path, format="PNG")
    assert_array_equal(read_image(path), _gradient_rgb(110, 120))


def test_fifty_megapixel_scan_loads(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    Image.new("L", (7072, 7072), 230).save(path, compress_level=1)  # 50.0 megapixels
    img = read_image(path)
    assert img.shape == (7072, 7072, 3) and img[0, 0, 0] == 230


# --------------------------------------------------------------------------------------------
# images: bad files


def _expect_unreadable(path: Path, *words: str) -> None:
    with pytest.raises(UnreadableImageError) as info:
        read_pages(path)
    msg = str(info.value)
    assert path.name in msg
    for word in words:
        assert word in msg


def test_missing_directory_and_empty_files(tmp_path: Path) -> None:
    _expect_unreadable(tmp_path / "nope.png", "does not exist")
    _expect_unreadable(tmp_path, "folder")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    _expect_unreadable(empty, "empty")


def test_truncated_png_and_pdf(tmp_path: Path) -> None:
    good = tmp_path / "good.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (300, 300, 3), dtype=np.uint8)).save(good)
    cut = tmp_path / "cut.png"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    _expect_unreadable(cut, "truncated")

    pdf = tmp_path / "cut.pdf"
    Image.new("RGB", (300, 300), "white").save(tmp_path / "full.pdf")
    pdf.write_bytes((tmp_path / "full.pdf").read_bytes()[:300])
    _expect_unreadable(pdf, "PDF")


def test_non_image_and_unsupported_format(tmp_path: Path) -> None:
    text = tmp_path / "notes.png"
    text.write_text("this is not an image\n" * 20)
    _expect_unreadable(text, "not a supported image")
    gif = tmp_path / "anim.gif"
    Image.new("P", (200, 200)).save(gif)
    _expect_unreadable(gif, "not a supported image")


def test_tiny_image_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "thumb.png"
    Image.new("RGB", (400, 60), "white").save(path)
    with pytest.raises(ImageSizeError, match="too small to hold an ECG; scan at 150 dpi or more"):
        read_image(path)


def test_max_pixels_limit(tmp_path: Path) -> None:
    png = tmp_path / "page.png"
    Image.new("RGB", (200, 200), "white").save(png)
    with pytest.raises(ImageSizeError, match="megapixels"):
        read_image(png, max_pixels=39_999)
    assert read_image(png, max_pixels=40_000).shape == (200, 200, 3)

    pdf = tmp_path / "page.pdf"
    Image.new("RGB", (200, 200), "white").save(pdf, resolution=72)
    with pytest.raises(ImageSizeError, match="page.pdf"):
        read_image(pdf, pdf_dpi=300, max_pixels=500_000)  # would render 834 x 834


def test_pillow_bomb_warning_and_error_do_not_escape(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "page.png"
    Image.new("RGB", (200, 200), "white").save(path)
    # Pillow warns above MAX_IMAGE_PIXELS and refuses above twice that; filterwarnings=error
    # would turn a leaked warning into a failure here.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 30_000)
    assert read_image(path).shape == (200, 200, 3)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)
    with pytest.raises(ImageSizeError, match="too large"):
        read_image(path)


# --------------------------------------------------------------------------------------------
# images: hashing and batch inputs


def test_file_sha256(tmp_path: Path) -> None:
    path = tmp_path / "blob.bin"
    data = np.random.default_rng(2).bytes(3 * (1 << 20) + 17)
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()
    assert file_sha256(path, chunk_bytes=1000) == hashlib.sha256(data).hexdigest()
    with pytest.raises(UnreadableImageError, match="missing.bin"):
        file_sha256(tmp_path / "missing.bin")


def test_collect_inputs(tmp_path: Path) -> None:
    (tmp_path / "b" / "deep").mkdir(parents=True)
    (tmp_path / ".hidden").mkdir()
    for rel in ["b/deep/z.PDF", "b/a.png", "b/c.tif", "b/notes.txt", "b/.x.png", ".hidden/h.png", "a.JPG"]:
        (tmp_path / rel).write_bytes(b"x")
    single = tmp_path / "b" / "notes.txt"
    got = collect_inputs([tmp_path, single, tmp_path / "b" / "a.png"])
    rel = [p.relative_to(tmp_path).as_posix() for p in got]
    assert rel == ["a.JPG", "b/a.png", "b/c.tif", "b/deep/z.PDF", "b/notes.txt"]
    assert collect_inputs(tmp_path / "a.JPG") == [tmp_path / "a.JPG"]
    assert {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".pdf"} <= SUPPORTED_SUFFIXES
    with pytest.raises(UnreadableImageError, match="does not exist"):
        collect_inputs([tmp_path / "gone"])


@pytest.mark.shared
def test_real_photo_loads(shared_data: Path) -> None:
    path = shared_data / "ecg-image-kit" / "sample-data" / "ecg-images" / "ecg00026.jpg"
    with Image.open(path) as img:
        w, h = img.size
    page = read_pages(path)[0]
    assert page.image.shape == (h, w, 3) and page.image.dtype == np.uint8
    assert page.stem == "ecg00026" and page.n_pages == 1


# --------------------------------------------------------------------------------------------
# signals: real records


@pytest.mark.shared
def test_read_ptbxl_500hz(shared_data: Path) -> None:
    import wfdb

    base = shared_data / "signals" / "ptb-xl" / "00093_hr"
    sig = read_signals(base)
    rec = wfdb.rdrecord(str(base))
    assert sig.fs == 500 and sig.mv.shape == (5000, 12) and sig.lead_names == LEAD_NAMES
    assert_allclose(sig.mv, rec.p_signal)
    via_hea = read_signals(base.with_name(base.name + ".hea"))
    assert_array_equal(via_hea.mv, sig.mv)
    assert_array_equal(read_signals(rec).mv, sig.mv)  # an already loaded wfdb.Record


@pytest.mark.shared
def test_read_15_lead_record_ignores_frank_leads(shared_data: Path) -> None:
    import wfdb

    base = shared_data / "wfdb-python" / "sample-data" / "s0010_re"
    sig = read_signals(str(base) + ".hea")
    rec = wfdb.rdrecord(str(base))
    assert sig.fs == 1000 and sig.mv.shape == (38400, 12) and sig.lead_names == LEAD_NAMES
    assert_allclose(sig.mv, rec.p_signal[:, :12])  # i..v6 in file order map onto I..V6
    frank = read_signals(base, leads=("vx", "VY", "II"))
    assert frank.lead_names == ("vx", "VY", "II")
    assert_allclose(frank.mv, rec.p_signal[:, [12, 13, 1]])


@pytest.mark.shared
def test_read_two_lead_mitdb_record(shared_data: Path) -> None:
    import wfdb

    base = shared_data / "wfdb-python" / "sample-data" / "100"
    sig = read_signals(base)
    rec = wfdb.rdrecord(str(base), sampto=1000)
    assert sig.fs == 360 and sig.mv.shape == (650000, 12)
    assert_allclose(sig.lead("II")[:1000], rec.p_signal[:, 0])  # MLII
    assert_allclose(sig.lead("V5")[:1000], rec.p_signal[:, 1])
    others = [j for j, name in enumerate(LEAD_NAMES) if name not in ("II", "V5")]
    assert np.isnan(sig.mv[:, others]).all()
    assert read_signals(base, leads=None).lead_names == ("II", "V5")


@pytest.mark.shared
def test_read_100hz_ground_truth_from_pairs(shared_data: Path) -> None:
    with open(shared_data / "pairs.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["gt_fs_hz"].strip() == "100"]
    assert rows, "pairs.csv lists no 100 Hz ground truth"
    sig = read_signals(shared_data / rows[0]["ground_truth"])
    assert sig.fs == 100 and sig.mv.shape[1] == 12 and sig.n_samples >= 1000
    assert np.isfinite(sig.mv).any(axis=0).all()


# --------------------------------------------------------------------------------------------
# signals: CSV and WFDB variants, garbage


def test_csv_reader_names_units_time_and_gaps(tmp_path: Path) -> None:
    path = tmp_path / "sig.csv"
    path.write_text(
        "# exported by some tool\n"
        "Time (ms);lead_II;AVR;v1 (uV);Resp\n"
        "0;0.1;-0.2;100;7\n"
        "4;0.2;;200;7\n"
        "8;0.3;-0.4;nan;7\n"
    )
    sig = read_signals(path)
    assert sig.fs == 250 and sig.mv.shape == (3, 12)
    assert_allclose(sig.lead("II"), [0.1, 0.2, 0.3])
    assert_allclose(sig.lead("aVR"), [-0.2, np.nan, -0.4])
    assert_allclose(sig.lead("V1"), [0.1, 0.2, np.nan])  # uV -> mV
    assert np.isnan(sig.lead("I")).all()
    with pytest.raises(SignalFormatError, match="fs=200 was given"):
        read_signals(path, fs=200)


def test_csv_decimal_comma_and_tabs(tmp_path: Path) -> None:
    semi = tmp_path / "excel.csv"
    semi.write_text("t;I;V6\n0,000;0,5;-1,25\n0,002;;2\n")
    sig = read_signals(semi)
    assert sig.fs == 500
    assert_allclose(sig.mv[:, [0, 11]], [[0.5, -1.25], [np.nan, 2.0]])
    tsv = tmp_path / "sig.tsv"
    tsv.write_text("time_s\tIII\n0\t1\n0.01\t2\n0.02\t3\n")
    assert_allclose(read_signals(tsv, leads=("III",)).mv[:, 0], [1, 2, 3])


def test_csv_without_time_needs_fs(tmp_path: Path) -> None:
    path = tmp_path / "notime.csv"
    path.write_text("I,II,-aVR\n1,2,3\n4,5,6\n")
    with pytest.raises(SignalFormatError, match="pass fs="):
        read_signals(path)
    sig = read_signals(path, fs=128, leads=("II", "aVR", "I"))
    assert sig.fs == 128 and sig.lead_names == ("II", "aVR", "I")
    assert_allclose(sig.mv, [[2, -3, 1], [5, -6, 4]])  # -aVR is stored negated


def test_wfdb_microvolt_units_are_converted(tmp_path: Path) -> None:
    import wfdb

    uv = np.array([[100.0, -250.0], [0.0, 1000.0], [50.0, 5.0]])
    wfdb.wrsamp(
        "uvrec",
        fs=250,
        units=["uV", "uV"],
        sig_name=["AVR", "MLII"],
        p_signal=uv,
        fmt=["16", "16"],
        adc_gain=[1.0, 1.0],
        baseline=[0, 0],
        write_dir=str(tmp_path),
    )
    sig = read_signals(tmp_path / "uvrec.dat")
    assert_allclose(sig.lead("aVR"), uv[:, 0] / 1000)
    assert_allclose(sig.lead("II"), uv[:, 1] / 1000)


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("missing.csv", None, "does not exist"),
        ("binary.csv", bytes(range(256)) * 8, "not a text CSV"),
        ("words.csv", b"I,II\n0.1,hello\n", "not a number"),
        ("ragged.csv", b"time,I,II\n0,1,2\n0.1,1\n", "fields"),
        ("noheader.csv", b"1,2\n3,4\n", "no header"),
        ("bad.hea", b"this is not a header\n", "WFDB"),
        ("bad.edf", b"0       " + b"x" * 300, "EDF"),
        ("short.edf", b"0       ", "EDF"),
        ("data.xyz", b"1,2,3\n", "not a known signal format"),
    ],
)
def test_garbage_signal_files(tmp_path: Path, name: str, content: bytes | None, match: str) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SignalFormatError, match=match):
        read_signals(path)


def test_no_matching_lead_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "resp.csv"
    path.write_text("t,resp,spo2\n0,1,2\n0.01,1,2\n")
    with pytest.raises(SignalFormatError, match="none of the channels"):
        read_signals(path)


# --------------------------------------------------------------------------------------------
# writers: round trips


@pytest.mark.parametrize("fs", [100.0, 257.5, 500.0])
@pytest.mark.parametrize("fmt", ["wfdb", "csv", "edf"])
def test_round_trip(tmp_path: Path, fmt: str, fs: float) -> None:
    rng = np.random.default_rng(int(fs * 10) + len(fmt))
    sig = _random_signals(rng, fs, n=int(fs * 3.3) + 1)  # not a whole number of seconds
    paths = write_signals(sig, tmp_path, "rec", formats=(fmt,))
    back = read_signals(paths[0])

    assert back.fs == fs and back.lead_names == LEAD_NAMES and back.mv.shape == sig.mv.shape
    assert_array_equal(np.isnan(back.mv), np.isnan(sig.mv))
    ok = ~np.isnan(sig.mv)
    if fmt == "edf":
        head = _edf_header(paths[0])
        read = [lead_index(label.removeprefix("ECG ")) for label in head["labels"][:-1]]
        step = (np.array(head["pmax"]) - np.array(head["pmin"]))[:-1] / 65535
        err = np.where(ok, np.abs(back.mv - sig.mv), 0).max(axis=0)[read]
        assert (err <= step * 1.0001).all(), (err, step)
        assert (step < 2e-4).all()  # about 0.1 uV steps for a few mV of range
    else:
        assert np.abs(back.mv[ok] - sig.mv[ok]).max() <= 1e-3  # 1 uV
    # no temporary files left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)


def test_wfdb_header_contents_and_overwrite(tmp_path: Path) -> None:
    sig = _random_signals(np.random.default_rng(3), 500.0, 700)
    hea = write_wfdb(sig, tmp_path / "out", "case-01", comments=["first line", "multi\nline"])
    assert hea == tmp_path / "out" / "case-01.hea" and hea.with_suffix(".dat").is_file()
    text = hea.read_text()
    assert "case-01 12 500" in text and "/mV" in text
    assert all(f" {lead}\n" in text for lead in LEAD_NAMES)
    assert "# first line\n" in text and "# multi line\n" in text
    sig2 = Signals(sig.mv[:100] * 0.5, 500.0)
    write_wfdb(sig2, tmp_path / "out", "case-01")
    assert read_signals(hea).n_samples == 100
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["case-01.dat", "case-01.hea"]
    with pytest.raises(ValueError, match="record name"):
        write_wfdb(sig, tmp_path, "bad name")


def test_wfdb_large_amplitude_keeps_range(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    mv = np.zeros((50, 12))
    mv[:, 0] = np.linspace(-100, 100, 50)
    with caplog.at_level("WARNING", logger="ecgstudio.io.writers"):
        hea = write_wfdb(Signals(mv, 100.0), tmp_path, "loud")
    assert "beyond" in caplog.text
    assert_allclose(read_signals(hea).lead("I"), mv[:, 0], atol=0.01)


def test_csv_layout_nan_as_empty(tmp_path: Path) -> None:
    mv = np.array([[0.1234567, np.nan], [-1.5, 2.0]])
    path = write_csv(Signals(mv, 250.0, ("II", "V5")), tmp_path / "x.csv")
    lines = path.read_text().splitlines()
    assert lines[0] == "time_s,II,V5"
    assert lines[1] == "0,0.1235,"
    assert lines[2] == "0.004,-1.5000,2.0000"


def test_edf_structure(tmp_path: Path) -> None:
    sig = _random_signals(np.random.default_rng(4), 257.5, 1000)
    paths = write_edf(sig, tmp_path / "x.edf", patient="MCH 0234567")
    assert paths == [tmp_path / "x.edf"]  # every lead read from start to end: one stretch
    head = _edf_header(paths[0])
    raw = head["raw"]
    assert raw[:8] == b"0       " and head["reserved"] == "EDF+C"
    assert raw[8:88].decode().startswith("MCH_0234567 X X X")
    assert raw[88:168].decode().startswith("Startdate X X X ECG_Studio")
    leads = [lead for lead in LEAD_NAMES if lead != "aVL"]  # aVL was never read
    assert head["labels"] == [f"ECG {lead}" for lead in leads] + ["EDF Annotations"]
    assert head["record_s"] == 2 and head["spr"][:11] == [515] * 11  # 257.5 Hz x 2 s
    assert head["units"][:11] == ["mV"] * 11
    assert head["dmin"][:11] == [-32768] * 11 and head["dmax"][:11] == [32767] * 11
    assert head["n_records"] == 2  # 1000 samples in records of 515, the rest filler
    back = read_edf(paths[0])
    assert back.lead_names == LEAD_NAMES and back.n_samples == 1000  # filler dropped, aVL NaN
    assert np.isnan(back.lead("aVL")).all()


def _page_3x4_signals(rng: np.random.Generator, fs: float = 500.0) -> Signals:
    """A 3x4 page with a lead II rhythm strip: each other lead read over its own quarter, a
    sample or a few short of the column's edges (as a digitized page is), one with a gap."""
    n = int(10 * fs)
    mv = np.full((n, 12), np.nan)
    mv[:, 1] = 0.3 * np.sin(np.arange(n) / 40.0)
    for column, leads in enumerate((("I", "III"), ("aVR", "aVL", "aVF"), ("V1", "V2", "V3"), ("V4", "V5", "V6"))):
        for row, lead in enumerate(leads):
            a, b = column * n // 4 + 4 * (column > 0), (column + 1) * n // 4 - 4 - row
            mv[a:b, lead_index(lead)] = rng.normal(0, 0.4, b - a).cumsum() * 0.05
    mv[3000:3020, lead_index("V2")] = np.nan  # a stretch of V2 the engine could not read
    return Signals(mv, fs)


def test_edf_keeps_each_lead_to_where_it_was_read(tmp_path: Path) -> None:
    import pyedflib

    sig = _page_3x4_signals(np.random.default_rng(8))
    paths = write_signals(sig, tmp_path, "rec", formats=("edf", "wfdb"))
    edfs = [p for p in paths if p.suffix == ".edf"]
    assert [p.name for p in edfs] == [
        "rec.edf",
        "rec_0.00-2.49s.edf",
        "rec_2.51-4.99s.edf",
        "rec_5.01-7.49s.edf",
        "rec_7.51-9.99s.edf",
    ]
    wfdb_back = read_signals(tmp_path / "rec.hea")
    for path in edfs:
        # Another library sees each lead only where it was read: no flat line in place of the
        # other quarters, the stretch's time within the record, the gap annotated.
        with pyedflib.EdfReader(str(path)) as other:
            note = next(t for t in other.readAnnotations()[2] if t.startswith("ECG Studio: samples"))
            a, b = (int(v) for v in note.split()[3].split("-"))
            assert other.file_duration * 500 - (b - a) < 500 * 0.5  # filler: less than a record
            for k, label in enumerate(other.getSignalLabels()):
                lead = label.removeprefix("ECG ")
                truth = sig.lead(lead)[a:b]
                seen = other.readSignal(k)[: b - a]
                ok = np.isfinite(truth)
                assert np.abs(seen[ok] - truth[ok]).max() < 1e-3
                assert seen.min() >= np.nanmin(truth) - 1e-3  # nothing drawn below the data
            if path.name == "rec_5.01-7.49s.edf":
                gaps = [(on, dur, t) for on, dur, t in zip(*other.readAnnotations(), strict=True) if "not read" in t]
                assert any(
                    t == "ECG Studio: V2 not read" and on == pytest.approx(0.992) and dur == pytest.approx(0.04)
                    for on, dur, t in gaps
                )
        # Any of the files gives back the whole record: the WFDB record's samples and gaps.
        back = read_edf(path, leads=LEAD_NAMES)
        assert back.mv.shape == wfdb_back.mv.shape == sig.mv.shape
        assert_array_equal(np.isnan(back.mv), np.isnan(sig.mv))
        ok = np.isfinite(sig.mv)
        assert np.abs(back.mv[ok] - wfdb_back.mv[ok]).max() < 1.1e-3


def test_edf_start_time_and_bad_fs(tmp_path: Path) -> None:
    import datetime as dt

    import edfio

    sig = _page_3x4_signals(np.random.default_rng(2), fs=100.0)
    paths = write_edf(sig, tmp_path / "t.edf", start=dt.datetime(2021, 7, 9, 13, 4, 5))
    raw = paths[0].read_bytes()
    assert raw[88:168].decode().startswith("Startdate 09-JUL-2021")
    assert raw[168:184] == b"09.07.2113.04.05"
    second = edfio.read_edf(paths[2])  # aVR, aVL, aVF: from sample 254, 2.54 s
    assert second.startdate == dt.date(2021, 7, 9) and second.starttime == dt.time(13, 4, 7, 540000)
    with pytest.raises(ValueError, match="EDF"):
        write_edf(Signals(np.zeros((10, 12)), np.pi), tmp_path / "pi.edf")
    assert not (tmp_path / "pi.edf").exists()
    with pytest.raises(ValueError, match="no lead"):
        write_edf(Signals(np.full((10, 12), np.nan), 100.0), tmp_path / "none.edf")


def test_edf_of_earlier_versions_still_reads(tmp_path: Path) -> None:
    import edfio

    from ecgstudio.io.edf import LEGACY_GAP_NOTE

    values = np.linspace(-0.9, 1.0, 300)
    values[100:120] = -1.0  # the gap, at the digital minimum
    values[250:] = -1.0  # the filler of the last record
    signal = edfio.EdfSignal(values, 100, label="ECG V1", physical_dimension="mV", physical_range=(-1.0, 1.0))
    signal.transducer_type = LEGACY_GAP_NOTE
    edfio.Edf([signal]).write(tmp_path / "old.edf")
    back = read_edf(tmp_path / "old.edf")
    assert back.lead_names == ("V1",) and back.n_samples == 250
    assert np.isnan(back.mv[100:120]).all() and np.isfinite(back.mv[:100]).all()


def test_refused_signals_leave_no_file(tmp_path: Path) -> None:
    bad = np.zeros((10, 12))
    bad[3, 3] = np.inf
    with pytest.raises(ValueError, match="infinite"):
        write_csv(Signals(bad, 100.0), tmp_path / "inf.csv")
    with pytest.raises(ValueError, match="no samples"):
        write_signals(Signals(np.zeros((0, 12)), 100.0), tmp_path, "empty", formats=("wfdb", "edf"))
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------
# writers: sidecar and dispatch


def test_json_sidecar(tmp_path: Path) -> None:
    src = tmp_path / "scan.png"
    Image.new("RGB", (120, 120), "white").save(src)
    cal = Calibration(px_per_mm_x=11.8, px_per_mm_y=11.9, mm_per_s=50.0, mm_per_mv=20.0)
    path = write_json_sidecar(
        tmp_path / "scan.json",
        calibration=cal,
        layout="3x4+1",
        provenance={"source_image": src, "model_version": "unet-0.3", "score": float("nan"), "page_index": np.int64(0)},
    )
    doc = json.loads(path.read_text())
    assert Calibration(**doc["calibration"]) == cal
    assert doc["layout"] == "3x4+1"
    prov = doc["provenance"]
    assert prov["software_version"] == __version__ and prov["model_version"] == "unet-0.3"
    assert prov["source_image"] == str(src) and prov["source_sha256"] == file_sha256(src)
    assert prov["created_utc"].endswith("+00:00") and prov["score"] is None and prov["page_index"] == 0
    assert "\n  " in path.read_text()  # pretty


def test_write_signals_dispatch(tmp_path: Path) -> None:
    sig = _random_signals(np.random.default_rng(5), 500.0, 600)
    paths = write_signals(
        sig,
        tmp_path / "o",
        "scan 3_p2",
        formats=("EDF", "csv", "wfdb"),
        sidecar={"layout": "6x2", "provenance": {"source_image": "/nowhere/scan 3.pdf"}},
    )
    assert [p.name for p in paths] == [
        "scan_3_p2.edf",  # one stretch: every lead read from start to end
        "scan_3_p2.csv",
        "scan_3_p2.hea",
        "scan_3_p2.dat",
        "scan_3_p2.json",
    ]
    doc = json.loads(paths[-1].read_text())
    assert doc["signals"]["fs_hz"] == 500 and doc["signals"]["lead_names"] == list(LEAD_NAMES)
    assert "source_sha256" not in doc["provenance"]  # the source is not there to hash
    assert "# source: scan 3.pdf" in paths[2].read_text()
    with pytest.raises(ValueError, match="wfdb, csv, edf, json"):
        write_signals(sig, tmp_path, "x", formats=("wfdb", "mat"))
    with pytest.raises(ValueError, match="sidecar key"):
        write_signals(sig, tmp_path, "x", formats=("json",), sidecar={"calib": 1})
    only_json = write_signals(sig, tmp_path / "j", "x", formats="json")
    assert json.loads(only_json[0].read_text())["calibration"] is None


def test_atomic_writes_get_the_usual_permissions(tmp_path) -> None:
    import os
    import stat

    from ecgstudio.io.atomic import write_text_atomic

    target = tmp_path / "out.txt"
    write_text_atomic(target, "x")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask
