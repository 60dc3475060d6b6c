"""The broad validation suite: engine choices are made here, on paper nobody tuned the engine on.

Run: python benchmarks/bench_suite.py [--pages 30] [--groups clean scan ...] [--model FILE]
     [--threads 2] [--csv runs/bench_suite/NAME.csv] [--compare runs/bench_suite/OTHER.csv]

Pages are rendered by :mod:`ecgstudio.synth` from the real records of ``../shared/data/signals``
that :func:`ecgstudio.synth.batch.is_validation_record` keeps out of every training run (the
benchmark pairs' and ``ecg-image-kit-dev``'s records are left out too), each page from a random
stream of its own: ``[SEED, group number, page number]`` with :data:`SEED` = 7919, a seed no
training run or other benchmark uses.  Every group spans random paper styles (grid colours,
minor grids, trace widths and colours, pulses, lead names, separators, header text, fonts), and
adds its own kind of paper or damage (:data:`GROUPS`).  Pages are digitized as a new user would,
with default settings, and scored over the windows they plot (:func:`ecgstudio.metrics.score_record`):
per-lead SNR (the Challenge 2024 metric, mean over leads) and the per-image SNR of the Kaggle
2025 competition.  A page the engine refuses or fails on counts as 0 dB and is listed with its
reason.  ``--csv`` keeps every page's figures; ``--compare`` prints each group's change against
an earlier run of the same pages, and the pages that moved most.
"""

from __future__ import annotations

import argparse
import csv
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import torch

from ecgstudio.errors import EcgStudioError
from ecgstudio.evaluate import pair_record_ids
from ecgstudio.metrics import score_record
from ecgstudio.paper import LAYOUTS
from ecgstudio.pipeline import Digitizer
from ecgstudio.restore import Restorer, restore
from ecgstudio.synth.batch import RecordPool
from ecgstudio.synth.damage import DamageSettings
from ecgstudio.synth.render import PageStyle, SynthPage, render_page

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SEED = 7919

#: What each group adds to a random page: (dpi range, style changes, damage, transform of the image).
Style = Callable[[np.random.Generator], dict]
Damage = Callable[[np.random.Generator], DamageSettings]
Transform = Callable[[np.random.Generator, np.ndarray], np.ndarray]


def _none(rng: np.random.Generator) -> dict:
    return {}


def _clean(rng: np.random.Generator) -> DamageSettings:
    return DamageSettings()


def _severity(s: float) -> Damage:
    return lambda rng: DamageSettings.random(rng, severity=s)


def _same(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    return image


def _anisotropic(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """x and y scales differing by 2-6 % (printers, scanners, faxes, screenshot tools)."""
    h, w = image.shape[:2]
    factor = 1.0 + rng.choice([-1.0, 1.0]) * rng.uniform(0.02, 0.06)
    return cv2.resize(image, (round(w * factor), h), interpolation=cv2.INTER_AREA)


def _turned(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """A quarter, half or three-quarter turn (scanned sideways or upside down)."""
    return np.ascontiguousarray(np.rot90(image, int(rng.integers(1, 4))))


def _tilted(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Rotated by 5-15 degrees either way onto white, the page kept whole."""
    h, w = image.shape[:2]
    angle = float(rng.uniform(5.0, 15.0) * rng.choice([-1.0, 1.0]))
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    cos, sin = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(h * sin + w * cos), int(h * cos + w * sin)
    m[0, 2] += nw / 2 - w / 2
    m[1, 2] += nh / 2 - h / 2
    return cv2.warpAffine(image, m, (nw, nh), flags=cv2.INTER_LINEAR, borderValue=(255, 255, 255))


def _photo(rng: np.random.Generator) -> DamageSettings:
    """A phone photo: perspective, curl, a shade or light gradient, blur, noise, JPEG."""
    return DamageSettings(
        perspective=float(rng.uniform(0.3, 1.0)),
        curl=float(rng.uniform(0.0, 0.8)),
        lighting=float(rng.uniform(0.5, 1.0)),
        rotation=float(rng.uniform(0.0, 0.6)),
        blur=float(rng.uniform(0.0, 0.5)),
        noise=float(rng.uniform(0.1, 0.6)),
        jpeg=float(rng.uniform(0.3, 0.9)),
    )


def _layouts(rng: np.random.Generator) -> dict:
    others = [name for name in LAYOUTS if name not in ("3x4", "3x4+1")]
    return {"layout": str(rng.choice(others))}


def _sparse(rng: np.random.Generator) -> dict:
    """Faint, dark or no grid; lead names, header, pulses each present or not."""
    return {
        "grid_color": str(rng.choice(["none", "grey", "dark", "pink"])),
        "minor_grid": bool(rng.random() < 0.5),
        "lead_labels": bool(rng.random() < 0.4),
        "header": bool(rng.random() < 0.5),
        "pulse": str(rng.choice(["start", "end", "none"])),
    }


def _gain_speed(rng: np.random.Generator) -> dict:
    return {"mm_per_mv": float(rng.choice([5.0, 20.0, 10.0])), "mm_per_s": float(rng.choice([25.0, 50.0]))}


@dataclass(frozen=True)
class Group:
    """A kind of paper: dpi range, what it changes in a random style, its damage, and a transform."""

    dpi: tuple[float, float]
    style: Style = _none
    damage: Damage = _clean
    transform: Transform = _same
    about: str = ""


GROUPS: dict[str, Group] = {
    "clean": Group((100, 300), about="random styles, no damage"),
    "scan": Group((100, 300), damage=_severity(0.3), about="mild scanner or photo damage"),
    "damaged": Group((100, 300), damage=_severity(0.8), about="heavy damage: stains, creases, blur, binarised"),
    "coarse": Group((50, 100), damage=_severity(0.2), about="2-4 px/mm: thumbnails, faxes"),
    "fine": Group((300, 600), damage=_severity(0.2), about="300-600 dpi scans"),
    "anisotropic": Group((100, 300), damage=_severity(0.2), transform=_anisotropic, about="x/y scale 2-6 % apart"),
    "photo": Group((100, 250), damage=_photo, about="perspective, curl, shade, blur, JPEG"),
    "tilted": Group((100, 300), damage=_severity(0.2), transform=_tilted, about="rotated 5-15 degrees"),
    "turned": Group((100, 300), damage=_severity(0.2), transform=_turned, about="quarter and half turns"),
    "layouts": Group((100, 300), style=_layouts, damage=_severity(0.3), about="6x2, 12x1, 2x1, +3 rhythm, Cabrera"),
    "from_zero": Group(
        (100, 300), style=lambda rng: {"columns_from_zero": True}, damage=_severity(0.3), about="columns from 0 s"
    ),
    "sparse": Group((100, 300), style=_sparse, damage=_severity(0.3), about="no or faint grid, no names or pulses"),
    "gain_speed": Group((100, 300), style=_gain_speed, damage=_severity(0.3), about="5/20 mm/mV, 50 mm/s"),
}


def validation_records() -> RecordPool:
    """The real records no training run renders (none of the benchmark pairs' either)."""
    folders = [p for p in (SHARED / "signals" / "ptb-xl", SHARED / "signals" / "ludb") if p.exists()]
    exclude = [*pair_record_ids(SHARED / "pairs.csv"), *pair_record_ids(SHARED / "ecg-image-kit-dev" / "pairs.csv")]
    return RecordPool.from_folders(folders, simulate_share=0.0, exclude=exclude, validation=True)


def pages(name: str, count: int, records: RecordPool) -> Iterator[tuple[int, SynthPage, np.ndarray]]:
    """``count`` pages of group ``name``: (page number, the rendered page, the image as given to the engine)."""
    group = GROUPS[name]
    for k in range(count):
        rng = np.random.default_rng([SEED, list(GROUPS).index(name), k])
        style = PageStyle.random(rng, dpi=float(rng.uniform(*group.dpi)))
        style = replace(style, **group.style(rng))
        page = render_page(records.pick(rng), style=style, damage=group.damage(rng), seed=int(rng.integers(2**31)))
        yield k, page, group.transform(rng, page.image)


@dataclass
class PageResult:
    group: str
    page: int
    layout: str
    dpi: float
    snr_db: float
    image_snr_db: float
    seconds: float
    error: str = ""
    refined_snr_db: float = float("nan")  # with --refine: what was read, refined by the restoration network


def run_group(
    name: str, count: int, records: RecordPool, digitizer: Digitizer, restorer: Restorer | None = None
) -> list[PageResult]:
    out = []
    for k, page, image in pages(name, count, records):
        started = time.perf_counter()
        refined = float("nan")
        try:
            result = digitizer.digitize(image)
            score = score_record(page.signals, result.signals, layout=page.layout)
            snr, image_snr, error = score.mean_snr_db, score.image_snr_db, ""
            if restorer is not None:
                better = restore(result.signals, restorer=restorer, complete=False, refine=True).signals
                refined = score_record(page.signals, better, layout=page.layout).mean_snr_db
        except EcgStudioError as exc:
            snr, image_snr, error = 0.0, 0.0, str(exc).splitlines()[0][:160]
            refined = 0.0 if restorer is not None else refined
        seconds = time.perf_counter() - started
        out.append(PageResult(name, k, page.layout.name, page.style.dpi, snr, image_snr, seconds, error, refined))
        print(f"  {name} {k}: {snr:6.2f} dB  {seconds:5.1f} s  {error}", flush=True)
    return out


def table(results: list[PageResult], before: dict[tuple[str, int], float] | None = None) -> str:
    rows = ["| group | pages | dB/lead | Kaggle dB/image | failed | median s/page |" + (" change |" if before else "")]
    rows.append("|---|---|---|---|---|---|" + ("---|" if before else ""))
    groups = list(dict.fromkeys(r.group for r in results))
    for name in [*groups, "all"]:
        rs = [r for r in results if name in ("all", r.group)]
        cells = [
            name,
            str(len(rs)),
            f"{np.mean([r.snr_db for r in rs]):.2f}",
            f"{np.mean([r.image_snr_db for r in rs]):.2f}",
            str(sum(bool(r.error) for r in rs)),
            f"{np.median([r.seconds for r in rs]):.2f}",
        ]
        if before:
            old = [before[(r.group, r.page)] for r in rs if (r.group, r.page) in before]
            new = [r.snr_db for r in rs if (r.group, r.page) in before]
            cells.append(f"{np.mean(new) - np.mean(old):+.2f}" if old else "")
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=30, help="pages per group (default 30: 390 pages)")
    parser.add_argument("--groups", nargs="+", choices=list(GROUPS), default=list(GROUPS))
    parser.add_argument("--model", help="weights file or version name (default: the shipped model)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--csv", help="write every page's figures here")
    parser.add_argument("--compare", help="a CSV of an earlier run of the same pages")
    parser.add_argument(
        "--refine", metavar="WEIGHTS", help="also score what was read refined by this restoration network"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    records = validation_records()
    if not len(records):
        raise SystemExit(f"no validation records under {SHARED / 'signals'}")
    from ecgstudio.model.weights import DEFAULT_MODEL

    digitizer = Digitizer(args.model or DEFAULT_MODEL)
    print(f"{len(records)} validation records; model {digitizer.model_card.version}", flush=True)
    results: list[PageResult] = []
    restorer = Restorer(args.refine) if args.refine else None
    for name in args.groups:
        results += run_group(name, args.pages, records, digitizer, restorer)
    if args.csv:
        Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
        with open(args.csv, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(PageResult.__dataclass_fields__))
            writer.writeheader()
            writer.writerows(r.__dict__ for r in results)
    before = None
    if args.compare:
        with open(args.compare, newline="", encoding="utf-8") as fh:
            before = {(row["group"], int(row["page"])): float(row["snr_db"]) for row in csv.DictReader(fh)}
    print()
    print(table(results, before))
    failed = [r for r in results if r.error]
    if failed:
        print("\nfailed pages:")
        for r in failed:
            print(f"- {r.group} {r.page} ({r.layout}, {r.dpi:.0f} dpi): {r.error}")
    if restorer is not None:
        print("\nrefined by the restoration network (change: against what was read):")
        as_read = {(r.group, r.page): r.snr_db for r in results}
        print(table([replace(r, snr_db=r.refined_snr_db) for r in results], as_read))
    if before:
        moved = sorted(results, key=lambda r: r.snr_db - before.get((r.group, r.page), r.snr_db))
        print("\nmost changed pages:")
        for r in moved[:5] + moved[-5:]:
            print(f"- {r.group} {r.page}: {before.get((r.group, r.page), float('nan')):.2f} -> {r.snr_db:.2f} dB")


if __name__ == "__main__":
    main()
