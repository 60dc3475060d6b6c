"""The HDF5 label store: exact round trips, atomic writes, and a clear refusal of every bad file."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

import ecgstudio
from ecgstudio import labels as labels_mod
from ecgstudio.errors import LabelFormatError, UnreadableImageError
from ecgstudio.labels import (
    FORMAT_NAME,
    SCHEMA_VERSION,
    ImageIdentity,
    ImageMismatchError,
    LabelRecord,
    Provenance,
    Review,
    ReviewStatus,
    check_image,
    iter_label_files,
    label_path_for,
    load_labels,
    save_labels,
)
from ecgstudio.paper import LEAD_NAMES, get_layout
from ecgstudio.results import Assumption, Calibration, Digitization, LeadBox, PageMasks, Signals, Trace

H, W = 96, 128
FS = 500.0


def make_digitization(rng: np.random.Generator, *, layout: str = "3x4+1", masks: bool = True) -> Digitization:
    """A hand-built digitization with NaN gaps, an empty trace and a trace without confidence."""
    cells = get_layout(layout).cells
    n_rows = max(c.row for c in cells) + 1
    boxes, traces = [], []
    for k, cell in enumerate(cells):
        y0 = cell.row * H / n_rows
        box = LeadBox(
            cell.lead,
            x0=float(rng.uniform(0, 10)),
            y0=y0,
            x1=float(rng.uniform(100, W)),
            y1=y0 + H / n_rows,
            baseline_y=y0 + H / (2 * n_rows),
            t_start_s=cell.t_start_s,
            duration_s=cell.duration_s,
            row=cell.row,
            col=cell.col,
            inverted=cell.inverted,
        )
        n = 0 if k == 1 else int(rng.integers(5, 60))  # box 1: an empty trace
        xy = rng.uniform(0, W, size=(n, 2))
        if n > 3:
            xy[rng.integers(0, n, 2)] = np.nan  # gaps
        conf = None if k in (1, 2) else rng.uniform(0, 1, n).astype(np.float32)  # box 2: no confidence
        boxes.append(box)
        traces.append(Trace(cell.lead, xy, conf))
    mv = rng.normal(0, 0.5, size=(int(10 * FS), len(LEAD_NAMES)))
    mv[rng.uniform(size=mv.shape) < 0.2] = np.nan
    page_masks = None
    if masks:
        page_masks = PageMasks(
            trace=rng.integers(0, len(boxes) + 1, size=(H, W), dtype=np.uint8),
            grid=rng.uniform(size=(H, W)) < 0.3,
            text=rng.uniform(size=(H, W)) < 0.05,
        )
    return Digitization(
        image_size=(H, W),
        layout=layout,
        calibration=Calibration(float(rng.uniform(3, 12)), float(rng.uniform(3, 12)), 25.0, 10.0),
        boxes=tuple(boxes),
        traces=tuple(traces),
        signals=Signals(mv, FS, LEAD_NAMES),
        confidence={lead: float(rng.uniform()) for lead in LEAD_NAMES if lead != "V3"},  # V3: none
        masks=page_masks,
        model_version="unet-r34 2024-05 sha:0123abcd",
        timings_s={"geometry": float(rng.uniform()), "model/inference": float(rng.uniform())},
        assumptions=(Assumption("gain", "no calibration pulse measured; assuming 10 mm/mV ✓"),),
    )


def make_record(rng: np.random.Generator, **kwargs) -> LabelRecord:
    sha = hashlib.sha256(rng.bytes(64)).hexdigest()
    review = Review(
        ReviewStatus.CORRECTED,
        lead_status={"II": ReviewStatus.CORRECTED, "V1": ReviewStatus.REVIEWED, "aVR": "proposed"},
        reviewer="Dr. Ødegård",
        reviewed_at="2024-05-01T12:34:56Z",
        note="baseline wander in V1–V3;\nrhythm strip cut ≈ 9.6 s ✓",
    )
    return LabelRecord(
        ImageIdentity("scans/página 1.png", sha, H, W),
        make_digitization(rng, **kwargs),
        review,
        Provenance("0.0.9", "2024-04-30T08:00:00Z", "2024-05-01T12:35:00+00:00"),
    )


def assert_same_array(a: np.ndarray | None, b: np.ndarray | None) -> None:
    if a is None or b is None:
        assert a is None and b is None
        return
    assert a.dtype == b.dtype
    assert a.shape == b.shape
    if a.dtype.kind == "f":
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    np.testing.assert_array_equal(a, b)


def assert_identical(loaded: LabelRecord, record: LabelRecord) -> None:
    """Field by field, independently of ``LabelRecord.__eq__``."""
    assert loaded.image == record.image
    assert loaded.review == record.review
    assert all(isinstance(s, ReviewStatus) for s in loaded.review.lead_status.values())
    assert loaded.provenance == record.provenance
    a, b = loaded.digitization, record.digitization
    assert a.image_size == b.image_size and a.layout == b.layout and a.model_version == b.model_version
    assert a.calibration == b.calibration
    assert a.boxes == b.boxes
    for box in a.boxes:
        assert type(box.row) is int and type(box.inverted) is bool and type(box.x0) is float
    assert list(a.confidence.items()) == list(b.confidence.items())
    assert list(a.timings_s.items()) == list(b.timings_s.items())
    assert len(a.traces) == len(b.traces)
    for ta, tb in zip(a.traces, b.traces, strict=True):
        assert ta.lead == tb.lead
        assert_same_array(ta.xy, tb.xy)
        assert_same_array(ta.confidence, tb.confidence)
    assert a.signals.fs == b.signals.fs and a.signals.lead_names == b.signals.lead_names
    assert_same_array(a.signals.mv, b.signals.mv)
    if b.masks is None:
        assert a.masks is None
    else:
        for name in ("trace", "grid", "text"):
            assert_same_array(getattr(a.masks, name), getattr(b.masks, name))
    assert loaded == record


# ---------------------------------------------------------------------------------------------
# Round trips
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed, masks", [(0, True), (1, False), (2, True)])
def test_round_trip_is_exact(tmp_path: Path, seed: int, masks: bool) -> None:
    record = make_record(np.random.default_rng(seed), masks=masks)
    path = save_labels(record, tmp_path / "page.labels.h5")
    assert path == tmp_path / "page.labels.h5"
    loaded = load_labels(path)
    assert_identical(loaded, record)
    dig = loaded.digitization
    assert len(dig.boxes) == 13 and dig.boxes[-1].duration_s == 10.0  # 3x4 + rhythm strip
    assert dig.traces[1].xy.shape == (0, 2) and dig.traces[1].xy.dtype == np.float64
    assert dig.traces[2].confidence is None and dig.traces[0].confidence.dtype == np.float32
    assert "V3" not in dig.confidence
    assert np.isnan(dig.signals.mv).any()
    assert loaded.review.reviewer == "Dr. Ødegård"
    assert (dig.masks is None) == (not masks)


@pytest.mark.parametrize("layout", ["6x2", "cabrera-3x4+1", "3x4+3"])
def test_round_trip_other_layouts(tmp_path: Path, layout: str) -> None:
    record = make_record(np.random.default_rng(3), layout=layout, masks=False)
    assert_identical(load_labels(save_labels(record, tmp_path / "x.labels.h5")), record)


def test_round_trip_minimal_record(tmp_path: Path) -> None:
    """No boxes, no samples, empty dicts and strings, a fresh review."""
    dig = Digitization((8, 10), "3x4", Calibration(1.0, 1.0), (), (), Signals(np.empty((0, 12)), 500.0))
    record = LabelRecord(ImageIdentity("", "0" * 64, 8, 10), dig)
    loaded = load_labels(save_labels(record, tmp_path / "m.labels.h5"))
    assert_identical(loaded, record)
    assert loaded.review == Review() and loaded.review.status is ReviewStatus.NEW
    assert loaded.provenance.software_version == ecgstudio.__version__


def test_float64_confidence_and_float32_xy(tmp_path: Path) -> None:
    """Confidence keeps float64 when given; xy is stored as float64 (the documented dtype)."""
    rng = np.random.default_rng(4)
    record = make_record(rng, masks=False)
    dig = record.digitization
    traces = list(dig.traces)
    traces[0] = Trace("I", rng.uniform(0, W, (7, 2)).astype(np.float32), rng.uniform(0, 1, 7))
    record = dataclasses.replace(record, digitization=dataclasses.replace(dig, traces=tuple(traces)))
    loaded = load_labels(save_labels(record, tmp_path / "p.labels.h5"))
    trace = loaded.digitization.traces[0]
    assert trace.confidence.dtype == np.float64
    np.testing.assert_array_equal(trace.confidence, traces[0].confidence)
    assert trace.xy.dtype == np.float64
    np.testing.assert_array_equal(trace.xy, traces[0].xy.astype(np.float64))


def test_equality_sees_every_change() -> None:
    record = make_record(np.random.default_rng(5))
    same = make_record(np.random.default_rng(5))
    assert record == same
    dig = record.digitization
    mv = dig.signals.mv.copy()
    mv[0, 0] = np.nan if not np.isnan(mv[0, 0]) else 0.0
    moved_nan = dataclasses.replace(dig, signals=Signals(mv, FS))
    first_as_float32 = Trace("I", dig.traces[0].xy.astype(np.float32), dig.traces[0].confidence)
    as_float32 = dataclasses.replace(dig, traces=(first_as_float32, *dig.traces[1:]))
    no_masks = dataclasses.replace(dig, masks=None)
    for changed in (moved_nan, as_float32, no_masks):
        assert dataclasses.replace(record, digitization=changed) != record
    assert dataclasses.replace(record, review=Review()) != record


def test_file_layout_matches_the_documented_schema(tmp_path: Path) -> None:
    record = make_record(np.random.default_rng(6))
    path = save_labels(record, tmp_path / "p.labels.h5")
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == FORMAT_NAME and f.attrs["schema_version"] == SCHEMA_VERSION
        assert set(f) == {"image", "digitization", "review"}
        assert set(f["digitization"]) == {
            "calibration",
            "boxes",
            "traces",
            "signals",
            "confidence",
            "timings",
            "assumptions",
            "masks",
        }
        assert set(f["digitization/traces"]) == {str(k) for k in range(13)}
        assert f["digitization/boxes/x0"].shape == (13,) and f["digitization/boxes/x0"].dtype == np.float64
        for name in ("trace", "grid", "text"):
            ds = f[f"digitization/masks/{name}"]
            assert ds.dtype == np.uint8 and ds.compression == "gzip" and ds.chunks is not None
        assert f["digitization/signals/mv"].shape == (5000, 12)


def test_every_item_in_a_file_is_documented(tmp_path: Path) -> None:
    """docs/labels.md is the contract: each group has a section, each dataset and attribute a row."""
    path = save_labels(make_record(np.random.default_rng(6)), tmp_path / "p.labels.h5")
    text = (Path(__file__).resolve().parents[2] / "docs" / "labels.md").read_text(encoding="utf-8")
    missing: list[str] = []

    def visit(name: str, obj: h5py.HLObject) -> None:
        generic = "/".join("<k>" if part.isdigit() else part for part in name.split("/"))
        if name and isinstance(obj, h5py.Group) and f"### `/{generic}`" not in text:
            missing.append(f"section for /{generic}")
        if isinstance(obj, h5py.Dataset) and f"`{generic.rsplit('/', 1)[-1]}`" not in text:
            missing.append(f"row for /{generic}")
        missing.extend(f"`{a}` (attribute of /{generic})" for a in obj.attrs if f"`{a}`" not in text)

    with h5py.File(path, "r") as f:
        visit("", f)
        f.visititems(visit)
    assert missing == []


def test_touched_stamps_modification() -> None:
    record = make_record(np.random.default_rng(7))
    touched = record.touched()
    assert touched.provenance.created_at == record.provenance.created_at
    assert touched.provenance.software_version == ecgstudio.__version__
    assert touched.provenance.modified_at != record.provenance.modified_at


def test_review_validates_its_fields() -> None:
    assert Review("reviewed").status is ReviewStatus.REVIEWED
    with pytest.raises(ValueError):
        Review("approved")
    with pytest.raises(ValueError, match="not in UTC"):
        Review(reviewed_at="2024-05-01T12:00:00+02:00")
    with pytest.raises(ValueError, match="ISO 8601"):
        Review(reviewed_at="yesterday")


# ---------------------------------------------------------------------------------------------
# Atomic writes
# ---------------------------------------------------------------------------------------------


def test_failure_midway_leaves_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(8)
    path = save_labels(make_record(rng), tmp_path / "p.labels.h5")
    before = path.read_bytes()
    real = h5py.Group.create_dataset
    calls = []

    def failing(self, *args, **kwargs):
        calls.append(args)
        if len(calls) == 20:
            raise OSError(28, "No space left on device")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(h5py.Group, "create_dataset", failing)
    with pytest.raises(OSError, match="No space left"):
        save_labels(make_record(rng), path)
    assert len(calls) == 20
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.labels.h5"]


def test_invalid_record_is_refused_before_writing(tmp_path: Path) -> None:
    record = make_record(np.random.default_rng(9))
    dig = record.digitization
    bad = dataclasses.replace(dig, traces=(Trace("I", np.zeros((4, 3))),) + dig.traces[1:])
    with pytest.raises(LabelFormatError, match=r"trace 0 \(I\) xy must be a numeric \(n, 2\) array"):
        save_labels(dataclasses.replace(record, digitization=bad), tmp_path / "p.labels.h5")
    bad_masks = dataclasses.replace(dig, masks=PageMasks(dig.masks.trace, dig.masks.grid[:5], dig.masks.text))
    with pytest.raises(LabelFormatError, match="masks.grid must be a bool"):
        save_labels(dataclasses.replace(record, digitization=bad_masks), tmp_path / "p.labels.h5")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# Refusals
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    return save_labels(make_record(np.random.default_rng(10)), tmp_path / "p.labels.h5")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(LabelFormatError, match="no label file at"):
        load_labels(tmp_path / "nope.labels.h5")


@pytest.mark.parametrize("content", [b"", b"garbage, not HDF5\n" * 100])
def test_not_hdf5(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.labels.h5"
    path.write_bytes(content)
    with pytest.raises(LabelFormatError, match="is not an HDF5 file"):
        load_labels(path)


def test_truncated_file(saved: Path) -> None:
    data = saved.read_bytes()
    saved.write_bytes(data[: len(data) // 2])
    with pytest.raises(LabelFormatError, match="truncated or damaged"):
        load_labels(saved)


def test_plain_hdf5_without_format(tmp_path: Path) -> None:
    path = tmp_path / "plain.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(LabelFormatError, match="not an ECG Studio label file .*no 'format' attribute"):
        load_labels(path)


def edit(path: Path, change: Callable[[h5py.File], None], *, resign: bool = True) -> None:
    """Apply ``change`` to a saved file and, unless ``resign`` is False, store the checksum of the
    changed contents, so that the check under test is not the checksum's."""
    with h5py.File(path, "a") as f:
        change(f)
        if resign:
            f.attrs[labels_mod.PAYLOAD_ATTR] = labels_mod._payload_digest(f)


def set_attr(name: str, obj: str, value: object) -> Callable[[h5py.File], None]:
    def change(f: h5py.File) -> None:
        f[obj].attrs[name] = value

    return change


def delete(name: str) -> Callable[[h5py.File], None]:
    def change(f: h5py.File) -> None:
        del f[name]

    return change


def replace_dataset(name: str, data: np.ndarray) -> Callable[[h5py.File], None]:
    def change(f: h5py.File) -> None:
        del f[name]
        f[name] = data

    return change


def delete_attr(obj: str, name: str) -> Callable[[h5py.File], None]:
    def change(f: h5py.File) -> None:
        del f[obj].attrs[name]

    return change


REFUSALS = {
    "other format": (set_attr("format", "/", "someone-elses-labels"), r"has format 'someone-elses-labels'"),
    "newer version": (
        set_attr("schema_version", "/", np.int64(99)),
        r"written by a newer ECG Studio \(schema 99\); update ECG Studio",
    ),
    "version 0": (set_attr("schema_version", "/", np.int64(0)), r"unknown schema version 0"),
    "version as text": (set_attr("schema_version", "/", "1"), r"unknown schema version '1'"),
    "no version": (delete_attr("/", "schema_version"), r"'schema_version' attribute is missing"),
    "deleted signals": (delete("digitization/signals/mv"), r"dataset /digitization/signals/mv is missing"),
    "deleted review": (delete("review"), r"group /review is missing"),
    "deleted attribute": (delete_attr("image", "sha256"), r"attribute 'sha256' of /image is missing"),
    "deleted trace": (delete("digitization/traces/12"), r"holds 12 traces but there are 13 lead boxes"),
    "renamed trace": (
        lambda f: f.move("digitization/traces/12", "digitization/traces/x"),
        r"holds a dataset /digitization/traces/x/.* that label files do not have",
    ),
    "signals width": (
        replace_dataset("digitization/signals/mv", np.zeros((100, 11))),
        r"mv has 11 columns but lead_names names 12 leads",
    ),
    "box column": (
        replace_dataset("digitization/boxes/y1", np.zeros(12)),
        r"boxes/y1 has 12 entries but there are 13 lead boxes",
    ),
    "xy shape": (
        replace_dataset("digitization/traces/0/xy", np.zeros((5, 3))),
        r"traces/0/xy declares shape \(5, 3\), expected at most \(2000000, 2\)",
    ),
    "xy dtype": (replace_dataset("digitization/traces/0/xy", np.zeros((5, 2), np.int64)), r"traces/0/xy has dtype"),
    "confidence length": (
        replace_dataset("digitization/traces/0/confidence", np.zeros(1, np.float32)),
        r"traces/0/confidence has 1 values for",
    ),
    "mask shape": (
        replace_dataset("digitization/masks/grid", np.zeros((3, 3), np.uint8)),
        r"masks/grid declares shape \(3, 3\), expected exactly \(96, 128\)",
    ),
    "mask values": (
        replace_dataset("digitization/masks/text", np.full((H, W), 7, np.uint8)),
        r"masks/text holds values other than 0 and 1",
    ),
    "review status": (set_attr("status", "review", "approved"), r"unknown review status 'approved'"),
    "attribute type": (set_attr("height", "image", "tall"), r"'height' of /image should be an integer"),
    "group is dataset": (
        replace_dataset("digitization/calibration", np.zeros(4)),
        r"holds a dataset /digitization/calibration that label files do not have",
    ),
    "bad sha": (set_attr("sha256", "image", "xyz"), r"sha256 must be 64 lower-case hex digits"),
    "bad time": (set_attr("created_at", "/", "last week"), r"created_at 'last week' is not an ISO 8601 time"),
    "bad fs": (set_attr("fs", "digitization/signals", 0.0), r"sampling frequency fs=0.0"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_broken_files_are_refused(saved: Path, case: str) -> None:
    change, message = REFUSALS[case]
    edit(saved, change)
    with pytest.raises(LabelFormatError, match=message):
        load_labels(saved)


def test_refusals_name_the_file_and_a_remedy(saved: Path) -> None:
    edit(saved, delete("digitization/signals/mv"))
    with pytest.raises(LabelFormatError) as info:
        load_labels(saved)
    assert str(saved) in str(info.value) and "restore it from a backup" in str(info.value)


def test_corrupted_chunk_is_refused(saved: Path) -> None:
    """Damage inside compressed data surfaces as LabelFormatError, not a raw h5py error."""
    with h5py.File(saved, "r") as f:
        offset = f["digitization/masks/grid"].id.get_chunk_info(0).byte_offset
    data = bytearray(saved.read_bytes())
    data[offset : offset + 64] = b"\xff" * 64
    saved.write_bytes(bytes(data))
    with pytest.raises(LabelFormatError, match="cannot read it"):
        load_labels(saved)


# ---------------------------------------------------------------------------------------------
# Image identity and file naming
# ---------------------------------------------------------------------------------------------


def write_png(path: Path, rng: np.random.Generator, size: tuple[int, int] = (30, 40)) -> np.ndarray:
    from PIL import Image

    pixels = rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return pixels


def test_image_identity_from_file(tmp_path: Path) -> None:
    path = tmp_path / "scan.png"
    pixels = write_png(path, np.random.default_rng(11))
    ident = ImageIdentity.from_file(path)
    assert ident == ImageIdentity(str(path), hashlib.sha256(path.read_bytes()).hexdigest(), 30, 40)
    assert ImageIdentity.from_array(path, pixels) == ident


def test_image_identity_of_pdf_needs_explicit_size(tmp_path: Path) -> None:
    pdf = tmp_path / "ecg.pdf"
    pdf.write_bytes(b"%PDF-1.4\n% not really\n")
    with pytest.raises(UnreadableImageError, match="pass height= and width="):
        ImageIdentity.from_file(pdf)
    ident = ImageIdentity.from_file(pdf, height=1700, width=2200)
    assert (ident.height, ident.width) == (1700, 2200)
    with pytest.raises(UnreadableImageError, match="check the path"):
        ImageIdentity.from_file(tmp_path / "missing.png")


def test_check_image(tmp_path: Path) -> None:
    rng = np.random.default_rng(12)
    path = tmp_path / "scan.png"
    write_png(path, rng)
    record = dataclasses.replace(make_record(rng, masks=False), image=ImageIdentity.from_file(path))
    check_image(record, path)
    check_image(record)  # defaults to the recorded path
    moved = tmp_path / "moved.png"
    path.rename(moved)
    with pytest.raises(ImageMismatchError, match="is missing"):
        check_image(record)
    check_image(record, moved)
    write_png(moved, rng)
    with pytest.raises(ImageMismatchError, match="changed since it was labelled"):
        check_image(record, moved)
    assert issubclass(ImageMismatchError, LabelFormatError)


def test_label_path_and_listing(tmp_path: Path) -> None:
    assert label_path_for("/scans/ecg 001.png", tmp_path) == tmp_path / "ecg 001.labels.h5"
    assert label_path_for(Path("a/b.tar.jpg"), "labels") == Path("labels/b.tar.labels.h5")
    record = make_record(np.random.default_rng(13), masks=False)
    for stem in ("b", "a", "c"):
        save_labels(record, label_path_for(f"{stem}.png", tmp_path / "labels"))
    (tmp_path / "labels" / "notes.txt").write_text("x")
    (tmp_path / "labels" / ".a.labels.h5.x1.tmp").write_bytes(b"")
    (tmp_path / "labels" / "sub.h5").mkdir()
    files = list(iter_label_files(tmp_path / "labels"))
    assert [p.name for p in files] == ["a.labels.h5", "b.labels.h5", "c.labels.h5"]
    with pytest.raises(NotADirectoryError, match="does not exist"):
        iter_label_files(tmp_path / "missing")


def test_field_lists_follow_the_dataclasses() -> None:
    box_fields = {f.name for f in dataclasses.fields(LeadBox)}
    assert box_fields == {"lead", *labels_mod._BOX_FLOAT_FIELDS, *labels_mod._BOX_INT_FIELDS, "inverted"}
    assert {f.name for f in dataclasses.fields(Calibration)} == set(labels_mod._CALIBRATION_FIELDS)
