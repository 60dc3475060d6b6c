"""Training data and training for the restoration network (:mod:`ecgstudio.model.restorenet`).

The network learns what a page hides and how the engine misreads, from two sources:

* **Engine readings** (:func:`engine_readings`): pages rendered from the training records
  (never the validation suite's or the benchmark pairs'), with the usual damage mix, read by the
  engine; each reading is paired with the record.  These carry the engine's real errors: stroke
  smearing, clipped QRS apices, baseline steps, misplaced rows.
* **Simulated readings** (:func:`simulated_reading`): any record, cut into the windows a layout
  plots, with stretches hidden and the errors of a reading added.  Cheap and endless, so every
  step sees new ones.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d

from ..errors import EcgStudioError
from ..io.atomic import atomic_path
from ..io.signals import read_signals
from ..metrics import score_lead
from ..model.restorenet import FS, LEADS, LENGTH, RestoreNet, RestorerCard, network_input
from ..model.weights import save_model
from ..paper import LAYOUTS, LEAD_NAMES
from ..restore import placed_beats
from ..results import Signals
from ..synth.batch import RecordPool
from ..synth.damage import DamageSettings
from ..synth.render import PageStyle, render_page

log = logging.getLogger(__name__)

#: Layouts the engine readings are rendered in, and how often.
READING_LAYOUTS = {"3x4+1": 0.7, "3x4": 0.1, "6x2": 0.1, "3x4+3": 0.1}
#: Layouts simulated readings cut records into, and how often.
SIMULATED_LAYOUTS = {"3x4+1": 0.5, "3x4": 0.1, "6x2": 0.15, "3x4+3": 0.1, "6x2+1": 0.1, "12x1": 0.05}


def page_lag(truth: np.ndarray, read: np.ndarray, fs: float) -> int:
    """The page's time shift in samples (positive when the reading is late): the median of the
    shifts of the leads read well (SNR >= 8 dB over at least one second); 0 if none is."""
    lags = []
    for j in range(read.shape[1]):
        ok = np.isfinite(read[:, j]) & np.isfinite(truth[:, j])
        if ok.sum() < fs:
            continue
        score = score_lead(np.where(ok, truth[:, j], np.nan), np.where(ok, read[:, j], np.nan), fs)
        if score.snr_db >= 8.0:
            lags.append(score.lag_s)
    return int(round(np.median(lags) * fs)) if lags else 0


def engine_readings(
    digitizer, records: RecordPool, count: int, *, seed: int = 0, severity: float = 0.3
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``count`` pages rendered from ``records`` and read by ``digitizer``: per page read, the
    record and the reading, each ``(LENGTH, 12)`` mV (the network's window) in :data:`LEAD_NAMES` order, the
    record shifted by the page's lag (:func:`page_lag`) so both share one time axis.  Pages the
    engine refuses are skipped."""
    layouts, weights = zip(*READING_LAYOUTS.items())
    n = LENGTH
    for k in range(count):
        rng = np.random.default_rng([seed, 7, k])
        layout = str(rng.choice(layouts, p=np.array(weights) / sum(weights)))
        style = PageStyle.random(rng, layout=layout, dpi=float(rng.uniform(100, 300)))
        page = render_page(
            records.pick(rng),
            style=style,
            damage=DamageSettings.random(rng, severity=severity),
            seed=int(rng.integers(2**31)),
        )
        try:
            result = digitizer.digitize(page.image)
        except EcgStudioError:
            continue
        truth, read = _as_window(page.signals, n), _as_window(result.signals, n)
        if truth.fs != FS or read.fs != FS:
            continue
        lag = page_lag(truth.mv, read.mv, FS)
        shifted = np.full_like(truth.mv, np.nan)
        if lag >= 0:
            shifted[lag:] = truth.mv[: n - lag]
        else:
            shifted[:lag] = truth.mv[-lag:]
        yield shifted, read.mv


def _as_window(signals: Signals, n: int) -> Signals:
    """``signals`` in :data:`LEAD_NAMES` order, cut or NaN-padded to ``n`` samples."""
    mv = np.full((n, len(LEAD_NAMES)), np.nan)
    for j, lead in enumerate(LEAD_NAMES):
        if lead in signals.lead_names:
            column = signals.mv[:n, list(signals.lead_names).index(lead)]
            mv[: len(column), j] = column
    return Signals(mv, signals.fs, LEAD_NAMES)


def write_engine_readings(
    out: str | Path,
    digitizer,
    records: RecordPool,
    count: int,
    *,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write :func:`engine_readings` to ``out`` (``.npz``: ``truth`` and ``read``, float32
    ``(pages, samples, 12)``); returns the number of pages kept."""
    truths, reads = [], []
    for k, (truth, read) in enumerate(engine_readings(digitizer, records, count, seed=seed)):
        truths.append(truth.astype(np.float32))
        reads.append(read.astype(np.float32))
        if progress:
            progress(k + 1)
    with atomic_path(Path(out)) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, truth=np.stack(truths), read=np.stack(reads))
    return len(truths)


def simulated_reading(
    truth: np.ndarray, rng: np.random.Generator, *, fs: float = FS, speed: float | None = None
) -> np.ndarray:
    """What a page would give of ``truth`` (``(n, 12)`` mV in :data:`LEAD_NAMES` order): each lead
    inside the windows a random layout plots (at 25 or 50 mm/s, columns in sequence or all from
    t = 0), each window's row shifted in time a little (sometimes a lot), its gain and baseline a
    little off, the stroke smoothed and noised, stretches hidden (stains, fading), ends clipped.
    ``speed`` (1 for 25 mm/s, 0.5 for 50) is drawn when not given."""
    n = len(truth)
    names, weights = zip(*SIMULATED_LAYOUTS.items())
    layout = LAYOUTS[str(rng.choice(names, p=np.array(weights) / sum(weights)))]
    if speed is None:
        speed = 0.5 if rng.random() < 0.15 else 1.0
    from_zero = rng.random() < 0.1
    strip_lead = str(rng.choice(["II", "II", "II", "V1", "V5", "I"]))
    rows = {c.row for c in layout.cells}
    row_shift = {r: rng.uniform(-0.06, 0.06) if rng.random() < 0.1 else rng.normal(0, 0.003) for r in rows}
    read = np.full_like(truth, np.nan)
    for cell in layout.cells:
        lead = strip_lead if cell.duration_s > 5.0 and cell.lead == "II" else cell.lead
        j = LEAD_NAMES.index(lead)
        t0 = 0.0 if from_zero else cell.t_start_s
        a, b = int(round(t0 * speed * fs)), min(n, int(round((t0 + cell.duration_s) * speed * fs)))
        if b - a < 10:
            continue
        shift = int(round(row_shift[cell.row] * fs))
        src = np.clip(np.arange(a, b) - shift, 0, n - 1)
        x = truth[src, j] * rng.normal(1.0, 0.03) + rng.normal(0, 0.03)
        sigma = rng.uniform(0, 1.5)
        if sigma > 0.3:
            x = gaussian_filter1d(x, sigma)
        x = x + rng.normal(0, rng.uniform(0, 0.02), len(x))
        if rng.random() < 0.1:  # a baseline step
            x[int(rng.integers(len(x))) :] += rng.normal(0, 0.1)
        keep = np.ones(len(x), bool)
        if rng.random() < 0.4:
            for _ in range(int(rng.integers(1, 3))):
                length = int(rng.uniform(0.05, 0.3) * len(x))
                start = int(rng.integers(0, max(1, len(x) - length)))
                keep[start : start + length] = False
        if rng.random() < 0.3:
            keep[: int(rng.integers(0, int(0.05 * fs)))] = False
            keep[len(x) - int(rng.integers(0, int(0.05 * fs))) :] = False
        read[a:b, j] = np.where(keep, x, np.nan)
    if rng.random() < 0.05:
        read[:, int(rng.integers(len(LEAD_NAMES)))] = np.nan
    return read


def varied(record: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``record`` (``(n, 12)`` mV) as another record could be, so that none is learned by heart:
    faster or slower (heart rate 0.85-1.15 times), started elsewhere (rolled round), at another
    gain (0.7-1.3 times)."""
    n = len(record)
    rate = rng.uniform(0.85, 1.15)
    t = (np.arange(n) * rate + rng.uniform(0, n)) % n
    k = np.floor(t).astype(int)
    frac = (t - k)[:, None]
    return ((1 - frac) * record[k] + frac * record[(k + 1) % n]) * rng.uniform(0.7, 1.3)


def training_records(records: RecordPool) -> np.ndarray:
    """Every record of ``records`` at the network's rate and at least its window long, that
    window's first samples: ``(records, LENGTH, 12)`` float32 in :data:`LEAD_NAMES` order."""
    n = LENGTH
    out = []
    for path in records.paths:
        try:
            signals = read_signals(path)
        except (OSError, ValueError, EcgStudioError) as exc:
            log.warning("record %s left out: %s", path, exc)
            continue
        if signals.fs != FS or signals.n_samples < n:
            continue
        window = _as_window(signals, n).mv
        if np.isfinite(window).all():
            out.append(window.astype(np.float32))
    return np.stack(out) if out else np.zeros((0, n, len(LEAD_NAMES)), np.float32)


#: The input channels holding mV (what was read, the placed beats); the others are masks.
_VALUES = np.r_[0:LEADS, 2 * LEADS : 3 * LEADS]


def _example(truth: np.ndarray, read: np.ndarray, multiple: int) -> np.ndarray:
    prior = placed_beats(Signals(read.astype(np.float64), FS, LEAD_NAMES))
    return network_input(read, prior, multiple=multiple)


def train_restorer(
    out: str | Path,
    records: np.ndarray,
    *,
    readings: Sequence[tuple[np.ndarray, np.ndarray]] = (),
    held_out: np.ndarray | None = None,
    steps: int = 3000,
    batch: int = 16,
    lr: float = 2e-3,
    seed: int = 0,
    work_dir: str | Path | None = None,
    checkpoint_every: int = 100,
    progress: Callable[[int, float], None] | None = None,
) -> RestorerCard:
    """Train the restoration network and save it (weights + card) to ``out``.

    Each batch holds simulated readings of ``records`` (``(k, samples, 12)`` mV) and, when
    ``readings`` (pairs of record and engine reading, :func:`engine_readings`) are given, a
    quarter of those (each at a random gain); the loss is :func:`restoration_loss`.  With
    ``work_dir`` a checkpoint is written there every ``checkpoint_every`` steps, and a run with
    the same settings resumes from it.  The card records the SNR over stretches not read of
    simulated readings of ``held_out`` records,
    restored by the network and by the placed beats alone.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = RestoreNet()
    multiple = net.config.multiple
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(1, steps), pct_start=0.05)
    start, spent = 0, 0.0
    checkpoint = Path(work_dir) / "restorer-checkpoint.pt" if work_dir else None
    if checkpoint is not None and checkpoint.is_file():
        saved = torch.load(checkpoint, weights_only=True)
        net.load_state_dict(saved["net"])
        opt.load_state_dict(saved["opt"])
        sched.load_state_dict(saved["sched"])
        start, spent = int(saved["step"]), float(saved["seconds"])
        rng = np.random.default_rng([seed, start])
    real = [(_example(t, r, multiple), t) for t, r in readings]
    started = time.time() - spent
    net.train()
    for step in range(start, steps):
        xs, ys = [], []
        for k in range(batch):
            if real and k % 4 == 3:  # a quarter engine readings, scaled so none is learned by heart
                x, truth = real[int(rng.integers(len(real)))]
                gain = rng.uniform(0.7, 1.3)
                x, truth = x.copy(), truth * gain
                x[_VALUES] *= gain
            else:
                truth = varied(records[int(rng.integers(len(records)))], rng)
                x = _example(truth, simulated_reading(truth, rng), multiple)
            y = np.full((x.shape[1], truth.shape[1]), np.nan, np.float32)
            y[: len(truth)] = truth
            xs.append(x)
            ys.append(y.T)
        x, y = torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))
        loss = restoration_loss(net(x), y, x[:, LEADS : 2 * LEADS] > 0)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
        if progress:
            progress(step + 1, loss.item())
        if checkpoint is not None and ((step + 1) % checkpoint_every == 0 or step + 1 == steps):
            state = {
                "net": net.state_dict(),
                "opt": opt.state_dict(),
                "sched": sched.state_dict(),
                "step": torch.tensor(step + 1),
                "seconds": torch.tensor(time.time() - started),
            }
            with atomic_path(checkpoint) as tmp:
                torch.save(state, tmp)
    net.eval()
    metrics = {}
    if held_out is not None and len(held_out):
        by_net, by_beats = unread_snr(net, held_out, seed=seed)
        metrics = {
            "held_out_unread_snr_db": round(by_net, 2),
            "held_out_unread_placed_beats_snr_db": round(by_beats, 2),
        }
    card = RestorerCard(
        version=time.strftime("restorer-%Y%m%d-%H%M%S"),
        training={
            "steps": steps,
            "batch": batch,
            "lr": lr,
            "seed": seed,
            "seconds": round(time.time() - started),
            "records": len(records),
            "engine_readings": len(readings),
        },
        metrics=metrics,
    )
    return save_model(net, out, card)


def restoration_loss(estimate: torch.Tensor, truth: torch.Tensor, read: torch.Tensor) -> torch.Tensor:
    """Mean squared error against the record (NaN: not counted), samples not read counting
    double.  Offsets count too: a loss that forgives each lead its offset (as the SNR does) let
    the network's stretches float away from the exact and read samples beside them
    (BENCHMARKS.md)."""
    weight = torch.isfinite(truth) * (1.0 + (~read).to(estimate.dtype))
    return (weight * (estimate - torch.nan_to_num(truth)) ** 2).sum() / weight.sum()


@torch.no_grad()
def unread_snr(net: RestoreNet, records: np.ndarray, *, seed: int = 0) -> tuple[float, float]:
    """Mean SNR (dB) over each lead's longest stretch not read (at least 0.5 s) of simulated
    readings of ``records``: restored by ``net``, and by the placed beats alone (NaN: a flat line)."""
    rng = np.random.default_rng([seed, 10_000])
    by_net, by_beats = [], []
    for truth in records:
        read = simulated_reading(truth, rng)
        placed = placed_beats(Signals(read.astype(np.float64), FS, LEAD_NAMES))
        x = network_input(read, placed, multiple=net.config.multiple)
        estimate = net(torch.from_numpy(x)[None])[0].numpy().T[: len(truth)]
        for j in range(truth.shape[1]):
            unread = ~np.isfinite(read[:, j])
            edges = np.flatnonzero(np.diff(np.r_[0, unread.astype(np.int8), 0]))
            if not len(edges):
                continue
            k = int(np.argmax(edges[1::2] - edges[::2]))
            a, b = edges[2 * k], edges[2 * k + 1]
            if b - a >= 0.5 * FS:
                by_net.append(score_lead(truth[a:b, j], estimate[a:b, j], FS).snr_db)
                by_beats.append(score_lead(truth[a:b, j], placed[a:b, j], FS).snr_db)
    return float(np.mean(by_net)), float(np.mean(by_beats))
