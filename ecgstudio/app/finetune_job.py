"""The studio's fine-tune job: one call of :func:`ecgstudio.training.finetune.finetune`, reported through a queue.

:func:`run_job` is the target of the worker process the studio starts (multiprocessing
``spawn`` context) or, in tests, of a thread.  It puts ``(kind, payload)`` messages on a queue:

* ``("progress", FinetuneProgress)`` as the run goes;
* then exactly one of ``("done", FinetuneResult)`` or ``("failed", FinetuneFailure)``.

It polls a stop event (``multiprocessing`` or ``threading``) between pages and training steps.
No Qt is imported here, so the worker process starts with the engine alone.
"""

from __future__ import annotations

import errno
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import EcgStudioError
from ..training.finetune import FinetuneConfig

log = logging.getLogger(__name__)

#: Message kinds on the queue.
PROGRESS, DONE, FAILED = "progress", "done", "failed"


@dataclass(frozen=True)
class FinetuneRequest:
    """What to fine-tune on and how (picklable: it crosses to the worker process).

    Attributes
    ----------
    labels : tuple of Path
        The ``.labels.h5`` files of the reviewed pages.
    config : FinetuneConfig
        Budget and training settings.
    data_dir : Path, optional
        User data directory holding ``models/`` (the platform's by default).
    name : str, optional
        Name of the new version (``finetune-<date>-<time>`` by default).
    """

    labels: tuple[Path, ...]
    config: FinetuneConfig
    data_dir: Path | None = None
    name: str | None = None


@dataclass(frozen=True)
class FinetuneFailure:
    """Why a fine-tune did not finish, for people (never a traceback).

    Attributes
    ----------
    message : str
        What went wrong and what to do.
    cancelled : bool
        True when the run stopped because it was asked to.
    """

    message: str
    cancelled: bool = False


def run_job(request: FinetuneRequest, messages: Any, stop: Any) -> None:
    """Run one fine-tune; report progress, then the result or a failure, on ``messages``.

    Parameters
    ----------
    request : FinetuneRequest
    messages : queue-like
        Anything with ``put`` (a ``multiprocessing`` or ``queue`` queue).
    stop : event-like
        Anything with ``is_set``; once set, the run stops at the next page or step.
    """
    from ..training.finetune import FinetuneCancelled, finetune

    try:
        result = finetune(
            list(request.labels),
            config=request.config,
            name=request.name,
            data_dir=request.data_dir,
            progress=lambda p: messages.put((PROGRESS, p)),
            should_stop=stop.is_set,
        )
    except FinetuneCancelled as exc:
        messages.put((FAILED, FinetuneFailure(str(exc), cancelled=True)))
    except EcgStudioError as exc:  # FinetuneError, ModelRegistryError, ...: messages for people
        messages.put((FAILED, FinetuneFailure(str(exc))))
    except MemoryError:
        messages.put(
            (
                FAILED,
                FinetuneFailure(
                    "not enough memory to fine-tune; close other programs, or fine-tune on fewer pages at a time "
                    "(nothing was saved; the active model is unchanged)"
                ),
            )
        )
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            text = "not enough disk space to fine-tune; free some space and try again"
        else:
            text = f"a file could not be read or written ({exc.strerror or exc}); check the folders' permissions"
        messages.put((FAILED, FinetuneFailure(f"{text} (nothing was saved; the active model is unchanged)")))
    except Exception as exc:
        log.exception("fine-tune failed")
        messages.put(
            (
                FAILED,
                FinetuneFailure(
                    f"the fine-tune failed unexpectedly ({type(exc).__name__}: {exc}); the active model is unchanged. "
                    "Please report this."
                ),
            )
        )
    else:
        messages.put((DONE, result))
