"""The house's boundaries as a user of the library meets them: the engine and the editing model
work where Qt is not installed, and training is never loaded by inference."""

from __future__ import annotations

import subprocess
import sys


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_engine_and_editing_import_without_qt() -> None:
    done = _run(
        "import sys; sys.modules['PySide6'] = None; sys.modules['pyqtgraph'] = None; "
        "import ecgstudio.pipeline, ecgstudio.cli, ecgstudio.editing; print('ok')"
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_inference_does_not_load_training() -> None:
    done = _run(
        "import sys, ecgstudio.pipeline; "
        "print(sorted(m for m in sys.modules if m.startswith(('ecgstudio.training', 'ecgstudio.app'))))"
    )
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr
