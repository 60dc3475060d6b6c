"""Undo commands of the page document: each swaps one immutable page state for another."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtGui import QUndoCommand

if TYPE_CHECKING:
    from .document import Change, PageDocument, PageState

#: Command id shared by every mergeable edit; the merge key decides whether two really merge.
_MERGE_ID = 0x5EC6


class StateCommand(QUndoCommand):
    """Replace the document's state with ``after`` (redo) or ``before`` (undo).

    Consecutive commands with the same ``merge_key`` (one drag, one spin-box sweep) merge into
    one undo step that goes back to the first command's ``before``.
    """

    def __init__(self, document: PageDocument, before: PageState, after: PageState, change: Change, text: str,
                 merge_key: str | None = None) -> None:
        super().__init__(text)
        self.document = document
        self.before = before
        self.after = after
        self.change = change
        self.merge_key = merge_key

    def id(self) -> int:  # noqa: A003 - Qt's name
        return _MERGE_ID if self.merge_key else -1

    def mergeWith(self, other: QUndoCommand) -> bool:  # noqa: N802 - Qt's name
        if not isinstance(other, StateCommand) or other.merge_key != self.merge_key:
            return False
        self.after = other.after
        self.change = self.change | other.change
        return True

    def redo(self) -> None:
        self.document._apply(self.after, self.change)

    def undo(self) -> None:
        self.document._apply(self.before, self.change)
