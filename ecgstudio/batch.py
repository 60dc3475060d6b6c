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
import json
import logging
import os
import re
import time
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from . import restore
from .errors import EcgStudioError
from .io.atomic import atomic_path
from .io.edf import stretch_pattern
from .io.images import collect_inputs, file_sha256, iter_pages
from .io.writers import FORMATS, display_path, write_signals
from .manifest import Manifest, PageEntry
from .overlay import draw_overlay
from .pipeline import DigitizeOptions, Digitizer

log = logging.getLogger(__name__)

#: Inputs that may hold several pages (named ``<name>_p<N>``).
MULTI_PAGE_SUFFIXES = frozenset({".pdf", ".tif", ".tiff"})
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_PAGE_NAME = re.compile(r"(.+)_p\d+", re.IGNORECASE)


class OutputExistsError(EcgStudioError):
    """The output folder already holds files a batch would write; nothing was written."""


@dataclass
class BatchReport:
    """What a batch run did.

    Attributes
    ----------
    written : dict of str to list of Path
        Files written, by record name, in this run.
    failed : dict of str to str
        Pages (or whole files) that failed in this run, with the reason.
    skipped : int
        Pages done by an earlier run into the same folder (manifest), unchanged: not done again.
    failed_before : int
        Pages that failed in an earlier run and were not tried again (``retry_failed`` False).
    summary : Path or None
        ``ecgstudio-summary.csv`` of the output folder.
    incomplete : dict of str to list of str
        With ``complete``: records written in this run with leads left empty somewhere.
    """

    written: dict[str, list[Path]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    incomplete: dict[str, list[str]] = field(default_factory=dict)
    skipped: int = 0
    failed_before: int = 0
    summary: Path | None = None

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
        if "edf" in formats:  # the stretches of an EDF record (ecgstudio.io.edf)
            stretches = re.compile(stretch_pattern(re.escape(name) + r"(_p\d+)?"), re.IGNORECASE)
            found += [p for key, p in present.items() if stretches.fullmatch(key)]
    return sorted(set(found))


def _is_output(file_name: str, formats: Sequence[str], overlay: bool) -> bool:
    return file_name.endswith(tuple(_suffixes(formats))) or (overlay and file_name.endswith("_overlay.png"))


@dataclass(frozen=True)
class BatchSettings:
    """How every page of a batch is digitized and written (sent to the worker processes)."""

    out_dir: Path
    options: DigitizeOptions = DigitizeOptions()
    formats: tuple[str, ...] = ("wfdb",)
    overlay: bool = False
    complete: bool = False  # every lead completed where it can be (ecgstudio.restore)

    def key(self, model_version: str) -> str:
        """What a page's outputs depend on besides its input: a rerun with another key redoes it."""
        return json.dumps(
            {
                "model": model_version,
                "options": asdict(self.options),
                "formats": self.formats,
                "overlay": self.overlay,
                "complete": self.complete,
            },
            sort_keys=True,
        )


def digitize_paths(
    paths: Sequence[str | Path],
    out_dir: str | Path,
    *,
    options: DigitizeOptions = DigitizeOptions(),
    formats: Sequence[str] = ("wfdb",),
    overlay: bool = False,
    complete: bool = False,
    overwrite: bool = False,
    retry_failed: bool = False,
    workers: int = 1,
    ray: str | None = None,
    model: str | None = None,
    device: str = "cpu",
    digitizer: Digitizer | None = None,
    on_plan: Callable[[int], None] | None = None,
    on_page: Callable[[PageEntry], None] | None = None,
) -> BatchReport:
    """Digitize every page of ``paths`` (files or folders) into ``out_dir``, resumably.

    Pages an earlier run into ``out_dir`` finished with the same input, model and settings are
    skipped (:mod:`ecgstudio.manifest`); pages that failed then are tried again only with
    ``retry_failed``.  With ``workers`` > 1 the files are spread over that many processes,
    each loading the model (``model``, ``device``) once; with ``ray`` (a cluster address, or
    ``"local"`` to start Ray on this machine) over ``workers`` Ray actors instead, which need the
    inputs and ``out_dir`` on storage every node sees; else ``digitizer`` (default: one for
    ``model``) runs in this process.  ``on_plan`` gets the number of files to work on once the
    manifest is read; ``on_page`` is called after each page, and once for a file that could
    not be read.

    Raises
    ------
    OutputExistsError
        ``out_dir`` holds files the batch would write that no earlier batch there wrote, and
        ``overwrite`` is False; nothing was written.
    """
    settings = BatchSettings(
        Path(out_dir), options, tuple(dict.fromkeys(f.lower() for f in formats)), overlay, complete
    )
    files = collect_inputs(paths)
    names = record_names(files)
    manifest = Manifest(settings.out_dir)
    if not overwrite:
        own = manifest.own_files()
        clashes = [
            p for p in existing_outputs(settings.out_dir, names, settings.formats, overlay=overlay) if p.name not in own
        ]
        if clashes:
            shown = ", ".join(display_path(p.name) for p in clashes[:5])
            more = f" and {len(clashes) - 5} more" if len(clashes) > 5 else ""
            raise OutputExistsError(
                f"{display_path(settings.out_dir)} already holds {shown}{more}, which this run would replace; "
                "pass --overwrite to replace them, or choose another --out"
            )
    version = digitizer.model_card.version if digitizer is not None else _model_version(model)
    key = settings.key(version)
    report = BatchReport()
    jobs = []
    for path in files:
        source = display_path(Path(os.path.abspath(path)))
        sha = file_sha256(path)
        keep = dict(manifest.done(source, sha, key))
        report.skipped += len(keep)
        before = manifest.failed(source, sha, key)
        if not retry_failed:
            report.failed_before += len(before)
            keep.update(before)
        n_pages = max((e.n_pages for e in keep.values()), default=0)
        if n_pages and len(keep) >= n_pages:
            continue  # every page of the file is done (or failed, and not retried)
        jobs.append(FileJob(path, source, names[path], sha, key, frozenset(keep)))
    if on_plan:
        on_plan(len(jobs))
    workers = min(workers, max(1, len(jobs)))  # no process started for nothing to do
    if workers <= 1 and ray is None and digitizer is None and jobs:
        digitizer = Digitizer(model, device=device)

    def record(entries: list[PageEntry]) -> None:
        manifest.append(entries)
        for e in entries:
            if e.status == "done":
                report.written[e.record] = [settings.out_dir / name for name in e.files]
                if e.incomplete:
                    report.incomplete[e.record] = e.incomplete
            else:
                report.failed[e.record] = e.reason
            if on_page:
                on_page(e)

    try:
        if ray is not None:
            run_on_ray(jobs, settings, address=ray, actors=workers, model=model, device=device, record=record)
        elif workers <= 1:
            for job in jobs:
                record(digitize_file(digitizer, job, settings))
        else:
            _run_in_workers(jobs, settings, workers=workers, model=model, device=device, record=record)
    finally:
        _current_input.set("")
        if manifest.entries:
            report.summary = manifest.write_summary()
    return report


def _model_version(model: str | None) -> str:
    """The version of the weights ``model`` names (the active model for None), read from its card."""
    from .model.registry import resolve_model
    from .model.weights import ModelCard, card_path

    return ModelCard.from_json(card_path(resolve_model(model)).read_text(encoding="utf-8")).version


@dataclass(frozen=True)
class FileJob:
    """One input file of a batch: where it is, its record name, sha256, settings key, and the
    pages (1-based) an earlier run already settled."""

    path: Path
    source: str
    name: str
    sha256: str
    key: str
    settled: frozenset[int] = frozenset()


def digitize_file(digitizer: Digitizer, job: FileJob, settings: BatchSettings) -> list[PageEntry]:
    """Digitize and write the pages of one file but those already settled; never raises for a
    bad page or file: each becomes a failed :class:`~ecgstudio.manifest.PageEntry` with its reason."""
    _current_input.set(display_path(job.path.name))
    entries: list[PageEntry] = []

    def entry(page: int, n_pages: int, record: str, started: float, **fields) -> PageEntry:
        seconds = time.perf_counter() - started
        return PageEntry(job.source, job.sha256, page, n_pages, record, settings=job.key, seconds=seconds, **fields)

    started = time.perf_counter()
    try:
        for page in iter_pages(job.path):  # one page in memory at a time
            number = page.page_index + 1
            if number in job.settled:
                started = time.perf_counter()
                continue
            record = page_record(job.name, page.page_index, page.n_pages)
            try:
                result, files, incomplete = _digitize_page(digitizer, page, job, record, settings)
                confidence = min(result.confidence.values()) if result.confidence else None
                entries.append(
                    entry(
                        number,
                        page.n_pages,
                        record,
                        started,
                        status="done",
                        files=[f.name for f in files],
                        confidence=confidence,
                        layout=result.layout,
                        assumed=list(dict.fromkeys(a.what for a in result.assumptions)),
                        incomplete=incomplete,
                    )
                )
            except Exception as exc:  # one page must never end the batch
                entries.append(entry(number, page.n_pages, record, started, status="failed", reason=_reason(exc)))
            started = time.perf_counter()
    except Exception as exc:  # the file (or its next page) cannot be read: the rest go on
        entries.append(entry(0, 0, job.name, started, status="failed", reason=_reason(exc)))
    return entries


def _reason(exc: Exception) -> str:
    """What a person reads about a failed page: our own errors as they are, anything else named
    as unexpected (its traceback goes to the debug log)."""
    if isinstance(exc, EcgStudioError):
        return str(exc)
    log.debug("unexpected failure", exc_info=exc)
    return f"unexpected error ({type(exc).__name__}: {exc}); please report it with this file"


def _digitize_page(digitizer, page, job: FileJob, record: str, settings: BatchSettings):
    """Digitize one page and write its files; none of them stays if any cannot be written.
    Returns the result, the files and (with ``complete``) the leads left empty somewhere."""
    result = digitizer.digitize(page.image, settings.options)
    signals, sources, completion, incomplete = result.signals, None, None, []
    if settings.complete:
        done = restore.restore(result.signals, windows=restore.plotted_windows(result.boxes))
        signals, sources = done.signals, (done.source, restore.SOURCES)
        completion = done.runs()
        empty = ~np.isfinite(signals.mv).all(axis=0)
        incomplete = [lead for lead, e in zip(signals.lead_names, empty, strict=True) if e]
    sidecar = {
        "calibration": result.calibration,
        "layout": result.layout,
        "provenance": {
            "source_image": job.path,
            "source_sha256": job.sha256,
            "page": page.page_index + 1,
            "model_version": result.model_version,
        },
    }
    if completion is not None:
        sidecar["completion"] = completion
    files = write_signals(
        signals,
        settings.out_dir,
        record,
        formats=settings.formats,
        sidecar=sidecar if "json" in settings.formats else None,
        provenance=sidecar["provenance"],
        sources=sources,
    )
    if settings.overlay:
        try:
            files.append(write_png(settings.out_dir / f"{record}_overlay.png", draw_overlay(page.image, result)))
        except BaseException:
            for f in files:
                f.unlink(missing_ok=True)
            raise
    return result, files, incomplete


# -------------------------------------------------------------------------------------------- workers

_worker_digitizer: Digitizer | None = None


def _start_worker(model: str | None, device: str, threads: int) -> None:
    """In a worker process: load the model once, with ``threads`` threads for its maths."""
    global _worker_digitizer
    import torch

    torch.set_num_threads(threads)
    _worker_digitizer = Digitizer(model, device=device)


def _work(job: FileJob, settings: BatchSettings) -> list[PageEntry]:
    assert _worker_digitizer is not None, "the worker was not started"
    return digitize_file(_worker_digitizer, job, settings)


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """Threads each of ``workers`` processes uses so the machine's cores are busy, not oversubscribed."""
    return max(1, (cores or os.cpu_count() or 1) // max(1, workers))


def _run_in_workers(
    jobs: list[FileJob],
    settings: BatchSettings,
    *,
    workers: int,
    model: str | None,
    device: str,
    record: Callable[[list[PageEntry]], None],
) -> None:
    """Digitize ``jobs`` in ``workers`` processes (spawned: no inherited torch threads), recording
    each file's entries as it finishes; Ctrl-C stops them at once, what finished stays recorded."""
    import functools
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    pool = context.Pool(workers, initializer=_start_worker, initargs=(model, device, threads_per_worker(workers)))
    try:
        for entries in pool.imap_unordered(functools.partial(_work, settings=settings), jobs):
            record(entries)
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()


# -------------------------------------------------------------------------------------------- Ray
# When one machine is not enough (``pip install ecgstudio[cluster]``): the same per-file function
# run by Ray actors that each load the model once; the manifest is written by the process that
# started the batch, as results come back.  Inputs and the output folder must be on storage every
# node sees (a shared file system).


class _RayWorker:
    """A Ray actor: one model, loaded once, digitizing whole files."""

    def __init__(self, model: str | None, device: str) -> None:
        self.digitizer = Digitizer(model, device=device)

    def digitize_file(self, job: FileJob, settings: BatchSettings) -> list[PageEntry]:
        return digitize_file(self.digitizer, job, settings)


def run_on_ray(
    jobs: list[FileJob],
    settings: BatchSettings,
    *,
    address: str,
    actors: int,
    model: str | None,
    device: str,
    record: Callable[[list[PageEntry]], None],
) -> None:
    """Digitize ``jobs`` on the Ray cluster at ``address`` (``"local"``: start one here) with
    ``actors`` actors of one CPU each, recording each file's entries as it comes back."""
    try:
        import ray
        from ray.util import ActorPool
    except ImportError:
        raise EcgStudioError("Ray is not installed; install it with: pip install 'ecgstudio[cluster]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=None if address == "local" else address, logging_level=logging.WARNING)
    try:
        worker = ray.remote(num_cpus=1)(_RayWorker)
        pool = ActorPool([worker.remote(model, device) for _ in range(max(1, actors))])
        for entries in pool.map_unordered(lambda actor, job: actor.digitize_file.remote(job, settings), jobs):
            record(entries)
    finally:
        if started_here:
            ray.shutdown()


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
