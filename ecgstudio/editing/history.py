"""An undo history of command objects, with merging and a clean (saved) mark, as Qt's QUndoStack.

The studio used ``QUndoStack``; this is the same behaviour in plain Python:

* :meth:`History.push` does the command and drops whatever could have been redone;
* a command whose :attr:`~Command.merge_key` equals that of the command before it merges into
  it (one undo step for one drag), except right after the clean mark (a save starts a new step);
* :meth:`History.set_clean` marks the current index as saved; :attr:`History.clean` says whether
  the history is back there; pushing over the clean index loses it (dirty until saved again);
* ``limit`` keeps only the newest commands (0: unlimited, the studio's setting).

Listeners of :attr:`History.on_index_changed` hear every push, merge, undo and redo (after the
command ran); :attr:`History.on_clean_changed` hears the clean state flip.
"""

from __future__ import annotations

from typing import Protocol

from .callbacks import Callbacks


class Command(Protocol):
    """What the history needs of an edit."""

    @property
    def text(self) -> str:
        """What the edit does, for the Undo and Redo actions ("Drag trace point")."""
        ...

    @property
    def merge_key(self) -> str | None:
        """Consecutive commands with one non-None key merge into one undo step."""
        ...

    def redo(self) -> None: ...

    def undo(self) -> None: ...

    def merged(self, later: Command) -> Command | None:
        """This command followed by ``later`` as one command, or None when they do not merge."""
        ...


class History:
    """Undo and redo of :class:`Command` objects.

    Parameters
    ----------
    limit : int
        Most commands kept (the oldest are forgotten); 0 keeps every command.

    Attributes
    ----------
    on_index_changed : Callbacks
        Called with the new :attr:`index` after every push, merge, undo and redo.
    on_clean_changed : Callbacks
        Called with the new :attr:`clean` when it changes.
    """

    def __init__(self, *, limit: int = 0) -> None:
        if limit < 0:
            raise ValueError(f"the undo limit must be 0 (unlimited) or positive, got {limit}")
        self.limit = limit
        self._commands: list[Command] = []
        self._index = 0
        self._clean_index: int | None = 0
        self.on_index_changed = Callbacks()
        self.on_clean_changed = Callbacks()

    # ------------------------------------------------------------------ reading

    def __len__(self) -> int:
        return len(self._commands)

    @property
    def index(self) -> int:
        """Number of commands done (the next undo undoes command ``index - 1``)."""
        return self._index

    def command(self, i: int) -> Command:
        """Command ``i`` (0 is the oldest kept)."""
        return self._commands[i]

    @property
    def can_undo(self) -> bool:
        return self._index > 0

    @property
    def can_redo(self) -> bool:
        return self._index < len(self._commands)

    @property
    def undo_text(self) -> str:
        """Text of the command :meth:`undo` would undo ("" when none)."""
        return self._commands[self._index - 1].text if self.can_undo else ""

    @property
    def redo_text(self) -> str:
        """Text of the command :meth:`redo` would redo ("" when none)."""
        return self._commands[self._index].text if self.can_redo else ""

    @property
    def clean_index(self) -> int | None:
        """The index marked clean (saved), or None once the commands that led there are gone."""
        return self._clean_index

    @property
    def clean(self) -> bool:
        """True while the history is at its clean (saved) index."""
        return self._index == self._clean_index

    # ------------------------------------------------------------------ changing

    def push(self, command: Command) -> None:
        """Do ``command`` and make it the next undo step (merged into the last one when it can)."""
        command.redo()
        was_clean = self.clean
        top = self._commands[self._index - 1] if self._index > 0 else None
        del self._commands[self._index :]
        if self._clean_index is not None and self._clean_index > self._index:
            self._clean_index = None  # the saved state could only be reached by redoing
        merged = None
        if top is not None and command.merge_key is not None and top.merge_key == command.merge_key and not was_clean:
            merged = top.merged(command)
        if merged is not None:
            self._commands[self._index - 1] = merged
            self._changed(self._index, was_clean)
            return
        self._commands.append(command)
        index = self._index + 1
        if self.limit and len(self._commands) > self.limit:
            drop = len(self._commands) - self.limit
            del self._commands[:drop]
            index -= drop
            if self._clean_index is not None:
                self._clean_index = None if self._clean_index < drop else self._clean_index - drop
        self._changed(index, was_clean)

    def undo(self) -> None:
        """Undo the last command done (nothing when there is none)."""
        if not self.can_undo:
            return
        was_clean = self.clean
        self._commands[self._index - 1].undo()
        self._changed(self._index - 1, was_clean)

    def redo(self) -> None:
        """Redo the last command undone (nothing when there is none)."""
        if not self.can_redo:
            return
        was_clean = self.clean
        self._commands[self._index].redo()
        self._changed(self._index + 1, was_clean)

    def set_clean(self) -> None:
        """Mark the current index as saved."""
        was_clean = self.clean
        self._clean_index = self._index
        if not was_clean:
            self.on_clean_changed.emit(True)

    def clear(self) -> None:
        """Forget every command; the current state becomes the clean one."""
        was_clean = self.clean
        self._commands.clear()
        self._clean_index = 0
        self._changed(0, was_clean)

    def _changed(self, index: int, was_clean: bool) -> None:
        self._index = index
        self.on_index_changed.emit(index)
        if self.clean != was_clean:
            self.on_clean_changed.emit(self.clean)
