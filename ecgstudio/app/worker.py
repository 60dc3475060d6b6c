"""The model in a background thread: the window never waits for the digitizer.

:class:`Engine` lives in the GUI thread and owns a ``QThread`` in which an :class:`_EngineWorker`
runs :meth:`ecgstudio.pipeline.Digitizer.digitize`.  The digitizer is created there on the
first job (loading the weights once) and reused until :meth:`Engine.reload` (another model
version became active).  Results, progress and failures come back as
queued Qt signals tagged with a job id; a failure carries a message for people (the engine's
own :class:`~ecgstudio.errors.EcgStudioError` text), never a traceback.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal, Slot

from ..errors import EcgStudioError
from ..pipeline import DigitizeOptions

log = logging.getLogger(__name__)

#: Human names of the pipeline's progress stages.
STAGE_NAMES = {
    "geometry": "Finding the page and its grid",
    "resample": "Resampling",
    "segmentation": "Finding the traces (model)",
    "layout and extraction": "Finding the leads and extracting the signals",
    "fine tracing": "Tracing again in finer detail (model)",
    "done": "Done",
}


class _Cancelled(Exception):
    """Raised from the progress callback to stop a job whose result nobody wants any more."""


class _EngineWorker(QObject):
    progress = Signal(int, str, float)
    finished = Signal(int, object)
    failed = Signal(int, str)

    def __init__(self, factory: Callable[[], Any]) -> None:
        super().__init__()
        self._factory = factory
        self._digitizer: Any = None
        self.cancelled: set[int] = set()

    @Slot()
    def reset(self) -> None:
        """Drop the digitizer; the next job makes a new one (with the model active by then)."""
        self._digitizer = None

    @Slot(int, object, object)
    def run_job(self, job: int, image: np.ndarray, options: DigitizeOptions) -> None:
        if job in self.cancelled:
            return

        def progress(stage: str, fraction: float) -> None:
            if job in self.cancelled or QThread.currentThread().isInterruptionRequested():
                raise _Cancelled
            self.progress.emit(job, stage, float(fraction))

        try:
            if self._digitizer is None:
                self.progress.emit(job, "Loading the model", 0.02)
                self._digitizer = self._factory()
            result = self._digitizer.digitize(image, options, progress=progress)
        except _Cancelled:
            log.debug("job %d cancelled", job)
            return
        except EcgStudioError as exc:
            self.failed.emit(job, str(exc))
            return
        except MemoryError:
            self.failed.emit(
                job,
                "Not enough memory to digitize this page; close other programs or use a "
                "smaller scan (300 dpi is plenty).",
            )
            return
        except Exception as exc:
            log.exception("digitizer failed")
            self.failed.emit(
                job,
                f"The digitizer failed unexpectedly ({type(exc).__name__}: {exc}). "
                "The page was left as it was; please report this with the scan.",
            )
            return
        self.finished.emit(job, result)


def active_digitizer(data_dir: Path | None = None) -> Any:
    """A :class:`~ecgstudio.pipeline.Digitizer` with the active model version of ``data_dir``.

    ``data_dir`` is the user data directory holding ``models/`` (the platform's by default).
    """
    from ..model.registry import active_model_path
    from ..pipeline import Digitizer

    return Digitizer(active_model_path(data_dir=data_dir))


def _default_factory() -> Any:
    return active_digitizer()


class Engine(QObject):
    """Runs digitizations one at a time in a background thread.

    Parameters
    ----------
    factory : callable, optional
        Makes the digitizer (an object with ``digitize(image, options, progress=...)``) in the
        worker thread; :class:`ecgstudio.pipeline.Digitizer` with the shipped model by default.
    """

    progress = Signal(int, str, float)  # job, stage, fraction
    finished = Signal(int, object)  # job, Digitization
    failed = Signal(int, str)  # job, message for people
    _submit = Signal(int, object, object)
    _reset = Signal()

    def __init__(self, factory: Callable[[], Any] | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._ids = itertools.count(1)
        self._thread = QThread(self)
        self._thread.setObjectName("ecgstudio-engine")
        self._worker = _EngineWorker(factory or _default_factory)
        self._worker.moveToThread(self._thread)
        self._submit.connect(self._worker.run_job)
        self._reset.connect(self._worker.reset)
        self._worker.progress.connect(self.progress)
        self._worker.finished.connect(self._on_finished)
        self._worker.failed.connect(self._on_failed)
        self._thread.finished.connect(self._worker.deleteLater)
        self._pending: set[int] = set()
        self._thread.start()

    def submit(self, image: np.ndarray, options: DigitizeOptions = DigitizeOptions()) -> int:
        """Queue a page; returns the job id that :attr:`finished` or :attr:`failed` will carry."""
        job = next(self._ids)
        self._pending.add(job)
        self._submit.emit(job, image, options)
        return job

    def cancel(self, job: int) -> None:
        """Drop a job: it stops at its next stage and reports nothing."""
        self._pending.discard(job)
        self._worker.cancelled.add(job)

    def reload(self) -> None:
        """Make the digitizer again before the next job submitted from now on.

        Call it after another model version became active: jobs already queued finish with the
        old model, later ones use the factory's new digitizer.
        """
        self._reset.emit()

    @property
    def busy(self) -> bool:
        return bool(self._pending)

    def _on_finished(self, job: int, result: object) -> None:
        if job in self._pending:
            self._pending.discard(job)
            self.finished.emit(job, result)

    def _on_failed(self, job: int, message: str) -> None:
        if job in self._pending:
            self._pending.discard(job)
            self.failed.emit(job, message)

    def shutdown(self, timeout_ms: int = 30000) -> None:
        """Stop the thread, cancelling what is queued or running (waits for the current stage)."""
        for job in list(self._pending):
            self.cancel(job)
        self._thread.requestInterruption()
        self._thread.quit()
        if not self._thread.wait(timeout_ms):
            log.warning("the digitizer thread did not stop within %d ms", timeout_ms)
