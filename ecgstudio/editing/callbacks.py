"""Observer callbacks without a toolkit: what the editing model uses instead of Qt signals."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class Callbacks:
    """A list of callables invoked, in the order connected, with the arguments of :meth:`emit`.

    The studio's Qt adapter connects a signal's ``emit`` here; a script connects any function.
    Calls are synchronous, like a direct Qt connection.

    Examples
    --------
    >>> seen = []
    >>> on_changed = Callbacks()
    >>> on_changed.connect(seen.append)
    >>> on_changed.emit(3)
    >>> seen
    [3]
    """

    def __init__(self) -> None:
        self._callbacks: list[Callable[..., Any]] = []

    def connect(self, callback: Callable[..., Any]) -> None:
        """Call ``callback`` on every :meth:`emit` (connecting one callable twice calls it twice)."""
        self._callbacks.append(callback)

    def disconnect(self, callback: Callable[..., Any]) -> None:
        """Stop calling ``callback`` (its first connection); ValueError if it is not connected."""
        self._callbacks.remove(callback)

    def emit(self, *args: Any) -> None:
        """Call every connected callable with ``args``; one connected meanwhile waits for the next emit."""
        for callback in tuple(self._callbacks):
            callback(*args)

    def __len__(self) -> int:
        return len(self._callbacks)
