"""Write batches of synthetic pages with their ground truth to a folder.

Per page ``page_NNNNN``: the image (``.png``), the ground truth as an HDF5 label file
(``.labels.h5``: boxes, polylines, masks, calibration, plotted signals), the full record
as WFDB (``.hea``/``.dat``) and a JSON file with the style, damage, warp and seed.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np

from ..io.atomic import atomic_path, write_text_atomic
from ..io.signals import read_signals
from ..io.writers import write_wfdb
from ..labels import ImageIdentity, LabelRecord, Review, ReviewStatus, save_labels
from ..results import Signals
from .damage import DamageSettings
from .render import PageStyle, SynthPage, render_page

log = logging.getLogger(__name__)

DAMAGE_PRESETS = ("none", "random", "all")


#: One real record in this many, chosen by a hash of its id, is kept for validation
#: (``benchmarks/bench_suite.py``): no training run renders it.
VALIDATION_ONE_IN = 8


def is_validation_record(name: str) -> bool:
    """Whether the record ``name`` (a file stem such as ``01612_hr``; its id is the part before
    the first ``_``) belongs to the validation records that training leaves out."""
    record_id = name.split("_")[0]
    return int(hashlib.sha256(record_id.encode("utf-8")).hexdigest(), 16) % VALIDATION_ONE_IN == 0


class RecordPool:
    """Real records to plot, read lazily from WFDB/CSV files, mixed with simulated ones.

    ``simulate_share`` of the picks (all of them when there are no files) return None, which
    tells the renderer to simulate a record.
    """

    def __init__(self, paths: Sequence[Path] = (), *, simulate_share: float = 0.3) -> None:
        self.paths = [Path(p) for p in paths]
        self.simulate_share = simulate_share
        self._cache: dict[Path, Signals] = {}

    @classmethod
    def from_folders(
        cls,
        folders: Sequence[str | Path],
        *,
        simulate_share: float = 0.3,
        exclude: Sequence[str] = (),
        validation: bool | None = None,
    ) -> RecordPool:
        """All WFDB headers (``*.hea``) and CSV files under the given folders, but the records
        whose ids are in ``exclude``; with ``validation`` False (training) or True (the
        validation suite) only the records :func:`is_validation_record` says are not, or are."""
        paths: list[Path] = []
        for folder in folders:
            folder = Path(folder)
            if folder.is_file():
                paths.append(folder)
                continue
            paths += sorted(folder.rglob("*.hea")) + sorted(folder.rglob("*.csv"))
        excluded = set(exclude)
        paths = [p for p in paths if p.stem.split("_")[0] not in excluded]
        if validation is not None:
            paths = [p for p in paths if is_validation_record(p.stem) == validation]
        return cls(paths, simulate_share=simulate_share)

    def __len__(self) -> int:
        return len(self.paths)

    def pick(self, rng: np.random.Generator) -> Signals | None:
        """A random record, or None (simulate)."""
        if not self.paths or rng.random() < self.simulate_share:
            return None
        path = self.paths[int(rng.integers(len(self.paths)))]
        if path not in self._cache:
            self._cache[path] = read_signals(path)
        return self._cache[path]


def damage_for(preset: str, rng: np.random.Generator, *, severity: float = 0.5) -> DamageSettings:
    """Damage settings for a preset name (see :data:`DAMAGE_PRESETS`)."""
    if preset == "none":
        return DamageSettings.none()
    if preset == "all":
        return DamageSettings.all(severity)
    if preset == "random":
        return DamageSettings.random(rng, severity=severity)
    raise ValueError(f"unknown damage preset {preset!r}; choose one of {', '.join(DAMAGE_PRESETS)}")


def iter_pages(
    count: int,
    *,
    seed: int = 0,
    layout: str | None = None,
    damage: str = "random",
    severity: float = 0.5,
    records: RecordPool | None = None,
    style_overrides: dict | None = None,
) -> Iterator[SynthPage]:
    """Render ``count`` random pages, deterministically for a seed (page ``k`` uses seed ``seed + k``)."""
    records = records or RecordPool()
    for k in range(count):
        rng = np.random.default_rng([seed, k])
        fixed = dict(style_overrides or {})
        if layout:
            fixed["layout"] = layout
        style = PageStyle.random(rng, **fixed)
        yield render_page(
            records.pick(rng),
            style=style,
            damage=damage_for(damage, rng, severity=severity),
            seed=int(rng.integers(2**31)),
        )


def write_page(page: SynthPage, out_dir: str | Path, name: str) -> Path:
    """Write one page and its ground truth; returns the image path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    image_path = out_dir / f"{name}.png"
    ok, png = cv2.imencode(".png", np.ascontiguousarray(page.image[..., ::-1]))
    if not ok:
        raise OSError(f"could not encode {image_path}")
    with atomic_path(image_path) as tmp:
        tmp.write_bytes(png.tobytes())
    record = LabelRecord(
        image=ImageIdentity.from_array(image_path, page.image),
        digitization=page.to_digitization(),
        review=Review(status=ReviewStatus.REVIEWED, reviewer="ecgstudio synth"),
    )
    save_labels(record, out_dir / f"{name}.labels.h5")
    write_wfdb(page.signals, out_dir, name, comments=(f"synthetic page, seed {page.seed}",))
    meta = {
        "seed": page.seed,
        "style": asdict(page.style),
        "damage": asdict(page.damage),
        "warp": page.warp.describe(),
        "calibration": asdict(page.calibration),
        "layout": page.layout.name,
        "windows_s": {f"{b.lead}@{b.row},{b.col}": [b.t_start_s, b.t_start_s + b.duration_s] for b in page.boxes},
    }
    write_text_atomic(out_dir / f"{name}.json", json.dumps(meta, indent=2))
    return image_path


def write_pages(
    out_dir: str | Path,
    count: int,
    *,
    progress: Callable[[int], None] | None = None,
    **options,
) -> list[Path]:
    """Render and write ``count`` pages (options as :func:`iter_pages`); returns the image paths."""
    paths = []
    for k, page in enumerate(iter_pages(count, **options)):
        paths.append(write_page(page, out_dir, f"page_{k:05d}"))
        if progress:
            progress(k + 1)
    log.info("wrote %d pages to %s", len(paths), out_dir)
    return paths
