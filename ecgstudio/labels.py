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

import contextlib
import hashlib
import logging
import math
import operator
import os
import re
import time
from collections.abc import Iterable, Iterator, Mapping
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
from .io.images import DEFAULT_MAX_PIXELS, file_sha256
from .paper import LAYOUTS, LEAD_NAMES
from .results import ASSUMPTION_FIELDS, Assumption, Calibration, Digitization, LeadBox, PageMasks, Signals, Trace

logger = logging.getLogger(__name__)

__all__ = [
    "FORMAT_NAME",
    "LABEL_SUFFIX",
    "SCHEMA_VERSION",
    "FileStamp",
    "ImageIdentity",
    "ImageMismatchError",
    "LabelConflictError",
    "LabelRecord",
    "Provenance",
    "Review",
    "ReviewStatus",
    "ReviewSummary",
    "check_image",
    "iter_label_files",
    "label_path_for",
    "load_labels",
    "read_review_summary",
    "save_labels",
    "utc_now",
]

#: Version of the file layout this module writes; readers refuse any other but the older 1.
SCHEMA_VERSION = 2
#: Value of the root ``format`` attribute that marks an ECG Studio label file.
FORMAT_NAME = "ecgstudio-labels"
#: Suffix of label file names (``<image stem>.labels.h5``).
LABEL_SUFFIX = ".labels.h5"

_SUPPORTED_SCHEMAS = frozenset({1, SCHEMA_VERSION})  # 1: as 2 without the payload checksum
#: Root attribute holding the sha256 of everything else in the file (schema 2 on).
PAYLOAD_ATTR = "payload_sha256"

# What a label file may declare, checked before any dataset is read: a small file can declare
# arrays that compress to nothing and exhaust memory once read.
MAX_LEADS = 64  # lead boxes, traces, signal columns, named values
MAX_TRACE_POINTS = 2_000_000
MAX_SAMPLES = 2_000_000
MAX_OBJECTS = 4_096  # groups and datasets in one file
MAX_FS_HZ = 100_000.0
MAX_PX_PER_MM = 1_000.0  # 25,400 dpi
MAX_MM = 1_000.0  # paper speed (mm/s) and gain (mm/mV)
# Dataset storage a label file may use: inside the file, filtered only by what save_labels writes.
_INTERNAL_LAYOUTS = frozenset({h5py.h5d.COMPACT, h5py.h5d.CONTIGUOUS, h5py.h5d.CHUNKED})
_FILTERS = frozenset({h5py.h5z.FILTER_DEFLATE, h5py.h5z.FILTER_SHUFFLE, h5py.h5z.FILTER_FLETCHER32})
_LOCK_STALE_S = 60.0  # a save lock older than this was left by a crash
_MAX_DECLARED_BYTES = 1 << 30  # all datasets of one file together
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_GZIP_LEVEL = 4
_BOX_FLOAT_FIELDS = ("x0", "y0", "x1", "y1", "baseline_y", "t_start_s", "duration_s")
_BOX_INT_FIELDS = ("row", "col")
_CALIBRATION_FIELDS = ("px_per_mm_x", "px_per_mm_y", "mm_per_s", "mm_per_mv")
_DAMAGED = "restore it from a backup or re-save the page from ECG Studio"


class ImageMismatchError(LabelFormatError):
    """The image a label file describes is missing or no longer has the recorded sha256."""


class LabelConflictError(LabelFormatError):
    """The label file changed on disk since it was opened (another window, program or person
    saved it), or another program is saving it right now; nothing was written."""


class ReviewStatus(StrEnum):
    """Where a page (or one lead of it) stands in review.

    ``new``: nobody has looked at it; ``proposed``: the model's output, unreviewed;
    ``edited``: a person changed it but has not signed it off; ``reviewed``: a person checked it
    and accepted it as is; ``corrected``: a person edited it and accepted it.  Only the last two
    are signed off (reviewer and time set) and feed training.
    """

    NEW = "new"
    PROPOSED = "proposed"
    EDITED = "edited"
    REVIEWED = "reviewed"
    CORRECTED = "corrected"

    @property
    def signed_off(self) -> bool:
        """Whether a person accepted the page (or lead) in this state."""
        return self in (ReviewStatus.REVIEWED, ReviewStatus.CORRECTED)


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
        or tuple(a.assumptions) != tuple(b.assumptions)
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
# What a record may hold (checked on save and on load)
# --------------------------------------------------------------------------------------------


def _finite_in(value: float, low: float, high: float) -> bool:
    return math.isfinite(value) and low < value <= high


def _check_leads(names: Iterable[str], where: str) -> None:
    unknown = sorted({str(n) for n in names} - set(LEAD_NAMES))
    if unknown:
        raise ValueError(f"{where} names unknown lead(s) {unknown} (known: {', '.join(LEAD_NAMES)})")


def _check_no_inf(values: np.ndarray, where: str) -> None:
    if np.isinf(values).any():
        raise ValueError(f"{where} holds infinite values (gaps are NaN)")


def _check_box(box: LeadBox, height: int, width: int) -> None:
    where = f"lead box {box.lead}"
    coords = (box.x0, box.y0, box.x1, box.y1, box.baseline_y, box.t_start_s, box.duration_s)
    if not all(math.isfinite(v) for v in coords):
        raise ValueError(f"{where} has a coordinate or time that is not a finite number")
    if not (box.x0 < box.x1 and box.y0 < box.y1):
        raise ValueError(f"{where} has x0={box.x0:g} >= x1={box.x1:g} or y0={box.y0:g} >= y1={box.y1:g}")
    if box.x1 < -width or box.x0 > 2 * width or box.y1 < -height or box.y0 > 2 * height:
        raise ValueError(f"{where} lies far outside the {width}x{height} px image")
    if box.duration_s <= 0 or box.t_start_s < 0:
        raise ValueError(
            f"{where} shows {box.duration_s:g} s from {box.t_start_s:g} s; both must be >= 0, the first > 0"
        )
    if not (0 <= box.row < MAX_LEADS and 0 <= box.col < MAX_LEADS):
        raise ValueError(f"{where} sits at row {box.row}, column {box.col}, outside 0..{MAX_LEADS - 1}")


def _check_values(record: LabelRecord) -> None:
    """Raise ValueError naming the first field of ``record`` outside what a label may hold."""
    image, dig = record.image, record.digitization
    if not (image.height > 0 and image.width > 0 and image.height * image.width <= DEFAULT_MAX_PIXELS):
        raise ValueError(f"the image size {image.width}x{image.height} px is empty or beyond the image size limit")
    if tuple(dig.image_size) != (image.height, image.width):
        raise ValueError(
            f"the digitization is of a {dig.image_size[1]}x{dig.image_size[0]} px image but the labelled image "
            f"is {image.width}x{image.height} px"
        )
    if dig.layout not in LAYOUTS:
        raise ValueError(f"unknown layout {dig.layout!r} (known: {', '.join(LAYOUTS)})")
    cal = dig.calibration
    for name, high in (("px_per_mm_x", MAX_PX_PER_MM), ("px_per_mm_y", MAX_PX_PER_MM), ("mm_per_s", MAX_MM)):
        if not _finite_in(getattr(cal, name), 0.0, high):
            raise ValueError(f"calibration {name}={getattr(cal, name)} is not in (0, {high:g}]")
    if not _finite_in(cal.mm_per_mv, 0.0, MAX_MM):
        raise ValueError(f"calibration gain mm_per_mv={cal.mm_per_mv} is not in (0, {MAX_MM:g}]")
    if len(dig.boxes) > MAX_LEADS:
        raise ValueError(f"{len(dig.boxes)} lead boxes, more than {MAX_LEADS}")
    _check_leads([b.lead for b in dig.boxes], "the lead boxes")
    for box in dig.boxes:
        _check_box(box, image.height, image.width)
    _check_leads([t.lead for t in dig.traces], "the traces")
    for t in dig.traces:
        _check_no_inf(np.asarray(t.xy, dtype=float), f"trace {t.lead}")
        if t.confidence is not None and (np.asarray(t.confidence, dtype=float) > 1).any():
            raise ValueError(f"trace {t.lead} has confidences above 1")
    sig = dig.signals
    if not _finite_in(sig.fs, 0.0, MAX_FS_HZ):
        raise ValueError(f"sampling frequency fs={sig.fs} Hz is not in (0, {MAX_FS_HZ:g}]")
    _check_leads(sig.lead_names, "the signals")
    _check_no_inf(np.asarray(sig.mv, dtype=float), "the signals")
    _check_leads(dig.confidence, "the confidences")
    if not all(0.0 <= v <= 1.0 for v in dig.confidence.values()):
        raise ValueError("a lead confidence is outside 0..1")
    if not all(math.isfinite(v) and v >= 0 for v in dig.timings_s.values()):
        raise ValueError("a stage timing is negative or not a finite number")
    if len(dig.assumptions) > MAX_LEADS or any(a.what not in ASSUMPTION_FIELDS for a in dig.assumptions):
        raise ValueError(f"assumptions must be at most {MAX_LEADS}, each about one of {', '.join(ASSUMPTION_FIELDS)}")
    _check_leads(record.review.lead_status, "the review")


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
    assumed = g.create_group("assumptions")
    _write_strings(assumed, "what", [a.what for a in dig.assumptions])
    _write_strings(assumed, "text", [a.text for a in dig.assumptions])

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


def _value_bytes(value: Any) -> bytes:
    """Canonical bytes of an attribute or dataset value (strings as UTF-8, arrays with dtype and shape)."""
    if isinstance(value, str):
        return b"s" + value.encode("utf-8", "surrogatepass")
    if isinstance(value, bytes):
        return b"b" + value
    arr = np.asarray(value)
    if arr.dtype.kind == "O":
        return b"o" + b"\0".join(_value_bytes(v) for v in arr.ravel())
    return f"{arr.dtype.str}{arr.shape}".encode() + np.ascontiguousarray(arr).tobytes()


def _payload_digest(file: h5py.File) -> str:
    """sha256 of every object name, attribute and dataset value of ``file`` but :data:`PAYLOAD_ATTR`."""
    digest = hashlib.sha256()

    def add(data: bytes) -> None:
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)

    objects: list[tuple[str, h5py.HLObject]] = [("", file)]
    file.visititems(lambda name, obj: objects.append((name, obj)))
    for name, obj in sorted(objects, key=lambda item: item[0]):
        add(name.encode("utf-8", "surrogatepass"))
        for key in sorted(obj.attrs):
            if obj is file and key == PAYLOAD_ATTR:
                continue
            add(key.encode("utf-8", "surrogatepass"))
            add(_value_bytes(obj.attrs[key]))
        if isinstance(obj, h5py.Dataset):
            add(_value_bytes(obj.asstr()[()] if h5py.check_string_dtype(obj.dtype) else obj[()]))
    return digest.hexdigest()


@dataclass(frozen=True)
class FileStamp:
    """What a label file on disk looked like when it was read or written: enough to tell that
    somebody else saved it since (:func:`save_labels`'s ``expect``).  ``exists`` is False where
    there was no file."""

    exists: bool
    mtime_ns: int = 0
    size: int = 0
    inode: int = 0

    @classmethod
    def of(cls, path: str | os.PathLike[str]) -> FileStamp:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return cls(False)
        return cls(True, st.st_mtime_ns, st.st_size, st.st_ino)


@contextlib.contextmanager
def _save_lock(path: Path) -> Iterator[None]:
    """Hold ``.<name>.lock`` beside ``path`` while saving it; a second saver is told, not queued.

    A lock older than a minute was left by a crash and is taken over.
    """
    lock = path.with_name(f".{path.name}.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            try:
                age = time.time() - lock.stat().st_mtime
            except FileNotFoundError:
                continue
            if age < _LOCK_STALE_S:
                raise LabelConflictError(
                    f"another program is saving {path} right now; wait a moment and save again"
                ) from None
            logger.info("taking over the stale save lock %s (%.0f s old)", lock, age)
            lock.unlink(missing_ok=True)
    else:
        raise LabelConflictError(f"cannot take the save lock {lock}; remove it if no other program is saving")
    try:
        os.write(fd, f"{os.getpid()}\n".encode())
        os.close(fd)
        yield
    finally:
        lock.unlink(missing_ok=True)


def save_labels(record: LabelRecord, path: str | os.PathLike[str], *, expect: FileStamp | None = None) -> Path:
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
    expect : FileStamp, optional
        What the file on disk looked like when this record was read (``FileStamp.of`` then, an
        absent stamp for a new file).  If the file changed since, somebody else saved it: nothing
        is written and :class:`LabelConflictError` says so.  None: no check.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    LabelFormatError
        The record holds arrays of the wrong shape or dtype, or values a label may not hold
        (nothing is written then).
    LabelConflictError
        The file changed since ``expect``, or another program is saving it.
    """
    path = Path(path)
    dig = record.digitization
    if len(dig.image_size) != 2:
        raise _save_error(f"digitization image_size must be (height, width), got {dig.image_size!r}")
    traces = [_prepare_trace(k, t) for k, t in enumerate(dig.traces)]
    masks = None if dig.masks is None else _prepare_masks(dig.masks)
    try:
        _check_values(record)
    except ValueError as exc:
        raise _save_error(str(exc)) from None
    with _save_lock(path):
        if expect is not None and FileStamp.of(path) != expect:
            raise LabelConflictError(
                f"{path} was saved by somebody else (another window or program) since this page was opened; "
                "nothing was written over it"
            )
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
            _write_record(f, record, traces, masks)
            f.attrs[PAYLOAD_ATTR] = _payload_digest(f)
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
        self.version = SCHEMA_VERSION

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

    # -- checks made before any dataset is read ----------------------------------------------

    def check_structure(self) -> None:
        """Refuse links other than hard links, data stored outside the file, filters ECG Studio
        does not write, and files of too many objects, without reading any dataset."""
        pending = [self.file]
        count = 0
        while pending:
            group = pending.pop()
            for name in group:
                where = f"{group.name.rstrip('/')}/{name}"
                link = group.get(name, getlink=True)
                if not isinstance(link, h5py.HardLink):
                    kind = "an external link to another file" if isinstance(link, h5py.ExternalLink) else "a soft link"
                    raise self.fail(
                        f"{where} is {kind}; label files hold no links (a crafted file can make a reader copy "
                        "other files' contents)",
                        "do not open files from untrusted sources; re-save the page from ECG Studio",
                    )
                count += 1
                if count > MAX_OBJECTS:
                    raise self.fail(f"it holds more than {MAX_OBJECTS} groups and datasets")
                obj = group[name]
                if isinstance(obj, h5py.Group):
                    pending.append(obj)
                elif isinstance(obj, h5py.Dataset):
                    self.check_storage(obj, where)

    def check_storage(self, ds: h5py.Dataset, where: str) -> None:
        plist = ds.id.get_create_plist()
        if plist.get_layout() not in _INTERNAL_LAYOUTS or plist.get_external_count():
            raise self.fail(
                f"dataset {where} stores its data outside the file (external or virtual storage)",
                "do not open files from untrusted sources; re-save the page from ECG Studio",
            )
        for k in range(plist.get_nfilters()):
            code = plist.get_filter(k)[0]
            if code not in _FILTERS:
                raise self.fail(f"dataset {where} uses HDF5 filter {code}, which ECG Studio does not write")

    def check_sizes(self, height: int, width: int) -> None:
        """Refuse datasets whose declared shape exceeds what the image (``height`` x ``width``)
        and the caps allow, and datasets a label file does not have, before reading them."""
        found: list[tuple[str, h5py.Dataset]] = []
        self.file.visititems(lambda name, obj: found.append((name, obj)) if isinstance(obj, h5py.Dataset) else None)
        total = 0
        for name, ds in found:
            limit = _shape_limit(name, height, width)
            if limit is None:
                raise self.fail(f"it holds a dataset /{name} that label files do not have")
            shape, exact = limit
            ok = len(ds.shape) == len(shape) and all(
                (n == m) if exact else (n <= m) for n, m in zip(ds.shape, shape, strict=True)
            )
            if not ok:
                want = "exactly" if exact else "at most"
                raise self.fail(f"dataset /{name} declares shape {ds.shape}, expected {want} {shape}")
            total += ds.size * ds.dtype.itemsize
        if total > _MAX_DECLARED_BYTES:
            raise self.fail(f"its datasets declare {total / 2**20:.0f} MB, more than {_MAX_DECLARED_BYTES >> 20} MB")

    def check_payload(self) -> None:
        stored = self.attr_str(self.file, PAYLOAD_ATTR)
        if stored != _payload_digest(self.file):
            raise self.fail("its checksum does not match its contents (bytes changed on disk or in transfer)")

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

    def check_format(self) -> int:
        """The schema version, once the file is known to be a label file this reader can read."""
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
        return version

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
            assumptions=self.assumptions(),
        )

    def assumptions(self) -> tuple[Assumption, ...]:
        if self.version < 2:  # schema 1 had none
            return ()
        self.group("digitization/assumptions")
        what = self.strings("digitization/assumptions/what")
        text = self.strings("digitization/assumptions/text")
        if len(what) != len(text):
            raise self.fail(f"/digitization/assumptions has {len(what)} fields but {len(text)} texts")
        return tuple(Assumption(w, t) for w, t in zip(what, text, strict=True))

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
        self.version = version = self.check_format()
        image = self.image()
        if not 0 < image.height * image.width <= DEFAULT_MAX_PIXELS:
            raise self.fail(f"the labelled image is {image.width}x{image.height} px, empty or beyond the size limit")
        self.check_sizes(image.height, image.width)
        if version >= 2:
            self.check_payload()
        record = LabelRecord(
            image=image,
            digitization=self.digitization(),
            review=self.review(),
            provenance=self.provenance(),
        )
        try:
            _check_values(record)
        except ValueError as exc:
            raise self.fail(str(exc)) from None
        return record

    def summary(self) -> ReviewSummary:
        self.version = self.check_format()
        for name in ("digitization/confidence/value", "review"):
            if name not in self.file:
                raise self.fail(f"/{name} is missing")
        if self.file["digitization/confidence/value"].size > MAX_LEADS:
            raise self.fail(f"/digitization/confidence holds more than {MAX_LEADS} values")
        g = self.group("review")
        status = self.attr_str(g, "status")
        if status not in {s.value for s in ReviewStatus}:
            raise self.fail(f"unknown review status {status!r}")
        values = self.dataset("digitization/confidence/value", "fiu", 1).astype(float)
        lowest = float(values.min()) if values.size else None
        assumed = tuple(dict.fromkeys(a.what for a in self.assumptions()))
        return ReviewSummary(ReviewStatus(status), self.attr_str(g, "reviewer"), lowest, assumed)


def _shape_limit(name: str, height: int, width: int) -> tuple[tuple[int, ...], bool] | None:
    """(shape, exact) a dataset at ``name`` may declare in a label file of a ``height`` x
    ``width`` image: exactly that shape, or at most it per axis.  None: no such dataset."""
    parts = name.split("/")
    if parts[:2] == ["digitization", "masks"] and len(parts) == 3 and parts[2] in ("trace", "grid", "text"):
        return (height, width), True
    if name == "digitization/signals/mv":
        return (MAX_SAMPLES, MAX_LEADS), False
    if parts[:2] == ["digitization", "traces"] and len(parts) == 4 and parts[2].isdigit():
        if parts[3] == "xy":
            return (MAX_TRACE_POINTS, 2), False
        if parts[3] == "confidence":
            return (MAX_TRACE_POINTS,), False
        return None
    columns = {
        "digitization/boxes": {"lead", *_BOX_FLOAT_FIELDS, *_BOX_INT_FIELDS, "inverted"},
        "digitization/signals": {"lead_names"},
        "digitization/confidence": {"lead", "value"},
        "digitization/timings": {"name", "seconds"},
        "digitization/assumptions": {"what", "text"},
        "review/leads": {"lead", "status"},
    }
    if parts[-1] in columns.get("/".join(parts[:-1]), ()):
        return (MAX_LEADS,), False
    return None


@dataclass(frozen=True)
class ReviewSummary:
    """What a list of pages shows of a label file (:func:`read_review_summary`).

    Attributes
    ----------
    status : ReviewStatus
    reviewer : str
    lowest_confidence : float or None
        The lowest lead confidence (0..1); None where the page has no leads.
    assumed : tuple of str
        What the engine assumed rather than measured (``scale``, ``gain``, ``speed``, ``layout``).
    """

    status: ReviewStatus
    reviewer: str
    lowest_confidence: float | None
    assumed: tuple[str, ...] = ()


@contextlib.contextmanager
def _open_label_file(path: Path) -> Iterator[_Reader]:
    """A reader of the label file at ``path`` whose links and storage have been checked; any
    problem reading it, there or in the block, raises :class:`LabelFormatError`."""
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
            reader.check_structure()
            yield reader
        except LabelFormatError:
            raise
        except MemoryError as exc:
            raise reader.fail("it is too large to read in the memory available") from exc
        except (OSError, KeyError, ValueError, TypeError, IndexError, RuntimeError, AttributeError) as exc:
            raise reader.fail(f"cannot read it ({type(exc).__name__}: {exc})") from exc


def read_review_summary(path: str | os.PathLike[str]) -> ReviewSummary:
    """The review status, reviewer and lowest lead confidence of a label file, reading only those.

    Fast enough to list a folder of hundreds of pages; :func:`load_labels` checks the whole file.

    Raises
    ------
    LabelFormatError
        As :func:`load_labels`, for what it reads.
    """
    with _open_label_file(Path(path)) as reader:
        return reader.summary()


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
    with _open_label_file(path) as reader:
        record = reader.record()
    logger.debug("loaded labels of %s from %s", record.image.path, path)
    return record
