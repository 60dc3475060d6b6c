"""Draw, for pages of a pairs table, the page beside its truth's first row read both ways.

Run: python benchmarks/columns_evidence.py [--pairs ../shared/data/pairs.csv]
     [--corrections benchmarks/pairs_corrections.csv] [--only from-zero|all] --out docs/columns_evidence.jpg

A 3x4 page shows I | aVR | V1 | V4 in its first row.  Under each page (scaled down) the truth
record's leads are drawn as that row would print them: once over consecutive windows (0-2.5,
2.5-5, 5-7.5, 7.5-10 s, the standard) and once with every column from 0 s.  Which of the two
the page's first row looks like is read by eye: beats at the same places in every column, or
not.  Nothing of the digitizing engine is used, so the sheet checks the corrections table
independently of what the engine reads from the pages.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from ecgstudio.evaluate import page_truth, read_pairs
from ecgstudio.io.images import read_image

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
FIRST_ROW = ("I", "aVR", "V1", "V4")
WIDTH = 640
STRIP_H = 72
PX_PER_MV = 24


def truth_strip(mv: np.ndarray, fs: float, names: tuple[str, ...], *, from_zero: bool, label: str) -> np.ndarray:
    """The first row of a 3x4 page drawn from the truth, ``WIDTH`` px for 10 s."""
    strip = np.full((STRIP_H, WIDTH, 3), 255, np.uint8)
    cell = WIDTH // 4
    n = int(round(2.5 * fs))
    for col, lead in enumerate(FIRST_ROW):
        a = 0 if from_zero else col * n
        y = mv[a : a + n, names.index(lead)]
        y = np.nan_to_num(y - np.nanmedian(y))
        xs = col * cell + np.arange(len(y)) * cell / n
        pts = np.stack([xs, STRIP_H * 0.6 - y * PX_PER_MV], 1).round().astype(np.int32)
        cv2.polylines(strip, [pts], False, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(strip, lead, (col * cell + 4, STRIP_H - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 200), 1)
        cv2.line(strip, (col * cell, 0), (col * cell, STRIP_H), (200, 200, 200), 1)
    cv2.putText(strip, label, (WIDTH - 300, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (200, 0, 0), 1, cv2.LINE_AA)
    return strip


def panel(pair) -> np.ndarray:
    image = read_image(pair.image_path)
    s = WIDTH / image.shape[1]
    page = cv2.resize(image, (WIDTH, int(image.shape[0] * s)), interpolation=cv2.INTER_AREA)
    cv2.putText(page, pair.image[-60:], (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 255), 1, cv2.LINE_AA)
    truth = page_truth(pair)
    names = tuple(truth.lead_names)
    strips = [
        truth_strip(truth.mv, truth.fs, names, from_zero=z, label=label)
        for z, label in ((False, "truth, consecutive windows"), (True, "truth, every column from 0 s"))
    ]
    return np.vstack([page, *strips, np.zeros((6, WIDTH, 3), np.uint8)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", default=str(SHARED / "pairs.csv"))
    parser.add_argument("--corrections", default=str(Path(__file__).with_name("pairs_corrections.csv")))
    parser.add_argument(
        "--only",
        choices=("from-zero", "all"),
        default="from-zero",
        help="the pages the corrections read from 0 s, or every 3x4 page scored by its layout",
    )
    parser.add_argument("--out", required=True, help="image to write (.jpg or .png; two pages per sheet row)")
    args = parser.parse_args()
    pairs = [
        p
        for p in read_pairs(args.pairs, corrections=args.corrections)
        if p.layout_text.startswith("3x4") and (args.only == "all" or p.columns == "from-zero")
    ]
    panels = [panel(p) for p in pairs]
    height = max(p.shape[0] for p in panels)
    panels = [np.vstack([p, np.full((height - p.shape[0], WIDTH, 3), 255, np.uint8)]) for p in panels]
    if len(panels) % 2:
        panels.append(np.full((height, WIDTH, 3), 255, np.uint8))
    sheet = np.vstack([np.hstack(panels[i : i + 2]) for i in range(0, len(panels), 2)])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(args.out, sheet[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 70])
    print(f"{len(pairs)} pages drawn to {args.out}")


if __name__ == "__main__":
    main()
