"""Benchmark a folder of digitized records against a table of images with ground truth.

The table is a CSV like ``shared/data/pairs.csv``: one row per image with the columns
``image``, ``ground_truth``, ``gt_fs_hz``, ``also_available``, ``image_kind``, ``layout`` and
``extra_annotations``; paths are relative to the CSV's folder.  Each image is scored with
:func:`ecgstudio.metrics.score_record` over the windows its page plots, and the scores are
summarised per kind of image (:func:`kind_of`) with :func:`ecgstudio.metrics.aggregate`.

Where the windows come from, first match wins:

1. a JSON beside the image (``<stem>.json`` or ``<stem>.json.gz``), or one named in
   ``extra_annotations``: ecg-image-kit's ``leads[].lead_name/start_sample/end_sample`` with
   ``sampling_frequency``, or ECG Studio's synthetic-page ``windows_s``;
2. the ``layout`` text (:func:`layout_from_text`), e.g. ``3x4+II rhythm`` -> ``3x4+1``, read
   with the optional ``columns`` cell: ``consecutive`` (the default: the second column of a 3x4
   page is 2.5-5 s) or ``from-zero`` (every column shows the record's first seconds, as some
   page generators print; the rhythm strips keep their whole window);
3. otherwise every lead over the whole page, with a logged warning.

A corrections table (:func:`read_corrections`) overrides cells of the truth table image by
image, with the reason written beside each, where the table describes a page wrongly and the
shared table itself cannot be edited.

Pages of long records
---------------------
ecg-image-kit names the pages of a record ``<record>-<k>.png``; page ``k`` shows seconds
``[k*D, (k+1)*D)`` of the record, ``D`` the page duration (10 s).  Where the record is longer
than one page the truth is cut to that segment (checked on the ``sel100`` pages of the QT
record: pages 0, 1 and 10 start at 0, 10 and 100 s), and the prediction's time zero is the
page start.

Predictions
-----------
The prediction for image ``a/b/00001_lr-0.png`` is the WFDB record
``<pred_dir>/a__b__00001_lr-0.hea`` (:func:`pair_key`); ``<pred_dir>/00001_lr-0.hea`` is used
only when that stem names a single image of the table.  A missing prediction scores as a
flat line on every lead (0 dB) and is counted and listed as missing; an unreadable one is
scored the same way and listed as unreadable.
"""

from __future__ import annotations

import csv
import gzip
import json
import logging
import math
import os
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from .errors import LayoutError, SignalFormatError
from .io.signals import read_signals
from .metrics import DEFAULT_MAX_LAG_S, RecordScore, Summary, aggregate, score_record
from .paper import COLUMN_ORDERS, LAYOUTS, LEAD_NAMES, Layout, lead_index
from .results import Signals

logger = logging.getLogger(__name__)

#: Image kinds reported, in report order (see :func:`kind_of`).
KINDS: tuple[str, ...] = ("real scan", "clean render", "damaged render", "other")

#: Columns the truth table must have.
REQUIRED_COLUMNS: tuple[str, ...] = ("image", "ground_truth", "image_kind", "layout")


#: Page duration assumed where neither a layout nor a JSON states it, seconds.
DEFAULT_PAGE_S = 10.0

_REAL_START = re.compile(r"^\W*(real|scan|scanned|photo|photograph|photographed|phone|printed|paper)\b")
_DAMAGE_WORDS = (
    "wrinkl",
    "crease",
    "crumpl",
    "fold",
    "handwrit",
    "rotat",
    "distort",
    "perspective",
    "warp",
    "curl",
    "shadow",
    "stain",
    "blur",
    "noise",
    "noisy",
    "augment",
)
_RENDER_WORDS = ("synthetic", "render", "generated", "simulated", "ecg-image-kit", "clean")
_SEGMENT = re.compile(r"-(\d+)$")
_JSON_TOKEN = re.compile(r"""[^\s,;()"']+\.json(?:\.gz)?""")


# --------------------------------------------------------------------------------------------
# the truth table


def kind_of(image_kind_text: str) -> str:
    """Group a free-text image description into one of :data:`KINDS`.

    Rules, in order (case-insensitive):

    1. **real scan** -- the description *starts* with ``real``, ``scan(ned)``, ``photo``,
       ``phone``, ``printed`` or ``paper``: the medium is physical paper, whatever else it
       says (``real B&W scan of printed ecg-image-kit image``).  A text that merely mentions a
       scan later (``synthetic source of the real scan``) is not one.
    2. **damaged render** -- mentions wrinkles, creases, folds, handwriting, rotation,
       distortions, perspective, warp, curl, shadows, stains, blur, noise or augmentation.
    3. **clean render** -- mentions synthetic / rendered / generated / ecg-image-kit / clean.
       Downscaling, drawn lead boxes, header text, coloured grids and calibration pulses do
       not count as damage.
    4. **other** -- anything else, including an empty description.
    """
    text = " ".join(image_kind_text.lower().split())
    if _REAL_START.search(text):
        return "real scan"
    if any(word in text for word in _DAMAGE_WORDS):
        return "damaged render"
    if any(word in text for word in _RENDER_WORDS):
        return "clean render"
    return "other"


def layout_from_text(text: str) -> Layout | None:
    """The :class:`~ecgstudio.paper.Layout` a free-text layout description names, or None.

    Accepts the layout names of :data:`~ecgstudio.paper.LAYOUTS` (any case) and descriptions
    such as ``3x4+II rhythm``, ``3x4 + 1``, ``3x4+V1,II,V5``, ``cabrera 6x2`` or
    ``2x1 (2 rows, full 10 s)``; text in parentheses is ignored.  Rhythm strips named by lead
    must match the layout's rhythm leads.  Returns None (no warning) for anything else.
    """
    core = " ".join(re.sub(r"\([^)]*\)", " ", text).split()).lower()
    if not core:
        return None
    for name, layout in LAYOUTS.items():
        if core.replace(" ", "") == name.lower():
            return layout
    m = re.fullmatch(r"(cabrera[\s_-]*)?(\d+)\s*x\s*(\d+)(?:\s*\+\s*(.+))?", core)
    if not m:
        return None
    prefix = "cabrera-" if m.group(1) else ""
    base = f"{prefix}{m.group(2)}x{m.group(3)}"
    extra = m.group(4)
    if extra is None:
        return LAYOUTS.get(base)
    words = [w for w in re.split(r"[\s,/;&]+|\band\b", re.sub(r"\b(rhythm|strips?|leads?)\b", " ", extra)) if w]
    if len(words) == 1 and words[0].isdigit():
        return LAYOUTS.get(f"{base}+{words[0]}")
    try:
        strip_leads = {LEAD_NAMES[lead_index(w)] for w in words}
    except LayoutError:
        return None
    layout = LAYOUTS.get(f"{base}+{len(words)}")
    if layout is None or len(strip_leads) != len(words):
        return None
    rhythm = {c.lead for c in layout.cells if c.duration_s >= layout.duration_s}
    return layout if rhythm == strip_leads else None


def pair_key(image_relpath: str) -> str:
    """The prediction record name of an image: its relative path without suffix, ``/`` -> ``__``.

    ``a/b/c/00001_lr-0.png`` gives ``a__b__c__00001_lr-0``.  Backslashes count as ``/`` and
    ``.`` parts are dropped, so the key does not depend on how the path was written.
    """
    parts = [p for p in PurePosixPath(image_relpath.replace("\\", "/")).parts if p not in (".", "/")]
    if not parts:
        raise ValueError(f"image path {image_relpath!r} is empty")
    parts[-1] = PurePosixPath(parts[-1]).stem
    return "__".join(parts)


@dataclass(frozen=True)
class Pair:
    """One row of the truth table.

    Attributes
    ----------
    image : str
        Image path relative to the table's folder, as written in the table.
    ground_truth : Path
        The truth record: a WFDB record path without extension, or a CSV file.
    gt_fs_hz : float or None
        Sampling frequency stated in the table (needed for a CSV without a time column).
    image_kind : str
        Free-text description of the image.
    layout_text : str
        Free-text layout description.
    extra_annotations : str
        Free text naming extra files (JSON lead boxes, masks), relative to ``root``.
    root : Path
        The table's folder.
    columns : str
        One of :data:`COLUMN_ORDERS` (the table's ``columns``; ``consecutive`` when empty).
    """

    image: str
    ground_truth: Path
    gt_fs_hz: float | None
    image_kind: str
    layout_text: str
    extra_annotations: str
    root: Path
    columns: str = "consecutive"

    @property
    def key(self) -> str:
        return pair_key(self.image)

    @property
    def kind(self) -> str:
        return kind_of(self.image_kind)

    @property
    def image_path(self) -> Path:
        return self.root / self.image

    @property
    def segment(self) -> int:
        """The page number ``k`` of an ecg-image-kit ``<record>-<k>`` image name (0 otherwise)."""
        m = _SEGMENT.search(PurePosixPath(self.image.replace("\\", "/")).stem)
        return int(m.group(1)) if m else 0


def pair_record_ids(truth_csv: str | os.PathLike[str] | None) -> list[str]:
    """Record ids of a pairs table's ground truths (the file name before its first ``_``), so
    that training and model selection never render the records a benchmark scores on."""
    if not truth_csv:
        return []
    with open(truth_csv, newline="", encoding="utf-8") as fh:
        return [PurePosixPath(row["ground_truth"]).name.split("_")[0] for row in csv.DictReader(fh)]


def read_pairs(truth_csv: str | os.PathLike[str], *, corrections: str | os.PathLike[str] | None = None) -> list[Pair]:
    """Read the truth table.

    Parameters
    ----------
    truth_csv : str or path-like
        CSV with at least the columns :data:`REQUIRED_COLUMNS`.
    corrections : str or path-like, optional
        A corrections table (:func:`read_corrections`) whose cells replace the truth table's.

    Returns
    -------
    list of Pair
        In table order.

    Raises
    ------
    SignalFormatError
        The file is missing, lacks a required column, has an empty image path, an unknown
        ``columns`` reading, or a correction for an image it does not list.
    """
    path = Path(truth_csv)
    root = path.resolve().parent
    fixes = read_corrections(corrections) if corrections is not None else {}
    pairs = []
    for line, row in _csv_rows(path, REQUIRED_COLUMNS, "truth table", "like shared/data/pairs.csv"):
        row |= fixes.pop(row["image"], {})
        if not row["image"] or not row["ground_truth"]:
            raise SignalFormatError(
                f"truth table {os.fspath(path)!r} line {line}: empty image or "
                "ground_truth; fill both in or delete the row"
            )
        fs_text = row.get("gt_fs_hz", "")
        try:
            fs = float(fs_text) if fs_text else None
        except ValueError:
            raise SignalFormatError(
                f"truth table {os.fspath(path)!r} line {line}: gt_fs_hz {fs_text!r} is not a number of Hz"
            ) from None
        columns = row.get("columns") or "consecutive"
        if columns not in COLUMN_ORDERS:
            raise SignalFormatError(
                f"truth table {os.fspath(path)!r} line {line} ({row['image']}): columns "
                f"{columns!r} is not one of {', '.join(COLUMN_ORDERS)}"
            )
        pairs.append(
            Pair(
                image=row["image"],
                ground_truth=root / row["ground_truth"],
                gt_fs_hz=fs,
                image_kind=row["image_kind"],
                layout_text=row["layout"],
                extra_annotations=row.get("extra_annotations", ""),
                root=root,
                columns=columns,
            )
        )
    if fixes:
        raise SignalFormatError(
            f"corrections {os.fspath(corrections)!r} name image(s) the truth table "
            f"{os.fspath(path)!r} does not list: {', '.join(sorted(fixes))}"
        )
    return pairs


def read_corrections(path: str | os.PathLike[str]) -> dict[str, dict[str, str]]:
    """Cells that replace the truth table's, by image: ``{image: {column: value}}``.

    A CSV with an ``image`` column (as written in the truth table), any of the truth table's
    columns, and a ``reason`` column saying what is wrong and how it was checked (required, so
    that a correction cannot be made without one).  Empty cells change nothing.
    """
    fixes = {}
    for line, row in _csv_rows(
        Path(path), ("image", "reason"), "corrections", "one row per image: image, the columns to replace, reason"
    ):
        if not row["reason"]:
            raise SignalFormatError(f"corrections {os.fspath(path)!r} line {line}: say why in 'reason'")
        fixes[row["image"]] = {k: v for k, v in row.items() if k not in ("image", "reason") and v}
    return fixes


def _csv_rows(path: Path, required: tuple[str, ...], what: str, hint: str):
    """``(line number, {column: stripped text})`` for each row of a CSV with the ``required`` columns."""
    if not path.is_file():
        raise SignalFormatError(f"{what} {os.fspath(path)!r} does not exist; pass the {what} CSV")
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        columns = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in required if c not in columns]
        if missing:
            raise SignalFormatError(
                f"{what} {os.fspath(path)!r} lacks column(s) {', '.join(missing)}; "
                f"it needs {', '.join(required)} ({hint})"
            )
        for line, raw in enumerate(reader, start=2):
            yield line, {(k or "").strip(): (v or "").strip() for k, v in raw.items()}


# --------------------------------------------------------------------------------------------
# plotted windows and truth of one page


def read_plotted_windows(
    path: str | os.PathLike[str], *, fs: float | None = None
) -> dict[str, tuple[float, float]] | None:
    """Plotted windows of each lead from a page's JSON, in seconds from the page start.

    Parameters
    ----------
    path : str or path-like
        ``.json`` or ``.json.gz``.  Two schemas are understood: ecg-image-kit's
        (``leads[].lead_name``, ``start_sample``, ``end_sample`` (exclusive), with
        ``sampling_frequency``) and ECG Studio's synthetic pages (``windows_s`` mapping
        ``"lead@row,col"`` to ``[t_start_s, t_end_s]``).
    fs : float, optional
        Rate of the sample numbers where the JSON does not state ``sampling_frequency``.

    Returns
    -------
    dict or None
        ``{lead: (t_start_s, t_end_s)}``; where a lead is plotted twice the longer window wins
        (as :meth:`Layout.plotted_window_s`).  None when the file holds no windows (some
        ecg-image-kit JSONs only point at other files) or cannot be read; a warning is logged
        for an unreadable file.
    """
    path = Path(path)
    try:
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError, EOFError) as exc:
        logger.warning("cannot read plotted windows from %s (%s); using the layout instead", path, exc)
        return None
    if not isinstance(data, dict):
        return None
    spans: list[tuple[str, float, float]] = []
    if isinstance(data.get("windows_s"), dict):
        for label, span in data["windows_s"].items():
            try:
                spans.append((str(label).split("@")[0], float(span[0]), float(span[1])))
            except (TypeError, ValueError, IndexError):
                logger.warning("%s: malformed window %r: %r; skipped", path, label, span)
    elif isinstance(data.get("leads"), list):
        rate = data.get("sampling_frequency", fs)
        try:
            rate = float(rate)
        except (TypeError, ValueError):
            rate = math.nan
        if not (math.isfinite(rate) and rate > 0):
            logger.warning("%s states no sampling frequency; its windows are ignored", path)
            return None
        for entry in data["leads"]:
            try:
                spans.append(
                    (str(entry["lead_name"]), float(entry["start_sample"]) / rate, float(entry["end_sample"]) / rate)
                )
            except (KeyError, TypeError, ValueError):
                logger.warning("%s: malformed lead entry; skipped", path)
    windows: dict[str, tuple[float, float]] = {}
    for name, t0, t1 in spans:
        try:
            lead = LEAD_NAMES[lead_index(name.strip())]
        except LayoutError:
            lead = name.strip()
        if t1 <= t0:
            continue
        if lead not in windows or t1 - t0 > windows[lead][1] - windows[lead][0]:
            windows[lead] = (t0, t1)
    return windows or None


def windows_json_for(pair: Pair) -> Path | None:
    """The JSON of plotted windows for an image: beside it, else named in ``extra_annotations``."""
    img = pair.image_path
    candidates = [img.with_name(img.stem + ".json"), img.with_name(img.stem + ".json.gz")]
    candidates += [pair.root / tok for tok in _JSON_TOKEN.findall(pair.extra_annotations)]
    return next((c for c in candidates if c.is_file()), None)


def page_windows(
    pair: Pair, *, fs: float | None = None
) -> tuple[Layout | None, dict[str, tuple[float, float]] | None, str]:
    """How an image is scored: ``(layout, windows, source)``.

    ``windows`` come from the JSON (:func:`windows_json_for`) when it has any, else from a
    ``from-zero`` reading of the layout; ``layout`` from the ``layout`` text.  ``source`` says
    which applies: ``"json <name>"``, ``"layout <name>"``, ``"layout <name> from 0 s"`` or
    ``"whole page"`` (unknown layout, warned).
    """
    layout = layout_from_text(pair.layout_text)
    json_path = windows_json_for(pair)
    windows = read_plotted_windows(json_path, fs=fs) if json_path is not None else None
    if windows:
        return layout, windows, f"json {json_path.name}"
    if layout is not None and pair.columns == "from-zero":
        spans = {lead: layout.plotted_window_s(lead) for lead in layout.leads}
        return layout, {lead: (0.0, t1 - t0) for lead, (t0, t1) in spans.items()}, f"layout {layout.name} from 0 s"
    if layout is not None:
        return layout, None, f"layout {layout.name}"
    logger.warning(
        "%s: layout %r is not recognised and there is no JSON of plotted windows; "
        "scoring every lead over the whole page",
        pair.image,
        pair.layout_text,
    )
    return None, None, "whole page"


def _read_truth_record(pair: Pair) -> Signals:
    """The whole ground-truth record of a pair, lead names as in the file (canonical spelling)."""
    gt = pair.ground_truth
    is_csv = gt.suffix.lower() == ".csv"
    truth = read_signals(gt, leads=None, fs=pair.gt_fs_hz if is_csv else None)
    if pair.gt_fs_hz and not math.isclose(truth.fs, pair.gt_fs_hz, rel_tol=1e-6):
        logger.warning(
            "%s: the table says %g Hz but %s is sampled at %g Hz; using the file's rate",
            pair.image,
            pair.gt_fs_hz,
            gt.name,
            truth.fs,
        )
    return truth


def _cut_page(truth: Signals, pair: Pair, page_s: float) -> Signals:
    """The segment of ``truth`` shown on the page (see the module docstring)."""
    per_page = int(round(page_s * truth.fs))
    if truth.n_samples <= per_page:
        if pair.segment:
            logger.warning(
                "%s: page %d of a record only %.3f s long; scoring from its start",
                pair.image,
                pair.segment,
                truth.duration_s,
            )
        return truth
    i0 = pair.segment * per_page
    if i0 >= truth.n_samples:
        raise SignalFormatError(
            f"{pair.image}: page {pair.segment} would start at {i0 / truth.fs:.1f} s but "
            f"{pair.ground_truth.name} is only {truth.duration_s:.1f} s long; check the image name or the record"
        )
    return Signals(truth.mv[i0 : i0 + per_page].copy(), truth.fs, truth.lead_names)


def _page_duration(layout: Layout | None, windows: Mapping[str, tuple[float, float]] | None) -> float:
    if windows:
        return max(t1 for _, t1 in windows.values())
    return layout.duration_s if layout is not None else DEFAULT_PAGE_S


def page_truth(pair: Pair) -> Signals:
    """The ground truth of the page an image shows, time zero at the page start.

    For a record longer than one page this is segment ``pair.segment``; otherwise the whole
    record.  Lead names are canonical (``MLII`` -> ``II``, ``AVR`` -> ``aVR``).

    Raises
    ------
    SignalFormatError
        The record cannot be read, or the page lies beyond its end.
    """
    truth = _read_truth_record(pair)
    layout, windows, _ = page_windows(pair, fs=truth.fs)
    return _cut_page(truth, pair, _page_duration(layout, windows))


# --------------------------------------------------------------------------------------------
# evaluation


@dataclass(frozen=True, eq=False)
class ImageResult:
    """The score of one image.

    Attributes
    ----------
    image : str
        Image path as written in the truth table.
    key : str
        Prediction record name (:func:`pair_key`).
    kind : str
        One of :data:`KINDS`.
    status : str
        ``"ok"``, ``"missing"`` (no prediction; scored flat) or ``"unreadable"`` (scored flat).
    prediction : Path or None
        The prediction's ``.hea`` file, if one was found.
    windows_from : str
        Where the plotted windows came from (``json ...``, ``layout ...``, ``whole page``).
    score : RecordScore
    """

    image: str
    key: str
    kind: str
    status: str
    prediction: Path | None
    windows_from: str
    score: RecordScore


@dataclass(frozen=True, eq=False)
class EvaluationReport:
    """Scores of every image of a truth table.

    Attributes
    ----------
    pred_dir : Path
    truth_csv : Path
    images : tuple of ImageResult
        In table order.
    max_lag_s : float
        The lag search half-width used.
    """

    pred_dir: Path
    truth_csv: Path
    images: tuple[ImageResult, ...]
    max_lag_s: float = DEFAULT_MAX_LAG_S

    def summary(self, kind: str | None = None) -> Summary:
        """Aggregate over all images, or over the images of one kind."""
        return aggregate([r.score for r in self.images if kind is None or r.kind == kind])

    def by_kind(self) -> dict[str, Summary]:
        """Summary per image kind present, in :data:`KINDS` order."""
        present = {r.kind for r in self.images}
        return {k: self.summary(k) for k in KINDS if k in present}

    @property
    def missing(self) -> tuple[str, ...]:
        """Images without a prediction."""
        return tuple(r.image for r in self.images if r.status == "missing")

    @property
    def unreadable(self) -> tuple[str, ...]:
        """Images whose prediction could not be read."""
        return tuple(r.image for r in self.images if r.status == "unreadable")

    def n_missing(self, kind: str | None = None) -> int:
        """Images without a usable prediction (missing or unreadable), optionally of one kind."""
        return sum(r.status != "ok" for r in self.images if kind is None or r.kind == kind)


def evaluate(
    pred_dir: str | os.PathLike[str],
    truth_csv: str | os.PathLike[str],
    *,
    corrections: str | os.PathLike[str] | None = None,
    max_lag_s: float = DEFAULT_MAX_LAG_S,
) -> EvaluationReport:
    """Score the predictions in ``pred_dir`` against every image of ``truth_csv``.

    Parameters
    ----------
    pred_dir : str or path-like
        Folder of predicted WFDB records named by :func:`pair_key`.
    truth_csv : str or path-like
        The truth table (see the module docstring).
    corrections : str or path-like, optional
        Cells that replace the truth table's (:func:`read_corrections`).
    max_lag_s : float, optional
        Half-width of the lag search in seconds.

    Returns
    -------
    EvaluationReport

    Raises
    ------
    SignalFormatError
        ``pred_dir`` is not a folder, the table is malformed, or a ground-truth record cannot
        be read (the benchmark itself is broken; fix the table).
    """
    pred_root = Path(pred_dir)
    if not pred_root.is_dir():
        raise SignalFormatError(
            f"prediction folder {os.fspath(pred_root)!r} does not exist; "
            "pass the folder holding the predicted .hea/.dat records"
        )
    pairs = read_pairs(truth_csv, corrections=corrections)
    stems = Counter(PurePosixPath(p.image.replace("\\", "/")).stem for p in pairs)
    records: dict[Path, Signals] = {}
    results = []
    for pair in pairs:
        if pair.ground_truth not in records:
            records[pair.ground_truth] = _read_truth_record(pair)
        full = records[pair.ground_truth]
        layout, windows, source = page_windows(pair, fs=full.fs)
        truth = _cut_page(full, pair, _page_duration(layout, windows))

        prediction = _find_prediction(pred_root, pair, stems)
        status = "missing"
        pred: Signals | None = None
        if prediction is not None:
            try:
                pred = read_signals(prediction, leads=None)
                status = "ok"
            except SignalFormatError as exc:
                logger.warning(
                    "%s: prediction %s is unreadable (%s); scored as a flat line", pair.image, prediction, exc
                )
                status = "unreadable"
        if pred is None:
            pred = Signals(np.full(truth.mv.shape, np.nan), truth.fs, truth.lead_names)
        try:
            score = score_record(truth, pred, layout=layout, windows=windows, max_lag_s=max_lag_s)
        except LayoutError as exc:
            raise LayoutError(f"{pair.image}: {exc}") from exc
        results.append(ImageResult(pair.image, pair.key, pair.kind, status, prediction, source, score))
    report = EvaluationReport(pred_root, Path(truth_csv), tuple(results), max_lag_s)
    if report.n_missing():
        logger.warning(
            "%d of %d images have no usable prediction in %s (scored 0 dB)", report.n_missing(), len(results), pred_root
        )
    return report


def _find_prediction(pred_root: Path, pair: Pair, stems: Counter[str]) -> Path | None:
    """``<key>.hea``, else ``<stem>.hea`` when the stem names one image only."""
    by_key = pred_root / f"{pair.key}.hea"
    if by_key.is_file():
        return by_key
    stem = PurePosixPath(pair.image.replace("\\", "/")).stem
    by_stem = pred_root / f"{stem}.hea"
    if by_stem.is_file():
        if stems[stem] == 1:
            return by_stem
        logger.warning(
            "%s: ignoring %s because %d images share the stem %r; name the prediction %s.hea",
            pair.image,
            by_stem.name,
            stems[stem],
            stem,
            pair.key,
        )
    return None


# --------------------------------------------------------------------------------------------
# text reports


def _fmt(value: float, digits: int) -> str:
    return "-" if not math.isfinite(value) else f"{value:.{digits}f}"


def format_report(report: EvaluationReport, *, per_image: bool = False) -> str:
    """A plain-text table of the scores by image kind, plus an ``all`` row.

    Parameters
    ----------
    report : EvaluationReport
    per_image : bool, optional
        Append :func:`format_images`.

    Returns
    -------
    str
        Columns: kind, images, missing (no usable prediction), mean per-lead SNR (dB), per-image
        linear-mean SNR (dB), mean Pearson r, mean RMSE (mV).
    """
    header = (
        f"{'kind':<16}{'images':>7}{'missing':>9}{'SNR dB/lead':>13}{'SNR dB/image':>14}"
        f"{'Pearson r':>11}{'RMSE mV':>10}"
    )
    lines = [
        f"ECG Studio evaluation of {report.pred_dir} against {report.truth_csv}",
        "",
        header,
        "-" * len(header),
    ]
    rows = list(report.by_kind().items()) + [("all", report.summary())]
    for kind, s in rows:
        if kind == "all":
            lines.append("-" * len(header))
        n_missing = report.n_missing(None if kind == "all" else kind)
        lines.append(
            f"{kind:<16}{s.n_records:>7}{n_missing:>9}{_fmt(s.mean_snr_db, 2):>13}"
            f"{_fmt(s.image_linear_snr_db, 2):>14}{_fmt(s.mean_pearson_r, 3):>11}"
            f"{_fmt(s.mean_rmse_mv, 4):>10}"
        )
    lines += [
        "",
        "SNR dB/lead: mean of per-lead 10 log10(signal/error) (PhysioNet Challenge 2024).",
        "SNR dB/image: per-image summed signal/error energy, averaged linearly over images, in dB (Kaggle 2025).",
        f"Plotted windows only; lag searched within +-{report.max_lag_s:g} s; offset removed by least "
        "squares; no output scores 0 dB; capped at 100 dB.",
    ]
    for label, names in (("missing predictions", report.missing), ("unreadable predictions", report.unreadable)):
        if names:
            lines.append(f"{label} ({len(names)}):")
            lines += [f"  {name}" for name in names[:10]]
            if len(names) > 10:
                lines.append(f"  ... and {len(names) - 10} more (see the per-image listing)")
    if per_image:
        lines += ["", format_images(report)]
    return "\n".join(lines)


def format_images(report: EvaluationReport) -> str:
    """One line per image, grouped by kind in :data:`KINDS` order, table order within a kind.

    Columns: kind, status, per-image SNR (dB), mean per-lead SNR (dB), mean Pearson r, mean
    RMSE (mV), number of leads scored, window source, image path.
    """
    header = (
        f"{'kind':<16}{'status':<12}{'image dB':>9}{'lead dB':>9}{'r':>8}{'RMSE mV':>9}"
        f"{'leads':>6}  {'windows':<28}image"
    )
    lines = [header, "-" * len(header)]
    order = {k: i for i, k in enumerate(KINDS)}
    for r in sorted(report.images, key=lambda r: order.get(r.kind, len(order))):
        s = r.score
        lines.append(
            f"{r.kind:<16}{r.status:<12}{_fmt(s.image_snr_db, 2):>9}{_fmt(s.mean_snr_db, 2):>9}"
            f"{_fmt(s.mean_pearson_r, 3):>8}{_fmt(s.mean_rmse_mv, 4):>9}{s.n_leads:>6}  "
            f"{r.windows_from[:27]:<28}{r.image}"
        )
    return "\n".join(lines)


__all__ = [
    "KINDS",
    "EvaluationReport",
    "ImageResult",
    "Pair",
    "evaluate",
    "format_images",
    "format_report",
    "kind_of",
    "layout_from_text",
    "page_truth",
    "page_windows",
    "pair_key",
    "read_pairs",
    "read_plotted_windows",
    "windows_json_for",
]
