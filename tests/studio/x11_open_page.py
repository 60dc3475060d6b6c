"""Open one page in the studio in a real X server, the window at a given size with the worklist
dock open, and exit 0 once the event loop has kept answering for a few seconds (a window that
hangs never exits: the caller's timeout catches it).

Run by tests/studio/test_x11.py as: python x11_open_page.py IMAGE WIDTH HEIGHT DATA_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication


def main() -> int:
    image, width, height, data = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
    app = QApplication([])
    from ecgstudio.app.settings import AppSettings
    from ecgstudio.app.window import MainWindow

    settings = AppSettings(QSettings(str(data / "settings.ini"), QSettings.Format.IniFormat))
    settings.reviewer = "Dr X"
    window = MainWindow(settings=settings, labels_root=data / "labels", data_dir=data / "data")
    window.resize(width, height)
    window.show()
    window.open_paths([image])
    window.worklist_dock.show()
    ticks = []

    def tick() -> None:  # runs only while the event loop answers
        ticks.append(1)
        if window.document is not None and len(ticks) > 20:
            window.scan_view.fit()
            app.processEvents()
            print(f"answered {len(ticks)} ticks; zoom {window.scan_view.zoom:.3f}", flush=True)
            app.quit()

    timer = QTimer()
    timer.timeout.connect(tick)
    timer.start(100)
    app.exec()
    return 0


if __name__ == "__main__":
    sys.exit(main())
