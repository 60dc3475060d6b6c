"""Train the trace network from synthetic pages rendered on the fly.

Resumable: a checkpoint (model, optimiser, step, data state) is written every few hundred
steps; running again with the same ``work_dir`` continues where it stopped.  Runs on CUDA when
present, else on the CPU.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from ..errors import EcgStudioError
from ..io.atomic import atomic_path
from ..model.net import CANONICAL_PX_PER_MM, NetConfig, TraceNet, count_parameters
from ..model.weights import ModelCard, save_model
from ..synth.batch import RecordPool
from ..synth.render import PageStyle, SynthPage, render_page
from .data import random_crops, render_training_page, training_damage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Training settings; the defaults are those of the shipped model (see its card)."""

    steps: int = 4000
    batch_size: int = 8
    crop: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    buffer_pages: int = 24
    page_every: int = 2  # render a new page every this many steps
    severity: float = 0.6
    seed: int = 0
    val_pages: int = 6
    val_every: int = 250
    checkpoint_every: int = 100
    records: tuple[str, ...] = ()
    exclude_records: tuple[str, ...] = ()
    net: NetConfig = field(default_factory=NetConfig)
    device: str = "auto"


@dataclass
class TrainState:
    step: int = 0
    pages_rendered: int = 0
    history: list[dict] = field(default_factory=list)


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def trace_loss(logits: torch.Tensor, targets: torch.Tensor, *, text_weight: torch.Tensor | None = None) -> torch.Tensor:
    """BCE on both channels plus a soft Dice on the trace ridge (traces are a few % of pixels).

    ``text_weight`` (shape ``(batch,)``), when given, scales each sample's text-channel BCE: a
    sample whose text target is only a guess (a label without a text mask) can count less.
    """
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    weight = 1.0 + 9.0 * targets[:, :1]  # ridge pixels count more
    if text_weight is None:
        text = bce[:, 1:].mean()
    else:
        text = (bce[:, 1:].mean(dim=(1, 2, 3)) * text_weight.to(bce.dtype)).mean()
    loss = (bce[:, :1] * weight).mean() + 0.5 * text
    p = torch.sigmoid(logits[:, 0])
    t = targets[:, 0]
    dice = 1 - (2 * (p * t).sum() + 1) / (p.sum() + t.sum() + 1)
    return loss + dice


def _records(config: TrainConfig) -> RecordPool:
    if not config.records:
        return RecordPool()
    return RecordPool.from_folders(config.records, exclude=config.exclude_records, validation=False)


def _lr(config: TrainConfig, step: int) -> float:
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def validation_set(config: TrainConfig, records: RecordPool) -> list[tuple[np.ndarray, np.ndarray]]:
    """Fixed validation crops from pages never used for training (their own seed stream)."""
    rng = np.random.default_rng([config.seed, 7919])
    batches = []
    for _ in range(config.val_pages):
        image, targets = render_training_page(rng, records, severity=config.severity)
        batches.append(random_crops(image, targets, rng, size=config.crop * 2, count=2))
    return batches


def validation_pages(config: TrainConfig, records: RecordPool) -> list[SynthPage]:
    """Whole pages at the canonical scale with their truth, for the validation SNR."""
    rng = np.random.default_rng([config.seed, 104729])
    pages = []
    for k in range(config.val_pages):
        style = PageStyle.random(rng, dpi=25.4 * CANONICAL_PX_PER_MM, layout="3x4+1" if k % 2 == 0 else None)
        pages.append(
            render_page(records.pick(rng), style=style, damage=training_damage(rng, 0.3), seed=int(rng.integers(2**31)))
        )
    return pages


def validation_snr(model: TraceNet, pages: list[SynthPage], device: torch.device) -> float:
    """Mean per-lead SNR (dB) of whole-page digitizations of the validation pages, through the
    whole pipeline (geometry included, as a user's page goes); a page that fails to digitize
    counts as 0 dB."""
    from ..metrics import score_record
    from ..pipeline import DigitizeOptions, Digitizer

    digitizer = Digitizer.from_network(model, ModelCard(version="in-training", net=model.config), device=device)
    scores = []
    for page in pages:
        try:
            result = digitizer.digitize(page.image, DigitizeOptions(mm_per_s=page.style.mm_per_s))
            scores.append(score_record(page.signals, result.signals, layout=page.layout).mean_snr_db)
        except EcgStudioError:
            scores.append(0.0)
    return float(np.mean(scores))


@torch.no_grad()
def evaluate_crops(model: TraceNet, batches, device: torch.device) -> dict:
    """Validation loss, and precision/recall of the ridge at 0.5."""
    model.eval()
    losses, tp, fp, fn = [], 0.0, 0.0, 0.0
    for x, t in batches:
        logits = model(torch.from_numpy(x).to(device))
        target = torch.from_numpy(t).to(device)
        losses.append(float(trace_loss(logits, target)))
        pred = torch.sigmoid(logits[:, 0]) > 0.5
        truth = target[:, 0] > 0.5
        tp += float((pred & truth).sum())
        fp += float((pred & ~truth).sum())
        fn += float((~pred & truth).sum())
    model.train()
    return {
        "val_loss": float(np.mean(losses)),
        "val_precision": tp / max(1.0, tp + fp),
        "val_recall": tp / max(1.0, tp + fn),
    }


def train(
    config: TrainConfig,
    work_dir: str | Path,
    *,
    out: str | Path | None = None,
    init: TraceNet | None = None,
    base_model: str = "",
    progress: Callable[[int, int, dict], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[TraceNet, ModelCard]:
    """Train (or resume training) and save the model to ``out`` (default ``work_dir/tracenet.pt``).

    Parameters
    ----------
    config : TrainConfig
    work_dir : path
        Holds ``checkpoint.pt``; training resumes from it when present.
    init : TraceNet, optional
        Start from these weights instead of a random initialisation (fine-tuning).
    base_model : str
        The version ``init`` came from, for the model card.
    progress : callable(step, total, metrics), optional
    should_stop : callable, optional
        Polled each step; training stops early (after a checkpoint) when it returns True.
    """
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    device = pick_device(config.device)
    model = init if init is not None else TraceNet(config.net)
    model.to(device, memory_format=torch.channels_last).train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    state = TrainState()
    checkpoint = work_dir / "checkpoint.pt"
    if checkpoint.is_file():
        saved = torch.load(checkpoint, map_location=device, weights_only=True)
        model.load_state_dict(saved["model"])
        optimiser.load_state_dict(saved["optimiser"])
        state = TrainState(int(saved["step"]), int(saved["pages_rendered"]), list(saved["history"]))
        log.info("resuming from step %d", state.step)

    records = _records(config)
    rng = np.random.default_rng([config.seed, state.step])
    val = validation_set(config, records)
    val_pages = validation_pages(config, records)
    log.info(
        "training %d-parameter TraceNet on %s, %d real records (+ simulated)",
        count_parameters(model),
        device,
        len(records),
    )
    buffer: list[tuple[np.ndarray, np.ndarray]] = []
    t0, running = time.perf_counter(), []

    def save_checkpoint() -> None:
        with atomic_path(checkpoint) as tmp:
            torch.save(
                {
                    "model": model.state_dict(),
                    "optimiser": optimiser.state_dict(),
                    "step": state.step,
                    "pages_rendered": state.pages_rendered,
                    "history": state.history,
                },
                tmp,
            )

    while state.step < config.steps:
        if len(buffer) < config.buffer_pages // 2 or state.step % config.page_every == 0:
            buffer.append(render_training_page(rng, records, severity=config.severity))
            state.pages_rendered += 1
            if len(buffer) > config.buffer_pages:
                buffer.pop(int(rng.integers(len(buffer))))
        crops = [
            random_crops(*buffer[int(rng.integers(len(buffer)))], rng, size=config.crop, count=1)
            for _ in range(config.batch_size)
        ]
        x = torch.from_numpy(np.concatenate([c[0] for c in crops])).to(device, memory_format=torch.channels_last)
        t = torch.from_numpy(np.concatenate([c[1] for c in crops])).to(device)
        for group in optimiser.param_groups:
            group["lr"] = _lr(config, state.step)
        loss = trace_loss(model(x), t)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        state.step += 1
        running.append(loss.item())
        metrics = {"loss": float(np.mean(running[-50:])), "lr": _lr(config, state.step)}
        if state.step % config.val_every == 0 or state.step == config.steps:
            metrics.update(evaluate_crops(model, val, device))
            metrics["val_snr_db"] = validation_snr(model, val_pages, device)
            metrics.update(step=state.step, seconds=time.perf_counter() - t0)
            state.history.append(metrics)
            log.info("step %d: %s", state.step, {k: round(v, 4) for k, v in metrics.items()})
        if progress:
            progress(state.step, config.steps, metrics)
        stop = bool(should_stop and should_stop())
        if state.step % config.checkpoint_every == 0 or state.step == config.steps or stop:
            save_checkpoint()
        if stop:
            log.info("stopped at step %d", state.step)
            break

    model.eval()
    final = (
        state.history[-1]
        if state.history
        else {**evaluate_crops(model, val, device), "val_snr_db": validation_snr(model, val_pages, device)}
    )
    card = ModelCard(
        version=f"tracenet-{time.strftime('%Y%m%d-%H%M%S')}",
        net=model.config,
        base_model=base_model,
        training={
            **{k: v for k, v in asdict(config).items() if k != "net"},
            "steps_done": state.step,
            "pages_rendered": state.pages_rendered,
            "real_records": len(records),
            "device": str(device),
            "parameters": count_parameters(model),
        },
        metrics={k: v for k, v in final.items() if k.startswith("val_")},
    )
    card = save_model(model, Path(out) if out else work_dir / "tracenet.pt", card)
    return model, card
