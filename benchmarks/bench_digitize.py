"""Digitize every page of a pairs table, score it, and report accuracy by kind, speed and memory.

Run: python benchmarks/bench_digitize.py [--pairs ../shared/data/pairs.csv] [--out runs/bench]
     [--corrections benchmarks/pairs_corrections.csv] [--model models/tracenet.pt] [--threads 2]
     [--photos] [--limit N]

Pages are scored over the windows they plot: the table's, with the cells of the corrections
table (each with its reason; ``benchmarks/columns_evidence.py`` draws the check) put in; the
summary as the table states every page is printed too.

Predictions are written as WFDB under ``OUT/pred/<pair key>``; overlays of the real photos
(no truth) go to ``OUT/photos`` with ``--photos``.  The table printed at the end is what
BENCHMARKS.md records.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from ecgstudio.batch import write_png
from ecgstudio.errors import EcgStudioError
from ecgstudio.evaluate import evaluate, format_report, read_pairs
from ecgstudio.io.images import read_image
from ecgstudio.io.writers import write_wfdb
from ecgstudio.overlay import draw_overlay
from ecgstudio.pipeline import DigitizeOptions, Digitizer

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", default=str(SHARED / "pairs.csv"))
    parser.add_argument("--out", default="runs/bench")
    parser.add_argument(
        "--corrections",
        default=str(Path(__file__).with_name("pairs_corrections.csv")),
        help="cells replacing the table's, by image ('' for none)",
    )
    parser.add_argument("--model", default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--photos", action="store_true", help="also digitize the real photos without truth")
    parser.add_argument("--limit", type=int, default=0, help="only the first N pairs (quick checks)")
    parser.add_argument("--sheet", help="with --photos: write a contact sheet of photo overlays here")
    parser.add_argument(
        "--fs",
        type=float,
        default=0.0,
        help="output sampling rate in Hz; by default each page's truth rate (the table's gt_fs_hz), "
        "as a Challenge header states it",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    out = Path(args.out)
    pred_dir = out / "pred"
    pred_dir.mkdir(parents=True, exist_ok=True)
    for old in pred_dir.glob("*"):
        old.unlink()
    digitizer = Digitizer(args.model)
    corrections = args.corrections or None
    pairs = read_pairs(args.pairs, corrections=corrections)
    if args.limit:
        pairs = pairs[: args.limit]
    seconds, failures, from_zero = [], [], []
    for pair in pairs:
        image = read_image(pair.image_path)
        t0 = time.perf_counter()
        try:
            result = digitizer.digitize(image, DigitizeOptions(fs=args.fs or pair.gt_fs_hz or 500.0))
        except EcgStudioError as exc:
            failures.append(f"{pair.image}: {exc}")
            continue
        seconds.append(time.perf_counter() - t0)
        write_wfdb(result.signals, pred_dir, pair.key)
        if len({b.col for b in result.boxes}) > 1 and {b.t_start_s for b in result.boxes} == {0.0}:
            from_zero.append(pair)
        write_png(out / "overlays" / f"{pair.key}.png", draw_overlay(image, result))

    report = evaluate(pred_dir, args.pairs, corrections=corrections)
    print(format_report(report, per_image=True))
    if corrections:
        stated = evaluate(pred_dir, args.pairs)
        print(f"\nwithout the corrections ({corrections}), every page scored as the table states it:")
        print("\n".join(format_report(stated).splitlines()[2:10]))
        listed = {p.key for p in pairs if p.columns == "from-zero"}
        read = {p.key for p in from_zero}
        print(
            f"pages printing every column from 0 s: {len(listed)} in the corrections, {len(read)} read so by the "
            f"engine, {len(listed & read)} of them the same"
        )
    print()
    print(
        f"model: {digitizer.card.version} ({digitizer.card.sha256[:12]}), torch threads: {args.threads}, "
        f"device: {digitizer.device}"
    )
    print(
        f"seconds per page (digitize only, image already read): median {np.median(seconds):.2f}, "
        f"p90 {np.percentile(seconds, 90):.2f}, max {np.max(seconds):.2f} over {len(seconds)} pages"
    )
    print(f"peak resident memory of the process: {peak_rss_mb():.0f} MB")
    for failure in failures:
        print(f"FAILED {failure}")

    if args.photos:
        photo_dir = SHARED / "ecg-image-kit" / "sample-data" / "ecg-images"
        ok = 0
        for path in sorted(photo_dir.glob("ecg000*")):
            try:
                image = read_image(path)
                result = digitizer.digitize(image, DigitizeOptions())
                write_png(out / "photos" / f"{path.stem}.png", draw_overlay(image, result))
                ok += 1
            except EcgStudioError as exc:
                print(f"photo {path.name}: {exc}")
        print(f"real images without truth digitized: {ok}; overlays in {out / 'photos'}")
        if args.sheet:
            write_sheet(sorted((out / "photos").glob("ecg000[2-5]*.png"))[:12], Path(args.sheet))
            print(f"contact sheet of phone-photo overlays: {args.sheet}")


def write_sheet(paths: list[Path], target: Path, *, width: int = 640, height: int = 360) -> None:
    """Tile overlay images into one PNG, 3 per row."""
    tiles = []
    for path in paths:
        image = read_image(path)
        s = min(width / image.shape[1], height / image.shape[0])
        small = cv2.resize(image, (int(image.shape[1] * s), int(image.shape[0] * s)), interpolation=cv2.INTER_AREA)
        tile = np.full((height, width, 3), 255, np.uint8)
        tile[: small.shape[0], : small.shape[1]] = small
        cv2.putText(tile, path.stem, (6, height - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
        tiles.append(tile)
    while len(tiles) % 3:
        tiles.append(np.full((height, width, 3), 255, np.uint8))
    target.parent.mkdir(parents=True, exist_ok=True)
    sheet = np.vstack([np.hstack(tiles[i : i + 3]) for i in range(0, len(tiles), 3)])
    cv2.imwrite(str(target), sheet[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 88])  # format from the suffix


if __name__ == "__main__":
    main()
