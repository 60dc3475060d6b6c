"""Bad inputs get a true message: what is wrong with this file and what to do, never a wrong
diagnosis, a hang, a traceback or gigabytes of memory; and a seeded corpus of broken images and
label files, each refused or read, within bounded time."""

from __future__ import annotations

import io
import os
import resource
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image
from test_labels import make_record

from ecgstudio.errors import EcgStudioError, ImageSizeError, LayoutError, UnreadableImageError
from ecgstudio.geometry.grid import as_rgb
from ecgstudio.io.images import DEFAULT_MAX_PIXELS, iter_pages, read_image
from ecgstudio.labels import load_labels, save_labels
from ecgstudio.layout import choose_layout


def _png_bytes(size=(300, 200), color="white") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_fifo_is_not_called_empty_and_does_not_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "scan.png"
    os.mkfifo(fifo)
    with pytest.raises(UnreadableImageError, match="not a regular file"):
        read_image(fifo)


def test_a_link_loop_is_not_called_missing(tmp_path: Path) -> None:
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.symlink_to(b)
    b.symlink_to(a)
    with pytest.raises(UnreadableImageError, match="link that leads nowhere"):
        read_image(a)
    with pytest.raises(UnreadableImageError, match="does not exist"):
        read_image(tmp_path / "really-missing.png")


def test_a_valid_pdf_without_pages_is_not_called_corrupt(tmp_path: Path) -> None:
    import pypdfium2 as pdfium

    path = tmp_path / "empty.pdf"
    with open(path, "wb") as fh:
        pdfium.PdfDocument.new().save(fh)
    with pytest.raises(UnreadableImageError, match="valid PDF with no pages") as info:
        read_image(path)
    assert "corrupt" not in str(info.value)


def test_a_truncated_tiff_is_not_called_unsupported(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (300, 200), "white").save(buffer, format="TIFF")
    path = tmp_path / "scan.tif"
    path.write_bytes(buffer.getvalue()[:40])
    with pytest.raises(UnreadableImageError, match="truncated or corrupt"):
        read_image(path)


def test_a_png_mentioning_pdf_is_read_as_a_png(tmp_path: Path) -> None:
    data = _png_bytes()
    chunk = b"tEXt" + b"Comment\x00see %PDF-1.7 spec"
    import struct
    import zlib

    text = struct.pack(">I", len(chunk) - 4) + chunk + struct.pack(">I", zlib.crc32(chunk))
    path = tmp_path / "scan.png"
    path.write_bytes(data[:33] + text + data[33:])  # after IHDR, within the first kilobyte
    assert b"%PDF-" in path.read_bytes()[:1024]
    assert read_image(path).shape == (200, 300, 3)


def test_one_size_limit_checked_before_decoding(tmp_path: Path) -> None:
    side = int(np.sqrt(DEFAULT_MAX_PIXELS)) + 10
    path = tmp_path / "huge.png"
    Image.new("1", (side, side)).save(path)  # a few kB on disk
    started = time.perf_counter()
    with pytest.raises(ImageSizeError, match=f"limit of {DEFAULT_MAX_PIXELS / 1e6:.0f} megapixels"):
        read_image(path)
    assert time.perf_counter() - started < 2  # refused from the header
    with pytest.raises(ImageSizeError, match=f"more than {DEFAULT_MAX_PIXELS / 1e6:.0f} MP"):
        as_rgb(np.zeros((1, 1, 3), np.uint8).repeat(side, 0).repeat(side, 1))


def test_a_strip_is_refused_with_its_own_size(digitizer) -> None:
    with pytest.raises(ImageSizeError, match=r"image of 30000x544 px is 55 times longer than it is wide"):
        digitizer.digitize(np.full((544, 30000, 3), 255, np.uint8))


def test_a_tiny_strip_is_refused_fast_and_small(digitizer) -> None:
    rng = np.random.default_rng(0)
    image = np.where(rng.uniform(size=(100, 859, 1)) < 0.02, 0, 255).astype(np.uint8).repeat(3, 2)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    with pytest.raises(ImageSizeError, match="too coarse to show an ECG trace"):
        digitizer.digitize(image)
    assert time.perf_counter() - started < 5
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 300_000  # kB


def test_too_few_rows_never_suggest_what_is_in_use() -> None:
    from ecgstudio.layout import Row, match_rows
    from ecgstudio.paper import get_layout

    row = Row(baseline_y=100.0, x_start=0.0, x_end=500.0, strength=1.0)
    with pytest.raises(LayoutError) as auto:
        choose_layout([row], "auto")
    assert "--layout auto" not in str(auto.value) and "name it with --layout" in str(auto.value)
    with pytest.raises(LayoutError) as forced:
        match_rows([row], get_layout("3x4"), requested="3x4")
    assert "auto" in str(forced.value) and "one of: auto, 3x4+1" in str(forced.value)


# -------------------------------------------------------------------------------------------- fuzzing


def _mutations(data: bytes, rng: np.random.Generator, n: int) -> list[bytes]:
    """``n`` broken copies of ``data``: truncations, flipped bits, overwritten runs, spliced garbage."""
    out = []
    for _ in range(n):
        b = bytearray(data)
        kind = rng.integers(4)
        if kind == 0:
            b = b[: int(rng.integers(1, len(b)))]
        elif kind == 1:
            for pos in rng.integers(0, len(b), int(rng.integers(1, 16))):
                b[pos] ^= 1 << int(rng.integers(8))
        elif kind == 2:
            start = int(rng.integers(0, len(b)))
            b[start : start + 64] = rng.bytes(min(64, len(b) - start))
        else:
            start = int(rng.integers(0, len(b)))
            b[start:start] = rng.bytes(int(rng.integers(1, 512)))
        out.append(bytes(b))
    return out


def _seeds(tmp_path: Path) -> dict[str, bytes]:
    seeds = {}
    for fmt, suffix in (("PNG", ".png"), ("JPEG", ".jpg"), ("TIFF", ".tif"), ("BMP", ".bmp"), ("PDF", ".pdf")):
        buffer = io.BytesIO()
        Image.new("RGB", (240, 160), "white").save(buffer, format=fmt)
        seeds[suffix] = buffer.getvalue()
    return seeds


def test_fuzzed_images_are_refused_or_read(tmp_path: Path) -> None:
    rng = np.random.default_rng(1234)
    started = time.perf_counter()
    tried = 0
    for suffix, data in _seeds(tmp_path).items():
        for k, broken in enumerate(_mutations(data, rng, 24)):
            path = tmp_path / f"fuzz{k}{suffix}"
            path.write_bytes(broken)
            try:
                pages = list(iter_pages(path))
            except EcgStudioError as exc:
                assert str(path) in str(exc) or path.name in str(exc)
            else:
                assert all(p.image.dtype == np.uint8 and p.image.ndim == 3 for p in pages)
            tried += 1
    assert tried == 120 and time.perf_counter() - started < 60


def test_fuzzed_label_files_are_refused_or_read(tmp_path: Path) -> None:
    original = save_labels(make_record(np.random.default_rng(3), masks=False), tmp_path / "seed.labels.h5")
    data = original.read_bytes()
    rng = np.random.default_rng(99)
    started = time.perf_counter()
    outcomes = {"refused": 0, "same": 0}
    record = load_labels(original)
    for k, broken in enumerate(_mutations(data, rng, 60)):
        path = tmp_path / f"fuzz{k}.labels.h5"
        path.write_bytes(broken)
        try:
            loaded = load_labels(path)
        except EcgStudioError as exc:
            assert path.name in str(exc)
            outcomes["refused"] += 1
        else:  # a change the checksum does not cover (free space, padding) reads as the original
            assert loaded == record
            outcomes["same"] += 1
    assert outcomes["refused"] > 30 and time.perf_counter() - started < 60


def test_label_files_from_other_tools_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.labels.h5"
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "ecgstudio-labels"
        f.attrs["schema_version"] = np.int64(2)
        f["junk"] = np.zeros(3)
    with pytest.raises(EcgStudioError, match="label file"):
        load_labels(path)
