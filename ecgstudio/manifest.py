"""The batch manifest: what a batch did to every page, kept in its output folder as it goes.

``<out>/ecgstudio-manifest.jsonl`` gets one JSON line per page the moment it is done or has
failed (flushed to disk), so a batch that is killed, interrupted or loses power knows where it
stopped.  A rerun into the same folder reads it and skips each page whose input (sha256), model
version and settings are unchanged and whose files are still there; it retries failed pages
only when asked (``--retry-failed``).  The files a manifest lists are the batch's own: redoing
them is not replacing a user's files.

``<out>/ecgstudio-summary.csv`` is rewritten at the end of each run from the whole manifest: a
table a person opens to see which pages need review (failed, low confidence, or values assumed
rather than measured).
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .io.atomic import atomic_path

log = logging.getLogger(__name__)

MANIFEST_NAME = "ecgstudio-manifest.jsonl"
SUMMARY_NAME = "ecgstudio-summary.csv"
SUMMARY_COLUMNS = (
    "needs_review",
    "input",
    "page",
    "record",
    "status",
    "reason",
    "lowest_confidence",
    "layout",
    "seconds",
)
#: A page whose lowest lead confidence is below this is listed for review.
REVIEW_BELOW_CONFIDENCE = 0.5


@dataclass(frozen=True)
class PageEntry:
    """One page of a batch, as the manifest keeps it.

    Attributes
    ----------
    input : str
        The input file (absolute; bytes that are not UTF-8 written as ``\\xNN``).
    sha256 : str
        Of the input file's bytes.
    page, n_pages : int
        1-based page number and the file's page count (0 where the file could not be read).
    record : str
        The record name its outputs carry.
    status : {"done", "failed"}
    reason : str
        Why it failed; empty when done.
    settings : str
        The model version and digitizing settings it was made with; a rerun with others redoes it.
    files : list of str
        The files written (names inside the output folder).
    confidence : float or None
        The lowest lead confidence.
    layout : str
    assumed : list of str
        What the engine assumed rather than measured (``scale``, ``gain``, ...).
    incomplete : list of str
        With ``--complete``: the leads left empty somewhere in the record (too little read to
        complete them honestly).
    seconds : float
        Time spent on the page.
    """

    input: str
    sha256: str
    page: int
    n_pages: int
    record: str
    status: str
    reason: str = ""
    settings: str = ""
    files: list[str] = field(default_factory=list)
    confidence: float | None = None
    layout: str = ""
    assumed: list[str] = field(default_factory=list)
    seconds: float = 0.0
    incomplete: list[str] = field(default_factory=list)

    @property
    def needs_review(self) -> str:
        """Why a person should look at this page ("" when nothing stands out)."""
        if self.status != "done":
            return "failed"
        if self.confidence is not None and self.confidence < REVIEW_BELOW_CONFIDENCE:
            return f"low confidence ({self.confidence:.2f})"
        if self.assumed:
            return f"assumed {', '.join(self.assumed)}"
        if self.incomplete:
            return f"not completed: {', '.join(self.incomplete)}"
        return ""


class Manifest:
    """The manifest of an output folder: the last entry of each page, and appending new ones."""

    def __init__(self, out_dir: str | os.PathLike[str]) -> None:
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / MANIFEST_NAME
        self.entries: dict[tuple[str, int], PageEntry] = {}
        self._pages: dict[str, dict[int, PageEntry]] = {}  # by input: a rerun of 10,000 files looks up each once
        if self.path.is_file():
            self._read()

    def _read(self) -> None:
        with open(self.path, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                try:
                    entry = PageEntry(**json.loads(line))
                except (ValueError, TypeError) as exc:  # a line cut by a crash, or not ours
                    log.warning("%s line %d is unreadable (%s); that page will be done again", self.path, n, exc)
                    continue
                self._add(entry)

    def _add(self, entry: PageEntry) -> None:
        self.entries[(entry.input, entry.page)] = entry
        self._pages.setdefault(entry.input, {})[entry.page] = entry

    def own_files(self) -> set[str]:
        """Names of the files the manifest's pages wrote (the batch's own, not a user's)."""
        return {name for e in self.entries.values() for name in e.files}

    def done(self, source: str, sha256: str, settings: str) -> dict[int, PageEntry]:
        """The pages of ``source`` already done with these input bytes and settings, whose
        files are all still there; by page number."""
        found = self._matching(source, sha256, settings, "done")
        return {page: e for page, e in found.items() if all((self.out_dir / name).is_file() for name in e.files)}

    def failed(self, source: str, sha256: str, settings: str) -> dict[int, PageEntry]:
        """The pages of ``source`` that failed with these input bytes and settings; by page number."""
        return self._matching(source, sha256, settings, "failed")

    def _matching(self, source: str, sha256: str, settings: str, status: str) -> dict[int, PageEntry]:
        return {
            page: e
            for page, e in self._pages.get(source, {}).items()
            if e.sha256 == sha256 and e.settings == settings and e.status == status
        }

    def append(self, entries: Iterable[PageEntry]) -> None:
        """Add entries, flushed to disk before returning (one JSON line each)."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        lines = []
        for e in entries:
            self._add(e)
            lines.append(json.dumps(asdict(e), ensure_ascii=False) + "\n")
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.writelines(lines)
            fh.flush()
            os.fsync(fh.fileno())

    def write_summary(self) -> Path:
        """``ecgstudio-summary.csv``: every page of the manifest, those needing review first."""
        path = self.out_dir / SUMMARY_NAME
        rows = sorted(self.entries.values(), key=lambda e: (not e.needs_review, e.input, e.page))
        with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(SUMMARY_COLUMNS)
            for e in rows:
                conf = "" if e.confidence is None else f"{e.confidence:.3f}"
                writer.writerow(
                    [e.needs_review, e.input, e.page, e.record, e.status, e.reason, conf, e.layout, f"{e.seconds:.2f}"]
                )
        return path
