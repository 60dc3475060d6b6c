"""The HDF5 label store: one file per page holding a reviewed digitization.

A label file keeps what the studio knows about one ECG page once a person has looked at it:
which image it describes (path, sha256, size), the :class:`~ecgstudio.results.Digitization`
(calibration, lead boxes, pixel traces, optional masks, mV signals), the review (status per
page and per lead, reviewer, time, note) and provenance (software version, creation and
modification times).  The fine-tune of the segmentation model reads these files back.

The layout of the file is a contract for other tools and is documented, group by group, in
``docs/labels.md``.  Readers refuse schema versions they do not know
(:data:`SCHEMA_VERSION`); every change to the layout, additive ones included, bumps it.

Examples
--------
>>> record = LabelRecord(ImageIdentity.from_file("page.png"), digitization)  # doctest: +SKIP
>>> save_labels(record, label_path_for("page.png", "labels"))               # doctest: +SKIP
>>> load_labels("labels/page.labels.h5") == record                          # doctest: +SKIP
True
"""

from __future__ import annotations

import logging
import operator
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from . import __version__
from .errors import LabelFormatError, UnreadableImageError
from .io.atomic import atomic_path
from .io.images import file_sha256
from .results import Calibration, Digitization, LeadBox, PageMasks, Signals, Trace

logger = logging.getLogger(__name__)

__all__ = [
    "FORMAT_NAME",
    "LABEL_SUFFIX",
    "SCHEMA_VERSION",
    "ImageIdentity",
    "ImageMismatchError",
    "LabelRecord",
    "Provenance",
    "Review",
    "ReviewStatus",
    "check_image",
    "iter_label_files",
    "label_path_for",
    "load_labels",
    "save_labels",
    "utc_now",
]

#: Version of the file layout this module writes; readers refuse any other.
SCHEMA_VERSION = 1
#: Value of the root ``format`` attribute that marks an ECG Studio label file.
FORMAT_NAME = "ecgstudio-labels"
#: Suffix of label file names (``<image stem>.labels.h5``).
LABEL_SUFFIX = ".labels.h5"

_SUPPORTED_SCHEMAS = frozenset({SCHEMA_VERSION})
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_GZIP_LEVEL = 4
_BOX_FLOAT_FIELDS = ("x0", "y0", "x1", "y1", "baseline_y", "t_start_s", "duration_s")
_BOX_INT_FIELDS = ("row", "col")
_CALIBRATION_FIELDS = ("px_per_mm_x", "px_per_mm_y", "mm_per_s", "mm_per_mv")
_DAMAGED = "restore it from a backup or re-save the page from ECG Studio"


class ImageMismatchError(LabelFormatError):
    """The image a label file describes is missing or no longer has the recorded sha256."""


class ReviewStatus(StrEnum):
    """Where a page (or one lead of it) stands in review.

    ``new``: nobody has looked at it; ``proposed``: the model's output, unreviewed;
    ``reviewed``: a person checked it and accepted it as is; ``corrected``: a person edited it.
    """

    NEW = "new"
    PROPOSED = "proposed"
    REVIEWED = "reviewed"
    CORRECTED = "corrected"


def utc_now() -> str:
    """The current time as an ISO 8601 UTC string with second resolution, e.g. ``2024-05-01T12:00:00Z``."""
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _check_utc(value: str, what: str) -> None:
    """Raise ValueError unless ``value`` is an ISO 8601 time with a UTC offset of zero."""
    if not isinstance(value, str):
        raise ValueError(f"{what} must be an ISO 8601 UTC string, got {type(value).__name__}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{what} {value!r} is not an ISO 8601 time; use e.g. {utc_now()!r}") from None
    if parsed.utcoffset() is None or parsed.utcoffset().total_seconds() != 0:
        raise ValueError(f"{what} {value!r} is not in UTC; use e.g. {utc_now()!r}")


# --------------------------------------------------------------------------------------------
# Record types
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageIdentity:
    """Which image file a label file describes.

    Attributes
    ----------
    path : str
        The image path as given when the page was labelled (relative or absolute).
    sha256 : str
        Lower-case hex sha256 of the file's bytes (64 characters).
    height, width : int
        Size of the image in pixels; for a PDF, of the rendered page.
    """

    path: str
    sha256: str
    height: int
    width: int

    def __post_init__(self) -> None:
        if not isinstance(self.path, str):
            raise ValueError(f"image path must be a str, got {type(self.path).__name__}; pass str(path)")
        if not isinstance(self.sha256, str) or not _SHA256_RE.fullmatch(self.sha256):
            raise ValueError(f"sha256 must be 64 lower-case hex digits, got {self.sha256!r}")
        for name in ("height", "width"):
            value = operator.index(getattr(self, name))
            if value < 0:
                raise ValueError(f"image {name} must be >= 0, got {value}")
            object.__setattr__(self, name, value)

    @classmethod
    def from_file(
        cls, path: str | os.PathLike[str], *, height: int | None = None, width: int | None = None
    ) -> ImageIdentity:
        """Identify an image file: its sha256 (streamed) and its size.

        Parameters
        ----------
        path : str or path-like
            The image file; kept as given (``str(path)``).
        height, width : int, optional
            Size in pixels.  Give both for files Pillow cannot size (a PDF: the rendered
            page); otherwise the size is read from the image header without decoding it.

        Raises
        ------
        UnreadableImageError
            The file is missing, or its size cannot be read and none was given.
        """
        file = Path(path)
        if (height is None) != (width is None):
            raise ValueError("pass both height and width, or neither")
        digest = file_sha256(file)
        if height is None or width is None:
            from PIL import Image

            try:
                with Image.open(file) as im:
                    width, height = im.size
            except (OSError, Image.DecompressionBombError) as exc:
                raise UnreadableImageError(
                    f"cannot read the size of image {file} ({exc}); for a PDF or another format "
                    "Pillow cannot open, pass height= and width= of the rendered page"
                ) from exc
        return cls(str(os.fspath(path)), digest, height, width)

    @classmethod
    def from_array(cls, path: str | os.PathLike[str], image: np.ndarray) -> ImageIdentity:
        """Identify an image file already loaded (or rendered) as ``image``.

        Parameters
        ----------
        path : str or path-like
            The file the array was read from; hashed with sha256.
        image : ndarray, shape (H, W) or (H, W, C)
            The decoded image; its first two dimensions give the size.
        """
        image = np.asarray(image)
        if image.ndim < 2:
            raise ValueError(f"image must be (H, W) or (H, W, C), got shape {image.shape}")
        digest = file_sha256(path)
        return cls(str(os.fspath(path)), digest, int(image.shape[0]), int(image.shape[1]))


@dataclass(frozen=True)
class Review:
    """The review of a page.

    Attributes
    ----------
    status : ReviewStatus
        Status of the whole page (a plain string such as ``"reviewed"`` is converted).
    lead_status : dict of str to ReviewStatus
        Optional status per lead name, for pages reviewed lead by lead; empty if not used.
    reviewer : str
        Who reviewed it; empty if nobody has.
    reviewed_at : str
        ISO 8601 UTC time of the review (see :func:`utc_now`); empty if never reviewed.
    note : str
        Free text.
    """

    status: ReviewStatus = ReviewStatus.NEW
    lead_status: Mapping[str, ReviewStatus] = field(default_factory=dict)
    reviewer: str = ""
    reviewed_at: str = ""
    note: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", ReviewStatus(self.status))
        object.__setattr__(self, "lead_status", {str(k): ReviewStatus(v) for k, v in self.lead_status.items()})
        for name in ("reviewer", "reviewed_at", "note"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"review {name} must be a str, got {type(getattr(self, name)).__name__}")
        if self.reviewed_at:
            _check_utc(self.reviewed_at, "reviewed_at")


@dataclass(frozen=True)
class Provenance:
    """Which software wrote a label record, and when.

    Attributes
    ----------
    software_version : str
        ``ecgstudio.__version__`` of the software that created or last modified the record.
    created_at, modified_at : str
        ISO 8601 UTC times (see :func:`utc_now`).
    """

    software_version: str
    created_at: str
    modified_at: str

    def __post_init__(self) -> None:
        if not isinstance(self.software_version, str):
            raise ValueError("software_version must be a str")
        _check_utc(self.created_at, "created_at")
        _check_utc(self.modified_at, "modified_at")

    @classmethod
    def now(cls) -> Provenance:
        """Provenance of a record created now by this version of ECG Studio."""
        stamp = utc_now()
        return cls(__version__, stamp, stamp)


@dataclass(frozen=True, eq=False)
class LabelRecord:
    """Everything one label file holds.

    Records compare equal (``==``) when every field is identical, arrays included (same
    dtype, shape, values and NaN positions), so the studio can tell whether there are unsaved
    changes.

    Attributes
    ----------
    image : ImageIdentity
        The labelled image.
    digitization : Digitization
        The (reviewed) digitization of the page.
    review : Review
        Review status, reviewer, time and note.
    provenance : Provenance
        Software version and times; defaults to now.  :func:`save_labels` writes it as is;
        call :meth:`touched` after changing a record to stamp the modification.
    """

    image: ImageIdentity
    digitization: Digitization
    review: Review = field(default_factory=Review)
    provenance: Provenance = field(default_factory=Provenance.now)

    def touched(self) -> LabelRecord:
        """This record with ``modified_at`` set to now and the current software version."""
        return replace(self, provenance=replace(self.provenance, software_version=__version__, modified_at=utc_now()))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LabelRecord):
            return NotImplemented
        return (
            self.image == other.image
            and self.review == other.review
            and self.provenance == other.provenance
            and _digitizations_equal(self.digitization, other.digitization)
        )

    __hash__ = None  # type: ignore[assignment]


def _arrays_equal(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    """Same dtype, shape and values, NaNs in the same places."""
    if a is None or b is None:
        return a is None and b is None
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))


def _same(a: Any, b: Any) -> bool:
    """Equal, counting two float NaNs as equal."""
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True
    return bool(a == b)


def _same_fields(a: Any, b: Any) -> bool:
    """Two dataclass instances of one type with equal fields (NaN equals NaN)."""
    return type(a) is type(b) and all(_same(getattr(a, f.name), getattr(b, f.name)) for f in fields(a))


def _same_map(a: Mapping[str, float], b: Mapping[str, float]) -> bool:
    return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)


def _digitizations_equal(a: Digitization, b: Digitization) -> bool:
    if (
        tuple(a.image_size) != tuple(b.image_size)
        or a.layout != b.layout
        or not _same_fields(a.calibration, b.calibration)
        or len(a.boxes) != len(b.boxes)
        or not all(_same_fields(x, y) for x, y in zip(a.boxes, b.boxes, strict=True))
        or a.model_version != b.model_version
        or not _same_map(a.confidence, b.confidence)
        or not _same_map(a.timings_s, b.timings_s)
        or len(a.traces) != len(b.traces)
    ):
        return False
    for ta, tb in zip(a.traces, b.traces, strict=True):
        if ta.lead != tb.lead or not _arrays_equal(ta.xy, tb.xy):
            return False
        if not _arrays_equal(ta.confidence, tb.confidence):
            return False
    sa, sb = a.signals, b.signals
    if not _same(sa.fs, sb.fs) or tuple(sa.lead_names) != tuple(sb.lead_names):
        return False
    if not _arrays_equal(sa.mv, sb.mv):
        return False
    if a.masks is None or b.masks is None:
        return a.masks is None and b.masks is None
    return all(_arrays_equal(getattr(a.masks, n), getattr(b.masks, n)) for n in ("trace", "grid", "text"))


# --------------------------------------------------------------------------------------------
# File naming
# --------------------------------------------------------------------------------------------


def label_path_for(image_path: str | os.PathLike[str], labels_dir: str | os.PathLike[str]) -> Path:
    """The label file of an image: ``<labels_dir>/<image stem>.labels.h5``.

    Images that differ only by extension (``a.png``, ``a.jpg``) share a label path; keep
    them in separate label folders.
    """
    return Path(labels_dir) / f"{Path(image_path).stem}{LABEL_SUFFIX}"


def iter_label_files(folder: str | os.PathLike[str]) -> Iterator[Path]:
    """The ``*.h5`` files directly in ``folder``, sorted by name (hidden and temporary files skipped).

    Raises
    ------
    NotADirectoryError
        ``folder`` does not exist or is not a folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"label folder {folder} does not exist or is not a folder; check the path")
    return iter(sorted(p for p in folder.glob("*.h5") if p.is_file() and not p.name.startswith(".")))


# --------------------------------------------------------------------------------------------
# Checking the image
# --------------------------------------------------------------------------------------------


def check_image(record: LabelRecord, image_path: str | os.PathLike[str] | None = None) -> None:
    """Check that the labelled image is present and unchanged (same sha256).

    Parameters
    ----------
    record : LabelRecord
        A loaded label record.
    image_path : str or path-like, optional
        Where the image is now; defaults to ``record.image.path``.

    Raises
    ------
    ImageMismatchError
        The image file is missing or unreadable, or its bytes changed since it was labelled.
    """
    path = Path(record.image.path if image_path is None else image_path)
    if not path.is_file():
        raise ImageMismatchError(
            f"image {path} of this label file is missing; put it back or pass its new location as image_path"
        )
    try:
        digest = file_sha256(path)
    except UnreadableImageError as exc:
        raise ImageMismatchError(str(exc)) from exc
    if digest != record.image.sha256:
        raise ImageMismatchError(
            f"image {path} changed since it was labelled (sha256 {digest[:12]}... instead of "
            f"{record.image.sha256[:12]}...); restore the original image or review the page again"
        )


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def _save_error(problem: str) -> LabelFormatError:
    return LabelFormatError(f"cannot save labels: {problem}; fix the record before saving")


def _prepare_trace(k: int, trace: Trace) -> tuple[np.ndarray, np.ndarray | None]:
    """Validated (xy float64 (n, 2), confidence float32/float64 (n,) or None) of trace ``k``."""
    xy = np.asarray(trace.xy)
    if xy.ndim != 2 or xy.shape[1] != 2 or xy.dtype.kind not in "fiu":
        raise _save_error(f"trace {k} ({trace.lead}) xy must be a numeric (n, 2) array, got {xy.dtype} {xy.shape}")
    xy = xy.astype(np.float64, copy=False)
    conf = trace.confidence
    if conf is None:
        return xy, None
    conf = np.asarray(conf)
    if conf.shape != (xy.shape[0],) or conf.dtype.kind not in "fiub":
        raise _save_error(
            f"trace {k} ({trace.lead}) confidence must be a numeric ({xy.shape[0]},) array, "
            f"got {conf.dtype} {conf.shape}"
        )
    if conf.dtype not in (np.float32, np.float64):
        conf = conf.astype(np.float32)
    return xy, conf


def _prepare_masks(masks: PageMasks) -> dict[str, np.ndarray]:
    trace = np.asarray(masks.trace)
    if trace.ndim != 2 or trace.dtype != np.uint8:
        raise _save_error(f"masks.trace must be a uint8 (H, W) array, got {trace.dtype} {trace.shape}")
    out = {"trace": trace}
    for name in ("grid", "text"):
        arr = np.asarray(getattr(masks, name))
        if arr.dtype != np.bool_ or arr.shape != trace.shape:
            raise _save_error(f"masks.{name} must be a bool {trace.shape} array, got {arr.dtype} {arr.shape}")
        out[name] = arr.astype(np.uint8)
    return out


def _write_strings(group: h5py.Group, name: str, values: list[str]) -> None:
    data = np.empty(len(values), dtype=object)
    data[:] = values
    group.create_dataset(name, data=data, dtype=h5py.string_dtype("utf-8"))


def _write_float_map(parent: h5py.Group, name: str, mapping: Mapping[str, float], key: str, value: str) -> None:
    group = parent.create_group(name)
    _write_strings(group, key, [str(k) for k in mapping])
    group.create_dataset(value, data=np.array([float(v) for v in mapping.values()], dtype=np.float64))


def _write_compressed(group: h5py.Group, name: str, data: np.ndarray) -> None:
    group.create_dataset(name, data=data, chunks=True, compression="gzip", compression_opts=_GZIP_LEVEL)


def _write_record(
    f: h5py.File,
    record: LabelRecord,
    traces: list[tuple[np.ndarray, np.ndarray | None]],
    masks: dict[str, np.ndarray] | None,
) -> None:
    dig = record.digitization
    f.attrs["format"] = FORMAT_NAME
    f.attrs["schema_version"] = np.int64(SCHEMA_VERSION)
    f.attrs["software_version"] = record.provenance.software_version
    f.attrs["created_at"] = record.provenance.created_at
    f.attrs["modified_at"] = record.provenance.modified_at

    image = f.create_group("image")
    image.attrs["path"] = record.image.path
    image.attrs["sha256"] = record.image.sha256
    image.attrs["height"] = np.int64(record.image.height)
    image.attrs["width"] = np.int64(record.image.width)

    g = f.create_group("digitization")
    g.attrs["layout"] = dig.layout
    g.attrs["model_version"] = dig.model_version
    g.attrs["image_height"] = np.int64(dig.image_size[0])
    g.attrs["image_width"] = np.int64(dig.image_size[1])

    cal = g.create_group("calibration")
    for name in _CALIBRATION_FIELDS:
        cal.attrs[name] = np.float64(getattr(dig.calibration, name))

    boxes = g.create_group("boxes")
    _write_strings(boxes, "lead", [b.lead for b in dig.boxes])
    for name in _BOX_FLOAT_FIELDS:
        boxes.create_dataset(name, data=np.array([getattr(b, name) for b in dig.boxes], dtype=np.float64))
    for name in _BOX_INT_FIELDS:
        boxes.create_dataset(name, data=np.array([getattr(b, name) for b in dig.boxes], dtype=np.int64))
    boxes.create_dataset("inverted", data=np.array([b.inverted for b in dig.boxes], dtype=np.uint8))

    tg = g.create_group("traces")
    for k, (trace, (xy, conf)) in enumerate(zip(dig.traces, traces, strict=True)):
        t = tg.create_group(str(k))
        t.attrs["lead"] = trace.lead
        t.create_dataset("xy", data=xy)
        if conf is not None:
            t.create_dataset("confidence", data=conf)

    sig = g.create_group("signals")
    sig.attrs["fs"] = np.float64(dig.signals.fs)
    _write_compressed(sig, "mv", np.asarray(dig.signals.mv, dtype=np.float64))
    _write_strings(sig, "lead_names", list(dig.signals.lead_names))

    _write_float_map(g, "confidence", dig.confidence, "lead", "value")
    _write_float_map(g, "timings", dig.timings_s, "name", "seconds")

    if masks is not None:
        mg = g.create_group("masks")
        for name, arr in masks.items():
            _write_compressed(mg, name, arr)

    review = f.create_group("review")
    review.attrs["status"] = record.review.status.value
    review.attrs["reviewer"] = record.review.reviewer
    review.attrs["reviewed_at"] = record.review.reviewed_at
    review.attrs["note"] = record.review.note
    leads = review.create_group("leads")
    _write_strings(leads, "lead", list(record.review.lead_status))
    _write_strings(leads, "status", [s.value for s in record.review.lead_status.values()])


def save_labels(record: LabelRecord, path: str | os.PathLike[str]) -> Path:
    """Write a label record to an HDF5 file, atomically.

    The file is written to a temporary file beside ``path`` and renamed over it only once
    complete, so a crash or an error midway leaves any previous file untouched.  The record
    is written as is, provenance included (see :meth:`LabelRecord.touched`).

    Parameters
    ----------
    record : LabelRecord
        What to save.
    path : str or path-like
        Target file, usually from :func:`label_path_for`; its folder is created if needed.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    LabelFormatError
        The record holds arrays of the wrong shape or dtype (nothing is written then).
    """
    path = Path(path)
    dig = record.digitization
    if len(dig.image_size) != 2:
        raise _save_error(f"digitization image_size must be (height, width), got {dig.image_size!r}")
    traces = [_prepare_trace(k, t) for k, t in enumerate(dig.traces)]
    masks = None if dig.masks is None else _prepare_masks(dig.masks)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        _write_record(f, record, traces, masks)
    logger.debug("saved labels of %s to %s", record.image.path, path)
    return path


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def _has_hdf5_signature(path: Path) -> bool:
    """Whether the HDF5 signature is at offset 0, 512, 1024, 2048, ... (where HDF5 puts it)."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        offset = 0
        while offset + len(_HDF5_SIGNATURE) <= size:
            fh.seek(offset)
            if fh.read(len(_HDF5_SIGNATURE)) == _HDF5_SIGNATURE:
                return True
            offset = 512 if offset == 0 else offset * 2
    return False


class _Reader:
    """Reads one open label file, turning every structural problem into a LabelFormatError."""

    def __init__(self, file: h5py.File, path: Path) -> None:
        self.file = file
        self.path = path

    def fail(self, problem: str, fix: str = _DAMAGED) -> LabelFormatError:
        return LabelFormatError(f"label file {self.path}: {problem}; {fix}")

    # -- low-level accessors ------------------------------------------------------------------

    def group(self, name: str) -> h5py.Group:
        obj = self.file.get(name)
        if obj is None:
            raise self.fail(f"group /{name} is missing")
        if not isinstance(obj, h5py.Group):
            raise self.fail(f"/{name} should be a group but is a {type(obj).__name__}")
        return obj

    def dataset(self, name: str, kinds: str, ndim: int) -> np.ndarray:
        obj = self.file.get(name)
        if obj is None:
            raise self.fail(f"dataset /{name} is missing")
        if not isinstance(obj, h5py.Dataset):
            raise self.fail(f"/{name} should be a dataset but is a {type(obj).__name__}")
        if obj.dtype.kind not in kinds or obj.ndim != ndim:
            raise self.fail(f"dataset /{name} has dtype {obj.dtype} and shape {obj.shape}, expected a {ndim}-d array")
        return obj[()]

    def strings(self, name: str) -> list[str]:
        obj = self.file.get(name)
        if obj is None:
            raise self.fail(f"dataset /{name} is missing")
        if not isinstance(obj, h5py.Dataset) or h5py.check_string_dtype(obj.dtype) is None or obj.ndim != 1:
            raise self.fail(f"/{name} should be a 1-d dataset of strings")
        return [str(s) for s in obj.asstr()[()]]

    def attr(self, obj: h5py.HLObject, name: str) -> Any:
        if name not in obj.attrs:
            raise self.fail(f"attribute {name!r} of {obj.name} is missing")
        return obj.attrs[name]

    def attr_str(self, obj: h5py.HLObject, name: str) -> str:
        value = self.attr(obj, name)
        if isinstance(value, bytes | np.bytes_):
            value = bytes(value).decode("utf-8")
        if not isinstance(value, str):
            raise self.fail(f"attribute {name!r} of {obj.name} should be a string, got {value!r}")
        return value

    def attr_int(self, obj: h5py.HLObject, name: str) -> int:
        value = self.attr(obj, name)
        if not isinstance(value, int | np.integer) or isinstance(value, bool | np.bool_):
            raise self.fail(f"attribute {name!r} of {obj.name} should be an integer, got {value!r}")
        return int(value)

    def attr_float(self, obj: h5py.HLObject, name: str) -> float:
        value = self.attr(obj, name)
        if not isinstance(value, float | int | np.floating | np.integer) or isinstance(value, bool | np.bool_):
            raise self.fail(f"attribute {name!r} of {obj.name} should be a number, got {value!r}")
        return float(value)

    def float_map(self, name: str, key: str, value: str) -> dict[str, float]:
        self.group(name)
        keys = self.strings(f"{name}/{key}")
        values = self.dataset(f"{name}/{value}", "fiu", 1)
        if len(keys) != len(values):
            raise self.fail(f"/{name} has {len(keys)} names but {len(values)} values")
        return {k: float(v) for k, v in zip(keys, values, strict=True)}

    # -- sections -----------------------------------------------------------------------------

    def check_format(self) -> None:
        root = self.file
        fmt = root.attrs.get("format")
        if isinstance(fmt, bytes | np.bytes_):
            fmt = bytes(fmt).decode("utf-8", "replace")
        if fmt != FORMAT_NAME:
            what = "has no 'format' attribute" if fmt is None else f"has format {fmt!r}"
            raise self.fail(
                f"not an ECG Studio label file (the HDF5 file {what}, expected {FORMAT_NAME!r})",
                "open a .labels.h5 file written by ECG Studio",
            )
        version = root.attrs.get("schema_version")
        if version is None:
            raise self.fail("the 'schema_version' attribute is missing")
        if not isinstance(version, int | np.integer) or isinstance(version, bool | np.bool_):
            raise self.fail(f"unknown schema version {version!r}", "the file was not written by ECG Studio")
        version = int(version)
        if version > SCHEMA_VERSION:
            raise LabelFormatError(
                f"label file {self.path}: this file was written by a newer ECG Studio (schema {version}); "
                f"update ECG Studio (this version reads schema {SCHEMA_VERSION})"
            )
        if version not in _SUPPORTED_SCHEMAS:
            raise self.fail(
                f"unknown schema version {version} (this ECG Studio reads schema {SCHEMA_VERSION})",
                "the file was not written by a released ECG Studio; re-save the page from ECG Studio",
            )

    def image(self) -> ImageIdentity:
        g = self.group("image")
        return ImageIdentity(
            path=self.attr_str(g, "path"),
            sha256=self.attr_str(g, "sha256"),
            height=self.attr_int(g, "height"),
            width=self.attr_int(g, "width"),
        )

    def boxes(self) -> tuple[LeadBox, ...]:
        self.group("digitization/boxes")
        leads = self.strings("digitization/boxes/lead")
        n = len(leads)
        columns: dict[str, np.ndarray] = {}
        kinds_of = {
            **dict.fromkeys(_BOX_FLOAT_FIELDS, "f"),
            **dict.fromkeys(_BOX_INT_FIELDS, "iu"),
            "inverted": "iub",
        }
        for name, kinds in kinds_of.items():
            col = self.dataset(f"digitization/boxes/{name}", kinds, 1)
            if len(col) != n:
                raise self.fail(f"/digitization/boxes/{name} has {len(col)} entries but there are {n} lead boxes")
            columns[name] = col
        return tuple(
            LeadBox(
                lead,
                *(float(columns[f][k]) for f in _BOX_FLOAT_FIELDS),
                row=int(columns["row"][k]),
                col=int(columns["col"][k]),
                inverted=bool(columns["inverted"][k]),
            )
            for k, lead in enumerate(leads)
        )

    def traces(self, n_boxes: int) -> tuple[Trace, ...]:
        g = self.group("digitization/traces")
        names = set(g.keys())
        if len(names) != n_boxes:
            raise self.fail(
                f"/digitization/traces holds {len(names)} traces but there are {n_boxes} lead boxes; "
                "traces and boxes must be aligned"
            )
        expected = {str(k) for k in range(n_boxes)}
        if names != expected:
            raise self.fail(f"/digitization/traces holds {sorted(names - expected)} instead of groups 0..{n_boxes - 1}")
        traces = []
        for k in range(n_boxes):
            base = f"digitization/traces/{k}"
            tg = self.group(base)
            xy = self.dataset(f"{base}/xy", "f", 2)
            if xy.shape[1] != 2:
                raise self.fail(f"/{base}/xy has shape {xy.shape}, expected (n, 2)")
            conf = None
            if "confidence" in tg:
                conf = self.dataset(f"{base}/confidence", "f", 1)
                if conf.shape != (xy.shape[0],):
                    raise self.fail(f"/{base}/confidence has {conf.shape[0]} values for {xy.shape[0]} points")
            traces.append(Trace(self.attr_str(tg, "lead"), xy.astype(np.float64, copy=False), conf))
        return tuple(traces)

    def signals(self) -> Signals:
        g = self.group("digitization/signals")
        mv = self.dataset("digitization/signals/mv", "f", 2)
        names = self.strings("digitization/signals/lead_names")
        if mv.shape[1] != len(names):
            raise self.fail(
                f"/digitization/signals/mv has {mv.shape[1]} columns but lead_names names {len(names)} leads"
            )
        fs = self.attr_float(g, "fs")
        if not fs > 0:
            raise self.fail(f"sampling frequency fs={fs} of /digitization/signals is not positive")
        return Signals(mv.astype(np.float64, copy=False), fs, tuple(names))

    def masks(self) -> PageMasks:
        self.group("digitization/masks")
        trace = self.dataset("digitization/masks/trace", "u", 2)
        if trace.dtype != np.uint8:
            raise self.fail(f"/digitization/masks/trace has dtype {trace.dtype}, expected uint8")
        out = {}
        for name in ("grid", "text"):
            arr = self.dataset(f"digitization/masks/{name}", "ub", 2)
            if arr.shape != trace.shape:
                raise self.fail(f"/digitization/masks/{name} has shape {arr.shape} but masks/trace has {trace.shape}")
            if arr.size and arr.max() > 1:
                raise self.fail(f"/digitization/masks/{name} holds values other than 0 and 1")
            out[name] = arr.astype(np.bool_)
        return PageMasks(trace, out["grid"], out["text"])

    def digitization(self) -> Digitization:
        g = self.group("digitization")
        cal = self.group("digitization/calibration")
        boxes = self.boxes()
        masks = self.masks() if "masks" in g else None
        return Digitization(
            image_size=(self.attr_int(g, "image_height"), self.attr_int(g, "image_width")),
            layout=self.attr_str(g, "layout"),
            calibration=Calibration(**{name: self.attr_float(cal, name) for name in _CALIBRATION_FIELDS}),
            boxes=boxes,
            traces=self.traces(len(boxes)),
            signals=self.signals(),
            confidence=self.float_map("digitization/confidence", "lead", "value"),
            masks=masks,
            model_version=self.attr_str(g, "model_version"),
            timings_s=self.float_map("digitization/timings", "name", "seconds"),
        )

    def review(self) -> Review:
        g = self.group("review")
        self.group("review/leads")
        leads = self.strings("review/leads/lead")
        statuses = self.strings("review/leads/status")
        if len(leads) != len(statuses):
            raise self.fail(f"/review/leads has {len(leads)} leads but {len(statuses)} statuses")
        status = self.attr_str(g, "status")
        known = {s.value for s in ReviewStatus}
        for value in (status, *statuses):
            if value not in known:
                raise self.fail(
                    f"unknown review status {value!r} (known: {', '.join(sorted(known))})",
                    "the file may come from a newer ECG Studio; update ECG Studio",
                )
        reviewed_at = self.attr_str(g, "reviewed_at")
        if reviewed_at:
            self.utc(reviewed_at, "/review reviewed_at")
        return Review(
            status=ReviewStatus(status),
            lead_status={lead: ReviewStatus(s) for lead, s in zip(leads, statuses, strict=True)},
            reviewer=self.attr_str(g, "reviewer"),
            reviewed_at=reviewed_at,
            note=self.attr_str(g, "note"),
        )

    def utc(self, value: str, what: str) -> str:
        try:
            _check_utc(value, what)
        except ValueError as exc:
            raise self.fail(str(exc)) from None
        return value

    def provenance(self) -> Provenance:
        root = self.file
        return Provenance(
            software_version=self.attr_str(root, "software_version"),
            created_at=self.utc(self.attr_str(root, "created_at"), "created_at"),
            modified_at=self.utc(self.attr_str(root, "modified_at"), "modified_at"),
        )

    def record(self) -> LabelRecord:
        self.check_format()
        return LabelRecord(
            image=self.image(),
            digitization=self.digitization(),
            review=self.review(),
            provenance=self.provenance(),
        )


def load_labels(path: str | os.PathLike[str]) -> LabelRecord:
    """Read a label file written by :func:`save_labels`.

    Parameters
    ----------
    path : str or path-like
        A ``.labels.h5`` file.

    Returns
    -------
    LabelRecord
        The record as saved: arrays keep their dtypes and NaNs, strings their characters.

    Raises
    ------
    LabelFormatError
        The file is missing, not HDF5, truncated, not an ECG Studio label file, of a schema
        version this ECG Studio does not know (e.g. written by a newer one), or lacks a group,
        attribute or dataset, or holds arrays of inconsistent shapes.  The message says which
        and what to do.
    """
    path = Path(path)
    if not path.is_file():
        raise LabelFormatError(
            f"no label file at {path}; check the path (label files are named <image stem>{LABEL_SUFFIX})"
        )
    try:
        is_hdf5 = _has_hdf5_signature(path)
    except OSError as exc:
        raise LabelFormatError(
            f"cannot read label file {path}: {exc.strerror or exc}; check that it is readable"
        ) from exc
    if not is_hdf5:
        raise LabelFormatError(
            f"{path} is not an HDF5 file (it is empty or holds other data), so not an ECG Studio label "
            f"file; open the {LABEL_SUFFIX} file written by ECG Studio, or {_DAMAGED}"
        )
    try:
        file = h5py.File(path, "r")
    except OSError as exc:
        raise LabelFormatError(
            f"cannot open label file {path}: the HDF5 file is truncated or damaged ({exc}); {_DAMAGED}"
        ) from exc
    with file:
        reader = _Reader(file, path)
        try:
            record = reader.record()
        except LabelFormatError:
            raise
        except (OSError, KeyError, ValueError, TypeError, IndexError, RuntimeError, AttributeError) as exc:
            raise reader.fail(f"cannot read it ({type(exc).__name__}: {exc})") from exc
    logger.debug("loaded labels of %s from %s", record.image.path, path)
    return record
