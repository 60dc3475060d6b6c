"""Persistent user settings (QSettings): reviewer name, recent files, view preferences, fine-tune budget."""

from __future__ import annotations

import getpass
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings

ORGANIZATION = "ECG Studio"
APPLICATION = "ecgstudio"
MAX_RECENT = 10


def default_reviewer() -> str:
    """The OS user name, or ``"reviewer"`` when the system does not say."""
    try:
        return getpass.getuser() or "reviewer"
    except (KeyError, OSError):  # no passwd entry, no USER variable
        return "reviewer"


class AppSettings:
    """Typed access to the app's QSettings.

    Parameters
    ----------
    settings : QSettings, optional
        Where to keep them; the user's ECG Studio settings by default (tests pass an INI file).
    """

    def __init__(self, settings: QSettings | None = None) -> None:
        self.q = settings if settings is not None else QSettings(ORGANIZATION, APPLICATION)

    @property
    def reviewer(self) -> str:
        value = self.q.value("review/reviewer", "")
        return str(value) if value else default_reviewer()

    @reviewer.setter
    def reviewer(self, name: str) -> None:
        self.q.setValue("review/reviewer", name.strip())

    @property
    def recent(self) -> list[str]:
        value = self.q.value("files/recent", [])
        if isinstance(value, str):  # a one-element list comes back as a string from INI files
            value = [value]
        return [str(v) for v in (value or []) if v]

    def add_recent(self, path: str | Path) -> None:
        path = str(Path(path).resolve())
        items = [path] + [p for p in self.recent if p != path]
        self.q.setValue("files/recent", items[:MAX_RECENT])

    def clear_recent(self) -> None:
        self.q.setValue("files/recent", [])

    @property
    def mask_opacity(self) -> float:
        try:
            return min(1.0, max(0.0, float(self.q.value("view/mask_opacity", 0.35))))
        except (TypeError, ValueError):
            return 0.35

    @mask_opacity.setter
    def mask_opacity(self, value: float) -> None:
        self.q.setValue("view/mask_opacity", float(value))

    @property
    def scan_zoom(self) -> float:
        """The scan's zoom as a multiple of the whole page's, as last left (1: whole page)."""
        try:
            value = float(self.q.value("view/scan_zoom", 1.0))
        except (TypeError, ValueError):
            return 1.0
        return min(40.0, max(0.1, value)) if value == value else 1.0

    @scan_zoom.setter
    def scan_zoom(self, value: float) -> None:
        self.q.setValue("view/scan_zoom", float(value))

    @property
    def finetune_minutes(self) -> float:
        """Time budget last chosen for a fine-tune (10 minutes at first)."""
        try:
            value = float(self.q.value("finetune/minutes", 10.0))
        except (TypeError, ValueError):
            return 10.0
        return value if value > 0 else 10.0

    @finetune_minutes.setter
    def finetune_minutes(self, minutes: float) -> None:
        self.q.setValue("finetune/minutes", float(minutes))

    def layer(self, name: str, default: bool = True) -> bool:
        value = self.q.value(f"view/layer_{name}", default)
        return value if isinstance(value, bool) else str(value).lower() in ("true", "1")

    def set_layer(self, name: str, on: bool) -> None:
        self.q.setValue(f"view/layer_{name}", bool(on))

    def window_layout(self) -> tuple[QByteArray, QByteArray] | None:
        """The window's geometry and dock state as last closed, or None."""
        geometry, state = self.q.value("window/geometry"), self.q.value("window/state")
        if isinstance(geometry, QByteArray) and isinstance(state, QByteArray):
            return geometry, state
        return None

    def set_window_layout(self, geometry: QByteArray, state: QByteArray) -> None:
        self.q.setValue("window/geometry", geometry)
        self.q.setValue("window/state", state)

    def sync(self) -> None:
        self.q.sync()
