"""The ECG Studio desktop app (PySide6 + pyqtgraph) over the engine's Python API; see :func:`main.run`.

Widgets and wiring only: what a person edits, the edits, undo and the save policy are the plain
Python editing model (:mod:`ecgstudio.editing`), which these widgets display and drive.

PySide6 6.12.0 is excluded in pyproject.toml: on Python 3.11 it drops a reference to ``None`` on
every call of a void method and aborts long sessions.
"""
