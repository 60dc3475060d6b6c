"""Where the files that ship with ECG Studio (the model, the sample scan, the icon) are.

In a source checkout they sit beside the package (``models/``, ``resources/``); in the
PyInstaller bundle (``installer/``) they are unpacked into the bundle's folder
(``sys._MEIPASS``).  These are read-only: user data (labels, fine-tuned models, settings)
always goes to the platform's user data directory, never here.
"""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["is_frozen", "resource_path", "resource_roots"]


def is_frozen() -> bool:
    """True inside the bundle built by ``installer/build.py``."""
    return bool(getattr(sys, "frozen", False)) and hasattr(sys, "_MEIPASS")


def resource_roots() -> list[Path]:
    """Folders searched for shipped files, in order: the bundle's folder, then the source tree."""
    roots = [Path(sys._MEIPASS)] if is_frozen() else []  # type: ignore[attr-defined]
    source = Path(__file__).resolve().parents[1]
    if source not in roots:
        roots.append(source)
    return roots


def resource_path(relative: str) -> Path:
    """The shipped file ``relative`` (e.g. ``"models/tracenet.pt"``).

    Parameters
    ----------
    relative : str
        Path relative to the checkout or bundle root, with ``/`` separators.

    Returns
    -------
    Path
        The first existing candidate; if there is none, where it would be in the first root
        (so error messages name the expected location).
    """
    candidates = [root / relative for root in resource_roots()]
    for candidate in candidates:
        if candidate.exists():
            return candidate
    return candidates[0]
