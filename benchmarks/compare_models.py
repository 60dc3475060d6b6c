"""Choose between trace models on rendered pages that no benchmark and no training run uses.

Run: python benchmarks/compare_models.py MODEL [MODEL ...] [--pages 16] [--seed 2026] [--threads 2]
     [--records ../shared/data/signals/ptb-xl ../shared/data/signals/ludb] [--exclude-pairs ../shared/data/pairs.csv]

Renders three groups of pages from real records (those of the benchmark pairs left out) with
their exact ground truth, each page from a random stream of its own (``--seed``, the group's
number and the page's; ``ecgstudio train`` draws its pages from streams of its own ``--seed``):

- ``scan``: random styles at 100-300 dpi with mild damage (severity 0.3), as most users' scans;
- ``damaged``: random styles at 100-300 dpi with heavy damage (severity 0.8);
- ``coarse``: random styles at 38-90 dpi (1.5-3.5 px/mm: thumbnails, faxes), mild damage.

Each page is digitized by every model (paper speed given) and scored with
:func:`ecgstudio.metrics.score_record`; a page that fails counts as 0 dB.  Printed as a
markdown table: mean per-lead SNR per group and model, and how many pages each later model
wins or loses by more than 1 dB against the first.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from bench_finetune import score_both

from ecgstudio.evaluate import pair_record_ids
from ecgstudio.pipeline import Digitizer
from ecgstudio.synth.batch import RecordPool
from ecgstudio.synth.damage import DamageSettings
from ecgstudio.synth.render import PageStyle, render_page

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"

#: group -> (dpi range, damage severity)
GROUPS = {"scan": ((100.0, 300.0), 0.3), "damaged": ((100.0, 300.0), 0.8), "coarse": ((38.0, 90.0), 0.3)}


def cases(group: str, count: int, seed: int, records: RecordPool):
    """``count`` pages of ``group``: (image, truth signals, what the scoring needs)."""
    (lo, hi), severity = GROUPS[group]
    for k in range(count):
        rng = np.random.default_rng([seed, list(GROUPS).index(group), k])
        style = PageStyle.random(rng, dpi=float(rng.uniform(lo, hi)))
        page = render_page(
            records.pick(rng),
            style=style,
            damage=DamageSettings.random(rng, severity=severity),
            seed=int(rng.integers(2**31)),
        )
        yield page.image, page.signals, {"layout": page.layout, "mm_per_s": page.style.mm_per_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="weights files or version names; the first is the reference")
    parser.add_argument("--pages", type=int, default=16, help="pages per group")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--records", nargs="+", default=[str(SHARED / "signals" / "ptb-xl"), str(SHARED / "signals" / "ludb")]
    )
    parser.add_argument("--exclude-pairs", default=str(SHARED / "pairs.csv"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    exclude = pair_record_ids(args.exclude_pairs) if Path(args.exclude_pairs).exists() else ()
    records = RecordPool.from_folders([r for r in args.records if Path(r).exists()], exclude=exclude)
    digitizers = [Digitizer(m) for m in args.models]
    names = [d.model_card.version for d in digitizers]
    print("| group | pages | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for group in GROUPS:
        scores, n = score_both(cases(group, args.pages, args.seed, records), digitizers)
        ref = np.asarray(scores[0])
        cells = [f"{np.mean(ref):.2f}"]
        for other in scores[1:]:
            other = np.asarray(other)
            cells.append(f"{np.mean(other):.2f} (+{int(np.sum(other > ref + 1))} / -{int(np.sum(other < ref - 1))})")
        print(f"| {group} | {n} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
