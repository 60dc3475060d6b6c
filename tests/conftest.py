"""Shared fixtures.  Tests that need the real data in ``../shared/data`` skip when it is absent.

The folders mirror the house: ``engine/`` (pipeline stages, synthetic pages), ``storage/`` (readers,
writers, the label store), ``editing/`` (the editing model, no Qt), ``studio/`` (the Qt windows,
the bundle), ``training/`` and ``e2e/`` (the pipeline and the command line on whole pages).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

# The studio tests run fine-tunes in a thread (the studio itself uses a process).  The first
# optimizer a process builds imports torch._dynamo (about 2 s of imports); done in that thread
# while the Qt event loop runs, it has twice stalled the whole run (the thread stuck in the
# import, the test waiting on it).  Importing it here, on the main thread, takes it out of the
# worker thread.
import torch._dynamo  # noqa: F401

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real ECG data beside the checkout (``../shared/data``), or skip."""
    if not (SHARED_DATA / "pairs.csv").is_file():
        pytest.skip(f"real ECG data not found at {SHARED_DATA} (only present in the development checkout)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def digitizer():
    """One digitizer with the shipped model (whatever version a user activated) for the whole
    session: loading the networks takes a second, and every engine and studio test can share it."""
    from ecgstudio.model.weights import DEFAULT_MODEL
    from ecgstudio.pipeline import Digitizer

    return Digitizer(DEFAULT_MODEL, device="cpu")


@pytest.fixture
def studio_window(qtbot, tmp_path):
    """Builds studio windows whose settings, labels and model versions live in ``tmp_path``
    (never the user's), shown, and closed at the end.  Keyword arguments go to ``MainWindow``."""
    from PySide6.QtCore import QSettings

    from ecgstudio.app.settings import AppSettings
    from ecgstudio.app.window import MainWindow

    made = []

    def make(*, reviewer: str = "Dr Test", **kwargs) -> MainWindow:
        settings = AppSettings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
        settings.reviewer = reviewer
        window = MainWindow(
            settings=settings, labels_root=tmp_path / "labels", autosave_ms=50, data_dir=tmp_path / "data", **kwargs
        )
        window.ask_reviewer = lambda name: name  # the person confirms the name offered
        qtbot.addWidget(window)
        window.show()
        made.append(window)
        return window

    yield make
    for window in made:
        window.close()
