"""Run the model again on a worklist (after a fine-tune or a model switch) and show what changed.

Only pages whose status is ``new`` or ``proposed`` get new proposals: reviewed and corrected
pages are people's work and are never overwritten.  Pages are re-run one at a time through the
window's :class:`~ecgstudio.app.worker.Engine` (so only one page image is in memory); each new
proposal is saved as the page's label file (status ``proposed``) and compared with the
previous proposal by :func:`ecgstudio.editing.proposals.proposal_change`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from PySide6.QtCore import QObject, QTimer, Signal

from ..editing.proposals import ProposalChange, proposal_change
from ..editing.worklist import UNREADABLE, WorkItem, read_label_summary
from ..errors import EcgStudioError, LabelFormatError
from ..io.images import read_pages
from ..labels import ImageIdentity, LabelRecord, Provenance, Review, ReviewStatus, load_labels, save_labels
from ..pipeline import DigitizeOptions
from .worker import Engine
from .worklist import WorklistModel

log = logging.getLogger(__name__)

#: Statuses whose proposals a re-run replaces.
RERUN_STATUSES = (ReviewStatus.NEW.value, ReviewStatus.PROPOSED.value)


@dataclass
class RerunSummary:
    """What a worklist re-run did.

    Attributes
    ----------
    model : str
        Model version that made the new proposals ("" when none was made).
    planned : int
        Pages that were to be re-run (status new or proposed).
    done : list of (str, ProposalChange)
        Page titles re-run, with how they changed.
    kept : int
        Reviewed or corrected pages left alone.
    skipped : list of (str, str)
        Pages left alone for another reason (damaged label file, edited meanwhile).
    failed : list of (str, str)
        Pages the model could not digitize, with the message.
    cancelled : bool
        The re-run was stopped before the end.
    """

    model: str = ""
    planned: int = 0
    done: list[tuple[str, ProposalChange]] = field(default_factory=list)
    kept: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    cancelled: bool = False

    @property
    def compared(self) -> list[tuple[str, ProposalChange]]:
        return [(t, c) for t, c in self.done if not c.first]

    @property
    def changed(self) -> list[tuple[str, ProposalChange]]:
        return [(t, c) for t, c in self.done if c.changed]

    def text(self) -> str:
        """The message for people."""
        parts = []
        model = f" {self.model}" if self.model else ""
        if not self.planned:
            parts.append("No page to re-run: every page of the worklist is edited or signed off.")
        else:
            stop = " (stopped)" if self.cancelled else ""
            parts.append(
                f"Re-ran model{model} on {len(self.done)} of {self.planned} new or proposed "
                f"page{'s' if self.planned != 1 else ''}{stop}:"
            )
            compared, changed = self.compared, self.changed
            if compared:
                line = f"{len(changed)} of {len(compared)} page{'s' if len(compared) != 1 else ''} changed"
                if changed:
                    title, c = max(changed, key=lambda tc: tc[1].size)
                    how = (
                        f"{c.mean_abs_mv:.3f} mV on average"
                        if not math.isnan(c.mean_abs_mv)
                        else f"{100 * c.coverage:.0f} % of samples differ"
                    )
                    line += f"; largest change: {title} ({how})"
                parts.append(line + ".")
            first = len(self.done) - len(compared)
            if first:
                parts.append(f"{first} page{'s' if first != 1 else ''} got a first proposal.")
        if self.kept:
            parts.append(
                f"{self.kept} edited or signed-off page{'s were' if self.kept != 1 else ' was'} not "
                "touched: a re-run only replaces the proposals of new and proposed pages."
            )
        for title, why in self.skipped[:3]:
            parts.append(f"Left {title} alone: {why}.")
        if len(self.skipped) > 3:
            parts.append(f"{len(self.skipped) - 3} more pages left alone.")
        for title, why in self.failed[:3]:
            parts.append(f"{title} could not be digitized: {why}")
        if len(self.failed) > 3:
            parts.append(f"{len(self.failed) - 3} more pages could not be digitized.")
        return " ".join(parts)


class WorklistRerun(QObject):
    """Re-runs the model on the new and proposed pages of a worklist, one page at a time.

    Parameters
    ----------
    engine : Engine
        Digitizes the pages (with whatever model it has loaded).
    model : WorklistModel
        The worklist; items get :attr:`~ecgstudio.editing.worklist.WorkItem.change` set.
    may_replace : callable(int) -> bool
        Asked before a row's label file is replaced (False: the page is open with unsaved edits).
    options : DigitizeOptions
        Options of the digitizations.
    """

    progress = Signal(int, int, str)  # pages done, pages planned, title of the next
    replaced = Signal(int)  # model row whose proposal was replaced and saved
    finished = Signal(object)  # RerunSummary

    def __init__(
        self,
        engine: Engine,
        model: WorklistModel,
        *,
        may_replace: Callable[[int], bool],
        options: DigitizeOptions = DigitizeOptions(),
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.engine = engine
        self.model = model
        self.may_replace = may_replace
        self.options = options
        self.summary: RerunSummary | None = None
        self._todo: list[WorkItem] = []
        self._current: dict | None = None
        engine.finished.connect(self._on_finished)
        engine.failed.connect(self._on_failed)

    @property
    def running(self) -> bool:
        return self.summary is not None

    def start(self, *, exclude: tuple[int, ...] = ()) -> None:
        """Plan and start; :attr:`finished` comes at the end (also when there is nothing to do).

        Parameters
        ----------
        exclude : tuple of int
            Rows to leave out (a page being digitized for the window right now).
        """
        if self.running:
            raise RuntimeError("a re-run is already going on")
        summary = RerunSummary()
        self._todo = []
        for row, item in enumerate(self.model.items):
            item.refresh()
            item.change = None
            if row in exclude:
                summary.skipped.append((item.page.title, "it is being digitized right now"))
            elif item.status in RERUN_STATUSES:
                self._todo.append(item)
            elif item.status == UNREADABLE:
                summary.skipped.append((item.page.title, "its label file is damaged; open the page to fix it"))
            else:
                summary.kept += 1
        if self.model.items:
            self.model.item_changed_all()
        summary.planned = len(self._todo)
        self.summary = summary
        QTimer.singleShot(0, self._next)

    def stop(self) -> None:
        """Stop after dropping the page being digitized; :attr:`finished` follows."""
        if not self.running:
            return
        if self._current is not None:
            self.engine.cancel(self._current["job"])
            self._current = None
        self._todo = []
        self.summary.cancelled = True
        QTimer.singleShot(0, self._next)

    def _next(self) -> None:
        summary = self.summary
        if summary is None or self._current is not None:
            return
        while self._todo:
            done = summary.planned - len(self._todo)
            item = self._todo.pop(0)
            if self._row(item) is None:
                summary.skipped.append((item.page.title, "it left the worklist"))
                continue
            self.progress.emit(done, summary.planned, item.page.title)
            try:
                pages = read_pages(item.page.source)
                if len(pages) > 1 and item.page.n_pages != len(pages):
                    summary.skipped.append((item.page.title, "its file has several pages; open it once first"))
                    continue
                page = pages[min(item.page.page_index, len(pages) - 1)]
                old = None
                if item.label_path.is_file():
                    old = load_labels(item.label_path).digitization.signals
            except LabelFormatError as exc:
                summary.skipped.append((item.page.title, f"its label file cannot be read ({exc})"))
                continue
            except EcgStudioError as exc:
                summary.failed.append((item.page.title, str(exc)))
                continue
            identity = ImageIdentity.from_array(item.page.source, page.image)
            job = self.engine.submit(page.image, self.options)
            self._current = {"job": job, "item": item, "identity": identity, "old": old}
            return
        self.summary = None
        self._current = None
        self.finished.emit(summary)

    def _on_finished(self, job: int, result) -> None:
        cur = self._current
        if cur is None or job != cur["job"]:
            return
        self._current = None
        item, summary = cur["item"], self.summary
        summary.model = result.model_version or summary.model
        row = self._row(item)
        status = read_label_summary(item.label_path).status
        if row is None:
            summary.skipped.append((item.page.title, "it left the worklist"))
        elif status not in RERUN_STATUSES or not self.may_replace(row):
            summary.skipped.append((item.page.title, "it was edited or reviewed while the model ran"))
        else:
            record = LabelRecord(cur["identity"], result, Review(ReviewStatus.PROPOSED), Provenance.now())
            try:
                save_labels(record, item.label_path)
            except (LabelFormatError, OSError) as exc:
                summary.failed.append(
                    (item.page.title, f"its new proposal could not be saved to {item.label_path}: {exc}")
                )
            else:
                change = proposal_change(cur["old"], result.signals)
                item.update_from(record)
                item.change = change
                self.model.item_changed(row)
                summary.done.append((item.page.title, change))
                log.info("re-ran %s: %s", item.page.title, change.describe())
                self.replaced.emit(row)
        self._next()

    def _row(self, item: WorkItem) -> int | None:
        """The item's row now (rows move when a multi-page file is expanded), None if it left."""
        return next((r for r, it in enumerate(self.model.items) if it is item), None)

    def _on_failed(self, job: int, message: str) -> None:
        cur = self._current
        if cur is None or job != cur["job"]:
            return
        self._current = None
        self.summary.failed.append((cur["item"].page.title, message))
        self._next()
