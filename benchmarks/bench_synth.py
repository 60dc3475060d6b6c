"""Rendering speed of synthetic pages on one core, against ecg-image-kit's published timings.

Run: python benchmarks/bench_synth.py [--pages 20]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2
import numpy as np

from ecgstudio.synth.damage import DamageSettings
from ecgstudio.synth.render import PageStyle, render_page

KIT_CLEAN_S = 0.72  # ecg-image-kit, clean 200 dpi page (Apple M2)
KIT_DAMAGED_S = 7.75  # ecg-image-kit, all distortions


def median_seconds(pages: int, damage: DamageSettings) -> float:
    style = PageStyle(dpi=200)
    render_page(style=style, damage=damage, seed=0)  # warm-up (fonts, caches)
    times = []
    for seed in range(pages):
        t0 = time.perf_counter()
        render_page(style=style, damage=damage, seed=seed + 1)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pages", type=int, default=20)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    clean = median_seconds(args.pages, DamageSettings.none())
    damaged = median_seconds(args.pages, DamageSettings.all())
    print("| page (200 dpi, 3x4+1, one core) | ecg-image-kit | ECG Studio (median) | speed-up |")
    print("|---|---|---|---|")
    print(f"| clean | {KIT_CLEAN_S:.2f} s | {clean:.3f} s | {KIT_CLEAN_S / clean:.1f}x |")
    print(f"| all damage on | {KIT_DAMAGED_S:.2f} s | {damaged:.3f} s | {KIT_DAMAGED_S / damaged:.1f}x |")


if __name__ == "__main__":
    main()
