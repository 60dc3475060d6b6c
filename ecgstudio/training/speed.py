"""Training the paper-speed network (:mod:`ecgstudio.model.speednet`) on real records.

Each example is a training record read as a page would give it (:func:`simulated_reading`: the
windows of a random layout, rows shifted, gains off, strokes noised, stretches hidden), half of
them printed at 50 mm/s and read at 25: the record's first 5 s stretched over the page's 10 s.
Readings of coarse or blurred pages lose their sharp waves as pages printed at 50 mm/s do, so
half the examples of both kinds are smoothed (Gaussian, up to 24 ms, about a pixel of a 50 dpi
scan): what is left to tell them apart is what smoothing keeps, the beats' rate and the waves'
spacing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d

from ..model.restorenet import FS
from ..model.speednet import SpeedNet, SpeedReaderCard, network_input
from ..model.weights import fit, save_model
from ..paper import LEAD_NAMES
from ..restore import r_peaks
from .restore import simulated_reading, varied

#: The most examples are smoothed by (Gaussian sigma, samples at 500 Hz).
MAX_SMOOTHING = 12.0
#: The share of examples whose ST segments are raised or lowered (:func:`with_st_shift`).
ST_SHIFT_SHARE = 0.3


def with_st_shift(record: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``record`` (``(n, 12)`` mV at 500 Hz) with its ST segments raised or lowered in about half
    the leads, as in an acute infarct: a flat-topped dome of 200-400 ms after every complex, as
    wide at 25 mm/s as a T wave printed at 50 (a real page of an infarct at 25 mm/s was taken
    for 50 by a network that had seen none)."""
    n = len(record)
    length = int(rng.uniform(0.2, 0.4) * FS)
    dome = np.sqrt(np.sin(np.linspace(0.0, np.pi, length)))
    after = np.zeros(n)
    for peak in r_peaks(record[:, LEAD_NAMES.index("II")], FS):
        a = peak + int(0.04 * FS)
        b = min(n, a + length)
        if a < n:
            after[a:b] += dome[: b - a]
    shift = rng.normal(0.0, 0.3, record.shape[1]) * (rng.random(record.shape[1]) < 0.5)
    return record + after[:, None] * shift


def speed_example(record: np.ndarray, doubled: bool, rng: np.random.Generator) -> np.ndarray:
    """The network's input for ``record`` (``(n, 12)`` mV at 500 Hz) printed at 25 mm/s, or at
    50 (``doubled``), read at 25."""
    truth = varied(record, rng)
    if rng.random() < ST_SHIFT_SHARE:
        truth = with_st_shift(truth, rng)
    if doubled:
        n = len(truth)
        half = np.arange(n) / 2.0
        truth = np.stack([np.interp(half, np.arange(n), lead) for lead in truth.T], axis=1)
    read = simulated_reading(truth, rng, speed=1.0)
    if rng.random() < 0.5:
        known = np.isfinite(read)
        sigma = rng.uniform(1.0, MAX_SMOOTHING)
        read = np.where(known, gaussian_filter1d(np.where(known, read, 0.0), sigma, axis=0), np.nan)
    return network_input(read * rng.uniform(0.5, 2.0), FS)


def _batch(records: np.ndarray, n: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    doubled = rng.random(n) < 0.5
    x = np.stack([speed_example(records[int(rng.integers(len(records)))], bool(d), rng) for d in doubled])
    return torch.from_numpy(x), torch.from_numpy(doubled.astype(np.float32))


def held_out_errors(net: SpeedNet, records: np.ndarray, *, n: int = 600, seed: int = 1) -> tuple[float, float]:
    """Of ``n`` simulated pages of ``records``, half at each speed, the shares (of all ``n``)
    wrongly called 50 mm/s, and wrongly 25."""
    x, doubled = _batch(records, n, np.random.default_rng(seed))
    with torch.no_grad():
        called = (net.eval()(x) > 0).numpy()
    truth = doubled.numpy() > 0
    return float(np.mean(called & ~truth)), float(np.mean(~called & truth))


def train_speed_reader(
    out: str | Path,
    records: np.ndarray,
    *,
    held_out: np.ndarray | None = None,
    steps: int = 2500,
    batch: int = 32,
    lr: float = 2e-3,
    seed: int = 0,
    progress: Callable[[int, float], None] | None = None,
) -> SpeedReaderCard:
    """Train the paper-speed network on ``records`` (``(k, samples, 12)`` mV at 500 Hz) and save
    it (weights + card) to ``out``; the card records its errors on simulated pages of
    ``held_out`` records."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = SpeedNet()
    training = fit(
        net,
        lambda: _batch(records, batch, rng),
        torch.nn.functional.binary_cross_entropy_with_logits,
        steps=steps,
        lr=lr,
        warmup_share=0.05,
        progress=progress,
    )
    metrics = {}
    if held_out is not None and len(held_out):
        false_50, false_25 = held_out_errors(net, held_out)
        metrics = {"held_out_called_50_wrongly": round(false_50, 4), "held_out_called_25_wrongly": round(false_25, 4)}
    card = SpeedReaderCard(
        version=time.strftime("speed-%Y%m%d-%H%M%S"),
        training={**training, "batch": batch, "seed": seed, "records": len(records)},
        metrics=metrics,
    )
    return save_model(net, out, card)
