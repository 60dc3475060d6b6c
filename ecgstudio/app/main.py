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

    Raises
    ------
    EcgStudioError
        There is no display to show the window on (Linux without ``DISPLAY``).
    """
    import platform

    if (platform.system() == "Linux" and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY")
            and not os.environ.get("QT_QPA_PLATFORM")):
        from ..errors import EcgStudioError

        raise EcgStudioError("no display to open the window on (DISPLAY is not set); run ECG Studio on a desktop, "
                             "or use `ecgstudio digitize` on a server")
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
