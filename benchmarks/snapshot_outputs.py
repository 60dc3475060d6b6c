"""Record every page's engine output, or compare two recordings sample by sample.

Run: python benchmarks/snapshot_outputs.py record runs/snap-before
     python benchmarks/snapshot_outputs.py compare runs/snap-before runs/snap-after

``record`` digitizes every page of ``../shared/data/pairs.csv`` and of
``../shared/data/ecg-image-kit-dev/pairs.csv`` (default options, each page at its truth's rate)
and saves, per page, the signals in mV, the boxes, the traces, the calibration, the layout and
the confidences in one ``.npz``.  ``compare`` says which pages differ, and by how much: a change
meant to leave behaviour alone must report none.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
TABLES = (SHARED / "pairs.csv", SHARED / "ecg-image-kit-dev" / "pairs.csv")


def record(out: Path) -> None:
    import torch

    from ecgstudio.errors import EcgStudioError
    from ecgstudio.evaluate import read_pairs
    from ecgstudio.io.images import read_image
    from ecgstudio.pipeline import DigitizeOptions, Digitizer

    torch.set_num_threads(2)
    out.mkdir(parents=True, exist_ok=True)
    digitizer = Digitizer()
    pairs = [(table.parent.name, pair) for table in TABLES for pair in read_pairs(table)]
    for table, pair in tqdm(pairs, desc="pages"):
        name = f"{table}__{pair.key}"
        try:
            result = digitizer.digitize(read_image(pair.image_path), DigitizeOptions(fs=pair.gt_fs_hz or 500.0))
        except EcgStudioError as exc:
            (out / f"{name}.error.txt").write_text(f"{type(exc).__name__}: {exc}\n")
            continue
        boxes = np.array(
            [
                [b.x0, b.y0, b.x1, b.y1, b.baseline_y, b.t_start_s, b.duration_s, b.row, b.col, b.inverted]
                for b in result.boxes
            ]
        )
        meta = {
            "layout": result.layout,
            "leads": [b.lead for b in result.boxes],
            "calibration": list(map(float, vars(result.calibration).values())),
            "confidence": result.confidence,
        }
        arrays = {f"trace{k}": t.xy for k, t in enumerate(result.traces)}
        np.savez(
            out / f"{name}.npz", mv=result.signals.mv, boxes=boxes, meta=json.dumps(meta, sort_keys=True), **arrays
        )


def compare(a: Path, b: Path) -> int:
    names = sorted({p.name for p in a.iterdir()} | {p.name for p in b.iterdir()})
    differ = []
    for name in names:
        pa, pb = a / name, b / name
        if not (pa.exists() and pb.exists()):
            differ.append(f"{name}: only in {a if pa.exists() else b}")
        elif name.endswith(".txt"):
            if pa.read_text() != pb.read_text():
                differ.append(f"{name}: {pa.read_text().strip()} / {pb.read_text().strip()}")
        else:
            za, zb = np.load(pa), np.load(pb)
            keys = sorted(set(za.files) | set(zb.files))
            bad = [
                k
                for k in keys
                if k not in za.files
                or k not in zb.files
                or not np.array_equal(za[k], zb[k], equal_nan=za[k].dtype.kind == "f")
            ]
            if bad:
                differ.append(f"{name}: {', '.join(bad)} differ")
    print(f"{len(names)} pages compared, {len(differ)} differ")
    print("\n".join(differ))
    return 1 if differ else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("record").add_argument("out", type=Path)
    cmp = sub.add_parser("compare")
    cmp.add_argument("a", type=Path)
    cmp.add_argument("b", type=Path)
    args = parser.parse_args()
    if args.command == "record":
        record(args.out)
    else:
        sys.exit(compare(args.a, args.b))


if __name__ == "__main__":
    main()
