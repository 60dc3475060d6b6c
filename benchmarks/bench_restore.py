"""How well completed and filled stretches match the record: ``--complete`` on pages the engine reads.

Run: python benchmarks/bench_restore.py [--pages 50] [--severity 0.3] [--threads 2] [--fill]

Renders ``--pages`` 3x4+II pages from the validation records (those no training run uses,
``bench_suite.validation_records``; stream ``[SEED, 99, k]``) with the usual damage mix, digitizes
each with default settings, completes it (:func:`ecgstudio.restore.complete`) and scores, per
lead, the SNR over its longest completed stretch outside its plotted window (at least 0.5 s)
against the record; mean over stretches, limb and chest leads apart, the exact part alone
(:func:`ecgstudio.restore.complete_limb_leads`), and for reference the SNR of what was read.
Also the time completion takes per page.

``--fill`` instead hides 10-30 % of each lead's plotted window (one or two stretches of missing
ink: the page is rendered from the record with those samples blanked) and scores the output over
the hidden stretches (each at least 0.1 s): as read, completed, and, for reference, with the
read signal's gaps bridged by straight lines.  It also says how much of the hidden ink the engine
left empty (NaN) rather than drawing something there.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from bench_suite import SEED, validation_records

from ecgstudio.arrays import true_runs
from ecgstudio.errors import EcgStudioError
from ecgstudio.metrics import score_lead
from ecgstudio.model.weights import DEFAULT_MODEL
from ecgstudio.paper import LAYOUTS
from ecgstudio.pipeline import Digitizer
from ecgstudio.restore import LIMB_LEADS, MEASURED, RECONSTRUCTED, complete, complete_limb_leads
from ecgstudio.results import Signals
from ecgstudio.synth.damage import DamageSettings
from ecgstudio.synth.render import PageStyle, render_page


def longest_run(mask: np.ndarray) -> slice | None:
    """The longest run of True in ``mask``."""
    edges = np.flatnonzero(np.diff(np.r_[0, mask.astype(np.int8), 0]))
    if not len(edges):
        return None
    starts, ends = edges[::2], edges[1::2]
    k = int(np.argmax(ends - starts))
    return slice(int(starts[k]), int(ends[k]))


def hide(record: Signals, rng: np.random.Generator) -> tuple[Signals, np.ndarray]:
    """``record``'s first 10 s with 10-30 % of each lead's plotted window (3x4+1 at 25 mm/s, from
    t = 0) blanked in one or two stretches, and the mask of the blanked samples."""
    fs = record.fs
    mv = np.array(record.mv[: int(round(10.0 * fs))], copy=True)
    hidden = np.zeros(mv.shape, bool)
    for cell in LAYOUTS["3x4+1"].cells:
        if cell.duration_s > 5.0:  # the rhythm strip's lead is hidden within its column's window
            continue
        j = list(record.lead_names).index(cell.lead)
        a, n = int(round(cell.t_start_s * fs)), int(round(cell.duration_s * fs))
        parts = int(rng.integers(1, 3))
        for length in np.full(parts, rng.uniform(0.1, 0.3) * n / parts).astype(int):
            start = a + int(rng.integers(int(0.05 * n), n - length - int(0.05 * n)))
            hidden[start : start + length, j] = True
    mv[hidden] = np.nan
    return Signals(mv, fs, record.lead_names), hidden


def bridged(column: np.ndarray) -> np.ndarray:
    """``column`` with its gaps bridged by straight lines (ends held)."""
    ok = np.isfinite(column)
    if ok.sum() < 2:
        return column
    return np.interp(np.arange(len(column)), np.flatnonzero(ok), column[ok])


def fill_benchmark(args: argparse.Namespace, records, digitizer: Digitizer) -> None:
    kinds = ("read", "completed", "bridged")
    snr: dict[str, list[float]] = {k: [] for k in kinds}
    empty, total, failed = 0, 0, 0
    for k in range(args.pages):
        rng = np.random.default_rng([SEED, 98, k])
        style = PageStyle.random(rng, layout="3x4+1", dpi=float(rng.uniform(100, 300)))
        record = records.pick(rng)
        shown, hidden = hide(record, rng)
        damage = DamageSettings.random(rng, severity=args.severity)
        page = render_page(shown, style=style, damage=damage, seed=k, t_offset_s=0.0)
        try:
            result = digitizer.digitize(page.image)
        except EcgStudioError:
            failed += 1
            continue
        done = complete(result.signals)
        out = result.signals
        n = min(len(hidden), len(out.mv))
        for j, lead in enumerate(out.lead_names):
            t = list(record.lead_names).index(lead)
            for a, b in true_runs(hidden[:n, t]):
                if b - a < 0.1 * record.fs:
                    continue
                truth = record.mv[a:b, t]
                read = out.mv[:n, j]
                empty += int(np.isnan(read[a:b]).sum())
                total += b - a
                for kind, column in zip(kinds, (read, done.signals.mv[:n, j], bridged(read)), strict=True):
                    snr[kind].append(score_lead(truth, column[a:b], record.fs).snr_db)
    print(f"{args.pages} pages (3x4+1, 10-30 % of each window hidden, damage {args.severity}), {failed} refused")
    print(f"hidden samples the engine left empty: {100 * empty / max(1, total):.0f} %")
    print("| output over the hidden stretches | stretches | SNR dB (mean over stretches) |")
    print("|---|---|---|")
    for kind in kinds:
        print(f"| {kind} | {len(snr[kind])} | {np.mean(snr[kind]):.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=50)
    parser.add_argument("--severity", type=float, default=0.3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--fill", action="store_true", help="score filling hidden stretches instead")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    records, digitizer = validation_records(), Digitizer(DEFAULT_MODEL)
    if args.fill:
        fill_benchmark(args, records, digitizer)
        return
    snr: dict[str, list[float]] = {"exact": [], "limb": [], "chest": [], "measured": []}
    seconds: dict[str, list[float]] = {"exact": [], "limb": [], "chest": [], "measured": []}
    failed, spent = 0, []
    for k in range(args.pages):
        rng = np.random.default_rng([SEED, 99, k])
        style = PageStyle.random(rng, layout="3x4+1", dpi=float(rng.uniform(100, 300)))
        page = render_page(
            records.pick(rng), style=style, damage=DamageSettings.random(rng, severity=args.severity), seed=k
        )
        try:
            result = digitizer.digitize(page.image)
        except EcgStudioError:
            failed += 1
            continue
        started = time.perf_counter()
        done = complete(result.signals)
        spent.append(time.perf_counter() - started)
        exact = complete_limb_leads(result.signals)
        truth = page.signals
        fs = truth.fs
        n = min(len(truth.mv), len(done.signals.mv))
        for j, lead in enumerate(done.signals.lead_names):
            t = list(truth.lead_names).index(lead)
            parts = [("limb" if lead in LIMB_LEADS else "chest", done, RECONSTRUCTED), ("measured", done, MEASURED)]
            if lead in LIMB_LEADS:
                parts.append(("exact", exact, RECONSTRUCTED))
            for part, completion, kind in parts:
                run = longest_run(completion.source[:n, j] == kind)
                if run is None or (run.stop - run.start) < 0.5 * fs:
                    continue
                snr[part].append(score_lead(truth.mv[run, t], completion.signals.mv[run, j], fs).snr_db)
                seconds[part].append((run.stop - run.start) / fs)
    print(f"{args.pages} pages (3x4+1, damage {args.severity}), {failed} refused")
    print("| leads | completed stretches | mean length s | SNR dB (mean over stretches) |")
    print("|---|---|---|---|")
    rows = (
        ("exact", "limb, exact relations alone"),
        ("limb", "limb"),
        ("chest", "chest"),
        ("all", "all"),
        ("measured", "for reference: what was read (each lead's plotted window)"),
    )
    for part, label in rows:
        values = snr["limb"] + snr["chest"] if part == "all" else snr[part]
        lengths = seconds["limb"] + seconds["chest"] if part == "all" else seconds[part]
        print(f"| {label} | {len(values)} | {np.mean(lengths):.2f} | {np.mean(values):.2f} |")
    print(f"completion: {1000 * np.mean(spent):.1f} ms per page (median {1000 * np.median(spent):.1f})")


if __name__ == "__main__":
    main()
