"""Entry point of the desktop app: ``ecgstudio`` (no arguments) or ``ecgstudio gui [PATH ...]``."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

log = logging.getLogger(__name__)


def run(paths: Sequence[str | os.PathLike[str]] = ()) -> int:
    """Open the ECG Studio window (on ``paths`` if given) and run until it is closed.

    Parameters
    ----------
    paths : sequence of path-like
        Scans, photos, PDFs or folders to open as the worklist.

    Returns
    -------
    int
        The exit status (0 when the window was closed normally).
    """
    from PySide6.QtCore import QCoreApplication, QTimer
    from PySide6.QtWidgets import QApplication

    import pyqtgraph as pg

    QCoreApplication.setOrganizationName("ECG Studio")
    QCoreApplication.setApplicationName("ecgstudio")
    app = QApplication.instance() or QApplication(list(sys.argv[:1]))
    app.setApplicationDisplayName("ECG Studio")
    pg.setConfigOptions(antialias=True)
    from .window import MainWindow

    window = MainWindow()
    window.show()
    if paths:
        QTimer.singleShot(0, lambda: window.open_paths(list(paths)))
    return int(app.exec())


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
