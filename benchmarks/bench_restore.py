"""How well completed stretches match the record: the exact part of ``--complete`` on pages the
engine reads.

Run: python benchmarks/bench_restore.py [--pages 50] [--severity 0.3] [--threads 2]

Renders ``--pages`` 3x4+II pages from the validation records (those no training run uses,
``bench_suite.validation_records``; stream ``[SEED, 99, k]``) with the usual damage mix, digitizes
each with default settings, completes it (:func:`ecgstudio.restore.complete_limb_leads`) and
scores, per lead, the SNR over its longest completed stretch outside its plotted window (at
least 0.5 s) against the record; mean over leads, limb and chest leads apart (chest leads have
no exact relation: they stay uncompleted and are reported as such).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from bench_suite import SEED, validation_records

from ecgstudio.errors import EcgStudioError
from ecgstudio.metrics import score_lead
from ecgstudio.model.weights import DEFAULT_MODEL
from ecgstudio.pipeline import Digitizer
from ecgstudio.restore import LIMB_LEADS, RECONSTRUCTED, complete_limb_leads
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=50)
    parser.add_argument("--severity", type=float, default=0.3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    records, digitizer = validation_records(), Digitizer(DEFAULT_MODEL)
    limb_snr, chest_missing, failed, seconds = [], 0, 0, []
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
        done = complete_limb_leads(result.signals)
        truth = page.signals
        fs = truth.fs
        n = min(len(truth.mv), len(done.signals.mv))
        for j, lead in enumerate(done.signals.lead_names):
            run = longest_run(done.source[:n, j] == RECONSTRUCTED)
            if lead not in LIMB_LEADS:
                chest_missing += run is None
                continue
            if run is None or (run.stop - run.start) < 0.5 * fs:
                continue
            t = list(truth.lead_names).index(lead)
            score = score_lead(truth.mv[run, t], done.signals.mv[run, j], fs)
            limb_snr.append(score.snr_db)
            seconds.append((run.stop - run.start) / fs)
    print(f"{args.pages} pages (3x4+1, damage {args.severity}), {failed} refused")
    print("| leads | completed stretches | mean length s | SNR dB (mean over stretches) |")
    print("|---|---|---|---|")
    print(f"| limb (exact relations) | {len(limb_snr)} | {np.mean(seconds):.2f} | {np.mean(limb_snr):.2f} |")
    print(f"| chest | 0 (no exact relation; {chest_missing} stretches left empty) | - | - |")


if __name__ == "__main__":
    main()
