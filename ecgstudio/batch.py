"""Digitize files and folders: every page of every input, written to an output folder.

A page that fails is reported and skipped; the others go on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .errors import EcgStudioError
from .io.atomic import atomic_path
from .io.images import collect_inputs, iter_pages
from .io.writers import write_signals
from .overlay import draw_overlay
from .pipeline import DigitizeOptions, Digitizer

log = logging.getLogger(__name__)


@dataclass
class BatchReport:
    """What a batch run did: written files per page stem, and failures with their reasons."""

    written: dict[str, list[Path]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed


def write_png(path: Path, image: np.ndarray) -> Path:
    """Write an RGB image as PNG atomically."""
    ok, data = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]))
    if not ok:
        raise OSError(f"could not encode {path}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.tobytes())
    return path


def digitize_paths(
    paths: Sequence[str | Path],
    out_dir: str | Path,
    *,
    options: DigitizeOptions = DigitizeOptions(),
    formats: Sequence[str] = ("wfdb",),
    overlay: bool = False,
    digitizer: Digitizer | None = None,
    on_page: Callable[[str, str | None], None] | None = None,
) -> BatchReport:
    """Digitize every page of ``paths`` (files or folders) into ``out_dir``.

    ``on_page(stem, error)`` is called after each page (``error`` None on success).
    """
    out_dir = Path(out_dir)
    digitizer = digitizer or Digitizer()
    report = BatchReport()
    for path in collect_inputs(paths):
        try:
            pages = iter_pages(path)
            for page in pages:
                stem = page.stem
                try:
                    result = digitizer.digitize(page.image, options)
                    sidecar = {
                        "calibration": result.calibration,
                        "layout": result.layout,
                        "provenance": {
                            "source": str(path),
                            "page": page.page_index + 1,
                            "model_version": result.model_version,
                        },
                    }
                    files = write_signals(
                        result.signals, out_dir, stem, formats=formats, sidecar=sidecar if "json" in formats else None
                    )
                    if overlay:
                        files.append(write_png(out_dir / f"{stem}_overlay.png", draw_overlay(page.image, result)))
                    report.written[stem] = files
                    error = None
                except EcgStudioError as exc:
                    report.failed[stem] = str(exc)
                    error = str(exc)
                if on_page:
                    on_page(stem, error)
        except EcgStudioError as exc:
            report.failed[path.stem] = str(exc)
            if on_page:
                on_page(path.stem, str(exc))
    return report
