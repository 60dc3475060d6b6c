"""The Qt face of the editing model: its callbacks re-emitted as Qt signals.

:class:`~ecgstudio.editing.document.PageDocument` and its
:class:`~ecgstudio.editing.history.History` know nothing of Qt.  The window makes one
:class:`DocumentBridge` per open document and hands it to the views; they connect to its
signals, so Qt drops their connections when a widget goes, and :meth:`DocumentBridge.detach`
cuts the bridge off the document when the window closes the page.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Signal

from ..editing.document import PageDocument


class DocumentBridge(QObject):
    """Re-emits a document's callbacks as Qt signals.

    Signals
    -------
    changed(Change)
        After every edit, undo and redo.
    selectionChanged(int)
        The selected box index, -1 for none.
    historyChanged(int)
        The history's index after a push, merge, undo or redo.
    cleanChanged(bool)
        The history reached or left its saved state.
    """

    changed = Signal(object)
    selectionChanged = Signal(int)
    historyChanged = Signal(int)
    cleanChanged = Signal(bool)

    def __init__(self, document: PageDocument, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self._links = (
            (document.on_changed, self.changed.emit),
            (document.on_selection_changed, self.selectionChanged.emit),
            (document.history.on_index_changed, self.historyChanged.emit),
            (document.history.on_clean_changed, self.cleanChanged.emit),
        )
        for callbacks, emit in self._links:
            callbacks.connect(emit)

    def detach(self) -> None:
        """Stop re-emitting the document's callbacks (the document may outlive the window)."""
        for callbacks, emit in self._links:
            callbacks.disconnect(emit)
        self._links = ()


def follow(
    old: DocumentBridge | None,
    new: DocumentBridge | None,
    on_changed: Callable,
    on_selection: Callable | None = None,
) -> DocumentBridge | None:
    """Move a view's connections from the bridge it showed (``old``) to ``new``; returns ``new``."""
    for bridge, how in ((old, "disconnect"), (new, "connect")):
        if bridge is not None:
            getattr(bridge.changed, how)(on_changed)
            if on_selection is not None:
                getattr(bridge.selectionChanged, how)(on_selection)
    return new
