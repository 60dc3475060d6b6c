"""Model versions on the user's machine: the shipped model plus local fine-tunes, one of them active.

Fine-tuned models live in the user's data directory, one folder per version::

    <data_dir>/models/<name>/tracenet.pt     weights (plain state_dict)
    <data_dir>/models/<name>/tracenet.json   model card (sha256 of the weights, base model, labels, scores)
    <data_dir>/models/active.json            which version is active, and the ones active before it

``data_dir`` defaults to ``platformdirs.user_data_dir("ecgstudio")``; every function takes it as
an explicit keyword so tests and other tools can point elsewhere (no environment variables).
The shipped model (:data:`~ecgstudio.model.weights.DEFAULT_MODEL`) is the version named
:data:`SHIPPED`; it is never written to.  ``active.json`` is replaced atomically, and a pointer
that is missing, unreadable or names a version whose weights no longer match their card falls
back to the shipped model (with a logged warning), so a working model is always available.

Examples
--------
>>> from ecgstudio.pipeline import Digitizer                                  # doctest: +SKIP
>>> digitizer = Digitizer(active_model_path())                                # doctest: +SKIP
>>> [v.name for v in list_versions()]                                         # doctest: +SKIP
['shipped', 'finetune-20250101-120000']
>>> rollback().name                                                           # doctest: +SKIP
'shipped'
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import EcgStudioError, ModelError, UnreadableImageError
from ..io.atomic import write_text_atomic
from ..io.images import file_sha256
from .net import TraceNet
from .weights import DEFAULT_MODEL, ModelCard, card_path, load_model, save_model

log = logging.getLogger(__name__)

__all__ = [
    "ACTIVE_FILE",
    "SHIPPED",
    "WEIGHTS_NAME",
    "ModelRegistryError",
    "ModelVersion",
    "activate",
    "active_model_path",
    "active_version",
    "check_version_name",
    "default_data_dir",
    "get_version",
    "list_versions",
    "models_dir",
    "new_version_name",
    "resolve_model",
    "rollback",
    "save_version",
]

#: Name of the shipped model among the versions.
SHIPPED = "shipped"
#: The pointer file, in ``<data_dir>/models``.
ACTIVE_FILE = "active.json"
#: File name of the weights inside a version folder (the card is ``tracenet.json`` beside it).
WEIGHTS_NAME = "tracenet.pt"

_POINTER_FORMAT = "ecgstudio-active-model"
_POINTER_VERSION = 1
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_MAX_HISTORY = 50


class ModelRegistryError(EcgStudioError):
    """A model version is unknown, broken, or cannot be activated or saved."""


@dataclass(frozen=True)
class ModelVersion:
    """One model the user can digitize with.

    Attributes
    ----------
    name : str
        :data:`SHIPPED` or the folder name of a local version.
    path : Path
        The weights file (its card is :func:`~ecgstudio.model.weights.card_path` of it).
    card : ModelCard
        The model card (version, base model, training, metrics).
    active : bool
        Whether this is the active version.
    """

    name: str
    path: Path
    card: ModelCard
    active: bool = False

    @property
    def shipped(self) -> bool:
        return self.name == SHIPPED


# -------------------------------------------------------------------------------------------- paths


def default_data_dir() -> Path:
    """The platform's per-user data directory for ECG Studio (it may not exist yet)."""
    import platformdirs

    return Path(platformdirs.user_data_dir("ecgstudio", appauthor=False))


def models_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """``<data_dir>/models`` (not created here)."""
    return Path(data_dir if data_dir is not None else default_data_dir()) / "models"


def check_version_name(name: str) -> str:
    """``name`` if it can name a local version (a safe folder name), else ModelRegistryError."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or name == SHIPPED or name.endswith(".json"):
        raise ModelRegistryError(
            f"{name!r} is not a valid model version name; use 1-64 letters, digits, '.', '_' or '-', "
            f"starting with a letter or digit, other than {SHIPPED!r}"
        )
    return name


# -------------------------------------------------------------------------------------------- reading


def _read_card(weights: Path) -> ModelCard:
    """The card of a weights file, checked against the weights' sha256."""
    card_file = card_path(weights)
    if not weights.is_file() or not card_file.is_file():
        raise ModelRegistryError(
            f"model {weights.parent} lacks {weights.name} or {card_file.name}; "
            "delete the folder or pick another version"
        )
    try:
        card = ModelCard.from_json(card_file.read_text(encoding="utf-8"))
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise ModelRegistryError(
            f"model card {card_file} cannot be read ({exc}); delete the folder or pick another version"
        ) from None
    try:
        digest = file_sha256(weights)
    except UnreadableImageError as exc:
        raise ModelRegistryError(str(exc)) from None
    if digest != card.sha256:
        raise ModelRegistryError(
            f"model weights {weights} do not match their card (sha256 {digest[:12]}... "
            f"expected {card.sha256[:12]}...); the file is corrupt, pick another version"
        )
    return card


def _version(name: str, data_dir: str | os.PathLike[str] | None) -> ModelVersion:
    """A version by name, verified (sha256), with ``active`` False."""
    if name == SHIPPED:
        return ModelVersion(SHIPPED, DEFAULT_MODEL, _read_card(DEFAULT_MODEL))
    path = models_dir(data_dir) / check_version_name(name) / WEIGHTS_NAME
    if not path.parent.is_dir():
        raise ModelRegistryError(f"there is no model version {name!r}; known versions: {_known(data_dir)}")
    return ModelVersion(name, path, _read_card(path))


def _loadable_version(name: str, data_dir: str | os.PathLike[str] | None) -> ModelVersion:
    """:func:`_version`, once its weights have loaded into the architecture its card names."""
    version = _version(name, data_dir)
    try:
        load_model(version.path)
    except ModelError as exc:
        raise ModelRegistryError(f"model version {name!r} cannot be loaded: {exc}") from None
    return version


def _known(data_dir: str | os.PathLike[str] | None) -> str:
    """Names of the version folders, for messages (not verified)."""
    root = models_dir(data_dir)
    names = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    return ", ".join([SHIPPED, *names])


def _read_pointer(data_dir: str | os.PathLike[str] | None) -> tuple[str, list[str]]:
    """``(active name, earlier active names, oldest first)``; the shipped model when there is no pointer."""
    pointer = models_dir(data_dir) / ACTIVE_FILE
    if not pointer.is_file():
        return SHIPPED, []
    try:
        data = json.loads(pointer.read_text(encoding="utf-8"))
        if data.get("format") != _POINTER_FORMAT or not isinstance(data.get("active"), str):
            raise ValueError("not an active-model pointer")
        history = [h for h in data.get("history", []) if isinstance(h, str)]
        return data["active"], history
    except (OSError, ValueError, AttributeError) as exc:
        log.warning("ignoring %s (%s); using the shipped model", pointer, exc)
        return SHIPPED, []


def _write_pointer(data_dir: str | os.PathLike[str] | None, active: str, history: list[str]) -> None:
    pointer = models_dir(data_dir) / ACTIVE_FILE
    text = json.dumps(
        {
            "format": _POINTER_FORMAT,
            "version": _POINTER_VERSION,
            "active": active,
            "history": history[-_MAX_HISTORY:],
            "changed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
        indent=2,
    )
    try:
        write_text_atomic(pointer, text)
    except OSError as exc:
        raise ModelRegistryError(
            f"cannot write {pointer}: {exc.strerror or exc}; free some disk space or check the folder's "
            "permissions (the previously active model is still in use)"
        ) from exc


def list_versions(*, data_dir: str | os.PathLike[str] | None = None) -> list[ModelVersion]:
    """The shipped model, then the local versions oldest first (by folder time), with ``active`` set.

    Folders whose weights or card are missing or corrupt are left out with a logged warning.
    """
    active = active_version(data_dir=data_dir).name
    versions = [ModelVersion(SHIPPED, DEFAULT_MODEL, _read_card(DEFAULT_MODEL), active == SHIPPED)]
    root = models_dir(data_dir)
    folders = [p for p in root.iterdir() if p.is_dir() and _NAME_RE.fullmatch(p.name)] if root.is_dir() else []
    for folder in sorted(folders, key=lambda p: (p.stat().st_mtime, p.name)):
        try:
            card = _read_card(folder / WEIGHTS_NAME)
        except ModelRegistryError as exc:
            log.warning("skipping model folder %s: %s", folder, exc)
            continue
        versions.append(ModelVersion(folder.name, folder / WEIGHTS_NAME, card, folder.name == active))
    return versions


def get_version(name: str, *, data_dir: str | os.PathLike[str] | None = None) -> ModelVersion:
    """One version by name (weights checked against the card).

    Raises
    ------
    ModelRegistryError
        No such version, or its files are missing or corrupt.
    """
    version = _version(name, data_dir)
    active, _ = _read_pointer(data_dir)
    return ModelVersion(version.name, version.path, version.card, active == name)


def active_version(*, data_dir: str | os.PathLike[str] | None = None) -> ModelVersion:
    """The active version; the shipped model when none was activated or the active one is broken."""
    name, _ = _read_pointer(data_dir)
    if name != SHIPPED:
        try:
            v = _loadable_version(name, data_dir)
            return ModelVersion(v.name, v.path, v.card, True)
        except ModelRegistryError as exc:
            log.warning("the active model %r cannot be used (%s); falling back to the shipped model", name, exc)
    return ModelVersion(SHIPPED, DEFAULT_MODEL, _read_card(DEFAULT_MODEL), True)


def active_model_path(*, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The weights file of the active version, for ``Digitizer(active_model_path())``."""
    return active_version(data_dir=data_dir).path


def resolve_model(model: str | os.PathLike[str] | None, *, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """A weights file from a version name, a path, or None (the active version).

    A string naming an existing version wins over a relative path of the same spelling.
    """
    if model is None:
        return active_model_path(data_dir=data_dir)
    text = os.fspath(model)
    if isinstance(model, str) and (
        text == SHIPPED or (_NAME_RE.fullmatch(text) and (models_dir(data_dir) / text).is_dir())
    ):
        return _version(text, data_dir).path
    path = Path(text)
    if path.is_dir():
        path = path / WEIGHTS_NAME
    if not path.is_file():
        raise ModelRegistryError(
            f"no model {text!r}: neither a weights file nor a version name (known versions: {_known(data_dir)})"
        )
    return path


# -------------------------------------------------------------------------------------------- changing


def new_version_name(prefix: str = "finetune", *, data_dir: str | os.PathLike[str] | None = None) -> str:
    """``<prefix>-YYYYmmdd-HHMMSS``, with ``-2``, ``-3``... when that folder exists."""
    base = f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}"
    name, k = base, 1
    while (models_dir(data_dir) / name).exists():
        k += 1
        name = f"{base}-{k}"
    return check_version_name(name)


def save_version(
    model: TraceNet, card: ModelCard, name: str, *, data_dir: str | os.PathLike[str] | None = None
) -> ModelVersion:
    """Write a new version folder (weights and card); it is not activated.

    Nothing is left behind when writing fails: a partly written folder is removed.

    Raises
    ------
    ModelRegistryError
        The name is invalid or taken.
    OSError
        Writing failed (full disk, permissions); the caller turns it into a message.
    """
    folder = models_dir(data_dir) / check_version_name(name)
    if folder.exists():
        raise ModelRegistryError(f"model version {name!r} already exists in {folder.parent}; choose another name")
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        folder.mkdir()
        saved = save_model(model, folder / WEIGHTS_NAME, card)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    log.info("saved model version %s to %s", name, folder)
    return ModelVersion(name, folder / WEIGHTS_NAME, saved, False)


def activate(name: str, *, data_dir: str | os.PathLike[str] | None = None) -> ModelVersion:
    """Make ``name`` the active version; the one active before can be restored with :func:`rollback`.

    Raises
    ------
    ModelRegistryError
        No such version, its weights are corrupt, or the pointer cannot be written; the
        previously active version stays active.
    """
    version = _loadable_version(name, data_dir)
    current, history = _read_pointer(data_dir)
    if current != name:
        history = [*history, current]
        _write_pointer(data_dir, name, history)
    log.info("active model: %s", name)
    return ModelVersion(version.name, version.path, version.card, True)


def rollback(*, data_dir: str | os.PathLike[str] | None = None) -> ModelVersion:
    """Go back to the version that was active before the current one.

    Earlier versions that were deleted or broke since are skipped; with no earlier version
    the shipped model becomes active.

    Raises
    ------
    ModelRegistryError
        The shipped model is already active and nothing was active before it, or the pointer
        cannot be written.
    """
    current, history = _read_pointer(data_dir)
    while history:
        previous = history.pop()
        if previous == current:
            continue
        try:
            version = _version(previous, data_dir)
        except ModelRegistryError as exc:
            log.warning("cannot roll back to %r (%s); trying the one before", previous, exc)
            continue
        _write_pointer(data_dir, previous, history)
        log.info("rolled back from %s to %s", current, previous)
        return ModelVersion(version.name, version.path, version.card, True)
    if current == SHIPPED:
        raise ModelRegistryError(
            "nothing to roll back to: the shipped model is active and no other model was active before it"
        )
    _write_pointer(data_dir, SHIPPED, [])
    log.info("rolled back from %s to the shipped model", current)
    return ModelVersion(SHIPPED, DEFAULT_MODEL, _read_card(DEFAULT_MODEL), True)
