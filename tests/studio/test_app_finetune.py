"""The studio's model menu as a person uses it: fine-tune, model versions, re-run on the worklist.

Headless (``QT_QPA_PLATFORM=offscreen``, set in conftest).  Pages are tiny synthetic ones whose
ground truth is written as reviewed label files in ``<folder>/labels/`` (where a folder
worklist keeps them); model versions go to a temporary data directory, never the user's.
One test goes through the real worker process; the others run the same job in a thread, and
the digitizer answers with the ground truth scaled per model version (fast and predictable).
"""

from __future__ import annotations

import errno
import hashlib
import os
import signal
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("pytestqt")

from PySide6.QtCore import Qt, QTimer

import ecgstudio.training.finetune as ft
from ecgstudio.app.window import MainWindow
from ecgstudio.app.worklist import CHANGE_COLUMN, CHANGED_COLOR
from ecgstudio.editing.proposals import ProposalChange, proposal_change
from ecgstudio.io.images import read_pages
from ecgstudio.labels import Review, ReviewStatus, load_labels, save_labels
from ecgstudio.model import registry
from ecgstudio.model.weights import DEFAULT_MODEL, ModelCard, load_model
from ecgstudio.results import Signals
from ecgstudio.synth.batch import write_pages
from ecgstudio.training.finetune import FinetuneConfig

WAIT_MS = 90_000
#: Two steps on tiny crops, no synthetic pages, one torch thread (several threads on a busy
#: machine spin): a run takes a few seconds on a CPU.
QUICK = FinetuneConfig(
    steps=2, batch_size=2, crop=64, warmup_steps=1, synthetic_share=0.0, device="cpu", val_fraction=0.5, threads=1
)


def _key(image: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def worklist(tmp_path) -> tuple[Path, dict]:
    """A folder of 3 tiny pages: ``page_00000`` and ``page_00001`` reviewed, ``page_00002`` proposed.

    Returns the folder and the ground truth digitizations keyed by image content.
    """
    folder = tmp_path / "scans"
    write_pages(folder, 3, seed=11, layout="3x4+1", damage="none", style_overrides={"dpi": 100})
    labels = folder / "labels"
    labels.mkdir()
    for f in sorted(folder.glob("*.labels.h5")):
        f.rename(labels / f.name)
    proposed = labels / "page_00002.labels.h5"
    record = load_labels(proposed)
    save_labels(replace(record, review=Review(ReviewStatus.PROPOSED)), proposed)
    truths = {
        _key(read_pages(p)[0].image): load_labels(labels / f"{p.stem}.labels.h5").digitization
        for p in sorted(folder.glob("*.png"))
    }
    return folder, truths


class VersionedDigitizer:
    """Answers with a page's ground truth, scaled by 1.5 unless the shipped model is active."""

    def __init__(self, truths: dict, data_dir: Path, made: list[str]) -> None:
        self.truths = truths
        self.version = registry.active_version(data_dir=data_dir).name
        made.append(self.version)

    def digitize(self, image, options, *, progress=None):
        dig = self.truths[_key(image)]
        scale = 1.0 if self.version == registry.SHIPPED else 1.5
        s = dig.signals
        return replace(dig, signals=Signals(s.mv * scale, s.fs, s.lead_names), model_version=self.version)


@pytest.fixture
def make_window(studio_window, tmp_path, worklist):
    """Studio windows (see ``studio_window``) with a fine-tune set-up; torch threads restored."""
    made_digitizers: list[str] = []
    threads = torch.get_num_threads()  # a fine-tune in a thread sets them for the whole process

    def make(*, mode: str = "thread", config: FinetuneConfig = QUICK, real_digitizer: bool = False) -> MainWindow:
        data_dir = tmp_path / "data"
        factory = None if real_digitizer else (lambda: VersionedDigitizer(worklist[1], data_dir, made_digitizers))
        w = studio_window(digitizer_factory=factory, finetune_config=config, finetune_mode=mode)
        w.made_digitizers = made_digitizers
        return w

    yield make
    torch.set_num_threads(threads)


def open_folder(qtbot, w: MainWindow, folder: Path) -> None:
    assert w.open_paths([folder])
    qtbot.waitUntil(lambda: w.document is not None or (not w.busy and bool(w.banner_text())), timeout=WAIT_MS)


def run_finetune(qtbot, w: MainWindow, *, timeout: int = WAIT_MS):
    """Press Fine-tune, then Start in the dialog; wait for the end.  Returns the dialog."""
    w.act_finetune.trigger()
    dialog = w.finetune_dialog
    assert dialog is not None and dialog.isVisible()
    qtbot.mouseClick(dialog.start_button, Qt.MouseButton.LeftButton)
    assert w.finetune_runner.running and not dialog.start_button.isEnabled()
    qtbot.waitUntil(lambda: not w.finetune_runner.running, timeout=timeout)
    return dialog


@pytest.fixture
def fixed_scores(monkeypatch):
    """Validation scores (before, after) given by the test (thread mode only): fast, outcome chosen."""
    values: list[float] = []
    monkeypatch.setattr(ft, "labeled_validation_snr", lambda model, samples, **kw: values.pop(0))
    return values


# ---------------------------------------------------------------------- fine-tune in the worker process


def test_finetune_in_a_worker_process_then_rerun_marks_changed_pages(qtbot, make_window, worklist, tmp_path) -> None:
    folder, _ = worklist
    labels = folder / "labels"
    # min_gain_db far below zero: the new version is activated whatever two steps do to the score.
    w = make_window(mode="process", config=replace(QUICK, min_gain_db=-1e9), real_digitizer=True)
    open_folder(qtbot, w, folder)
    assert w.document.review.status == ReviewStatus.REVIEWED  # opened from its labels, no model run
    reviewed = {p: _sha(p) for p in (labels / "page_00000.labels.h5", labels / "page_00001.labels.h5")}

    w.act_finetune.trigger()
    dialog = w.finetune_dialog
    assert "2 signed-off pages" in dialog.pages.text() and "1 other page is not signed off" in dialog.pages.text()
    assert dialog.budget.currentData() == 10.0  # the default budget
    seen = []
    w.finetune_runner.progress.connect(lambda p: seen.append(p.stage))
    ticks: list[float] = []
    heartbeat = QTimer()
    heartbeat.setInterval(20)
    heartbeat.timeout.connect(lambda: ticks.append(time.perf_counter()))
    heartbeat.start()
    qtbot.mouseClick(dialog.start_button, Qt.MouseButton.LeftButton)
    pid = w.finetune_runner.pid
    assert pid is not None and pid != os.getpid()  # a real worker process
    assert w.finetune_status.isVisible() and dialog.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: not w.finetune_runner.running, timeout=WAIT_MS)
    heartbeat.stop()
    assert len(ticks) > 20 and np.diff(ticks).max() < 1.5  # the window kept handling events throughout

    versions = registry.list_versions(data_dir=tmp_path / "data")
    assert next(v.name for v in versions) == registry.SHIPPED and len(versions) == 2
    new = versions[1]
    assert new.active and new.path.is_relative_to(tmp_path / "data" / "models")
    assert {"validating base model", "training", "done"} <= set(seen)
    text = w.banner_text()
    assert new.name in text and "is now active" in text and "validation SNR" in text and "dB ->" in text
    assert "Traceback" not in text
    assert dialog.result.text() == text and dialog.rerun_button.isVisible() and not w.finetune_status.isVisible()
    assert w.model_label.text() == f"Model: {new.name}"
    assert "->" in dialog.snr.text()

    # Re-run with the new model: the proposed page gets a new proposal, the reviewed ones are kept.
    qtbot.mouseClick(dialog.rerun_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not w.worklist_rerun.running, timeout=WAIT_MS)
    summary = w.banner_text()
    assert "2 edited or signed-off pages were not touched" in summary, summary
    assert "only replaces the proposals of new and proposed pages" in summary
    record = load_labels(labels / "page_00002.labels.h5")
    assert record.review.status == ReviewStatus.PROPOSED and record.digitization.model_version == new.name
    assert {p: _sha(p) for p in reviewed} == reviewed
    item = w.worklist.model.items[2]
    assert item.change is not None and item.change.changed  # the model's output is not the ground truth
    assert "1 of 1 page changed; largest change: page_00002.png" in summary
    assert not w.worklist.table.isColumnHidden(CHANGE_COLUMN)


def test_a_worker_process_that_dies_is_reported(qtbot, make_window, worklist, tmp_path) -> None:
    folder, _ = worklist
    w = make_window(mode="process")
    open_folder(qtbot, w, folder)
    w.act_finetune.trigger()
    qtbot.mouseClick(w.finetune_dialog.start_button, Qt.MouseButton.LeftButton)
    os.kill(w.finetune_runner.pid, signal.SIGKILL)  # as the system does when memory runs out
    qtbot.waitUntil(lambda: not w.finetune_runner.running, timeout=WAIT_MS)
    text = w.banner_text()
    assert "the fine-tune process was killed" in text and "active model is unchanged" in text
    assert w.finetune_dialog.start_button.isEnabled() and not w.finetune_status.isVisible()
    assert registry.active_version(data_dir=tmp_path / "data").name == registry.SHIPPED


# ---------------------------------------------------------------------- outcomes and errors (thread)


def test_finetune_kept_inactive_then_versions_dialog_switches_and_rolls_back(
    qtbot, make_window, worklist, tmp_path, fixed_scores
) -> None:
    folder, _ = worklist
    data_dir = tmp_path / "data"
    fixed_scores += [12.0, 11.5]  # the new model does worse on the held-out page
    w = make_window()
    open_folder(qtbot, w, folder)
    dialog = run_finetune(qtbot, w)
    new = registry.list_versions(data_dir=data_dir)[-1]
    assert not new.active and registry.active_version(data_dir=data_dir).name == registry.SHIPPED
    text = w.banner_text()
    assert f"new model version {new.name} was saved but kept inactive: not better than the current model" in text
    assert "validation SNR 12.0 dB -> 11.5 dB" in text
    assert not dialog.rerun_button.isVisible() and w.model_label.text() == "Model: shipped"

    # The versions dialog: both versions, the shipped one marked active; switch to the new one.
    qtbot.mouseClick(dialog.versions_button, Qt.MouseButton.LeftButton)
    vd = w.versions_dialog
    assert vd.isVisible() and vd.table.rowCount() == 2
    assert [vd.table.item(r, 1).text() for r in range(2)] == [registry.SHIPPED, new.name]
    assert vd.table.item(0, 0).text() == "●" and vd.table.item(1, 0).text() == ""
    assert vd.table.item(1, 2).text() == "11.5 dB (base 12.0 dB)"
    vd.select(new.name)
    qtbot.mouseClick(vd.use_button, Qt.MouseButton.LeftButton)
    assert registry.active_version(data_dir=data_dir).name == new.name
    assert vd.table.item(1, 0).text() == "●" and w.model_label.text() == f"Model: {new.name}"
    assert f"Now using model {new.name}" in w.banner_text()

    # The worker's digitizer is made again with the new active version (the proposed page shows it).
    w.rerun_worklist()
    qtbot.waitUntil(lambda: not w.worklist_rerun.running, timeout=WAIT_MS)
    assert w.made_digitizers[-1] == new.name
    assert load_labels(folder / "labels" / "page_00002.labels.h5").digitization.model_version == new.name

    qtbot.mouseClick(vd.rollback_button, Qt.MouseButton.LeftButton)
    assert registry.active_version(data_dir=data_dir).name == registry.SHIPPED
    assert "Rolled back from" in vd.note.text() and w.model_label.text() == "Model: shipped"
    qtbot.mouseClick(vd.rollback_button, Qt.MouseButton.LeftButton)  # nothing before the shipped model
    assert "nothing to roll back to" in vd.note.text()
    assert registry.active_version(data_dir=data_dir).name == registry.SHIPPED


def test_finetune_cancel_saves_nothing(qtbot, make_window, worklist, tmp_path, fixed_scores) -> None:
    folder, _ = worklist
    fixed_scores += [12.0, 13.0]
    w = make_window(config=replace(QUICK, steps=10_000))
    open_folder(qtbot, w, folder)
    w.act_finetune.trigger()
    dialog = w.finetune_dialog
    dialog.budget.setCurrentIndex(0)  # 2 minutes
    w.finetune_runner.progress.connect(
        lambda p: dialog.cancel_button.click() if p.stage == "training" and dialog.cancel_button.isEnabled() else None
    )
    qtbot.mouseClick(dialog.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not w.finetune_runner.running, timeout=WAIT_MS)
    text = w.banner_text()
    assert "cancelled" in text and "nothing was saved" in text and "Traceback" not in text
    assert dialog.stage.text() == "Stopped" and dialog.start_button.isEnabled()
    assert not (tmp_path / "data" / "models").exists() or not any((tmp_path / "data" / "models").iterdir())
    assert registry.active_version(data_dir=tmp_path / "data").name == registry.SHIPPED
    assert w.settings.finetune_minutes == 2.0


def test_finetune_errors_are_messages_in_the_window(
    qtbot, make_window, worklist, tmp_path, monkeypatch, fixed_scores
) -> None:
    folder, _ = worklist
    labels = folder / "labels"
    data_dir = tmp_path / "data"
    w = make_window()
    open_folder(qtbot, w, folder)

    # Fewer than 2 reviewed pages: said at once, no dialog, no run.
    reviewed = load_labels(labels / "page_00001.labels.h5")
    save_labels(replace(reviewed, review=Review(ReviewStatus.PROPOSED)), labels / "page_00001.labels.h5")
    w.act_finetune.trigger()
    assert "Only 1 page of this worklist is reviewed yet" in w.banner_text() and "at least 2" in w.banner_text()
    assert w.finetune_dialog is None and not w.finetune_runner.running
    save_labels(reviewed, labels / "page_00001.labels.h5")

    # A full disk while saving the new version.
    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    fixed_scores += [12.0, 13.0]
    monkeypatch.setattr(registry, "save_version", full_disk)
    run_finetune(qtbot, w)
    text = w.banner_text()
    assert "Fine-tune failed: not enough disk space" in text and "active model is unchanged" in text
    assert w.finetune_dialog.stage.text() == "Failed" and "Traceback" not in text
    monkeypatch.undo()

    # An image changed since it was labelled.
    image = folder / "page_00001.png"
    image.write_bytes(image.read_bytes() + b"\0")
    run_finetune(qtbot, w)
    text = w.banner_text()
    assert "Fine-tune failed" in text and "changed since it was labelled" in text and "Traceback" not in text
    assert registry.active_version(data_dir=data_dir).name == registry.SHIPPED
    assert not (data_dir / "models").exists() or not any((data_dir / "models").iterdir())


def test_finetune_needs_reviewed_pages(qtbot, make_window, worklist) -> None:
    folder, _ = worklist
    for f in (folder / "labels").glob("*.h5"):
        f.unlink()
    w = make_window()
    open_folder(qtbot, w, folder)  # the first page gets the model's proposals
    assert w.document.review.status == ReviewStatus.PROPOSED
    w.act_finetune.trigger()
    assert "No page of this worklist is reviewed yet" in w.banner_text()
    assert w.finetune_dialog is None


# ---------------------------------------------------------------------- re-run on the worklist


def test_rerun_marks_changed_pages_and_never_overwrites_reviewed_ones(qtbot, make_window, worklist, tmp_path) -> None:
    folder, _ = worklist
    labels = folder / "labels"
    data_dir = tmp_path / "data"
    (labels / "page_00001.labels.h5").unlink()  # page 1: new (no proposal yet)
    model, _card = load_model(DEFAULT_MODEL)
    registry.save_version(model, ModelCard(version="other"), "other", data_dir=data_dir)
    w = make_window()
    open_folder(qtbot, w, folder)
    kept = _sha(labels / "page_00000.labels.h5")

    # The shipped model: page 2's proposal (the ground truth) comes back the same; page 1 gets its first.
    w.act_rerun_worklist.trigger()
    assert w.rerun_progress.isVisible()
    qtbot.waitUntil(lambda: not w.worklist_rerun.running, timeout=WAIT_MS)
    items = w.worklist.model.items
    assert items[1].change.first and not items[2].change.changed and items[2].change.mean_abs_mv == 0.0
    assert w.worklist.model.data(w.worklist.model.index(2, CHANGE_COLUMN)) == "same"
    assert "0 of 1 page changed" in w.banner_text() and "1 page got a first proposal" in w.banner_text()
    assert [i.status for i in items] == ["reviewed", "proposed", "proposed"]
    assert not w.rerun_progress.isVisible()

    # Another model: page 2 changes (signals x 1.5) and is marked; the reviewed page 0 is left alone.
    w.open_row(2)
    assert w.document.review.status == ReviewStatus.PROPOSED
    registry.activate("other", data_dir=data_dir)
    w._model_changed()
    w.act_rerun_worklist.trigger()
    qtbot.waitUntil(lambda: not w.worklist_rerun.running, timeout=WAIT_MS)
    text = w.banner_text()
    assert "2 of 2 pages changed; largest change: page_0000" in text, text
    assert "1 edited or signed-off page was not touched" in text
    assert _sha(labels / "page_00000.labels.h5") == kept
    model_ = w.worklist.model
    assert model_.data(model_.index(2, CHANGE_COLUMN)) not in ("", "same", "first")
    assert model_.data(model_.index(2, 0), Qt.ItemDataRole.BackgroundRole).color().name() == CHANGED_COLOR
    assert model_.data(model_.index(0, CHANGE_COLUMN)) == ""
    # The open page shows the new proposal.
    assert w.document.model_version == "other"
    assert load_labels(labels / "page_00002.labels.h5").digitization.model_version == "other"

    # An open page with edits is never overwritten.
    doc = w.document
    doc.move_point(0, 5, doc.traces[0].xy[5, 1] + 3)
    registry.rollback(data_dir=data_dir)
    w._model_changed()
    w.rerun_worklist()
    qtbot.waitUntil(lambda: not w.worklist_rerun.running, timeout=WAIT_MS)
    record = load_labels(labels / "page_00002.labels.h5")
    assert record.review.status == ReviewStatus.EDITED and record.digitization.model_version == "other"
    assert "2 edited or signed-off pages were not touched" in w.banner_text()


def test_proposal_change_compares_finite_samples_by_lead() -> None:
    t = np.arange(500) / 500.0
    mv = np.column_stack([np.sin(2 * np.pi * f * t) for f in (1.0, 2.0, 3.0)])
    mv[:100, 0] = np.nan
    old = Signals(mv, 500.0, ("I", "II", "III"))
    same = proposal_change(old, old)
    assert same.mean_abs_mv == 0.0 and same.coverage == 0.0 and not same.changed
    moved = mv.copy()
    moved[:, 1] += 0.2
    c = proposal_change(old, Signals(moved, 500.0, ("I", "II", "III")))
    assert c.changed and c.max_lead == "II" and c.max_lead_mv == pytest.approx(0.2)
    assert c.mean_abs_mv == pytest.approx(0.2 * 500 / (400 + 500 + 500))
    gaps = mv.copy()
    gaps[:, 2] = np.nan  # a lead lost: coverage changes, values do not
    g = proposal_change(old, Signals(gaps, 500.0, ("I", "II", "III")))
    assert g.mean_abs_mv == 0.0 and g.coverage == pytest.approx(500 / 1400) and g.changed
    half = proposal_change(old, Signals(mv[::2], 250.0, ("I", "II", "III")))  # another rate: resampled
    assert half.mean_abs_mv < 0.002 and half.coverage < 0.01 and not half.changed
    assert proposal_change(None, old) == ProposalChange(first=True) and not ProposalChange(first=True).changed


def test_a_check_with_nothing_to_measure_says_so() -> None:
    """Held-out pages accepted exactly as the model proposed them score the metric's cap for the
    base model: the message says the check measured nothing, never "100.0 dB"."""
    from ecgstudio.app.model_dialogs import finetune_result_text
    from ecgstudio.model.weights import DEFAULT_MODEL, ModelCard
    from ecgstudio.training.finetune import FinetuneResult

    version = registry.ModelVersion("finetune-x", DEFAULT_MODEL, ModelCard(version="finetune-x"), False)
    result = FinetuneResult(version, False, 100.0, 31.5, 10, 5.0, (Path("a.labels.h5"),), (Path("b.labels.h5"),))
    text = finetune_result_text(result)
    assert "nothing to measure" in text and "100.0 dB" not in text
    measured = replace(result, val_snr_before_db=14.0, val_snr_after_db=15.0, activated=True)
    assert "14.0 dB -> 15.0 dB" in finetune_result_text(measured)
