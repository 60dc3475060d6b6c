"""Latency of the studio: page open to proposals on screen, and edit to updated signal plot.

Measured headless (``QT_QPA_PLATFORM=offscreen`` unless set) with the shipped model on the
bundled sample scan.  "On screen" means the views have repainted synchronously
(``repaint()``), so painting is included.  Prints a markdown table.

    python benchmarks/app_latency.py [--repeats 40]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PySide6.QtCore import QPoint, QSettings, Qt  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40, help="edits per kind (default 40)")
    args = parser.parse_args()

    app = QApplication.instance() or QApplication(sys.argv[:1])
    from ecgstudio.app.scan_view import Tool
    from ecgstudio.app.settings import AppSettings
    from ecgstudio.app.window import SAMPLE_SCAN, MainWindow

    tmp = Path(tempfile.mkdtemp(prefix="ecgstudio-latency-"))
    settings = AppSettings(QSettings(str(tmp / "settings.ini"), QSettings.Format.IniFormat))
    w = MainWindow(settings=settings, labels_root=tmp / "labels")
    w.show()
    app.processEvents()

    def paint() -> None:
        w.scan_view.viewport().repaint()
        w.signal_view.viewport().repaint()

    def open_sample() -> float:
        start = time.perf_counter()
        w.open_sample()
        while w.document is None or w.busy:
            app.processEvents()
            if not w.busy and w.document is None and w.banner_text():  # no page: it failed
                raise SystemExit(f"digitizing failed: {w.banner_text()}")
            time.sleep(0.002)
        paint()
        return time.perf_counter() - start

    rows: list[tuple[str, ...]] = []
    cold = open_sample()  # loads the model in the worker thread, then digitizes
    label = w.document.label_path
    w._set_document(None)
    label.unlink()
    warm = open_sample()
    w._set_document(None)
    saved = open_sample()  # labels exist now: no model run
    opens = [
        ("first page (loads the model, digitizes)", cold),
        ("model loaded (digitizes)", warm),
        ("saved labels (no model run)", saved),
    ]

    doc = w.document
    k = doc.box_for_lead("V2")
    xy = doc.traces[k].xy
    finite = np.flatnonzero(np.isfinite(xy).all(axis=1))

    def timed(edit) -> tuple[list[float], list[float]]:
        """Per edit: ms until the signal plot is repainted, and until the scan is repainted too."""
        plot, both = [], []
        for r in range(args.repeats):
            start = time.perf_counter()
            edit(r)
            w.signal_view.viewport().repaint()
            plot.append((time.perf_counter() - start) * 1000)
            w.scan_view.viewport().repaint()
            both.append((time.perf_counter() - start) * 1000)
        return plot, both

    def stats(ms: list[float]) -> str:
        ms = sorted(ms)
        p95 = ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]
        return f"{statistics.median(ms):.1f} / {p95:.1f}"

    def add(what: str, result: tuple[list[float], list[float]]) -> None:
        rows.append((what, f"{stats(result[0])} ms", f"{stats(result[1])} ms"))

    i = int(finite[len(finite) // 2])
    y0 = float(xy[i, 1])
    drag_api = timed(lambda r: doc.move_point(k, i, y0 - (r % 10), merge_key="bench-api"))
    add("trace point drag (document API)", drag_api)

    # The same through the mouse: one press, then mouse moves on the scan view (Drag points tool).
    w.set_tool(Tool.POINTS)
    w.scan_view.zoom_to_box(k)
    app.processEvents()
    j = int(finite[len(finite) // 3])
    vp = w.scan_view.viewport()
    start_pt = w.scan_view.mapFromScene(*doc.traces[k].xy[j])
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start_pt)
    drag_mouse = timed(lambda r: QTest.mouseMove(vp, start_pt + QPoint(0, -1 - (r % 12))))
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start_pt)
    add("trace point drag (mouse move on the scan)", drag_mouse)

    gains = (10.0, 20.0)
    gain = timed(lambda r: doc.set_calibration(replace(doc.calibration, mm_per_mv=gains[r % 2]), merge_key=None))
    add("gain change (all 12 leads rescaled)", gain)
    px = doc.calibration.px_per_mm_x
    scale = timed(
        lambda r: doc.set_calibration(replace(doc.calibration, px_per_mm_x=px * (1 + 0.01 * (r % 2))), merge_key=None)
    )
    add("horizontal scale change (all leads resampled)", scale)
    kb = doc.box_for_lead("V1")
    move = timed(lambda r: doc.move_box(kb, 1.0 if r % 2 else -1.0, 0.0))
    add("box move (one lead re-derived)", move)

    print(
        f"ECG Studio latency on {SAMPLE_SCAN.name} ({doc.image.shape[1]}x{doc.image.shape[0]} px), "
        f"{os.cpu_count()} CPUs, Qt platform {app.platformName()}\n"
    )
    print("| open a page | until proposals are on screen |")
    print("|---|---|")
    for what, seconds in opens:
        print(f"| {what} | {seconds * 1000:.0f} ms |")
    print(
        f"\n| edit ({args.repeats} times) | to signal plot repainted, median / p95 | "
        "to both views repainted, median / p95 |"
    )
    print("|---|---|---|")
    for what, plot, both in rows:
        print(f"| {what} | {plot} | {both} |")
    w.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
