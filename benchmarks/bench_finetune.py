"""Fine-tune on pages of a style the shipped model never saw; measure the gain and what is forgotten.

Run: python benchmarks/bench_finetune.py [--minutes 10] [--base models/tracenet.pt] [--out runs/bench_finetune]
     [--train-pages 10] [--eval-pages 20] [--original-pages 8] [--pairs ../shared/data/pairs.csv]
     [--pairs-limit 8] [--threads 2] [--device cpu] [--seed 0]

1. Renders ``--train-pages`` pages in the *new style* and writes them, with their exact ground
   truth, as reviewed label files through :func:`ecgstudio.synth.batch.write_page` (the label store).
2. Fine-tunes the base model on them with :func:`ecgstudio.training.finetune.finetune` for at most
   ``--minutes`` (the whole run: reading, validation and saving included), into a data
   directory under ``--out`` (the user's own models are never touched).
3. Digitizes ``--eval-pages`` OTHER new-style pages, ``--original-pages`` pages drawn by
   ``PageStyle.random`` (the style the model was trained on) and the first ``--pairs-limit``
   real pairs of ``--pairs`` (when the file exists) with the base and with the fine-tuned
   model (:class:`~ecgstudio.pipeline.Digitizer`, paper speed given) and prints the mean
   per-lead SNR of each as a markdown table.  A page that fails to digitize counts as 0 dB.

The new style is outside every range of ``PageStyle.random``: green ink (G 120-160; random inks
are black or below 90 per channel), 0.55-0.7 mm wide traces (random: 0.1-0.45), 0.22-0.3 mm grid
lines (random: 0.06-0.16) on paper tinted 75-90 % of the way to the blue minor-grid colour
(random: 20-60 %), i.e. a strongly blue page with thick blue lines and thick green traces.

Target for the full run (10 minutes on CPU): at least +3 dB on the new style, at most 0.5 dB
lost on the original-style pages.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from ecgstudio.errors import EcgStudioError
from ecgstudio.metrics import score_record
from ecgstudio.model.weights import DEFAULT_MODEL
from ecgstudio.pipeline import DigitizeOptions, Digitizer
from ecgstudio.results import Signals
from ecgstudio.synth.batch import write_page
from ecgstudio.synth.damage import DamageSettings
from ecgstudio.synth.render import GRID_COLORS, PageStyle, SynthPage, render_page
from ecgstudio.training.finetune import FinetuneConfig, FinetuneProgress, finetune

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"

#: How the new style departs from PageStyle.random (see the module docstring).
NEW_STYLE = "green ink, 0.55-0.7 mm traces, thick blue grid on blue-tinted paper"


def new_style(rng: np.random.Generator) -> PageStyle:
    """A page in the unseen style; the fields PageStyle.random covers well (layout, gain, text) stay random."""
    minor = np.asarray(GRID_COLORS["blue"][0], float)
    tint = float(rng.uniform(0.75, 0.9))
    return PageStyle.random(
        rng,
        dpi=float(rng.uniform(150, 250)),
        mm_per_s=25.0,
        grid_color="blue",
        minor_grid=True,
        grid_line_mm=float(rng.uniform(0.22, 0.3)),
        paper_rgb=tuple(int(round(v)) for v in 255 - tint * (255 - minor)),
        trace_color=(int(rng.integers(0, 30)), int(rng.integers(120, 161)), int(rng.integers(20, 61))),
        trace_width_mm=float(rng.uniform(0.55, 0.7)),
        fade=0.0,
    )


#: A second unseen style, used only to choose the fine-tune's settings (never the benchmark's).
TUNING_STYLE = "brown ink, 0.45-0.6 mm traces, thick green grid on yellow paper"


def tuning_style(rng: np.random.Generator) -> PageStyle:
    """Outside PageStyle.random too (ink R 130-170 > 90; grid lines 0.2-0.28 mm; yellow, not a
    grid colour, tints the paper), and unlike the benchmark's new style."""
    return PageStyle.random(
        rng,
        dpi=float(rng.uniform(150, 250)),
        mm_per_s=25.0,
        grid_color="green",
        minor_grid=True,
        grid_line_mm=float(rng.uniform(0.2, 0.28)),
        paper_rgb=(255, int(rng.integers(240, 251)), int(rng.integers(165, 201))),
        trace_color=(int(rng.integers(130, 171)), int(rng.integers(50, 81)), int(rng.integers(20, 51))),
        trace_width_mm=float(rng.uniform(0.45, 0.6)),
        fade=0.0,
    )


def original_style(rng: np.random.Generator) -> PageStyle:
    return PageStyle.random(rng, dpi=float(rng.uniform(150, 250)))


def render(style_fn: Callable[[np.random.Generator], PageStyle], seed: list[int]) -> SynthPage:
    rng = np.random.default_rng(seed)
    style = style_fn(rng)
    return render_page(style=style, damage=DamageSettings.random(rng, severity=0.3), seed=int(rng.integers(2**31)))


def synthetic_cases(style_fn, count: int, seed: int, stream: int) -> Iterator[tuple[np.ndarray, Signals, dict]]:
    for k in range(count):
        page = render(style_fn, [seed, stream, k])
        yield page.image, page.signals, {"layout": page.layout, "mm_per_s": page.style.mm_per_s}


def pair_cases(csv: Path, limit: int) -> Iterator[tuple[np.ndarray, Signals, dict]]:
    from ecgstudio.evaluate import page_truth, page_windows, read_pairs
    from ecgstudio.io.images import read_image

    for pair in read_pairs(csv)[:limit]:
        truth = page_truth(pair)
        layout, windows, _ = page_windows(pair, fs=truth.fs)
        yield read_image(pair.image_path), truth, {"layout": layout, "windows": windows, "mm_per_s": 25.0}


def score_both(cases, digitizers: list[Digitizer]) -> tuple[list[list[float]], int]:
    """Per model, the mean per-lead SNR of each page (0 dB for a failed page); and the page count."""
    out: list[list[float]] = [[] for _ in digitizers]
    n = 0
    for image, truth, info in cases:
        n += 1
        for scores, digitizer in zip(out, digitizers):
            try:
                result = digitizer.digitize(image, DigitizeOptions(mm_per_s=info["mm_per_s"]))
                scores.append(
                    score_record(
                        truth, result.signals, layout=info.get("layout"), windows=info.get("windows")
                    ).mean_snr_db
                )
            except EcgStudioError:
                scores.append(0.0)
    return out, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="fine-tune budget, whole run (default 10)")
    parser.add_argument("--base", default=str(DEFAULT_MODEL), help="model to start from (default: shipped)")
    parser.add_argument("--out", default="runs/bench_finetune")
    parser.add_argument("--train-pages", type=int, default=10)
    parser.add_argument("--eval-pages", type=int, default=20)
    parser.add_argument("--original-pages", type=int, default=8)
    parser.add_argument("--pairs", default=str(SHARED / "pairs.csv"))
    parser.add_argument("--pairs-limit", type=int, default=8, help="first N real pairs (0: none)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--style",
        choices=["benchmark", "tuning"],
        default="benchmark",
        help="the new style to adapt to: the benchmark's, or the one settings are chosen on",
    )
    parser.add_argument("--lr", type=float, help="override FinetuneConfig.lr (for choosing settings)")
    parser.add_argument("--synthetic-share", type=float, help="override FinetuneConfig.synthetic_share")
    args = parser.parse_args()
    style_fn, style_name = (new_style, NEW_STYLE) if args.style == "benchmark" else (tuning_style, TUNING_STYLE)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)

    out = Path(args.out) / time.strftime("%Y%m%d-%H%M%S")
    labels = out / "labels"
    t0 = time.perf_counter()
    for k in range(args.train_pages):
        write_page(render(style_fn, [args.seed, 1, k]), labels, f"newstyle_{k:02d}")
    print(
        f"wrote {args.train_pages} labelled new-style pages to {labels} ({time.perf_counter() - t0:.0f} s)",
        file=sys.stderr,
    )

    last = [0.0]

    def show(p: FinetuneProgress) -> None:
        now = time.perf_counter()
        if p.stage != "training" or now - last[0] > 15 or p.step == p.total_steps:
            last[0] = now
            left = f", {p.seconds_left:.0f} s left" if p.seconds_left is not None else ""
            print(f"[{p.elapsed_s:6.0f} s] {p.stage}: {p.message}{left}", file=sys.stderr)

    overrides = {k: v for k, v in (("lr", args.lr), ("synthetic_share", args.synthetic_share)) if v is not None}
    config = FinetuneConfig(minutes=args.minutes, device=args.device, seed=args.seed, **overrides)
    result = finetune(labels, base=args.base, config=config, data_dir=out / "data", name="bench", progress=show)

    base, tuned = Digitizer(args.base, device=args.device), Digitizer(result.version.path, device=args.device)
    sets = [
        (f"new style ({style_name})", synthetic_cases(style_fn, args.eval_pages, args.seed, 2)),
        ("original style (PageStyle.random)", synthetic_cases(original_style, args.original_pages, args.seed, 3)),
    ]
    pairs = Path(args.pairs)
    if args.pairs_limit > 0 and pairs.is_file():
        sets.append((f"real pairs ({pairs.name}, first {args.pairs_limit})", pair_cases(pairs, args.pairs_limit)))
    rows = []
    for label, cases in sets:
        t = time.perf_counter()
        (b, f), n = score_both(cases, [base, tuned])
        rows.append((label, n, float(np.mean(b)) if b else float("nan"), float(np.mean(f)) if f else float("nan")))
        print(f"scored {label}: {n} pages ({time.perf_counter() - t:.0f} s)", file=sys.stderr)

    print(
        f"\n### Fine-tune on {args.train_pages} new-style pages, {args.minutes:g} min budget ({result.steps} steps, "
        f"{result.seconds / 60:.1f} min, {config.device}; lr {config.lr:g}, synthetic share "
        f"{config.synthetic_share:g})\n"
    )
    print(
        f"base: {base.card.version} ({base.card.sha256[:12]}); fine-tuned: {tuned.card.version} "
        f"({tuned.card.sha256[:12]}); held-out labelled pages: {result.val_snr_before_db:.2f} -> "
        f"{result.val_snr_after_db:.2f} dB ({'activated' if result.activated else 'not activated'})\n"
    )
    print("| pages | n | base model (dB) | fine-tuned (dB) | change (dB) |")
    print("|---|---:|---:|---:|---:|")
    for label, n, b, f in rows:
        print(f"| {label} | {n} | {b:.2f} | {f:.2f} | {f - b:+.2f} |")
    gain = rows[0][3] - rows[0][2]
    lost = rows[1][2] - rows[1][3] if rows[1][1] else float("nan")
    print(
        f"\ntarget: new style >= +3 dB: {'met' if gain >= 3 else 'not met'} ({gain:+.2f} dB); "
        f"original style <= 0.5 dB lost: {'met' if lost <= 0.5 else 'not met'} ({lost:+.2f} dB lost)"
    )


if __name__ == "__main__":
    main()
