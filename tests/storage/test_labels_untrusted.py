"""Label files from untrusted places: no reading other files, no memory exhaustion, no nonsense,
no silent corruption, no lost writes (docs/labels.md, "What a reader checks")."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from test_labels import H, W, edit, make_record

from ecgstudio import labels
from ecgstudio.errors import LabelFormatError
from ecgstudio.io.atomic import STALE_S, atomic_path
from ecgstudio.labels import (
    FileStamp,
    LabelConflictError,
    ReviewStatus,
    load_labels,
    read_review_summary,
    save_labels,
)
from ecgstudio.results import Calibration, LeadBox, Signals


@pytest.fixture
def record():
    return make_record(np.random.default_rng(21))


@pytest.fixture
def saved(tmp_path: Path, record) -> Path:
    return save_labels(record, tmp_path / "p.labels.h5")


def _secret(tmp_path: Path) -> Path:
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(100 * 12, dtype=np.float64).tobytes())
    return secret


def test_external_link_is_refused_before_reading(saved: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["mv"] = np.ones((100, 12))

    def link(f: h5py.File) -> None:
        del f["digitization/signals/mv"]
        f["digitization/signals/mv"] = h5py.ExternalLink(str(other), "/mv")

    edit(saved, link, resign=False)
    with pytest.raises(LabelFormatError, match="external link to another file"):
        load_labels(saved)
    with pytest.raises(LabelFormatError, match="external link"):
        read_review_summary(saved)


def test_soft_link_is_refused(saved: Path) -> None:
    def link(f: h5py.File) -> None:
        del f["review"]
        f["review"] = h5py.SoftLink("/digitization")

    edit(saved, link, resign=False)
    with pytest.raises(LabelFormatError, match="/review is a soft link"):
        load_labels(saved)


def test_external_storage_is_refused(saved: Path, tmp_path: Path) -> None:
    """A dataset whose samples are 'stored' in another file (here a stand-in for /etc/passwd)."""
    secret = _secret(tmp_path)

    def external(f: h5py.File) -> None:
        del f["digitization/signals/mv"]
        f.create_dataset("digitization/signals/mv", shape=(100, 12), dtype="<f8", external=[(str(secret), 0, 9600)])

    edit(saved, external)  # even with a checksum that matches
    with pytest.raises(LabelFormatError, match="stores its data outside the file"):
        load_labels(saved)


def test_virtual_dataset_is_refused(saved: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["mv"] = np.ones((100, 12))

    def virtual(f: h5py.File) -> None:
        layout = h5py.VirtualLayout(shape=(100, 12), dtype="f8")
        layout[:] = h5py.VirtualSource(str(other), "mv", shape=(100, 12))
        del f["digitization/signals/mv"]
        f.create_virtual_dataset("digitization/signals/mv", layout)

    edit(saved, virtual, resign=False)
    with pytest.raises(LabelFormatError, match="stores its data outside the file"):
        load_labels(saved)


def test_a_small_file_declaring_huge_masks_is_refused_unread(saved: Path) -> None:
    def huge(f: h5py.File) -> None:
        del f["digitization/masks/trace"]
        f.create_dataset(
            "digitization/masks/trace", shape=(100_000, 100_000), dtype="u1", chunks=(1024, 1024), compression="gzip"
        )

    edit(saved, huge, resign=False)
    assert saved.stat().st_size < 10_000_000
    started = time.perf_counter()
    with pytest.raises(LabelFormatError, match=r"masks/trace declares shape \(100000, 100000\), expected exactly"):
        load_labels(saved)
    assert time.perf_counter() - started < 5  # refused from the declaration, not after reading 10 GB


def test_huge_signals_are_refused_unread(saved: Path) -> None:
    def huge(f: h5py.File) -> None:
        del f["digitization/signals/mv"]
        f.create_dataset("digitization/signals/mv", shape=(10**9, 12), dtype="f8", chunks=(4096, 12))

    edit(saved, huge, resign=False)
    with pytest.raises(LabelFormatError, match="mv declares shape"):
        load_labels(saved)


def test_a_flipped_byte_is_caught_by_the_checksum(saved: Path) -> None:
    edit(saved, lambda f: f["digitization/signals/mv"].__setitem__((5, 3), 1.25), resign=False)
    with pytest.raises(LabelFormatError, match="checksum does not match"):
        load_labels(saved)


def test_a_flipped_byte_on_disk_is_refused(saved: Path) -> None:
    """Whatever byte of the signals' storage flips, the file is refused, never loaded changed."""
    with h5py.File(saved, "r") as f:
        ds = f["digitization/boxes/x0"]
        offset = ds.id.get_offset()
    data = bytearray(saved.read_bytes())
    data[offset + 3] ^= 0x10
    saved.write_bytes(bytes(data))
    with pytest.raises(LabelFormatError):
        load_labels(saved)


def _with(record, **digitization_changes):
    return dataclasses.replace(record, digitization=dataclasses.replace(record.digitization, **digitization_changes))


def _box(record, **changes):
    boxes = list(record.digitization.boxes)
    boxes[0] = dataclasses.replace(boxes[0], **changes)
    return _with(record, boxes=tuple(boxes))


NONSENSE = {
    "fs inf": (lambda r: _with(r, signals=dataclasses.replace(r.digitization.signals, fs=float("inf"))), "fs=inf"),
    "px_per_mm 0": (lambda r: _with(r, calibration=Calibration(0.0, 5.0)), "px_per_mm_x=0.0"),
    "px_per_mm nan": (lambda r: _with(r, calibration=Calibration(5.0, float("nan"))), "px_per_mm_y=nan"),
    "negative gain": (lambda r: _with(r, calibration=Calibration(5.0, 5.0, 25.0, -10.0)), "gain mm_per_mv=-10.0"),
    "mv inf": (
        lambda r: _with(r, signals=Signals(np.full((10, 12), np.inf), 500.0)),
        "the signals holds infinite values",
    ),
    "unknown lead": (
        lambda r: _with(r, confidence={**r.digitization.confidence, "V7": 0.5}),
        r"unknown lead\(s\) \['V7'\]",
    ),
    "layout 99x99": (lambda r: _with(r, layout="99x99"), "unknown layout '99x99'"),
    "box x0 > x1": (lambda r: _box(r, x0=200.0, x1=100.0), "x0=200 >= x1=100"),
    "size contradicts image": (lambda r: _with(r, image_size=(H * 2, W)), f"but the labelled image is {W}x{H} px"),
}


@pytest.mark.parametrize("case", list(NONSENSE))
def test_nonsense_is_neither_saved_nor_loaded(saved: Path, record, tmp_path: Path, case: str) -> None:
    change, message = NONSENSE[case]
    bad = change(record)
    with pytest.raises(LabelFormatError, match=message):
        save_labels(bad, tmp_path / "bad.labels.h5")
    assert not (tmp_path / "bad.labels.h5").exists()
    # the same nonsense written by another tool (the record bypassing save's checks) is refused on load
    original = labels._check_values
    labels._check_values = lambda r: None
    try:
        save_labels(bad, tmp_path / "forged.labels.h5")
    finally:
        labels._check_values = original
    with pytest.raises(LabelFormatError, match=message):
        load_labels(tmp_path / "forged.labels.h5")


def test_schema_1_files_without_a_checksum_still_load(saved: Path, record) -> None:
    def downgrade(f: h5py.File) -> None:
        del f.attrs[labels.PAYLOAD_ATTR]
        f.attrs["schema_version"] = np.int64(1)

    edit(saved, downgrade, resign=False)
    assert load_labels(saved).digitization.layout == record.digitization.layout


def test_review_summary_reads_status_and_lowest_confidence(saved: Path, record) -> None:
    summary = read_review_summary(saved)
    assert summary.status is ReviewStatus.CORRECTED
    assert summary.reviewer == record.review.reviewer
    assert summary.lowest_confidence == pytest.approx(min(record.digitization.confidence.values()))


def test_leftovers_of_killed_writes_are_swept(tmp_path: Path, record) -> None:
    old = tmp_path / ".p.labels.h5.abcd1234.tmp"
    old.write_bytes(b"x" * 1000)
    os.utime(old, (time.time() - STALE_S - 60,) * 2)
    young = tmp_path / ".p.labels.h5.efgh5678.tmp"  # perhaps another writer's, in progress
    young.write_bytes(b"y")
    user_file = tmp_path / "notes.tmp"
    user_file.write_bytes(b"mine")
    os.utime(user_file, (time.time() - STALE_S - 60,) * 2)
    save_labels(record, tmp_path / "p.labels.h5")
    assert not old.exists()
    assert young.exists() and user_file.exists()


def test_a_failed_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "x.bin") as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []


def test_a_second_writer_is_told_not_silently_overwritten(saved: Path, record) -> None:
    opened = FileStamp.of(saved)  # writer A reads the file
    theirs = dataclasses.replace(record, review=dataclasses.replace(record.review, note="B's note")).touched()
    save_labels(theirs, saved, expect=FileStamp.of(saved))  # writer B saves first
    mine = dataclasses.replace(record, review=dataclasses.replace(record.review, note="A's note"))
    with pytest.raises(LabelConflictError, match="saved by somebody else"):
        save_labels(mine, saved, expect=opened)
    assert load_labels(saved).review.note == "B's note"


def test_a_new_file_expected_absent_is_not_overwritten(tmp_path: Path, record) -> None:
    path = tmp_path / "new.labels.h5"
    expect = FileStamp.of(path)
    assert not expect.exists
    save_labels(record, path)  # somebody else creates it meanwhile
    with pytest.raises(LabelConflictError):
        save_labels(record, path, expect=expect)


def test_a_save_in_progress_locks_out_another(saved: Path, record) -> None:
    lock = saved.with_name(f".{saved.name}.lock")
    lock.write_text("12345\n")
    with pytest.raises(LabelConflictError, match="another program is saving"):
        save_labels(record, saved)
    os.utime(lock, (time.time() - 3600,) * 2)  # a crash's leftover lock is taken over
    save_labels(record, saved)
    assert not lock.exists()


def test_boxes_far_outside_the_image_are_refused(record, tmp_path: Path) -> None:
    far = _box(record, x0=10 * W, x1=11 * W)
    with pytest.raises(LabelFormatError, match="far outside"):
        save_labels(far, tmp_path / "far.labels.h5")
    assert isinstance(far.digitization.boxes[0], LeadBox)
