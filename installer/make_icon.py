"""Draw ECG Studio's icon, ``resources/icon.png``: an ECG trace on red grid paper, 256x256.

Run ``python installer/make_icon.py`` to redraw it (the build does so when it is missing).
PyInstaller turns the PNG into ``.ico`` (Windows) and ``.icns`` (macOS) itself, with Pillow.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
ICON = ROOT / "resources" / "icon.png"
SIZE = 256
SUPERSAMPLE = 4


def _beat(t: float) -> float:
    """One heartbeat, ``t`` in [0, 1): P wave, QRS complex and T wave, in units of the R height."""
    bumps = (
        (0.18, 0.035, 0.12),
        (0.335, 0.010, -0.18),
        (0.36, 0.012, 1.0),
        (0.385, 0.012, -0.32),
        (0.62, 0.060, 0.28),
    )  # (centre, width, height)
    return sum(h * math.exp(-0.5 * ((t - c) / w) ** 2) for c, w, h in bumps)


def draw_icon(size: int = SIZE) -> Image.Image:
    """The icon as an RGBA image of ``size`` x ``size`` pixels."""
    s = size * SUPERSAMPLE
    img = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    margin, radius = s // 32, s // 8
    box = (margin, margin, s - margin, s - margin)
    d.rounded_rectangle(box, radius=radius, fill=(255, 246, 240, 255), outline=(36, 59, 85, 255), width=s // 48)
    # ECG paper: small squares and every fifth line bold, clipped to the card by a mask.
    grid = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    g = ImageDraw.Draw(grid)
    step = s / 25
    for k in range(26):
        bold = k % 5 == 0
        colour = (226, 96, 96, 200) if bold else (240, 170, 170, 160)
        width = max(1, s // (160 if bold else 320))
        x = round(k * step)
        g.line([(x, 0), (x, s)], fill=colour, width=width)
        g.line([(0, x), (s, x)], fill=colour, width=width)
    mask = Image.new("L", (s, s), 0)
    inner = (box[0] + s // 40, box[1] + s // 40, box[2] - s // 40, box[3] - s // 40)
    ImageDraw.Draw(mask).rounded_rectangle(inner, radius=radius - s // 40, fill=255)
    img.paste(grid, (0, 0), Image.composite(grid, Image.new("RGBA", (s, s)), mask))
    # Two heartbeats across the card, baseline a little below the middle.
    x0, x1 = inner[0] + s // 40, inner[2] - s // 40
    base, amp = s * 0.60, s * 0.36
    points = []
    for i in range(2000):
        u = i / 1999
        points.append((x0 + u * (x1 - x0), base - amp * _beat((u * 2 + 0.05) % 1.0)))
    d = ImageDraw.Draw(img)
    r = s / 72  # a round pen: a disc every pixel along the trace
    for (xa, ya), (xb, yb) in zip(points[:-1], points[1:]):
        n = max(1, math.ceil(math.hypot(xb - xa, yb - ya)))
        for k in range(n):
            x, y = xa + (xb - xa) * k / n, ya + (yb - ya) * k / n
            d.ellipse((x - r, y - r, x + r, y + r), fill=(24, 36, 56, 255))
    return img.resize((size, size), Image.Resampling.LANCZOS)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ICON, help=f"where to write the PNG (default {ICON})")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    draw_icon().save(args.out, optimize=True)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
