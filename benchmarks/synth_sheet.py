"""A contact sheet of rendered pages beside real scans and photos, for a side-by-side look.

Run: python benchmarks/synth_sheet.py [--out docs/synth_sheet.jpg]
Real images come from ../shared/data/ecg-image-kit/sample-data/ecg-images (ecg-image-kit, BSD-3-Clause).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from ecgstudio.io.images import read_image
from ecgstudio.synth.batch import RecordPool, damage_for
from ecgstudio.synth.damage import DamageSettings
from ecgstudio.synth.render import PageStyle, render_page

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
REAL = ["ecg00003.png", "ecg00012.jpg", "ecg00030.jpg", "ecg00041.jpg"]
THUMB_W, THUMB_H = 560, 400


def thumb(image: np.ndarray, caption: str) -> np.ndarray:
    h, w = image.shape[:2]
    s = min(THUMB_W / w, (THUMB_H - 24) / h)
    small = cv2.resize(image, (max(1, int(w * s)), max(1, int(h * s))), interpolation=cv2.INTER_AREA)
    tile = np.full((THUMB_H, THUMB_W, 3), 255, np.uint8)
    tile[: small.shape[0], : small.shape[1]] = small
    cv2.putText(tile, caption, (6, THUMB_H - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (40, 40, 40), 1, cv2.LINE_AA)
    return tile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="docs/synth_sheet.jpg")
    args = parser.parse_args()
    tiles = []
    for name in REAL:
        path = SHARED / "ecg-image-kit" / "sample-data" / "ecg-images" / name
        tiles.append(thumb(read_image(path), f"real: {name}"))
    records = RecordPool.from_folders([SHARED / "signals" / "ptb-xl"], simulate_share=0.3)
    rng = np.random.default_rng(2024)
    for k in range(8):
        style = PageStyle.random(rng)
        damage = DamageSettings.none() if k == 0 else damage_for("random", rng, severity=0.4 + 0.08 * k)
        page = render_page(records.pick(rng), style=style, damage=damage, seed=k)
        tiles.append(thumb(page.image, f"rendered: {style.layout}, {style.grid_color} grid, {style.dpi:.0f} dpi"))
    rows = [np.hstack(tiles[i : i + 4]) for i in range(0, len(tiles), 4)]
    sheet = np.vstack(rows)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(args.out, sheet[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 88])  # format from the suffix
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
