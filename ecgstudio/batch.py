"""Digitize files and folders: every page of every input, written to an output folder.

A page that fails is reported and skipped; the others go on, whatever went wrong.

Record names (one rule, stable for the same inputs)
---------------------------------------------------
Each input file gets a record name from which every output of its pages is named
(``<name>.hea``, ``.dat``, ``.csv``, ``.edf``, ``.json``, ``<name>_overlay.png``):

1. its stem, with letters turned to plain ASCII where they have a plain form (``é`` -> ``e``) and
   every other run of characters WFDB does not allow (anything but ``A-Z a-z 0-9 _ -``) turned
   to ``_``;  a stem that had to change gets ``-`` and 6 hex digits of its sha256
   (``scan 1.png`` -> ``scan_1-3c9f1a``, ``心电图.png`` -> ``page-7b41c0``), so that it cannot
   meet a stem that did not (``scan_1.png`` -> ``scan_1``);
2. inputs whose names still meet (names compare case-insensitively, as on Windows and macOS
   disks) all get their suffix added where their suffixes differ (``dup.png``, ``dup.jpg`` ->
   ``dup_png``, ``dup_jpg``);
3. those still meeting get their parent folder names, nearest last (``a/x.png``, ``b/x.png`` ->
   ``a_x``, ``b_x``), and as a last resort 8 hex digits of the full path's sha256;
4. pages of a multi-page file (PDF, TIFF) are ``<name>_p<N>``; a single-page file whose name
   would meet one of those (``x_p1.png`` beside ``x.pdf``) gets its suffix added.

Files already in the output folder are never replaced unless ``overwrite`` is given: the run
stops before writing anything, naming them (:class:`OutputExistsError`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .errors import EcgStudioError
from .io.atomic import atomic_path
from .io.images import collect_inputs, file_sha256, iter_pages
from .io.writers import FORMATS, display_path, write_signals
from .overlay import draw_overlay
from .pipeline import DigitizeOptions, Digitizer

log = logging.getLogger(__name__)

#: Inputs that may hold several pages (named ``<name>_p<N>``).
MULTI_PAGE_SUFFIXES = frozenset({".pdf", ".tif", ".tiff"})
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_PAGE_NAME = re.compile(r"(.+)_p\d+", re.IGNORECASE)


class OutputExistsError(EcgStudioError):
    """The output folder already holds files a batch would write; nothing was written."""


@dataclass(frozen=True)
class PageOutcome:
    """One page of a batch, done or failed (what ``on_page`` receives).

    Attributes
    ----------
    source : Path
        The input file.
    record : str
        The page's record name (see the module docstring).
    page_index, n_pages : int
        Which page of the file (0-based) and how many it has (0 where the file could not be read).
    error : str or None
        Why the page (or the whole file) failed; None on success.
    """

    source: Path
    record: str
    page_index: int
    n_pages: int
    error: str | None = None

    @property
    def last_of_file(self) -> bool:
        return self.page_index >= self.n_pages - 1


@dataclass
class BatchReport:
    """What a batch run did: written files per record name, and failures with their reasons."""

    written: dict[str, list[Path]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed


def write_png(path: Path, image: np.ndarray) -> Path:
    """Write an RGB image as PNG atomically."""
    ok, data = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]))
    if not ok:
        raise OSError(f"could not encode {path}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.tobytes())
    return path


def _short_hash(text: str, n: int) -> str:
    return hashlib.sha256(os.fsencode(text)).hexdigest()[:n]


def _plain(text: str) -> str:
    """``text`` in WFDB's record-name characters (rule 1 of the module docstring)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    safe = _UNSAFE.sub("_", ascii_text).strip("_")
    if safe == text:
        return safe
    return f"{safe or 'page'}-{_short_hash(text, 6)}"


def record_names(files: Sequence[Path]) -> dict[Path, str]:
    """A distinct record name for each input file (the rule in the module docstring)."""
    files = list(dict.fromkeys(Path(f) for f in files))
    names = {f: _plain(f.stem) for f in files}

    def clashing() -> list[list[Path]]:
        groups: dict[str, list[Path]] = defaultdict(list)
        for f in files:
            groups[names[f].lower()].append(f)
        return [g for g in groups.values() if len(g) > 1]

    for group in clashing():  # rule 2
        if len({f.suffix.lower() for f in group}) == 1:
            continue
        for f in group:
            names[f] = f"{names[f]}_{_plain(f.suffix.lstrip('.')) or 'file'}"
    for depth in range(1, 4):  # rule 3
        for group in clashing():
            for f in group:
                parents = [_plain(p.name) for p in list(Path(os.path.abspath(f)).parents)[:depth] if p.name]
                names[f] = "_".join([*reversed(parents), names[f]]) if parents else names[f]
    for group in clashing():
        for f in group:
            names[f] = f"{names[f]}-{_short_hash(os.path.abspath(f), 8)}"
    multi = {names[f].lower() for f in files if f.suffix.lower() in MULTI_PAGE_SUFFIXES}
    for f in files:  # rule 4
        m = _PAGE_NAME.fullmatch(names[f])
        if f.suffix.lower() not in MULTI_PAGE_SUFFIXES and m and m.group(1).lower() in multi:
            names[f] = f"{names[f]}_{_plain(f.suffix.lstrip('.'))}"
    return names


def page_record(name: str, page_index: int, n_pages: int) -> str:
    """The record of page ``page_index`` (0-based) of a file named ``name`` with ``n_pages`` pages."""
    return name if n_pages <= 1 else f"{name}_p{page_index + 1}"


def _suffixes(formats: Sequence[str]) -> list[str]:
    return [s for f in formats for s in ((".hea", ".dat") if f == "wfdb" else (FORMATS[f],))]


def _outputs(record: str, formats: Sequence[str], overlay: bool) -> list[str]:
    """File names the page ``record`` writes."""
    return [record + s for s in _suffixes(formats)] + ([f"{record}_overlay.png"] if overlay else [])


def existing_outputs(
    out_dir: Path, names: dict[Path, str], formats: Sequence[str], *, overlay: bool = False
) -> list[Path]:
    """Files in ``out_dir`` that the batch of ``names`` would write (any page of a multi-page file)."""
    if not out_dir.is_dir():
        return []
    present = {p.name.lower(): p for p in out_dir.iterdir()}
    found: list[Path] = []
    for source, name in names.items():
        wanted = set(_outputs(name, formats, overlay))
        if source.suffix.lower() in MULTI_PAGE_SUFFIXES:
            pages = re.compile(re.escape(name) + r"_p\d+(_overlay\.png|\.\w+)", re.IGNORECASE)
            found += [p for key, p in present.items() if pages.fullmatch(key) and _is_output(key, formats, overlay)]
        found += [present[w.lower()] for w in wanted if w.lower() in present]
    return sorted(set(found))


def _is_output(file_name: str, formats: Sequence[str], overlay: bool) -> bool:
    return file_name.endswith(tuple(_suffixes(formats))) or (overlay and file_name.endswith("_overlay.png"))


def digitize_paths(
    paths: Sequence[str | Path],
    out_dir: str | Path,
    *,
    options: DigitizeOptions = DigitizeOptions(),
    formats: Sequence[str] = ("wfdb",),
    overlay: bool = False,
    overwrite: bool = False,
    digitizer: Digitizer | None = None,
    on_page: Callable[[PageOutcome], None] | None = None,
) -> BatchReport:
    """Digitize every page of ``paths`` (files or folders) into ``out_dir``.

    ``on_page`` is called after each page, and once for a file that could not be read.

    Raises
    ------
    OutputExistsError
        ``out_dir`` holds files the batch would write and ``overwrite`` is False; nothing was written.
    """
    out_dir = Path(out_dir)
    formats = list(dict.fromkeys(f.lower() for f in formats))
    files = collect_inputs(paths)
    names = record_names(files)
    if not overwrite:
        clashes = existing_outputs(out_dir, names, formats, overlay=overlay)
        if clashes:
            shown = ", ".join(display_path(p.name) for p in clashes[:5])
            more = f" and {len(clashes) - 5} more" if len(clashes) > 5 else ""
            raise OutputExistsError(
                f"{display_path(out_dir)} already holds {shown}{more}, which this run would replace; "
                "pass --overwrite to replace them, or choose another --out"
            )
    digitizer = digitizer or Digitizer()
    report = BatchReport()
    for path in files:
        name = names[path]
        _current_input.set(display_path(path.name))
        try:
            for page in iter_pages(path):  # one page in memory at a time
                record = page_record(name, page.page_index, page.n_pages)
                error = None
                try:
                    report.written[record] = _digitize_page(
                        digitizer, page, path, record, out_dir, options, formats, overlay
                    )
                except Exception as exc:  # one page must never end the batch
                    error = _reason(exc)
                    report.failed[record] = error
                if on_page:
                    on_page(PageOutcome(path, record, page.page_index, page.n_pages, error))
        except Exception as exc:  # the file (or its next page) cannot be read: the rest go on
            error = _reason(exc)
            report.failed[name] = error
            if on_page:
                on_page(PageOutcome(path, name, 0, 0, error))
    _current_input.set("")
    return report


def _reason(exc: Exception) -> str:
    """What a person reads about a failed page: our own errors as they are, anything else named
    as unexpected (its traceback goes to the debug log)."""
    if isinstance(exc, EcgStudioError):
        return str(exc)
    log.debug("unexpected failure", exc_info=exc)
    return f"unexpected error ({type(exc).__name__}: {exc}); please report it with this file"


def _digitize_page(digitizer, page, path, record, out_dir, options, formats, overlay) -> list[Path]:
    """Digitize one page and write its files; none of them stays if any cannot be written."""
    result = digitizer.digitize(page.image, options)
    sidecar = {
        "calibration": result.calibration,
        "layout": result.layout,
        "provenance": {
            "source_image": path,
            "source_sha256": file_sha256(path),
            "page": page.page_index + 1,
            "model_version": result.model_version,
        },
    }
    files = write_signals(
        result.signals,
        out_dir,
        record,
        formats=formats,
        sidecar=sidecar if "json" in formats else None,
        provenance=sidecar["provenance"],
    )
    if overlay:
        try:
            files.append(write_png(out_dir / f"{record}_overlay.png", draw_overlay(page.image, result)))
        except BaseException:
            for f in files:
                f.unlink(missing_ok=True)
            raise
    return files


_current_input: ContextVar[str] = ContextVar("ecgstudio_batch_input", default="")


class InputNamer(logging.Filter):
    """Names the input file a batch is working on in every log message made meanwhile (add it to
    a handler: ``handler.addFilter(InputNamer())``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        name = _current_input.get()
        if name and not getattr(record, "_input_named", False):
            record.msg = f"{name}: {record.msg}"
            record._input_named = True
        return True
