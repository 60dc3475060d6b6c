"""Atomic file writes: write to a temporary file beside the target, then rename over it.

A crash or a full disk never leaves a half-written file where the user expects a good one.
The file and then its folder are flushed to disk, so the rename survives a power cut; the
temporary files a crash leaves behind (``.<name>.<random>.tmp``) are swept by the next write
into that folder once they are :data:`STALE_S` old.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

#: Age in seconds after which a temporary file of an atomic write is taken for a crash's leftover.
STALE_S = 15 * 60
_TEMP_RE = re.compile(r"\..+\.[A-Za-z0-9_]{8}\.tmp")  # mkstemp's names with our prefix and suffix


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success rename it over ``target``.

    The caller writes the whole file to the yielded path (with any library).  If the block
    raises, the temporary file is removed and ``target`` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    sweep_leftovers(target.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    fsync_folder(target.parent)


def fsync_folder(folder: Path) -> None:
    """Flush ``folder``'s entries (a rename into it) to disk; a no-op where folders cannot be opened (Windows)."""
    if os.name == "nt":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sweep_leftovers(folder: Path, *, older_than_s: float = STALE_S) -> int:
    """Remove the temporary files (and folders) of atomic writes in ``folder`` that a crash left,
    once ``older_than_s`` old; returns how many.  A write still in progress is younger."""
    removed = 0
    cutoff = time.time() - older_than_s
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        if not _TEMP_RE.fullmatch(entry.name):
            continue
        try:
            if entry.stat(follow_symlinks=False).st_mtime > cutoff:
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            removed += 1
        except OSError as exc:  # another process swept it, or it is not ours to remove
            log.debug("could not sweep %s: %s", entry.path, exc)
    if removed:
        log.info("removed %d temporary file(s) left by an interrupted write in %s", removed, folder)
    return removed


def _read_umask() -> int:
    """The process umask (read once: setting it is process-wide, so not done per write)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def write_bytes_atomic(target: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(target: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``target`` atomically."""
    write_bytes_atomic(target, text.encode("utf-8"))
