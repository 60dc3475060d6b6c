"""What the engine assumed rather than measured, for the person who checks its output.

A stage that falls back on a default (no grid: a whole letter page; no pulse: 10 mm/mV; rows
that fit no layout) calls :func:`assume`.  It logs the warning, and while :func:`collected` is
active (the pipeline digitizing one page) records an :class:`~ecgstudio.results.Assumption`,
which the page's :class:`~ecgstudio.results.Digitization` carries to the studio, the CLI and the
label store.  Stages stay plain functions: the record is kept per thread and task.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextvars import ContextVar

from .results import ASSUMPTION_FIELDS, Assumption

_current: ContextVar[list[Assumption] | None] = ContextVar("ecgstudio_assumptions", default=None)
_quiet: ContextVar[bool] = ContextVar("ecgstudio_assumptions_quiet", default=False)


def assume(logger: logging.Logger, what: str, text: str) -> None:
    """Log ``text`` as a warning on ``logger`` and record it as an assumption about ``what``
    (one of :data:`~ecgstudio.results.ASSUMPTION_FIELDS`)."""
    if what not in ASSUMPTION_FIELDS:
        raise ValueError(f"unknown assumption field {what!r}; use one of {', '.join(ASSUMPTION_FIELDS)}")
    if not _quiet.get():
        logger.warning("%s", text)
    keep([Assumption(what, text)])


def keep(assumptions: list[Assumption]) -> None:
    """Record assumptions (made inside an inner :func:`collected` block) in the current record."""
    found = _current.get()
    if found is None:
        return
    for assumption in assumptions:
        if all(a.text != assumption.text for a in found):
            found.append(assumption)


@contextlib.contextmanager
def collected(*, quiet: bool = False) -> Iterator[list[Assumption]]:
    """Record the assumptions made inside the block into the list it yields; ``quiet`` records
    them without logging (a reading tried and perhaps not kept)."""
    found: list[Assumption] = []
    token = _current.set(found)
    muted = _quiet.set(quiet)
    try:
        yield found
    finally:
        _quiet.reset(muted)
        _current.reset(token)
