"""How well restoration matches the record: ``--complete`` (and ``--refine``) on pages the engine reads.

Run: python benchmarks/bench_restore.py [--pages 50] [--severity 0.3] [--threads 2] [--fill]
                                        [--restorer WEIGHTS]

Renders ``--pages`` 3x4+II pages (``--layout``) from the validation records (those no training run uses,
``bench_suite.validation_records``; stream ``[SEED, 99, k]``) with the usual damage mix, digitizes
each with default settings and restores it (:func:`ecgstudio.restore.restore`): exact relations
and placed beats (``placed``), and with ``--restorer`` a restoration network (``network``).  Scores, per
lead, the SNR over its longest stretch not read (at least 0.5 s; filled or reconstructed)
against the record; mean over stretches, limb and chest leads apart, the exact part alone
(:func:`ecgstudio.restore.complete_limb_leads`), and what was read over its plotted window, as read
and refined by the network.  Also the time restoration takes per page.

``--fill`` instead hides 10-30 % of each lead's plotted window (one or two stretches of missing
ink: the page is rendered from the record with those samples blanked) and scores the output over
the hidden stretches (each at least 0.1 s): as read, bridged by straight lines, placed beats and
the network.  It also says how much of the hidden ink the engine left empty (NaN) rather than
drawing something there.
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
from ecgstudio.restore import (
    FILLED,
    Completion,
    Restorer,
    complete_limb_leads,
    plotted_windows,
    restore,
)
from ecgstudio.results import Signals
from ecgstudio.signals import LIMB_LEADS
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


def variants(signals: Signals, windows, restorer: Restorer | None) -> dict[str, Completion]:
    """The completions compared: beats placed by the rhythm strip, and the network's."""
    out = {"placed": restore(signals, windows=windows)}
    if restorer is not None:
        out["network"] = restore(signals, windows=windows, restorer=restorer, refine=True)
    return out


def fill_benchmark(args: argparse.Namespace, records, digitizer: Digitizer, restorer: Restorer | None) -> None:
    kinds = ["read", "bridged", "placed"] + (["network"] if restorer else [])
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
        out = result.signals
        done = variants(out, plotted_windows(result.boxes), restorer)
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
                columns = {"read": read, "bridged": bridged(read)}
                columns |= {name: c.signals.mv[:n, j] for name, c in done.items()}
                for kind in kinds:
                    snr[kind].append(score_lead(truth, columns[kind][a:b], record.fs).snr_db)
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
    parser.add_argument("--restorer", metavar="WEIGHTS", help="also score this restoration network")
    parser.add_argument("--layout", default="3x4+1", help="layout of the pages (default 3x4+1; not with --fill)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    records, digitizer = validation_records(), Digitizer(DEFAULT_MODEL)
    restorer = Restorer(args.restorer) if args.restorer else None
    if args.fill:
        fill_benchmark(args, records, digitizer, restorer)
        return
    names = ["placed"] + ([] if restorer is None else ["network"])
    parts = ("exact", "limb", "chest", "measured", "refined")
    snr = {(v, p): [] for v in names for p in parts}
    seconds = {(v, p): [] for v in names for p in parts}
    failed, spent = 0, {v: [] for v in names}
    for k in range(args.pages):
        rng = np.random.default_rng([SEED, 99, k])
        style = PageStyle.random(rng, layout=args.layout, dpi=float(rng.uniform(100, 300)))
        page = render_page(
            records.pick(rng), style=style, damage=DamageSettings.random(rng, severity=args.severity), seed=k
        )
        try:
            result = digitizer.digitize(page.image)
        except EcgStudioError:
            failed += 1
            continue
        windows = plotted_windows(result.boxes)
        done = {}
        for name in names:
            started = time.perf_counter()
            done[name] = variants(result.signals, windows, restorer)[name]
            spent[name].append(time.perf_counter() - started)
        exact = complete_limb_leads(result.signals)
        truth = page.signals
        fs = truth.fs
        n = min(len(truth.mv), len(result.signals.mv))
        for name, completion in done.items():
            for j, lead in enumerate(completion.signals.lead_names):
                t = list(truth.lead_names).index(lead)
                measured = np.isfinite(result.signals.mv[:n, j])
                unread = completion.source[:n, j] >= FILLED
                scored = [
                    ("limb" if lead in LIMB_LEADS else "chest", unread, completion.signals.mv),
                    ("measured", measured, result.signals.mv),
                    ("refined", measured, completion.signals.mv),
                ]
                if lead in LIMB_LEADS:
                    scored.append(("exact", unread & np.isfinite(exact.signals.mv[:n, j]), exact.signals.mv))
                for part, mask, mv in scored:
                    run = longest_run(mask)
                    if run is None or (run.stop - run.start) < 0.5 * fs:
                        continue
                    snr[name, part].append(score_lead(truth.mv[run, t], mv[run, j], fs).snr_db)
                    seconds[name, part].append((run.stop - run.start) / fs)
    print(f"{args.pages} pages ({args.layout}, damage {args.severity}), {failed} refused")
    print("| completion | leads | stretches | mean length s | SNR dB (mean over stretches) |")
    print("|---|---|---|---|---|")
    rows = (
        ("exact", "limb, exact relations alone"),
        ("limb", "limb"),
        ("chest", "chest"),
        ("all", "all"),
        ("measured", "what was read (each lead's plotted window)"),
        ("refined", "what was read, refined by the network"),
    )
    for name in names:
        for part, label in rows:
            if part == "refined" and name == "placed":
                continue
            values = snr[name, "limb"] + snr[name, "chest"] if part == "all" else snr[name, part]
            lengths = seconds[name, "limb"] + seconds[name, "chest"] if part == "all" else seconds[name, part]
            print(f"| {name} | {label} | {len(values)} | {np.mean(lengths):.2f} | {np.mean(values):.2f} |")
    for name in names:
        print(f"{name}: {1000 * np.mean(spent[name]):.1f} ms per page (median {1000 * np.median(spent[name]):.1f})")


if __name__ == "__main__":
    main()
