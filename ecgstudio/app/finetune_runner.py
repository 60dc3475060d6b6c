"""Runs a fine-tune beside the window: in a worker process, progress polled with a timer.

:class:`FinetuneRunner` starts :func:`~ecgstudio.app.finetune_job.run_job` in a process of the
``spawn`` context (a fresh interpreter: no Qt state, no threads inherited; torch's threads do
not compete with the window's).  Progress and the outcome come back on a queue that a
``QTimer`` drains in the GUI thread; cancelling sets an event the job polls between pages and
steps, and a process that does not stop within :attr:`FinetuneRunner.kill_after_s` is
terminated.  A process that dies without an answer (killed, out of memory) is reported too.

``mode="thread"`` runs the same job in a thread of this process, with a ``queue.Queue`` and a
``threading.Event``; tests use it to be fast.  Everything the window sees is the same.
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
import threading
import time
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from .finetune_job import DONE, FAILED, PROGRESS, FinetuneFailure, FinetuneRequest, run_job

log = logging.getLogger(__name__)

MODES = ("process", "thread")


class FinetuneRunner(QObject):
    """One fine-tune at a time, off the GUI thread.

    Parameters
    ----------
    mode : {"process", "thread"}
        Where the job runs: a ``spawn`` worker process (the studio) or a thread (tests).
    poll_ms : int
        How often the queue is read.
    kill_after_s : float
        After a cancel, how long the job may take to stop before its process is terminated.
    """

    progress = Signal(object)  # FinetuneProgress
    finished = Signal(object)  # FinetuneResult
    failed = Signal(str, bool)  # message for people, cancelled

    def __init__(
        self, *, mode: str = "process", poll_ms: int = 100, kill_after_s: float = 20.0, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        self.kill_after_s = kill_after_s
        self._timer = QTimer(self)
        self._timer.setInterval(poll_ms)
        self._timer.timeout.connect(self._poll)
        self._queue: Any = None
        self._stop: Any = None
        self._worker: Any = None  # multiprocessing.Process or threading.Thread
        self._cancel_at: float | None = None
        self._exiting: list[tuple[Any, float]] = []  # processes that answered and are still shutting down
        self._reaper = QTimer(self)
        self._reaper.setInterval(200)
        self._reaper.timeout.connect(self._reap)

    @property
    def running(self) -> bool:
        return self._worker is not None

    @property
    def pid(self) -> int | None:
        """The worker process's id (None in thread mode or when idle)."""
        return getattr(self._worker, "pid", None)

    def start(self, request: FinetuneRequest) -> None:
        """Start a fine-tune; its outcome comes as :attr:`finished` or :attr:`failed`.

        Raises
        ------
        RuntimeError
            A fine-tune is already running.
        """
        if self.running:
            raise RuntimeError("a fine-tune is already running")
        self._cancel_at = None
        try:
            if self.mode == "process":
                ctx = multiprocessing.get_context("spawn")
                self._queue, self._stop = ctx.Queue(), ctx.Event()
                self._worker = ctx.Process(
                    target=run_job, args=(request, self._queue, self._stop), name="ecgstudio-finetune", daemon=True
                )
            else:
                self._queue, self._stop = queue.Queue(), threading.Event()
                self._worker = threading.Thread(
                    target=run_job, args=(request, self._queue, self._stop), name="ecgstudio-finetune", daemon=True
                )
            self._worker.start()
        except OSError as exc:
            self._release()
            message = (
                f"could not start the fine-tune ({exc.strerror or exc}); close other programs and try "
                "again (the active model is unchanged)"
            )
            QTimer.singleShot(0, lambda: self.failed.emit(message, False))
            return
        log.info(
            "fine-tune started (%s%s) on %d label files",
            self.mode,
            f", pid {self.pid}" if self.pid else "",
            len(request.labels),
        )
        self._timer.start()

    def cancel(self) -> None:
        """Ask the job to stop; :attr:`failed` follows with ``cancelled`` True."""
        if self.running and self._cancel_at is None:
            self._stop.set()
            self._cancel_at = time.monotonic()

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Stop a running job (the window is closing): cancel, wait a little, then terminate."""
        if self.running:
            self._stop.set()
            self._worker.join(timeout_s)
            if self.mode == "process" and self._worker.is_alive():
                log.warning("the fine-tune process did not stop within %.0f s; terminating it", timeout_s)
                self._worker.terminate()
            self._release()
        for worker, _since in self._exiting:
            worker.join(2.0)
            if worker.is_alive():
                worker.terminate()
                worker.join(2.0)
        self._reap()

    # ------------------------------------------------------------------ polling

    def _drain(self) -> tuple[str, Any] | None:
        """Emit queued progress; return the final message if it came."""
        while True:
            try:
                kind, payload = self._queue.get_nowait()
            except queue.Empty:
                return None
            except (EOFError, OSError, ValueError):  # the pipe of a dead process
                return None
            if kind == PROGRESS:
                self.progress.emit(payload)
            elif kind in (DONE, FAILED):
                return kind, payload

    def _poll(self) -> None:
        if not self.running:
            self._timer.stop()
            return
        final = self._drain()
        if final is None and not self._worker.is_alive():
            final = self._drain()  # what was sent just before the end
            if final is None:
                final = (FAILED, self._lost())
        if (
            final is None
            and self._cancel_at is not None
            and self.mode == "process"
            and time.monotonic() - self._cancel_at > self.kill_after_s
        ):
            log.warning("the fine-tune process did not stop within %.0f s of cancel; terminating it", self.kill_after_s)
            self._worker.terminate()
            final = (
                FAILED,
                FinetuneFailure(
                    "fine-tune cancelled (stopped forcefully); nothing was saved and the active model is unchanged",
                    True,
                ),
            )
        if final is None:
            return
        self._release()  # the process may still be exiting: it is reaped later, the window never waits
        kind, payload = final
        if kind == DONE:
            self.finished.emit(payload)
        else:
            self.failed.emit(payload.message, payload.cancelled)

    def _lost(self) -> FinetuneFailure:
        """Why the job ended without an answer."""
        if self._cancel_at is not None:
            return FinetuneFailure("fine-tune cancelled; nothing was saved and the active model is unchanged", True)
        code = getattr(self._worker, "exitcode", None)
        if code is not None and code < 0:
            how = f"was killed (signal {-code}; out of memory?)"
        elif code is not None:
            how = f"stopped unexpectedly (exit code {code})"
        else:
            how = "stopped unexpectedly"
        return FinetuneFailure(f"the fine-tune process {how}; nothing was saved and the active model is unchanged")

    def _release(self) -> None:
        """Forget the job (``running`` is False from now on); a process still exiting is reaped later."""
        self._timer.stop()
        worker, messages = self._worker, self._queue
        self._queue = self._stop = self._worker = None
        self._cancel_at = None
        if self.mode == "process":
            if messages is not None:
                messages.close()
                messages.join_thread()
            if worker is not None:
                self._exiting.append((worker, time.monotonic()))
                self._reap()

    def _reap(self) -> None:
        """Close the processes that have exited; terminate one that lingers."""
        for entry in list(self._exiting):
            worker, since = entry
            if not worker.is_alive():
                worker.join()
                worker.close()
                self._exiting.remove(entry)
            elif time.monotonic() - since > self.kill_after_s:
                log.warning(
                    "the fine-tune process is still running %.0f s after its answer; terminating it", self.kill_after_s
                )
                worker.terminate()
        if self._exiting and not self._reaper.isActive():
            self._reaper.start()
        elif not self._exiting:
            self._reaper.stop()
