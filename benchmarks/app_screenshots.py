"""Render screenshots of ECG Studio's main states to ``docs/screenshots/`` (PNG, via ``widget.grab()``).

States: the welcome panel; the sample with the model's proposals; a trace point being dragged;
the calibration panel after a ruler measurement; a folder worklist with pages in every status;
the message shown for a damaged label file; the fine-tune dialog while training and when
finished; the model versions dialog; a worklist after re-running the fine-tuned model, with
the pages whose proposals changed marked.

Runs headless (``QT_QPA_PLATFORM=offscreen`` unless a platform is set) with the shipped model;
digitizes the sample once.  Settings, labels and model versions go to a temporary folder; the
fine-tune (a short one, on tiny synthetic pages) runs in a worker process as in the studio.

    python benchmarks/app_screenshots.py [--out docs/screenshots] [--only model]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PySide6.QtCore import QPoint, QSettings, Qt  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402


class OnceDigitizer:
    """The real digitizer, run once per distinct image."""

    def __init__(self) -> None:
        from ecgstudio.pipeline import Digitizer

        self.real = Digitizer("shipped")  # whatever version the user made active
        self.cache: dict = {}

    def digitize(self, image, options, *, progress=None):
        key = (image.shape, int(image[::50, ::50].sum()), options)
        if key not in self.cache:
            self.cache[key] = self.real.digitize(image, options, progress=progress)
        return self.cache[key]


def pump(app: QApplication, seconds: float = 0.2, until=None, timeout: float = 120.0) -> None:
    end = time.monotonic() + (timeout if until else seconds)
    while time.monotonic() < end:
        app.processEvents()
        if until is not None and until():
            break
        time.sleep(0.01)
    app.processEvents()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument(
        "--only",
        choices=("all", "model"),
        default="all",
        help="'model': only the fine-tune, model versions and re-run screenshots (07-10)",
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    import pyqtgraph as pg

    app = QApplication.instance() or QApplication(sys.argv[:1])
    pg.setConfigOptions(antialias=True)
    from ecgstudio.app.settings import AppSettings
    from ecgstudio.app.window import MainWindow

    tmp = Path(tempfile.mkdtemp(prefix="ecgstudio-shots-"))
    digitizer = OnceDigitizer() if args.only == "all" else None
    written = []

    def window(**kwargs) -> MainWindow:
        settings = AppSettings(QSettings(str(tmp / "settings.ini"), QSettings.Format.IniFormat))
        settings.reviewer = "Dr A. Reviewer"
        kwargs.setdefault("digitizer_factory", lambda: digitizer)
        w = MainWindow(settings=settings, labels_root=tmp / "labels", data_dir=tmp / "data", **kwargs)
        w.ask_reviewer = lambda name: name  # the reviewer confirms the name offered
        w.show()
        pump(app, 0.3)
        return w

    def shot(w, name: str) -> None:
        pump(app, 0.3)
        path = args.out / f"{name}.png"
        w.grab().save(str(path))
        written.append(path)

    def opened(w: MainWindow) -> bool:
        return w.document is not None or (not w.busy and bool(w.banner_text()))

    if args.only == "all":
        basic_states(app, window, shot, opened, digitizer, tmp)
    model_states(app, window, shot, opened, tmp)

    shutil.rmtree(tmp, ignore_errors=True)
    for path in written:
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    return 0


def basic_states(app, window, shot, opened, digitizer, tmp: Path) -> None:
    """Screenshots 01-06 and 11: welcome, proposals, editing, calibration, worklist, damaged labels,
    completed leads."""
    from ecgstudio.app.scan_view import Tool
    from ecgstudio.app.window import SAMPLE_SCAN

    # 1. Welcome.
    w = window()
    shot(w, "01_welcome")

    # 2. Proposals on the sample, one lead selected.
    w.open_sample()
    pump(app, until=lambda: opened(w))
    doc = w.document
    doc.select(doc.box_for_lead("V2"))
    shot(w, "02_proposals")

    # 11. Every lead completed over the whole record (Ctrl+5), dashed where the paper does not show it.
    w.show_completion(True)
    pump(app, 0.2)
    shot(w, "11_completed_leads")
    w.show_completion(False)

    # 3. Editing a trace: zoomed on a lead, dragging a point with the mouse (button still down).
    k = doc.box_for_lead("V2")
    w.set_tool(Tool.POINTS)
    w.scan_view.zoom_to_box(k)
    pump(app, 0.2)
    xy = doc.traces[k].xy
    box = doc.boxes[k]
    inner = np.isfinite(xy).all(axis=1) & (xy[:, 0] > box.x0 + 0.2 * box.width) & (xy[:, 0] < box.x0 + 0.6 * box.width)
    finite = np.flatnonzero(inner)
    peak = finite[np.argmin(xy[finite, 1])]  # an R wave away from the box's edges
    vp = w.scan_view.viewport()
    start = w.scan_view.mapFromScene(*xy[peak])
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    for dy in range(2, 24, 4):
        QTest.mouseMove(vp, start + QPoint(0, -dy))
        pump(app, 0.02)
    erase_from = doc.boxes[k].x0 + 0.62 * doc.boxes[k].width
    doc.erase_stretch(k, erase_from, erase_from + 40)
    shot(w, "03_editing_trace")
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start + QPoint(0, -22))

    # 4. Calibration: the ruler across four big squares (20 mm) of the grid, result shown.
    w.calibration_panel.ruler_mm.setValue(20.0)
    w.set_tool(Tool.RULER)
    w.calibration_dock.raise_()
    cal = doc.calibration
    ki = doc.box_for_lead("I")
    doc.select(ki)
    w.scan_view.zoom_to_box(ki)
    pump(app, 0.2)
    b = doc.boxes[ki]
    y = b.y0 + 0.25 * b.height
    for x in (b.x0 + 60, b.x0 + 60 + 20 * cal.px_per_mm_x):
        QTest.mouseClick(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, w.scan_view.mapFromScene(x, y))
    shot(w, "04_calibration")
    w.close()

    # 5. A folder worklist with pages in every status, sorted lowest confidence first.
    folder = tmp / "clinic_scans"
    folder.mkdir()
    for name in ("patient_017.jpg", "patient_023.jpg", "patient_031.jpg", "patient_044.jpg", "patient_052.jpg"):
        shutil.copy(SAMPLE_SCAN, folder / name)
    w = window()
    w.open_paths([folder])
    pump(app, until=lambda: opened(w))
    w.accept_and_next()  # 017 reviewed
    pump(app, until=lambda: opened(w))
    d = w.document
    j = int(np.flatnonzero(np.isfinite(d.traces[0].xy).all(axis=1))[40])
    d.move_point(0, j, d.traces[0].xy[j, 1] - 5)  # 023 corrected
    w.accept_and_next()
    pump(app, until=lambda: opened(w))  # 031 proposed
    conf = [0.62, 0.47, 0.55]
    for item, c in zip(w.worklist.model.items, conf):  # the copies are identical: vary the numbers shown
        item.confidence = c
    w.worklist.sort_combo.setCurrentText("Lowest confidence first")
    w.worklist.model.item_changed(0)
    shot(w, "05_worklist")
    w.close()

    # 6. A damaged label file: a clear message, the proposals instead, the file left alone.
    (folder / "labels" / "patient_044.labels.h5").write_bytes(b"not an HDF5 file")
    w = window()
    w.open_paths([folder])
    pump(app, until=lambda: opened(w))
    w.open_row([i.page.source.name for i in w.worklist.model.items].index("patient_044.jpg"))
    pump(app, until=lambda: opened(w))
    shot(w, "06_damaged_labels")
    w.close()


def model_states(app, window, shot, opened, tmp: Path) -> None:
    """Screenshots 07-10: the fine-tune dialog running and finished, model versions, re-run changes."""
    # 7-10. Fine-tune on the reviewed pages of a worklist (worker process), versions, re-run.
    from dataclasses import replace

    from ecgstudio.synth.batch import write_pages
    from ecgstudio.training.finetune import FinetuneConfig

    ward = tmp / "ward_b"
    write_pages(ward, 6, seed=5, layout="3x4+1", damage="none", style_overrides={"dpi": 200})
    (ward / "labels").mkdir()
    for k, label in enumerate(sorted(ward.glob("*.labels.h5"))):
        if k < 4:
            label.rename(ward / "labels" / label.name)  # reviewed pages, where a folder worklist keeps them
        else:
            label.unlink()  # new pages: the model proposes them
    config = replace(
        FinetuneConfig(threads=1),
        steps=30,
        batch_size=4,
        crop=128,
        synthetic_share=0.25,
        new_synthetic_every=10,
        warmup_steps=3,
    )
    w = window(digitizer_factory=None, finetune_config=config)  # the active model of the data folder
    w.resize(1400, 900)
    w.open_paths([ward])
    pump(app, until=lambda: opened(w))
    w.rerun_worklist()  # first proposals for the new pages, with the shipped model
    pump(app, until=lambda: not w.worklist_rerun.running, timeout=300)
    w.act_finetune.trigger()
    dialog = w.finetune_dialog
    dialog.set_budget(5.0)
    dialog.start_button.click()
    pump(app, until=lambda: not w.finetune_runner.running or dialog.bar.value() >= 60, timeout=600)
    shot(dialog, "07_finetune_running")
    pump(app, until=lambda: not w.finetune_runner.running, timeout=600)
    shot(dialog, "08_finetune_finished")
    dialog.hide()
    w.show_versions()
    versions = w.versions_dialog
    newest = versions.versions[-1].name
    if not versions.versions[-1].active:  # switch to it by hand, as a person would to compare
        versions.select(newest)
        versions.use_button.click()
    shot(versions, "09_model_versions")
    versions.hide()
    w.rerun_worklist()
    pump(app, until=lambda: not w.worklist_rerun.running, timeout=300)
    w.worklist.sort_combo.setCurrentText("Largest change first")
    w.resizeDocks([w.worklist_dock], [330], Qt.Orientation.Horizontal)
    shot(w, "10_rerun_changes")
    w.close()


if __name__ == "__main__":
    sys.exit(main())
