"""Fine-tune the trace network on the user's reviewed pages (the studio's one-click local fine-tune).

Steps of :func:`finetune`:

1. **Read the labels** (:func:`read_label_source`): each ``.labels.h5`` file is loaded (its schema
   version checked), pages not reviewed yet are left out, and the image is found and checked
   against the sha256 the label recorded.
2. **Split** (:func:`split_sources`): a deterministic share of the pages (at least one) is held out
   to validate on; the rest is trained on.
3. **Build samples** (:func:`build_sample`) in the frame the network sees: the image is rectified
   and resampled to :data:`~ecgstudio.model.net.CANONICAL_PX_PER_MM` exactly as
   :class:`~ecgstudio.pipeline.Digitizer` does, and the label's corrected traces (input-image
   pixels) are carried through the same homography and rasterised with
   :func:`~ecgstudio.training.data.trace_heatmap`.  The text target is the label's ``masks.text``
   (dark pixels only, as for synthetic pages) or, without masks, zeros with a low weight.
4. **Validate the base model** on the held-out pages (:func:`labeled_validation_snr`: segmentation,
   :func:`~ecgstudio.pipeline.analyse_maps` and :func:`~ecgstudio.metrics.score_record` against the
   label's signals, wherever they are finite).
5. **Train** for a number of steps or minutes; each batch mixes crops of the labelled pages with
   crops of freshly rendered synthetic pages (half and half by default) so the model keeps what
   it knew.
6. **Validate again**, save the model as a new version in the registry
   (:mod:`ecgstudio.model.registry`) with its card, and **activate it only if it scored better**.

Everything that goes wrong on purpose raises :class:`FinetuneError` with what to do; the active
model is never touched unless a better one was saved completely.  The function holds no global
state and takes only paths, a config and two callbacks, so the studio can run it in a worker
process (``progress`` putting :class:`FinetuneProgress` objects on a queue, ``should_stop``
reading an event).
"""

from __future__ import annotations

import errno
import hashlib
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from ..errors import EcgStudioError, UnreadableImageError
from ..geometry import RectifiedPage, map_points, rectify
from ..io.images import file_sha256, read_image
from ..labels import LabelRecord, ReviewStatus, check_image, iter_label_files, load_labels
from ..metrics import SNR_CAP_DB
from ..model import registry
from ..model.infer import predict_maps
from ..model.net import CANONICAL_PX_PER_MM, TraceNet, fused_for_inference
from ..model.weights import ModelCard, load_model
from ..results import Signals, Trace
from ..synth.batch import RecordPool
from .data import random_crops, render_training_page, trace_heatmap
from .train import pick_device, trace_loss

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_MINUTES",
    "FinetuneCancelled",
    "FinetuneConfig",
    "FinetuneError",
    "FinetuneProgress",
    "FinetuneResult",
    "LabelSource",
    "LabeledSample",
    "build_sample",
    "collect_label_files",
    "finetune",
    "labeled_validation_snr",
    "read_label_source",
    "split_sources",
]

#: Training budget when neither steps nor minutes are given.
DEFAULT_MINUTES = 10.0

_USABLE_STATUS = (ReviewStatus.REVIEWED, ReviewStatus.CORRECTED)
_DARK_TEXT = 160  # as in data.page_targets: only dark pixels of a text box are ink
_MAX_CENTRES = 50_000
_STAGES = (
    "reading labels",
    "building samples",
    "validating base model",
    "training",
    "validating new model",
    "saving",
    "done",
)


class FinetuneError(EcgStudioError):
    """A fine-tune could not run or finish; the message says why and what to do.

    The active model is unchanged whenever this is raised (except where the message says the
    new version was saved but could not be activated).
    """


class FinetuneCancelled(FinetuneError):
    """The fine-tune was cancelled (``should_stop`` returned True); nothing was saved."""


# -------------------------------------------------------------------------------------------- types


@dataclass(frozen=True)
class FinetuneConfig:
    """Settings of a fine-tune; the defaults suit a CPU and a few to a few hundred pages.

    Attributes
    ----------
    steps : int, optional
        Stop after this many optimiser steps.
    minutes : float, optional
        Stop training so that the whole run (reading, validation, saving included) ends within
        this many minutes.  With neither ``steps`` nor ``minutes``, :data:`DEFAULT_MINUTES`.
    batch_size, crop : int
        Crops per step and their side in pixels (a multiple of the network's stride).
    lr, weight_decay, warmup_steps : float, float, int
        AdamW settings; the rate warms up, then follows a cosine to 0 over the budget.
    synthetic_share : float
        Share of each batch taken from synthetic pages, in [0, 1).  The defaults (lr 2e-3, a
        quarter synthetic) were chosen on a tuning style of ``benchmarks/bench_finetune.py``,
        not on its benchmark style: +0.89 dB against +0.39 dB for lr 1e-3 and half synthetic.
    synthetic_pages, new_synthetic_every : int
        Synthetic pages kept in memory, and how many steps pass between two new ones.
    severity : float
        Damage severity of the synthetic pages.
    records : tuple of str
        Folders of WFDB/CSV records to plot on synthetic pages (simulated records when empty).
    val_fraction : float
        Share of the pages held out for validation (at least one page, at least one left to train).
    min_gain_db : float
        The new model is activated only if its validation SNR beats the base model's by more.
    text_weight_without_mask : float
        Weight of the text channel's loss on labelled pages without ``masks.text``.
    include_unreviewed : bool
        Also train on pages whose review status is ``new`` or ``proposed`` (unchecked model output).
    skip_bad_labels : bool
        Leave out unusable label files (listed in :attr:`FinetuneResult.skipped`) instead of
        stopping with an error.
    seed : int
        Seeds the split's order, the crops and the synthetic pages.
    device : str
        ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
    threads : int, optional
        ``torch.set_num_threads`` for the run (process-wide; meant for a worker process).
    """

    steps: int | None = None
    minutes: float | None = None
    batch_size: int = 8
    crop: int = 192
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 10
    synthetic_share: float = 0.25
    synthetic_pages: int = 8
    new_synthetic_every: int = 4
    severity: float = 0.6
    records: tuple[str, ...] = ()
    val_fraction: float = 0.2
    min_gain_db: float = 0.0
    text_weight_without_mask: float = 0.1
    include_unreviewed: bool = False
    skip_bad_labels: bool = False
    seed: int = 0
    device: str = "auto"
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.minutes is not None and not self.minutes > 0:
            raise ValueError(f"minutes must be > 0, got {self.minutes}")
        if not 0.0 <= self.synthetic_share < 1.0:
            raise ValueError(f"synthetic_share must be in [0, 1), got {self.synthetic_share}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.batch_size < 1 or self.crop < 8 or self.synthetic_pages < 1 or self.new_synthetic_every < 1:
            raise ValueError("batch_size, synthetic_pages and new_synthetic_every must be >= 1 and crop >= 8")

    @property
    def budget_minutes(self) -> float | None:
        """The time budget in force (None when only ``steps`` limits the run)."""
        if self.minutes is None and self.steps is None:
            return DEFAULT_MINUTES
        return self.minutes


@dataclass(frozen=True)
class FinetuneProgress:
    """Where a fine-tune stands (sent to the ``progress`` callback; picklable).

    Attributes
    ----------
    stage : str
        ``reading labels``, ``building samples``, ``validating base model``, ``training``,
        ``validating new model``, ``saving`` or ``done``.
    fraction : float
        Overall progress in [0, 1].
    step, total_steps : int
        Optimiser steps done, and planned (an estimate under a time budget).
    loss : float or None
        Mean training loss of the last steps.
    val_snr_before_db, val_snr_after_db : float or None
        Validation SNR (mean per-lead dB) of the base and of the new model, once known.
    elapsed_s : float
    seconds_left : float or None
        Estimated time to the end of the run.
    message : str
        One line for people.
    """

    stage: str
    fraction: float
    step: int = 0
    total_steps: int = 0
    loss: float | None = None
    val_snr_before_db: float | None = None
    val_snr_after_db: float | None = None
    elapsed_s: float = 0.0
    seconds_left: float | None = None
    message: str = ""


@dataclass(frozen=True, eq=False)
class LabelSource:
    """A usable label file: its record and the image it describes, found and checked.

    Attributes
    ----------
    label_path : Path
    label_sha256 : str
        sha256 of the label file's bytes (recorded in the model card).
    image_path : Path
        Where the image is now (its sha256 matches the label's).
    record : LabelRecord
    """

    label_path: Path
    label_sha256: str
    image_path: Path
    record: LabelRecord

    @property
    def image_sha256(self) -> str:
        return self.record.image.sha256


@dataclass(frozen=True, eq=False)
class LabeledSample:
    """A labelled page in the network's frame, with targets and the truth to validate against.

    Attributes
    ----------
    source : LabelSource
    image : ndarray, shape (H, W, 3), uint8
        The rectified page at :data:`CANONICAL_PX_PER_MM` (what the network sees).
    trace : ndarray, shape (H, W), uint8
        Trace ridge target times 255.
    text : ndarray, shape (H, W), bool
        Non-signal ink target.
    text_weight : float
        Weight of the text channel's loss (low when the label has no text mask).
    to_canon : ndarray, shape (3, 3)
        Homography from input-image pixels to ``image`` pixels.
    truth : Signals
        The label's signals (mV; NaN where not plotted).
    windows : dict of str to (float, float)
        Per lead, the span in seconds where ``truth`` is finite (what validation scores).
    mm_per_s : float
        Paper speed from the label's calibration.
    centres : ndarray, shape (n, 2), int32
        ``(y, x)`` of ridge pixels, where crops are centred most of the time.
    """

    source: LabelSource
    image: np.ndarray
    trace: np.ndarray
    text: np.ndarray
    text_weight: float
    to_canon: np.ndarray
    truth: Signals
    windows: dict[str, tuple[float, float]]
    mm_per_s: float
    centres: np.ndarray

    def targets(self) -> np.ndarray:
        """Targets ``(2, H, W)`` float32 (trace ridge, text) like :func:`~ecgstudio.training.data.page_targets`."""
        return np.stack([self.trace.astype(np.float32) / 255.0, self.text.astype(np.float32)])


@dataclass(frozen=True)
class FinetuneResult:
    """What a finished fine-tune produced.

    Attributes
    ----------
    version : registry.ModelVersion
        The new version (saved whether or not it was activated).
    activated : bool
        True when it scored better than the base model on the validation pages and is now active.
    val_snr_before_db, val_snr_after_db : float
        Mean per-lead validation SNR of the base and of the new model.
    steps : int
        Optimiser steps done.
    seconds : float
        Wall time of the whole run.
    train_labels, val_labels : tuple of Path
        Label files trained on and held out.
    skipped : tuple of (Path, str)
        Label files left out, with the reason (not reviewed, duplicate image, or unusable with
        ``skip_bad_labels``).
    base : Path
        Weights the fine-tune started from.
    """

    version: registry.ModelVersion
    activated: bool
    val_snr_before_db: float
    val_snr_after_db: float
    steps: int
    seconds: float
    train_labels: tuple[Path, ...]
    val_labels: tuple[Path, ...]
    skipped: tuple[tuple[Path, str], ...] = field(default_factory=tuple)
    base: Path = Path()

    @property
    def validation_measured_nothing(self) -> bool:
        """Whether the base model scores the metric's cap on the held-out pages: their labels are
        its own output, accepted unedited, so the check could not tell a better model."""
        return self.val_snr_before_db >= SNR_CAP_DB - 1.0


# -------------------------------------------------------------------------------------------- labels


def collect_label_files(labels: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Label files from files and folders (a folder gives its ``*.h5`` files, sorted), duplicates removed.

    Raises
    ------
    FinetuneError
        A path does not exist, or the selection is empty.
    """
    items = [labels] if isinstance(labels, str | os.PathLike) else list(labels)
    out: list[Path] = []
    seen: set[Path] = set()
    for item in items:
        path = Path(item)
        if path.is_dir():
            files = list(iter_label_files(path))
        elif path.is_file():
            files = [path]
        else:
            raise FinetuneError(f"label file or folder {path} does not exist; check the path")
        for f in files:
            key = f.resolve()
            if key not in seen:
                seen.add(key)
                out.append(f)
    if not out:
        raise FinetuneError(
            "no label files selected: pick the reviewed pages (.labels.h5 files or their "
            "folder) to fine-tune on; review and save at least 2 pages first"
        )
    return out


def _resolve_image(record: LabelRecord, label_path: Path) -> Path:
    """The image of a label: as recorded, else beside the label file; the first whose sha256 matches."""
    recorded = Path(record.image.path)
    candidates = [recorded] if recorded.is_absolute() else [Path.cwd() / recorded, label_path.parent / recorded]
    candidates.append(label_path.parent / recorded.name)
    existing = list(dict.fromkeys(c for c in candidates if c.is_file()))
    for candidate in existing:
        try:
            check_image(record, candidate)
            return candidate
        except EcgStudioError:
            continue
    check_image(record, existing[0] if existing else recorded)  # raises with the right message
    return existing[0]  # pragma: no cover - check_image raised


def read_label_source(label_path: str | os.PathLike[str]) -> LabelSource:
    """Load a label file and find its image, unchanged since it was labelled.

    The image is looked for at the recorded path (relative paths: from the working directory,
    then from the label file's folder) and beside the label file.

    Raises
    ------
    FinetuneError
        The file is not a label file ECG Studio can read (another schema version, damaged), or
        its image is missing or changed (sha256).
    """
    path = Path(label_path)
    return _locate_image(path, _load_record(path))


def _load_record(path: Path) -> LabelRecord:
    try:
        return load_labels(path)
    except EcgStudioError as exc:
        raise FinetuneError(
            f"cannot fine-tune on {path}: {exc}. Fix it or leave the page out of the selection"
        ) from exc


def _locate_image(path: Path, record: LabelRecord) -> LabelSource:
    try:
        image_path = _resolve_image(record, path)
        digest = file_sha256(path)
    except UnreadableImageError as exc:
        raise FinetuneError(f"{exc}. Or leave the page out of the selection") from exc
    except EcgStudioError as exc:
        raise FinetuneError(f"cannot fine-tune on {path}: {exc}. Or leave the page out of the selection") from exc
    except OSError as exc:
        raise FinetuneError(f"cannot read {path}: {exc.strerror or exc}; check its permissions") from exc
    return LabelSource(path, digest, image_path, record)


def split_sources(
    sources: Sequence[LabelSource], *, val_fraction: float = 0.2, seed: int = 0
) -> tuple[list[LabelSource], list[LabelSource]]:
    """Split pages into ``(train, validation)``, deterministically.

    Pages are ordered by a hash of ``seed`` and the image's sha256, so a page stays on its side
    whatever the order of the selection; ``round(val_fraction * n)`` pages, at least 1 and at
    most ``n - 1``, are held out.

    Raises
    ------
    FinetuneError
        Fewer than 2 pages.
    """
    n = len(sources)
    if n < 2:
        raise FinetuneError(
            f"fine-tuning needs at least 2 reviewed pages (one to train on, one held out to "
            f"check the new model), got {n}; review and save more pages"
        )
    order = sorted(sources, key=lambda s: hashlib.sha256(f"{seed}:{s.image_sha256}".encode()).hexdigest())
    n_val = min(n - 1, max(1, round(val_fraction * n)))
    return order[n_val:], order[:n_val]


def _labels_run_down(page: RectifiedPage, traces: Sequence[Trace], to_input: np.ndarray) -> bool:
    """Whether the labelled traces (label pixels; ``to_input`` maps them onto the image) run down
    the rectified ``page`` rather than across it."""
    spans = np.zeros(2)
    for trace in traces:
        xy = map_points(page.homography @ to_input, trace.xy)
        if np.isfinite(xy).any():
            spans += np.nanmax(xy, axis=0) - np.nanmin(xy, axis=0)
    return bool(spans[1] > spans[0])


def _finite_windows(signals: Signals) -> dict[str, tuple[float, float]]:
    """Per lead, the time span (s) from its first to its last finite sample."""
    out = {}
    for j, lead in enumerate(signals.lead_names):
        idx = np.flatnonzero(np.isfinite(signals.mv[:, j]))
        if len(idx) >= 2:
            out[lead] = (idx[0] / signals.fs, (idx[-1] + 1) / signals.fs)
    return out


def build_sample(source: LabelSource, *, text_weight_without_mask: float = 0.1) -> LabeledSample:
    """The page of a label in the network's frame, with targets from the corrected traces.

    The image is rectified with :func:`~ecgstudio.geometry.rectify` and resampled to
    :data:`CANONICAL_PX_PER_MM` from the measured grid, exactly as the pipeline does (a page
    without a grid uses the label's calibration instead); the label's traces are mapped with
    the same homography.

    Raises
    ------
    FinetuneError
        The image cannot be read or its page found, or the label has no traces or no signals.
    """
    record = source.record
    dig = record.digitization
    where = f"page {source.image_path} (labels {source.label_path})"
    try:
        image = read_image(source.image_path)
    except EcgStudioError as exc:
        raise FinetuneError(f"cannot read {where}: {exc}") from exc
    h, w = image.shape[:2]
    lh, lw = dig.image_size
    if (h, w) != (lh, lw) and abs(h / w - lh / lw) > 0.01 * (lh / lw):
        raise FinetuneError(
            f"{where}: the image is {w}x{h} px but the labels describe {lw}x{lh} px; "
            "review the page again in ECG Studio"
        )
    to_input = np.diag([w / lw, h / lh, 1.0])  # labels of a PDF rendered at another resolution
    try:
        page = rectify(image)
        if _labels_run_down(page, dig.traces, to_input):
            # Read another way round by the digitizer, which asks its networks where the ink
            # leaves the rows' axis unclear: the labels say which.
            page = rectify(image, sideways=page.quarter_turn % 180 == 0)
    except EcgStudioError as exc:
        raise FinetuneError(f"cannot find the page in {where}: {exc}; leave it out of the selection") from exc
    if page.grid.has_grid:
        px_per_mm = page.grid.px_per_mm
    else:  # the label's calibration is in the rectified page's pixels (see Digitizer.digitize)
        cal = dig.calibration
        px_per_mm = float(np.sqrt(cal.px_per_mm_x * cal.px_per_mm_y)) * float(np.sqrt(w * h / (lw * lh)))
    scale = CANONICAL_PX_PER_MM / px_per_mm
    canon = cv2.resize(
        page.image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    )
    to_canon = np.diag([scale, scale, 1.0]) @ page.homography @ to_input
    shape = canon.shape[:2]

    traces = [Trace(t.lead, map_points(to_canon, t.xy)) for t in dig.traces if len(t.xy)]
    ridge = trace_heatmap(traces, shape)
    if not (ridge > 0.5).any():
        raise FinetuneError(f"{where} has no traces on the page; correct the page in ECG Studio or leave it out")
    if dig.masks is not None and dig.masks.text.shape == (lh, lw):
        warped = cv2.warpPerspective(
            dig.masks.text.astype(np.uint8), to_canon, (shape[1], shape[0]), flags=cv2.INTER_NEAREST
        )
        text = (warped > 0) & (canon.min(axis=2) < _DARK_TEXT)
        text_weight = 1.0
    else:
        text = np.zeros(shape, bool)
        text_weight = float(text_weight_without_mask)
    windows = _finite_windows(dig.signals)
    if not windows:
        raise FinetuneError(f"{where} has no signals (all NaN); correct the page in ECG Studio or leave it out")
    trace = np.round(ridge * 255).astype(np.uint8)
    centres = np.argwhere(trace > 127).astype(np.int32)
    if len(centres) > _MAX_CENTRES:
        centres = centres[np.linspace(0, len(centres) - 1, _MAX_CENTRES).astype(int)]
    return LabeledSample(
        source,
        canon,
        trace,
        text,
        text_weight,
        to_canon,
        dig.signals,
        windows,
        float(dig.calibration.mm_per_s),
        centres,
    )


# -------------------------------------------------------------------------------------------- validation


def labeled_validation_snr(
    model: TraceNet,
    samples: Sequence[LabeledSample],
    *,
    device: str | torch.device = "cpu",
    should_stop: Callable[[], bool] | None = None,
) -> float:
    """Mean per-lead SNR (dB) of the model's digitizations of labelled pages, against their signals.

    Each page is segmented, analysed with :func:`~ecgstudio.pipeline.analyse_maps` (paper speed
    from the label, everything else found as in the pipeline) and scored with
    :func:`~ecgstudio.metrics.score_record` over the spans where the label's signals are finite.
    A page that fails to digitize scores 0 dB on each of its leads.

    Raises
    ------
    FinetuneCancelled
        ``should_stop`` returned True between two pages.
    """
    from ..metrics import score_record
    from ..pipeline import DigitizeOptions, analyse_maps

    net = fused_for_inference(model).to(memory_format=torch.channels_last)  # as the Digitizer runs it
    scores: list[float] = []
    for sample in samples:
        if should_stop and should_stop():
            raise FinetuneCancelled(
                "fine-tune cancelled during validation; nothing was saved and the active model is unchanged"
            )
        maps = predict_maps(net, sample.image, device=device)
        try:
            result = analyse_maps(maps[0], maps[1], sample.image, DigitizeOptions(mm_per_s=sample.mm_per_s))
            record = score_record(sample.truth, result.signals, windows=sample.windows)
            scores += [s.snr_db for s in record.leads.values()]
        except EcgStudioError as exc:
            log.info("validation page %s did not digitize (%s); 0 dB", sample.source.image_path, exc)
            scores += [0.0] * len(sample.windows)
    return float(np.mean(scores)) if scores else 0.0


# -------------------------------------------------------------------------------------------- training


def _labeled_crop(sample: LabeledSample, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One crop ``(3, size, size)`` float32 in [0, 1] and its targets ``(2, size, size)``, usually on a trace."""
    image, trace, text = sample.image, sample.trace, sample.text
    h, w = trace.shape
    if h < size or w < size:
        ph, pw = max(0, size - h), max(0, size - w)
        image = np.pad(image, ((0, ph), (0, pw), (0, 0)), constant_values=255)
        trace, text = np.pad(trace, ((0, ph), (0, pw))), np.pad(text, ((0, ph), (0, pw)))
        h, w = trace.shape
    if len(sample.centres) and rng.random() < 0.8:
        cy, cx = sample.centres[int(rng.integers(len(sample.centres)))] + rng.integers(-size // 3, size // 3 + 1, 2)
    else:
        cy, cx = int(rng.integers(h)), int(rng.integers(w))
    y0 = int(np.clip(cy - size // 2, 0, h - size))
    x0 = int(np.clip(cx - size // 2, 0, w - size))
    x = image[y0 : y0 + size, x0 : x0 + size].transpose(2, 0, 1).astype(np.float32) / 255.0
    t = np.stack(
        [
            trace[y0 : y0 + size, x0 : x0 + size].astype(np.float32) / 255.0,
            text[y0 : y0 + size, x0 : x0 + size].astype(np.float32),
        ]
    )
    return x, t


class _Synthetic:
    """A small, slowly refreshed buffer of synthetic pages (so the model does not forget)."""

    def __init__(self, config: FinetuneConfig, rng: np.random.Generator) -> None:
        self.config = config
        self.rng = rng
        self.records = RecordPool.from_folders(config.records, validation=False) if config.records else RecordPool()
        self.pages: list[tuple[np.ndarray, np.ndarray]] = []
        self.rendered = 0

    def render(self) -> None:
        self.pages.append(render_training_page(self.rng, self.records, severity=self.config.severity))
        self.rendered += 1
        if len(self.pages) > self.config.synthetic_pages:
            self.pages.pop(int(self.rng.integers(len(self.pages) - 1)))  # never the newest

    def crops(self, count: int, size: int) -> tuple[np.ndarray, np.ndarray]:
        picks = [
            random_crops(*self.pages[int(self.rng.integers(len(self.pages)))], self.rng, size=size, count=1)
            for _ in range(count)
        ]
        return np.concatenate([p[0] for p in picks]), np.concatenate([p[1] for p in picks])


def _lr(config: FinetuneConfig, step: int, progress: float) -> float:
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, max(0.0, progress))))


def _disk_message(exc: OSError, where: Path) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return (
            f"not enough disk space to save the fine-tuned model in {where}: free some space and run "
            "the fine-tune again (nothing was saved; the active model is unchanged)"
        )
    return (
        f"cannot save the fine-tuned model in {where}: {exc.strerror or exc}; check the folder's "
        "permissions and run the fine-tune again (nothing was saved; the active model is unchanged)"
    )


def _check_free_space(where: Path, needed: int) -> None:
    folder = where
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if free < needed:
        raise FinetuneError(
            f"only {free / 1e6:.1f} MB free in {folder}; a fine-tuned model needs about "
            f"{needed / 1e6:.1f} MB: free some space first (nothing was changed)"
        )


class _Reporter:
    """Progress messages and cancel checks of one run."""

    def __init__(
        self,
        progress: Callable[[FinetuneProgress], None] | None,
        should_stop: Callable[[], bool] | None,
        total_steps: int,
    ) -> None:
        self.progress = progress
        self.should_stop = should_stop
        self.t0 = time.perf_counter()
        self.stage = _STAGES[0]
        self.step, self.total = 0, total_steps
        self.loss: float | None = None
        self.before: float | None = None
        self.after: float | None = None
        self.left: float | None = None

    def __call__(self, stage: str, fraction: float, message: str) -> None:
        self.stage = stage
        if self.progress is not None:
            self.progress(
                FinetuneProgress(
                    stage,
                    float(min(1.0, max(0.0, fraction))),
                    self.step,
                    self.total,
                    self.loss,
                    self.before,
                    self.after,
                    time.perf_counter() - self.t0,
                    self.left,
                    message,
                )
            )

    def check_cancel(self) -> None:
        if self.should_stop is not None and self.should_stop():
            raise FinetuneCancelled(
                f"fine-tune cancelled during '{self.stage}' after {self.step} training steps; "
                "nothing was saved and the active model is unchanged"
            )


def _gather_sources(
    files: list[Path], config: FinetuneConfig, report: _Reporter
) -> tuple[list[LabelSource], list[tuple[Path, str]]]:
    """Usable label sources (reviewed, image checked, one per image) and the files left out."""
    sources: list[LabelSource] = []
    skipped: list[tuple[Path, str]] = []
    seen_images: dict[str, Path] = {}
    for k, path in enumerate(files):
        report.check_cancel()
        report(_STAGES[0], 0.02 * k / len(files), f"reading {path.name}")
        try:
            record = _load_record(path)
            status = record.review.status
            if status not in _USABLE_STATUS and not config.include_unreviewed:
                skipped.append((path, f"not reviewed (status '{status.value}')"))
                continue
            source = _locate_image(path, record)
        except FinetuneError as exc:
            if not config.skip_bad_labels:
                raise
            skipped.append((path, str(exc)))
            log.warning("%s", exc)
            continue
        if source.image_sha256 in seen_images:
            skipped.append((path, f"same image as {seen_images[source.image_sha256]}"))
            continue
        seen_images[source.image_sha256] = path
        sources.append(source)
    if not sources:
        raise FinetuneError(
            f"none of the {len(files)} selected pages can be used "
            f"({'; '.join(f'{p.name}: {why}' for p, why in skipped[:3])}); "
            "review and save the pages in ECG Studio first"
        )
    return sources, skipped


def _build_samples(
    groups: list[list[LabelSource]], config: FinetuneConfig, report: _Reporter, skipped: list[tuple[Path, str]]
) -> list[list[LabeledSample]]:
    n = sum(len(g) for g in groups)
    done = 0
    out: list[list[LabeledSample]] = []
    for group in groups:
        samples = []
        for source in group:
            report.check_cancel()
            report(_STAGES[1], 0.02 + 0.06 * done / n, f"preparing {source.image_path.name}")
            done += 1
            try:
                samples.append(build_sample(source, text_weight_without_mask=config.text_weight_without_mask))
            except FinetuneError as exc:
                if not config.skip_bad_labels:
                    raise
                skipped.append((source.label_path, str(exc)))
                log.warning("%s", exc)
        out.append(samples)
    return out


def _train(
    model: TraceNet,
    samples: list[LabeledSample],
    config: FinetuneConfig,
    device: torch.device,
    train_end: float,
    reserve_s: float,
    report: _Reporter,
) -> tuple[int, list[float], int]:
    """The training loop; returns ``(steps, losses, synthetic pages rendered)``."""
    rng = np.random.default_rng(config.seed)
    n_syn = min(int(round(config.batch_size * config.synthetic_share)), config.batch_size - 1)
    n_lab = config.batch_size - n_syn
    synthetic = _Synthetic(config, rng)
    model.to(device, memory_format=torch.channels_last).train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    t_start = time.perf_counter()
    losses: list[float] = []
    step = 0
    while (config.steps is None or step < config.steps) and (step == 0 or time.perf_counter() < train_end):
        report.check_cancel()
        if n_syn and (not synthetic.pages or step % config.new_synthetic_every == 0):
            synthetic.render()
        picks = [samples[int(rng.integers(len(samples)))] for _ in range(n_lab)]
        crops = [_labeled_crop(s, rng, config.crop) for s in picks]
        xs, ts = [np.stack([c[0] for c in crops])], [np.stack([c[1] for c in crops])]
        weights = [s.text_weight for s in picks]
        if n_syn:
            sx, st = synthetic.crops(n_syn, config.crop)
            xs.append(sx)
            ts.append(st)
            weights += [1.0] * n_syn
        x = torch.from_numpy(np.concatenate(xs)).to(device, memory_format=torch.channels_last)
        t = torch.from_numpy(np.concatenate(ts)).to(device)
        w = torch.tensor(weights, dtype=torch.float32, device=device)
        by_time = (time.perf_counter() - t_start) / max(1e-6, train_end - t_start)
        by_steps = step / config.steps if config.steps is not None else 0.0
        for group in optimiser.param_groups:
            group["lr"] = _lr(config, step, max(by_time, by_steps))
        loss = trace_loss(model(x), t, text_weight=w)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        step += 1
        losses.append(float(loss.item()))

        per_step = (time.perf_counter() - t_start) / step
        by_budget = (
            step + int(max(0.0, train_end - time.perf_counter()) / per_step) if math.isfinite(train_end) else None
        )
        total = min(n for n in (config.steps, by_budget) if n is not None)
        report.step, report.total = step, total
        report.loss = float(np.mean(losses[-20:]))
        report.left = (total - step) * per_step + reserve_s
        report(_STAGES[3], 0.1 + 0.85 * step / max(1, total), f"step {step}/{total}, loss {report.loss:.4f}")
    return step, losses, synthetic.rendered


def finetune(
    labels: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    base: str | os.PathLike[str] | None = None,
    config: FinetuneConfig = FinetuneConfig(),
    name: str | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    progress: Callable[[FinetuneProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> FinetuneResult:
    """Fine-tune the trace network on reviewed label files; save it as a new model version.

    Parameters
    ----------
    labels : path or iterable of paths
        ``.labels.h5`` files and/or folders of them.
    base : str or path, optional
        Model to start from: a version name (see :func:`registry.list_versions`), a weights
        file, or None for the active version.
    config : FinetuneConfig
        Budget (``steps`` and/or ``minutes``) and training settings.
    name : str, optional
        Name of the new version (default ``finetune-<date>-<time>``).
    data_dir : path, optional
        The user data directory holding ``models/``; default
        :func:`registry.default_data_dir` (``platformdirs.user_data_dir("ecgstudio")``).
    progress : callable(FinetuneProgress), optional
        Called at each stage, every validation page and every step.
    should_stop : callable() -> bool, optional
        Polled between pages and steps; returning True cancels the run (nothing is saved).

    Returns
    -------
    FinetuneResult
        The new version is active (``activated``) only when it beat the base model on the
        validation pages by more than ``config.min_gain_db``.

    Raises
    ------
    FinetuneCancelled
        ``should_stop`` returned True.
    FinetuneError
        Empty selection, fewer than 2 usable reviewed pages, a label of an unknown schema version,
        an image missing or changed since it was labelled, an unusable base model, a taken or
        invalid name, or the new model could not be saved (full disk).  The message says what to do.
    """
    report = _Reporter(progress, should_stop, config.steps or 0)
    budget_s = config.budget_minutes * 60.0 if config.budget_minutes is not None else None
    if config.threads:
        torch.set_num_threads(int(config.threads))

    # -- base model and the new version's name, checked before any long work
    try:
        base_path = registry.resolve_model(base, data_dir=data_dir)
        device = pick_device(config.device)
        model, base_card = load_model(base_path, device=device)
    except EcgStudioError as exc:
        raise FinetuneError(f"cannot start from model {base or 'active'}: {exc}") from exc
    stride = model.config.stride
    if config.crop % stride:
        raise FinetuneError(
            f"crop {config.crop} px is not a multiple of the network's stride {stride}; "
            f"use {config.crop - config.crop % stride + stride}"
        )
    try:
        name = registry.check_version_name(name) if name else registry.new_version_name(data_dir=data_dir)
    except registry.ModelRegistryError as exc:
        raise FinetuneError(str(exc)) from exc
    version_dir = registry.models_dir(data_dir) / name
    if version_dir.exists():
        raise FinetuneError(
            f"a model version named {name!r} already exists in {version_dir.parent}; choose another name"
        )
    _check_free_space(version_dir, 2 * base_path.stat().st_size + (1 << 20))

    # -- labels, split, samples
    files = collect_label_files(labels)
    sources, skipped = _gather_sources(files, config, report)
    train_sources, val_sources = split_sources(sources, val_fraction=config.val_fraction, seed=config.seed)
    train_set, val_set = _build_samples([train_sources, val_sources], config, report, skipped)
    if not val_set and len(train_set) >= 2:  # the held-out pages were left out (skip_bad_labels)
        val_set = [train_set.pop()]
    if not train_set or not val_set:
        raise FinetuneError(
            "too few usable pages left to train on and to validate with (at least 2 needed); review and save more pages"
        )

    # -- the base model's score, training, the new model's score
    report(_STAGES[2], 0.08, f"scoring the base model on {len(val_set)} held-out pages")
    t_val = time.perf_counter()
    before = labeled_validation_snr(model, val_set, device=device, should_stop=should_stop)
    reserve_s = 1.5 * (time.perf_counter() - t_val) + 2.0  # for the final validation and saving
    report.before = before
    report(_STAGES[2], 0.1, f"base model: {before:.2f} dB on the held-out pages")
    log.info("base model %s: validation SNR %.2f dB on %d pages", base_card.version, before, len(val_set))

    train_end = report.t0 + budget_s - reserve_s if budget_s is not None else math.inf
    steps, losses, rendered = _train(model, train_set, config, device, train_end, reserve_s, report)

    report.left = reserve_s
    report(_STAGES[4], 0.95, "scoring the new model on the held-out pages")
    after = labeled_validation_snr(model, val_set, device=device, should_stop=should_stop)
    improved = after > before + config.min_gain_db
    log.info("fine-tuned model: validation SNR %.2f dB (base %.2f dB) after %d steps", after, before, steps)

    # -- save, then activate when better
    report.check_cancel()
    report.after, report.left = after, 1.0
    report(_STAGES[5], 0.98, f"saving model version {name}")
    seconds = time.perf_counter() - report.t0
    label_rows = [
        {
            "label": str(s.source.label_path),
            "label_sha256": s.source.label_sha256,
            "image": str(s.source.image_path),
            "image_sha256": s.source.image_sha256,
            "split": split,
        }
        for split, group in (("train", train_set), ("validation", val_set))
        for s in group
    ]
    card = ModelCard(
        version=name,
        net=base_card.net,
        px_per_mm=base_card.px_per_mm,
        outputs=base_card.outputs,
        base_model=f"{base_card.version} (sha256 {base_card.sha256})",
        training={
            "kind": "finetune",
            "base": {"version": base_card.version, "sha256": base_card.sha256, "path": str(base_path)},
            "labels": label_rows,
            "steps_done": steps,
            "seconds": round(seconds, 1),
            "device": str(device),
            "synthetic_pages_rendered": rendered,
            "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()},
        },
        metrics={
            "val_snr_db_before": before,
            "val_snr_db_after": after,
            "val_pages": len(val_set),
            "train_pages": len(train_set),
            "final_loss": float(np.mean(losses[-20:])) if losses else None,
            "improved": bool(improved),
        },
    )
    model.eval()
    try:
        version = registry.save_version(model, card, name, data_dir=data_dir)
    except registry.ModelRegistryError as exc:
        raise FinetuneError(f"{exc} (nothing was saved; the active model is unchanged)") from exc
    except OSError as exc:
        raise FinetuneError(_disk_message(exc, version_dir.parent)) from exc
    activated = False
    if improved:
        try:
            version = registry.activate(name, data_dir=data_dir)
            activated = True
        except registry.ModelRegistryError as exc:
            raise FinetuneError(
                f"the new model version {name} was saved but could not be activated: {exc}. "
                f"Activate it later from the model list"
            ) from exc
    verdict = (
        f"activated: {after:.2f} dB vs {before:.2f} dB"
        if activated
        else f"kept inactive: {after:.2f} dB vs {before:.2f} dB for the base model"
    )
    report.left = 0.0
    report(_STAGES[6], 1.0, f"model {name} saved, {verdict}")
    return FinetuneResult(
        version=version,
        activated=activated,
        val_snr_before_db=before,
        val_snr_after_db=after,
        steps=steps,
        seconds=time.perf_counter() - report.t0,
        train_labels=tuple(s.source.label_path for s in train_set),
        val_labels=tuple(s.source.label_path for s in val_set),
        skipped=tuple(skipped),
        base=base_path,
    )
