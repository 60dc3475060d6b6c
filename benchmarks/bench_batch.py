"""Batch throughput, resume and memory, measured as a user runs it: the ``ecgstudio digitize``
command in a fresh process, start-up included.

Run: python benchmarks/bench_batch.py [--pages 40] [--workers 1 2] [--out runs/bench_batch]

Takes the first ``--pages`` images of ``../shared/data/pairs.csv`` (real scans and renders of
several tools), copies them into one input folder, and for each worker count runs
``ecgstudio digitize IN --out OUT --workers N`` from scratch, timing the whole command and
reading the peak memory of its processes (``resource.getrusage`` of the children).  Then it
measures resuming: a run killed once half the pages are in the manifest, run again, must redo
no finished page (the manifest's line count and the new lines' inputs say so).  Prints a
markdown table for BENCHMARKS.md, with what 16 cores and a 10-node cluster would do per hour
from the measured per-page cost.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def inputs(folder: Path, count: int) -> list[Path]:
    """The first ``count`` images of the pairs table, copied into ``folder`` (distinct names)."""
    from ecgstudio.evaluate import read_pairs

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for k, pair in enumerate(read_pairs(SHARED / "pairs.csv")[:count]):
        image = pair.root / pair.image
        target = folder / f"{k:03d}_{image.name}"
        shutil.copy(image, target)
        out.append(target)
    return out


def command(src: Path, out: Path, workers: int) -> list[str]:
    exe = shutil.which("ecgstudio") or "ecgstudio"
    return [exe, "digitize", str(src), "--out", str(out), "--workers", str(workers), "-q"]


def timed_run(src: Path, out: Path, workers: int) -> tuple[float, float]:
    """Wall seconds of a whole run from a new process, and the peak RSS (MB) of its largest process."""
    shutil.rmtree(out, ignore_errors=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    subprocess.run(command(src, out, workers), check=False, capture_output=True)
    seconds = time.perf_counter() - started
    peak_kb = max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, before)
    return seconds, peak_kb / 1024


def manifest_lines(out: Path) -> list[dict]:
    path = out / "ecgstudio-manifest.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def resume(src: Path, out: Path, n_pages: int) -> tuple[int, int, int]:
    """Kill a run once half the pages are done, run it again: (pages done before the kill, pages
    the rerun did, finished pages the rerun did again)."""
    shutil.rmtree(out, ignore_errors=True)
    proc = subprocess.Popen(command(src, out, 1), start_new_session=True)
    while len(manifest_lines(out)) < n_pages // 2 and proc.poll() is None:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    first = manifest_lines(out)
    subprocess.run(command(src, out, 1), check=False, capture_output=True)
    second = manifest_lines(out)[len(first) :]
    finished = {(e["input"], e["page"]) for e in first}
    again = sum((e["input"], e["page"]) in finished for e in second)
    return len(first), len(second), again


def memory_over(src: Path, out: Path, n_pages: int) -> list[tuple[int, float]]:
    """Run one process over ``n_pages`` copies of a small rendered page; (pages done, RSS MB of
    the process) sampled as it goes, from /proc (Linux)."""
    from PIL import Image

    from ecgstudio.synth.render import PageStyle, render_page

    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    image = Image.fromarray(render_page(style=PageStyle(layout="3x4+1", dpi=100), seed=3).image)
    for k in range(n_pages):
        image.save(src / f"page{k:04d}.png")
    shutil.rmtree(out, ignore_errors=True)
    proc = subprocess.Popen(command(src, out, 1), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    samples: list[tuple[int, float]] = []
    while proc.poll() is None:
        try:
            status = Path(f"/proc/{proc.pid}/status").read_text()
        except OSError:
            break
        rss_kb = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")))
        samples.append((len(manifest_lines(out)), rss_kb / 1024))
        time.sleep(1.0)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=40)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", default="runs/bench_batch")
    parser.add_argument("--memory-pages", type=int, default=0, help="also run one process over this many pages")
    args = parser.parse_args()
    root = Path(args.out)
    src = root / "in"
    shutil.rmtree(src, ignore_errors=True)
    files = inputs(src, args.pages)
    print(f"{len(files)} pages; {os.cpu_count()} cores; Python {sys.version.split()[0]}")
    print("| workers | wall s | s/page | pages/min | peak RSS per process (MB) |")
    print("|---|---|---|---|---|")
    per_page = {}
    for workers in args.workers:
        seconds, rss = timed_run(src, root / f"out{workers}", workers)
        per_page[workers] = seconds / len(files)
        print(f"| {workers} | {seconds:.1f} | {per_page[workers]:.2f} | {60 / per_page[workers]:.1f} | {rss:.0f} |")
    if args.memory_pages:
        samples = memory_over(root / "mem-in", root / "mem-out", args.memory_pages)
        marks = [s for s in samples if s[0] > 0]
        picks = [marks[0], marks[len(marks) // 2], marks[-1]] if marks else []
        print("\nmemory of one process: " + ", ".join(f"{rss:.0f} MB after {n} pages" for n, rss in picks))
    done, redone, again = resume(src, root / "resume", len(files))
    print(f"\nresume: killed after {done} pages; the rerun did {redone} more and {again} finished pages again")
    best = min(per_page.values())
    cores = os.cpu_count() or 1
    per_core_hour = 3600 / (best * cores)
    print(
        f"\nper core: {per_core_hour:.0f} pages/hour; a 16-core machine about {16 * per_core_hour:.0f} pages/hour, "
        f"10 such nodes about {160 * per_core_hour:.0f} (model-bound: each page is decoded, segmented and traced "
        "on one core's share)"
    )


if __name__ == "__main__":
    main()
