"""The ``ecgstudio`` command: parses arguments and calls the Python API, nothing more."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from . import __version__
from .errors import EcgStudioError
from .paper import COLUMN_ORDERS

if TYPE_CHECKING:
    import numpy as np

    from .synth.batch import RecordPool

log = logging.getLogger("ecgstudio")


def _cmd_synth(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .synth.batch import RecordPool, write_pages

    records = RecordPool.from_folders(args.records) if args.records else RecordPool()
    if args.records and not len(records):
        raise EcgStudioError(f"no WFDB (.hea) or CSV records found under {', '.join(args.records)}")
    overrides = {}
    if args.dpi:
        overrides["dpi"] = args.dpi
    with tqdm(total=args.count, desc="rendering", unit="page", disable=args.quiet) as bar:
        paths = write_pages(
            args.out,
            args.count,
            seed=args.seed,
            layout=args.layout,
            damage=args.damage,
            severity=args.severity,
            records=records,
            style_overrides=overrides,
            progress=lambda k: bar.update(1),
        )
    print(f"wrote {len(paths)} pages with ground truth to {args.out}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import evaluate, format_report

    report = evaluate(args.pred_dir, args.truth, corrections=args.corrections)
    print(format_report(report, per_image=args.per_image))
    return 0


def _cmd_digitize(args: argparse.Namespace) -> int:
    import time

    from tqdm import tqdm

    from .batch import InputNamer, digitize_paths
    from .io.images import collect_inputs
    from .io.writers import display_path
    from .manifest import PageEntry
    from .pipeline import DigitizeOptions

    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    inputs = collect_inputs(args.paths)
    if not inputs:
        raise EcgStudioError(f"no images or PDFs found in {', '.join(args.paths)}")
    options = DigitizeOptions(
        layout=args.layout, fs=args.fs, mm_per_s=args.speed, mm_per_mv=args.gain, columns=args.columns
    )
    workers = args.workers or os.cpu_count() or 1
    namer = InputNamer()
    for handler in logging.getLogger().handlers:
        handler.addFilter(namer)
    done = {"pages": 0, "failed": 0}
    started = time.perf_counter()
    with tqdm(total=len(inputs), desc="digitizing", unit="file", disable=args.quiet) as bar:

        def on_page(entry: PageEntry) -> None:
            done["pages"] += 1
            if entry.status != "done":
                done["failed"] += 1
                tqdm.write(f"failed: {entry.input}: {entry.reason}", file=sys.stderr)
            if entry.page >= entry.n_pages:
                bar.update(1)
            bar.set_postfix(pages_per_min=f"{60 * done['pages'] / (time.perf_counter() - started):.1f}")

        try:
            report = digitize_paths(
                inputs,
                args.out,
                options=options,
                formats=formats,
                overlay=args.overlay,
                complete=args.complete,
                overwrite=args.overwrite,
                retry_failed=args.retry_failed,
                workers=workers,
                ray=args.ray,
                model=args.model,
                device=args.device,
                on_plan=lambda n: bar.reset(total=n),
                on_page=on_page,
            )
        except KeyboardInterrupt:
            bar.close()
            print(
                f"interrupted after {done['pages']} page(s) ({done['failed']} failed); what was done is in "
                f"{display_path(args.out)} and its manifest: run the same command again to go on",
                file=sys.stderr,
            )
            return 130
        finally:
            for handler in logging.getLogger().handlers:
                handler.removeFilter(namer)
    earlier = f"; {report.skipped} done before, skipped" if report.skipped else ""
    if report.failed_before:
        earlier += f"; {report.failed_before} failed before, not retried (--retry-failed)"
    if report.incomplete:
        earlier += (
            f"; {len(report.incomplete)} completed only in part (too little read to complete every lead: "
            "see the summary)"
        )
    print(
        f"digitized {len(report.written)} page(s) of {len(inputs)} file(s) into {display_path(args.out)}; "
        f"{len(report.failed)} failed{earlier}"
        + (f"\nsummary (pages to review first): {display_path(report.summary)}" if report.summary else "")
    )
    return 0 if report.ok else 1


def _cmd_train(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .evaluate import pair_record_ids
    from .model.registry import resolve_model
    from .model.weights import load_model
    from .training.train import TrainConfig, train

    config = TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        device=args.device,
        records=tuple(args.records or ()),
        exclude_records=tuple(r for table in args.exclude_pairs or () for r in pair_record_ids(table)),
    )
    init, base = None, ""
    if args.init:
        init, base_card = load_model(resolve_model(args.init))
        base = base_card.version
    with tqdm(total=config.steps, desc="training", unit="step", disable=args.quiet) as bar:

        def progress(step: int, total: int, metrics: dict) -> None:
            bar.n = step
            bar.set_postfix({k: f"{v:.3g}" for k, v in metrics.items() if k in ("loss", "val_loss", "val_recall")})
            bar.refresh()

        _, card = train(config, args.work_dir, out=args.out, init=init, base_model=base, progress=progress)
    print(f"saved model {card.version} (sha256 {card.sha256[:12]}) to {args.out or args.work_dir}")
    return 0


@contextlib.contextmanager
def _loss_bar(total: int, desc: str, *, quiet: bool) -> Iterator[Callable[[int, float], None]]:
    """A progress bar over ``total`` training steps; yields the ``progress(step, loss)`` callback."""
    from tqdm import tqdm

    with tqdm(total=total, desc=desc, unit="step", disable=quiet) as bar:

        def progress(step: int, loss: float) -> None:
            bar.n = step
            bar.set_postfix(loss=f"{loss:.3g}")
            bar.refresh()

        yield progress


def _cmd_train_names(args: argparse.Namespace) -> int:
    from .model.namenet import NAMES, train_reader
    from .model.settingsnet import SETTINGS

    task = SETTINGS if args.settings else NAMES
    with _loss_bar(args.steps, f"training the {task.what}", quiet=args.quiet) as progress:
        out = args.out or f"runs/{task.name}.pt"
        card = train_reader(out, task=task, steps=args.steps, seed=args.seed, progress=progress)
    print(
        f"saved {task.what} {card.version} (held-out crop accuracy "
        f"{card.metrics['held_out_crop_accuracy']:.3f}) to {out}"
    )
    return 0


def _training_records(args: argparse.Namespace) -> tuple[RecordPool, np.ndarray, np.ndarray]:
    """The training records of ``args.records`` (the pool and its 10 s windows, the benchmark
    pairs' records left out), and 60 validation records' windows to score on."""
    from .evaluate import pair_record_ids
    from .synth.batch import RecordPool
    from .training.restore import training_records

    exclude = [r for table in args.exclude_pairs or () for r in pair_record_ids(table)]
    train_pool, held_pool = (
        RecordPool.from_folders(args.records, simulate_share=0.0, exclude=exclude, validation=validation)
        for validation in (False, True)
    )
    records, held_out = training_records(train_pool), training_records(held_pool)[:60]
    if not len(records):
        raise EcgStudioError(f"no 10 s, 500 Hz 12-lead records found in {', '.join(args.records)}")
    return train_pool, records, held_out


def _add_record_args(p: argparse.ArgumentParser) -> None:
    """The real records a network trains on, and the benchmark pairs' records it must not."""
    p.add_argument("--records", nargs="+", required=True, metavar="DIR", help="folders of real 12-lead records")
    p.add_argument(
        "--exclude-pairs", nargs="+", metavar="CSV", help="never train on the records of these benchmark pairs CSVs"
    )


def _cmd_train_speed_reader(args: argparse.Namespace) -> int:
    from .training.speed import train_speed_reader

    _, records, held_out = _training_records(args)
    with _loss_bar(args.steps, "training the paper-speed network", quiet=args.quiet) as progress:
        card = train_speed_reader(
            args.out, records, held_out=held_out, steps=args.steps, seed=args.seed, progress=progress
        )
    m = card.metrics
    print(
        f"saved paper-speed network {card.version} (of 600 held-out pages, half at each speed, "
        f"{m.get('held_out_called_50_wrongly', float('nan')):.1%} called 50 mm/s wrongly and "
        f"{m.get('held_out_called_25_wrongly', float('nan')):.1%} 25 mm/s wrongly) to {args.out}"
    )
    return 0


def _cmd_train_restorer(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np
    from tqdm import tqdm

    from .training.restore import train_restorer, write_engine_readings

    train_pool, records, held_out = _training_records(args)
    readings_files = [Path(f) for f in args.readings or ()]
    if args.engine_pages:
        from .pipeline import Digitizer

        made = Path(args.work_dir) / f"readings-{args.engine_pages}.npz"
        if not made.is_file():
            with tqdm(total=args.engine_pages, desc="reading rendered pages", unit="page", disable=args.quiet) as bar:
                write_engine_readings(
                    made, Digitizer(args.model), train_pool, args.engine_pages, progress=lambda k: bar.update(1)
                )
        readings_files.append(made)
    readings = []
    for f in readings_files:
        with np.load(f) as data:
            readings += list(zip(data["truth"], data["read"], strict=True))
    with _loss_bar(args.steps, "training the restoration network", quiet=args.quiet) as progress:
        out = args.out or str(Path(args.work_dir) / "restorer.pt")
        card = train_restorer(
            out,
            records,
            readings=readings,
            held_out=held_out,
            steps=args.steps,
            seed=args.seed,
            work_dir=args.work_dir,
            progress=progress,
        )
    print(
        f"saved restoration network {card.version} (held-out stretches not read: "
        f"{card.metrics.get('held_out_unread_snr_db', float('nan')):.2f} dB, placed beats alone "
        f"{card.metrics.get('held_out_unread_placed_beats_snr_db', float('nan')):.2f} dB) to {out}"
    )
    return 0


def _cmd_gui(args: argparse.Namespace) -> int:
    from .app.main import run, selftest

    if args.selftest:
        if args.paths:
            raise EcgStudioError("--selftest opens the sample that ships with ECG Studio; give no PATH")
        print(selftest())
        return 0
    return run(args.paths)


def _cmd_finetune(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .training.finetune import FinetuneConfig, finetune

    config = FinetuneConfig(
        steps=args.steps,
        minutes=args.minutes,
        device=args.device,
        val_fraction=args.val_fraction,
        include_unreviewed=args.include_unreviewed,
        skip_bad_labels=args.skip_bad,
    )
    with tqdm(
        total=1.0, desc="fine-tuning", disable=args.quiet, bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix}"
    ) as bar:

        def progress(p) -> None:
            bar.n = round(p.fraction, 3)
            bar.set_description_str(p.stage)
            info = {
                "loss": p.loss,
                "val before": p.val_snr_before_db,
                "val after": p.val_snr_after_db,
                "left": p.seconds_left,
            }
            bar.set_postfix({k: f"{v:.3g}" for k, v in info.items() if v is not None})
            bar.refresh()

        result = finetune(
            args.labels, base=args.base, config=config, name=args.out, data_dir=args.data_dir, progress=progress
        )
    verdict = "now active" if result.activated else "kept inactive (not better than the base model)"
    print(
        f"model version {result.version.name}: validation SNR {result.val_snr_before_db:.2f} dB -> "
        f"{result.val_snr_after_db:.2f} dB after {result.steps} steps; {verdict}"
    )
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from .model import registry

    if args.action == "use":
        if not args.name:
            raise EcgStudioError("say which version to use: ecgstudio models use NAME (see ecgstudio models list)")
        registry.activate(args.name, data_dir=args.data_dir)
    elif args.action == "rollback":
        registry.rollback(data_dir=args.data_dir)
    for version in registry.list_versions(data_dir=args.data_dir):
        metrics = version.card.metrics
        snr = metrics.get("val_snr_db_after", metrics.get("val_snr_db"))
        mark = "*" if version.active else " "
        print(
            f"{mark} {version.name:32s} {version.card.version:28s}"
            f"{'' if snr is None else f'  val SNR {snr:.2f} dB'}  {version.path}"
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .paper import LAYOUTS
    from .synth.batch import DAMAGE_PRESETS

    parser = argparse.ArgumentParser(prog="ecgstudio", description="Turn paper ECGs into calibrated 12-lead signals.")
    parser.add_argument("--version", action="version", version=f"ecgstudio {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("synth", help="render synthetic ECG pages with exact ground truth")
    p.add_argument("--count", type=int, default=10, help="number of pages (default 10)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--layout", choices=sorted(LAYOUTS), help="fix the layout (default: random)")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same pages")
    p.add_argument("--damage", choices=DAMAGE_PRESETS, default="random", help="scan/photo damage (default random)")
    p.add_argument("--severity", type=float, default=0.5, help="damage strength 0-1 (default 0.5)")
    p.add_argument("--dpi", type=float, help="fix the resolution (default: random 100-300)")
    p.add_argument(
        "--records",
        nargs="+",
        metavar="DIR",
        help="folders of real WFDB/CSV records to plot (default: simulated signals)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser("digitize", help="turn ECG images, PDFs or folders into calibrated 12-lead signals")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files, PDFs or folders")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--format", default="wfdb", help="comma-separated: wfdb, csv, edf, json (default wfdb)")
    p.add_argument("--fs", type=float, default=500.0, help="output sampling rate in Hz (default 500)")
    p.add_argument("--layout", default="auto", choices=["auto", *sorted(LAYOUTS)], help="page layout (default auto)")
    p.add_argument("--speed", type=float, help="paper speed in mm/s (default 25)")
    p.add_argument("--gain", type=float, help="gain in mm/mV (default: from the calibration pulse, else 10)")
    p.add_argument(
        "--columns",
        choices=("auto", *COLUMN_ORDERS),
        default="auto",
        help="consecutive: each column continues the one before (the standard); from-zero: every "
        "column starts at 0 s; auto: read from the rhythm strip",
    )
    p.add_argument("--model", help="weights file (default: the shipped model)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--overlay", action="store_true", help="also write <stem>_overlay.png with boxes and traces")
    p.add_argument(
        "--complete",
        action="store_true",
        help="complete every lead over the whole record: the limb leads exactly wherever two were read, then "
        "each lead's own beats placed where the leads read at each moment show the beats (the CSV says per "
        "sample whether it was measured, filled inside its plotted window or reconstructed outside it; so "
        "does the JSON sidecar)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=0,
        help="processes digitizing at once, each loading the model (default: one per CPU core)",
    )
    p.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="run on a Ray cluster (pip install 'ecgstudio[cluster]'): its address, e.g. 10.0.0.5:6379, or none to "
        "start Ray on this machine; --workers actors, inputs and --out on storage every node sees",
    )
    p.add_argument(
        "--retry-failed",
        action="store_true",
        help="try again the pages that failed in an earlier run into the same --out (done pages are always skipped)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace files already in --out that this run writes (by default the run stops before writing, "
        "naming them)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_digitize)

    p = sub.add_parser("train", help="train the trace network on synthetic pages (resumable)")
    p.add_argument("--work-dir", default="runs/train", help="checkpoints; training resumes from here")
    p.add_argument("--out", help="where to save the weights (default WORK_DIR/tracenet.pt)")
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (cosine decay to 0)")
    p.add_argument(
        "--init",
        metavar="MODEL",
        help="continue from this model (weights file or version name) instead of random weights",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--records", nargs="+", metavar="DIR", help="folders of real records to render (plus simulated)")
    p.add_argument(
        "--exclude-pairs",
        nargs="+",
        metavar="CSV",
        help="never train on the records of these benchmark pairs CSVs (e.g. ../shared/data/pairs.csv "
        "../shared/data/ecg-image-kit-dev/pairs.csv); the validation suite's records are always left out",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("train-names", help="train the lead-name reader on rendered names (CPU, minutes)")
    p.add_argument(
        "--settings", action="store_true", help="train the printed-settings reader (25 mm/s, 10 mm/mV) instead"
    )
    p.add_argument(
        "--out", help="where to save the weights, card beside them (default runs/leadnames.pt or settings.pt)"
    )
    p.add_argument("--steps", type=int, default=2500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train_names)

    p = sub.add_parser(
        "train-restorer", help="train a restoration network on real records (CPU, < 1 h; see BENCHMARKS.md)"
    )
    _add_record_args(p)
    p.add_argument(
        "--engine-pages",
        type=int,
        default=0,
        metavar="N",
        help="also render N pages from the records and learn the engine's own reading errors from them",
    )
    p.add_argument("--readings", nargs="+", metavar="NPZ", help="engine readings written by an earlier run")
    p.add_argument("--model", help="trace network for --engine-pages (default: the active one)")
    p.add_argument("--work-dir", default="runs/restorer", help="checkpoints; training resumes from here")
    p.add_argument("--out", help="where to save the weights (default WORK_DIR/restorer.pt)")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train_restorer)

    p = sub.add_parser(
        "train-speed-reader", help="train the network telling 50 mm/s pages from 25 mm/s ones (CPU, minutes)"
    )
    _add_record_args(p)
    p.add_argument("--out", default="runs/speed/speed.pt", help="where to save the weights")
    p.add_argument("--steps", type=int, default=2500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train_speed_reader)

    p = sub.add_parser("finetune", help="fine-tune the model on reviewed labels (your own paper)")
    p.add_argument("labels", nargs="+", metavar="LABELS", help="label files (.labels.h5) or folders of them")
    p.add_argument("--base", help="start from this version or weights file (default: the active model)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, help="time budget (default 10 minutes)")
    budget.add_argument("--steps", type=int, help="number of training steps")
    p.add_argument("--out", help="name of the new model version (default finetune-<date>-<time>)")
    p.add_argument("--data-dir", help="user data folder holding model versions (default: the platform's)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--val-fraction", type=float, default=0.2, help="share of labelled pages kept for validation")
    p.add_argument("--include-unreviewed", action="store_true", help="also use labels not marked reviewed")
    p.add_argument("--skip-bad", action="store_true", help="skip unusable label files instead of stopping")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_finetune)

    p = sub.add_parser("models", help="list, switch or roll back model versions")
    p.add_argument("action", nargs="?", default="list", choices=["list", "use", "rollback"])
    p.add_argument("name", nargs="?", help="with 'use': the version to activate")
    p.add_argument("--data-dir", help="user data folder holding model versions (default: the platform's)")
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser("evaluate", help="score digitized records against ground truth")
    p.add_argument("pred_dir", help="folder of predicted WFDB records")
    p.add_argument("--truth", required=True, help="pairs CSV (image, ground_truth, ..., image_kind, layout)")
    p.add_argument(
        "--corrections",
        help="CSV of cells replacing the truth table's, by image, each with a "
        "reason (e.g. columns=from-zero for a page printing every column from 0 s)",
    )
    p.add_argument("--per-image", action="store_true", help="also list every image's score")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("gui", help="open the ECG Studio window (also what `ecgstudio` alone does)")
    p.add_argument("paths", nargs="*", metavar="PATH", help="scans, photos, PDFs or folders to open as a worklist")
    p.add_argument(
        "--selftest",
        action="store_true",
        help="check the installation: open the sample off-screen, wait for the proposals, print a "
        "one-line summary and exit (no display needed; your labels and settings are not touched)",
    )
    p.set_defaults(func=_cmd_gui)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv or ["gui"])  # no arguments: open the window
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except EcgStudioError as exc:
        print(f"ecgstudio: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ecgstudio: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
