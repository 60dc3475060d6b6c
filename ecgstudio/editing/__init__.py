"""The editing model of ECG Studio, in plain Python: what a person edits, the edits, undo, saving.

No toolkit here (napari's layers, glue's command stack): the studio's Qt widgets display this
state and turn mouse and keys into its edits; tests and scripts drive the same edits directly.

* :mod:`~ecgstudio.editing.document`: :class:`PageDocument`, one page's editable state
  (:class:`PageState`) and every edit, as :class:`StateCommand` objects on its history;
* :mod:`~ecgstudio.editing.history`: :class:`History`, undo and redo with merging and a clean mark;
* :mod:`~ecgstudio.editing.callbacks`: :class:`Callbacks`, the observer lists used instead of signals;
* :mod:`~ecgstudio.editing.polylines`: the pen's and the eraser's pure helpers;
* :mod:`~ecgstudio.editing.worklist`: the pages, where their labels go and what each file says;
* :mod:`~ecgstudio.editing.proposals`: how a re-run of the model changed a page's proposal;
* :mod:`~ecgstudio.editing.session`: opening, saving, setting aside and exporting label files.
"""

from .callbacks import Callbacks
from .document import EVERYTHING, Change, PageDocument, PageRef, PageState, StateCommand
from .history import Command, History
from .polylines import snap_to_ink, splice, stroke_to_columns
from .proposals import ProposalChange, proposal_change
from .session import LabelOpening, LabelSession, Saved, SetAside, export_signals, open_label, trainable_label_files
from .worklist import LabelSummary, WorkItem, items_for_paths, read_label_summary

__all__ = [
    "EVERYTHING",
    "Callbacks",
    "Change",
    "Command",
    "History",
    "LabelOpening",
    "LabelSession",
    "LabelSummary",
    "PageDocument",
    "PageRef",
    "PageState",
    "ProposalChange",
    "Saved",
    "SetAside",
    "StateCommand",
    "WorkItem",
    "export_signals",
    "items_for_paths",
    "open_label",
    "proposal_change",
    "read_label_summary",
    "snap_to_ink",
    "splice",
    "stroke_to_columns",
    "trainable_label_files",
]
