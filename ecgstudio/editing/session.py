"""The studio's save policy, without widgets: opening a page's label file, saving, backups, export.

* A page opens from its label file when the file describes the same image (same sha256);
  otherwise (a damaged file, or one of another image) the model's proposals are shown, and the
  old file is **set aside** (renamed ``<name>.damaged-<time>`` or ``<name>.other-image-<time>``)
  the first time the page is saved: a label file is never overwritten or deleted unread.
* Saving writes the whole record atomically (:func:`ecgstudio.labels.save_labels`), stamped
  with the modification time; a page with no unsaved edits whose file exists is not rewritten
  unless the save is explicit (Ctrl+S).  The studio autosaves shortly after every edit.
* Two writers: a save finds the file as the page left it (:class:`~ecgstudio.labels.FileStamp`)
  or writes nothing (:class:`~ecgstudio.labels.LabelConflictError`): the edits stay unsaved
  until the person saves explicitly, which sets the other writer's file aside as
  ``<name>.conflict-<time>`` first.
* Export writes the signals as WFDB, CSV and EDF+ with a JSON sidecar of calibration, layout
  and provenance.
* Which pages a fine-tune learns from: :data:`TRAINABLE_STATUSES`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import LabelFormatError
from ..labels import (
    FileStamp,
    ImageIdentity,
    LabelRecord,
    ReviewStatus,
    load_labels,
    save_labels,
    utc_now,
)
from .document import PageDocument
from .worklist import WorkItem

log = logging.getLogger(__name__)

#: Statuses of the pages a fine-tune learns from (people's reviewed work).
TRAINABLE_STATUSES = (ReviewStatus.REVIEWED.value, ReviewStatus.CORRECTED.value)
#: The formats :func:`export_signals` writes.
EXPORT_FORMATS = ("wfdb", "csv", "edf")


def is_trainable(status: str) -> bool:
    """Whether a page with this review status (a value or :data:`~ecgstudio.editing.worklist.UNREADABLE`)
    is one a fine-tune learns from."""
    return status in TRAINABLE_STATUSES


def trainable_label_files(items: Iterable[WorkItem]) -> list[Path]:
    """The label files of the trainable pages among ``items``, each once, in worklist order.

    Every item's status is read again from its label file first (:meth:`WorkItem.refresh`).
    """
    labels: list[Path] = []
    for item in items:
        item.refresh()
        if is_trainable(item.status) and item.label_path not in labels:
            labels.append(item.label_path)
    return labels


@dataclass(frozen=True)
class SetAside:
    """A label file to rename, not overwrite, before the page is first saved over it.

    Attributes
    ----------
    path : Path
        The label file.
    reason : {"damaged", "other-image", "conflict"}
        Why it is not opened; part of the new name.
    """

    path: Path
    reason: str

    def target(self, stamp: str) -> Path:
        """``<name>.<reason>-<stamp>`` beside the file."""
        return self.path.with_name(f"{self.path.name}.{self.reason}-{stamp}")


@dataclass(frozen=True)
class LabelOpening:
    """What opening a page's label file found.

    Attributes
    ----------
    record : LabelRecord or None
        The saved labels to open; None: run the model on the page.
    set_aside : SetAside or None
        The old label file to keep aside when the page is saved.
    message : str
        Why the saved labels are not opened, for people ("" when nothing is wrong).
    level : {"error", "warning"}
        How serious :attr:`message` is.
    """

    record: LabelRecord | None = None
    set_aside: SetAside | None = None
    message: str = ""
    level: str = "error"


def open_label(label_path: Path, identity: ImageIdentity) -> LabelOpening:
    """Read the label file of a page showing the image ``identity`` (see the module docstring)."""
    if not label_path.is_file():
        return LabelOpening()
    try:
        record = load_labels(label_path)
    except LabelFormatError as exc:
        return LabelOpening(
            set_aside=SetAside(label_path, "damaged"),
            message=(
                f"The saved labels of this page cannot be read, so the model's proposals are shown instead.\n"
                f"{exc}\nThe damaged file is kept, renamed to {label_path.name}.damaged-<time>, "
                "when this page is saved."
            ),
        )
    if record.image.sha256 == identity.sha256:
        return LabelOpening(record)
    return LabelOpening(
        set_aside=SetAside(label_path, "other-image"),
        message=(
            f"The label file {label_path.name} describes another image (the file changed since it "
            "was labelled), so the model's proposals are shown instead. The old labels are kept, renamed "
            f"to {label_path.name}.other-image-<time>, when this page is saved."
        ),
        level="warning",
    )


@dataclass(frozen=True)
class Saved:
    """A save that wrote the label file.

    Attributes
    ----------
    record : LabelRecord
        What the file now holds.
    path : Path
        The label file.
    kept : Path or None
        Where an old label file was set aside first.
    """

    record: LabelRecord
    path: Path
    kept: Path | None = None


class LabelSession:
    """The label file of the page open in the studio: what to set aside, and saving.

    Attributes
    ----------
    set_aside : SetAside or None
        The old label file to rename before the next save over it (from :meth:`open`).
    stamp : FileStamp or None
        The label file as this session last read or wrote it; a save expects to find it so.
    """

    def __init__(self) -> None:
        self.set_aside: SetAside | None = None
        self.stamp: FileStamp | None = None

    def open(self, label_path: Path, identity: ImageIdentity) -> LabelOpening:
        """:func:`open_label`, remembering what to set aside when the page is saved."""
        self.stamp = FileStamp.of(label_path)
        opening = open_label(label_path, identity)
        self.set_aside = opening.set_aside
        return opening

    def save(self, document: PageDocument, *, explicit: bool = False) -> Saved | None:
        """Write ``document``'s record to its label file, atomically; None when nothing needed saving.

        Nothing needs saving when the document has no unsaved edits, its file exists, nothing is to
        be set aside and the save is not ``explicit``.  On success the document is marked saved.

        Raises
        ------
        ValueError
            The document has no label path (it must not be saved).
        LabelConflictError
            Somebody else saved the file since this session read or wrote it, and the save is
            not ``explicit``; nothing was written, the document stays dirty.
        LabelFormatError, OSError
            The file could not be written; the document keeps its edits and stays dirty.
        """
        path = document.label_path
        if path is None:
            raise ValueError("this page has no label file to save to")
        keep = self.set_aside if self.set_aside is not None and self.set_aside.path == path else None
        if not document.dirty and path.is_file() and not explicit and keep is None:
            return None
        record = document.record().touched()
        expect = self.stamp if self.stamp is not None else FileStamp.of(path)
        if explicit and keep is None and FileStamp.of(path) != expect:
            keep = SetAside(path, "conflict")  # the person saves theirs; the other writer's file is kept
        kept = None
        if keep is not None and keep.path.is_file():
            kept = keep.target(utc_now().replace(":", "").replace("-", ""))
            keep.path.rename(kept)
            log.info("kept %s as %s", keep.path, kept)
            expect = FileStamp(False)
        self.set_aside = None
        save_labels(record, path, expect=expect)
        self.stamp = FileStamp.of(path)
        document.mark_saved(record)
        return Saved(record, path, kept)


def export_signals(document: PageDocument, folder: Path, *, completed: bool = False) -> list[Path]:
    """Write the page's signals as WFDB, CSV and EDF+ (and a JSON sidecar) into ``folder``;
    ``completed``: every lead completed over the whole record (:meth:`PageDocument.completion`),
    the CSV's source columns and the sidecar saying which samples were read.

    Returns
    -------
    list of Path
        The files written.

    Raises
    ------
    ValueError, OSError, EcgStudioError
        A writer failed.
    """
    from ..io.writers import write_signals

    sidecar = {
        "calibration": document.calibration,
        "layout": document.layout,
        "provenance": {
            "source_image": str(document.page.source),
            "page": document.page.page_index + 1,
            "model_version": document.model_version,
            "review_status": document.review.status.value,
            "reviewer": document.review.reviewer,
            "reviewed_at": document.review.reviewed_at,
            "review_note": document.review.note,
            "assumed": [a.text for a in document.assumptions],
        },
    }
    signals, sources = document.signals, None
    if completed:
        from ..restore import SOURCES

        done = document.completion()
        signals, sources = done.signals, (done.source, SOURCES)
        sidecar["completion"] = done.runs()
    return write_signals(signals, folder, document.page.stem, formats=EXPORT_FORMATS, sidecar=sidecar, sources=sources)
