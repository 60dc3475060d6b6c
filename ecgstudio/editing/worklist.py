"""The worklist without widgets: its pages, where their labels go, and what each label file says.

Where labels go (one rule, shown in the studio's status bar):

* a folder opened as a worklist: ``<folder>/labels/``, mirroring sub-folders
  (``<folder>/a/b.png`` -> ``<folder>/labels/a/b.labels.h5``);
* single files (opened, dropped, or the sample): the user data folder,
  ``<user_data_dir("ecgstudio")>/labels/<parent folder name>-<8 hex>/``, one sub-folder per
  folder the files came from, so two ``scan.png`` from different folders never collide.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import LabelFormatError
from ..io.images import collect_inputs
from ..labels import LABEL_SUFFIX, LabelRecord, ReviewStatus, read_review_summary
from .document import PageRef
from .proposals import ProposalChange

log = logging.getLogger(__name__)

#: Status of a page whose label file cannot be read.
UNREADABLE = "damaged"


def user_labels_root() -> Path:
    """``<user_data_dir("ecgstudio")>/labels``: where labels of single files go."""
    import platformdirs

    return Path(platformdirs.user_data_dir("ecgstudio", appauthor=False)) / "labels"


def labels_dir_for_file(path: Path, root: Path | None = None) -> Path:
    """Label folder of a file opened on its own (see the module docstring)."""
    parent = Path(os.path.abspath(path)).parent
    tag = hashlib.sha256(str(parent).encode("utf-8")).hexdigest()[:8]
    return (root or user_labels_root()) / f"{parent.name or 'root'}-{tag}"


def labels_dir_for_folder_item(folder: Path, path: Path) -> Path:
    """Label folder of a file found in a folder worklist: ``<folder>/labels/<relative sub-folder>``."""
    rel = Path(os.path.relpath(Path(path).parent, folder))
    return folder / "labels" if str(rel) == "." else folder / "labels" / rel


def label_path_for_page(page: PageRef, labels_dir: Path) -> Path:
    """``<labels_dir>/<page stem>.labels.h5`` (``<stem>_p<N>`` for pages of multi-page files)."""
    return Path(labels_dir) / f"{page.stem}{LABEL_SUFFIX}"


@dataclass(frozen=True)
class LabelSummary:
    """What the worklist shows of a page's label file.

    Attributes
    ----------
    status : str
        A :class:`~ecgstudio.labels.ReviewStatus` value, or :data:`UNREADABLE`.
    confidence : float or None
        The lowest lead confidence (0..1); None before the page is digitized.
    reviewer : str
    assumed : tuple of str
        What the engine assumed rather than measured on the page (``gain``, ``scale``, ...).
    """

    status: str = ReviewStatus.NEW.value
    confidence: float | None = None
    reviewer: str = ""
    assumed: tuple[str, ...] = ()

    @classmethod
    def of_record(cls, record: LabelRecord) -> LabelSummary:
        dig = record.digitization
        conf = list(dig.confidence.values())
        assumed = tuple(dict.fromkeys(a.what for a in dig.assumptions))
        return cls(record.review.status.value, float(min(conf)) if conf else None, record.review.reviewer, assumed)


def read_label_summary(path: Path) -> LabelSummary:
    """The :class:`LabelSummary` of a label file (NEW when there is none, :data:`UNREADABLE`
    when it cannot be read); reads only those fields (:func:`ecgstudio.labels.read_review_summary`)."""
    if not path.is_file():
        return LabelSummary()
    try:
        summary = read_review_summary(path)
    except LabelFormatError as exc:
        log.info("cannot peek at %s: %s", path, exc)
        return LabelSummary(UNREADABLE)
    return LabelSummary(summary.status.value, summary.lowest_confidence, summary.reviewer, summary.assumed)


@dataclass
class WorkItem:
    """One page of the worklist and what its label file says."""

    page: PageRef
    labels_dir: Path
    status: str = ReviewStatus.NEW.value
    confidence: float | None = None
    reviewer: str = ""
    assumed: tuple[str, ...] = ()  # what the engine assumed rather than measured
    change: ProposalChange | None = None  # how the last re-run of the model changed the proposal

    @property
    def label_path(self) -> Path:
        return label_path_for_page(self.page, self.labels_dir)

    def refresh(self) -> None:
        """Read status, reviewer and lowest lead confidence from the label file, if any."""
        self._show(read_label_summary(self.label_path))

    def update_from(self, record: LabelRecord) -> None:
        """Show what ``record`` (just saved to :attr:`label_path`) says."""
        self._show(LabelSummary.of_record(record))

    def _show(self, summary: LabelSummary) -> None:
        self.status, self.confidence, self.reviewer = summary.status, summary.confidence, summary.reviewer
        self.assumed = summary.assumed


def items_for_paths(paths: list[str | os.PathLike[str]], *, user_root: Path | None = None) -> list[WorkItem]:
    """Worklist items for files and folders (folders are searched recursively, as in the CLI).

    Raises
    ------
    UnreadableImageError
        A path does not exist.
    """
    items: list[WorkItem] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            for f in collect_inputs([p]):
                if "labels" in f.relative_to(p).parts[:1]:
                    continue
                items.append(WorkItem(PageRef(f), labels_dir_for_folder_item(p, f)))
        else:
            for f in collect_inputs([p]):
                items.append(WorkItem(PageRef(f), labels_dir_for_file(f, user_root)))
    return [i for item in items for i in _expand_known_pages(item)]


def pages_of(item: WorkItem, n_pages: int) -> list[WorkItem]:
    """Items for each of the ``n_pages`` pages of ``item``'s file, with ``item``'s label folder."""
    return [WorkItem(PageRef(item.page.source, i, n_pages), item.labels_dir) for i in range(n_pages)]


def _expand_known_pages(item: WorkItem) -> list[WorkItem]:
    """Items for the pages of a multi-page file that already has label files (``<stem>_p<N>``)."""
    stem = item.page.source.stem
    found = sorted(item.labels_dir.glob(f"{stem}_p*{LABEL_SUFFIX}")) if item.labels_dir.is_dir() else []
    numbers = []
    for f in found:
        tail = f.name[len(stem) + 2 : -len(LABEL_SUFFIX)]
        if tail.isdigit():
            numbers.append(int(tail))
    if not numbers or item.label_path.is_file():
        return [item]
    return pages_of(item, max(numbers))
