"""The ECG Studio desktop app (PySide6 + pyqtgraph) over the engine's Python API; see :func:`main.run`."""
