"""Entry point of the desktop app: ``ecgstudio`` (no arguments) or ``ecgstudio gui [PATH ...]``."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Sequence

log = logging.getLogger(__name__)

#: How long :func:`selftest` waits for the model's proposals on the sample.
SELFTEST_TIMEOUT_S = 300.0


def _application(qt_args: Sequence[str] = ()):
    """The QApplication (made once, with ``qt_args`` such as ``-platform offscreen``), set up for ECG Studio."""
    import pyqtgraph as pg
    from PySide6.QtCore import QCoreApplication
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    from ..resources import resource_path

    QCoreApplication.setOrganizationName("ECG Studio")
    QCoreApplication.setApplicationName("ecgstudio")
    app = QApplication.instance() or QApplication([*sys.argv[:1], *qt_args])
    app.setApplicationDisplayName("ECG Studio")
    app.setDesktopFileName("ecgstudio")  # Wayland matches the window to ecgstudio.desktop (installer/)
    icon = resource_path("resources/icon.png")
    if icon.is_file():
        app.setWindowIcon(QIcon(str(icon)))
    pg.setConfigOptions(antialias=True)
    return app


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

    if (
        platform.system() == "Linux"
        and not os.environ.get("DISPLAY")
        and not os.environ.get("WAYLAND_DISPLAY")
        and not os.environ.get("QT_QPA_PLATFORM")
    ):
        from ..errors import EcgStudioError

        raise EcgStudioError(
            "no display to open the window on (DISPLAY is not set); run ECG Studio on a desktop, "
            "or use `ecgstudio digitize` on a server"
        )
    from PySide6.QtCore import QTimer

    app = _application()
    from .window import MainWindow

    window = MainWindow()
    window.show()
    if paths:
        QTimer.singleShot(0, lambda: window.open_paths(list(paths)))
    return int(app.exec())


def selftest(*, timeout_s: float = SELFTEST_TIMEOUT_S) -> str:
    """Check an installation: open the sample in an off-screen window as a first-time user would.

    The window starts on the welcome panel, its "Open the sample" button is clicked, and the
    model's proposals are awaited; then the window closes.  No display is needed (Qt's
    ``offscreen`` platform) and nothing of the user's is touched: the sample's labels and the
    settings go to a temporary folder.

    Parameters
    ----------
    timeout_s : float
        How long to wait for the proposals, in seconds.

    Returns
    -------
    str
        A one-line summary: layout, number of leads, model version, seconds to proposals.

    Raises
    ------
    EcgStudioError
        Something a user would hit failed; the message says what.
    """
    import tempfile
    from pathlib import Path

    from PySide6.QtCore import QEventLoop, QSettings, QTimer

    from .. import __version__
    from ..errors import EcgStudioError
    from ..resources import is_frozen, resource_roots

    app = _application(["-platform", "offscreen"])
    from ..editing.worklist import user_labels_root
    from .settings import AppSettings
    from .window import SAMPLE_SCAN, MainWindow

    with tempfile.TemporaryDirectory(prefix="ecgstudio-selftest-") as tmp:
        settings = AppSettings(QSettings(str(Path(tmp) / "settings.ini"), QSettings.Format.IniFormat))
        window = MainWindow(settings=settings, labels_root=Path(tmp) / "labels")
        try:
            window.show()
            app.processEvents()
            welcome = window.welcome
            if window.stack.currentWidget() is not welcome or "Where labels go" not in welcome.where.text():
                raise EcgStudioError("the welcome panel is not shown on start")
            if not welcome.sample_button.isEnabled():
                raise EcgStudioError(f"the sample scan is not installed ({SAMPLE_SCAN})")
            start = time.perf_counter()
            welcome.sample_button.click()
            loop = QEventLoop()
            poll = QTimer()
            poll.setInterval(50)

            def check() -> None:
                if window.document is not None or window.banner_text() or time.perf_counter() - start > timeout_s:
                    loop.quit()

            poll.timeout.connect(check)
            poll.start()
            loop.exec()
            poll.stop()
            seconds = time.perf_counter() - start
            doc = window.document
            if doc is None:
                reason = window.banner_text() or f"no proposals after {timeout_s:.0f} s"
                raise EcgStudioError(f"opening the sample failed: {reason}")
            if doc.label_path is None or not doc.label_path.is_file():
                raise EcgStudioError(f"the sample's labels were not saved to {doc.label_path}")
            summary = (
                f"selftest ok: ECG Studio {__version__}, {SAMPLE_SCAN.name}: layout {doc.layout}, "
                f"{len(doc.lead_names)} leads, {len(doc.boxes)} boxes, model {doc.model_version or '?'}, "
                f"proposals in {seconds:.1f} s"
            )
        finally:
            window.close()
            window.deleteLater()
            app.processEvents()
    labels = user_labels_root()
    if is_frozen() and any(labels.resolve().is_relative_to(root.resolve()) for root in resource_roots()):
        raise EcgStudioError(f"user data would go inside the installation ({labels}); it must not")
    return f"{summary}; labels go to {labels}"


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
