"""One writer per output folder: an advisory lock (``fcntl.flock``) on ``<folder>/.lock``.

``moviead train`` (its run folder), ``evaluate`` (its output folder) and ``describe`` (its output folder) hold the
lock while they write; a second process that wants the same folder refuses at once with
:class:`FolderLockedError` ("<folder> is being written by another moviead process (pid N)") instead of
interleaving rows or checkpoints with the first. The lock is released when the holder closes it or its process
ends (also when it is killed: the kernel drops ``flock`` locks with the file descriptor), so a stale ``.lock``
file never blocks anyone; the file itself is left in place (deleting lock files races with other openers).

Within one process the lock is re-entrant: ``evaluate`` holding ``<out>`` may open a
:class:`~moviead.evaluation.predictions.PredictionStore` below it. A leaf module (standard library only).
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

LOCK_FILE = ".lock"

try:  # POSIX; on other systems folders are not locked
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

_HELD: dict[Path, list[int]] = {}  # resolved folder -> [file descriptor, depth] of the locks this process holds


class FolderLockedError(RuntimeError):
    """Another process is writing the folder."""

    def __init__(self, folder: Path, pid: str) -> None:
        self.folder, self.pid = folder, pid
        who = f"pid {pid}" if pid else "pid unknown"
        super().__init__(f"{folder} is being written by another moviead process ({who}); wait for it to finish, "
                         "or choose another output folder")


def _key(folder: str | Path) -> Path:
    return Path(folder).resolve()


def is_held_here(folder: str | Path) -> bool:
    """True when this process holds the lock of ``folder``."""
    return _key(folder) in _HELD


def acquire(folder: str | Path) -> None:
    """Lock ``folder`` (created when missing) for this process, or refuse at once.

    Raises:
        FolderLockedError: another process holds the lock.
        PermissionError: the folder cannot be created or written.
    """
    key = _key(folder)
    if key in _HELD:
        _HELD[key][1] += 1
        return
    key.mkdir(parents=True, exist_ok=True)
    fd = os.open(key / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                os.close(fd)
                raise
            pid = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            os.close(fd)
            raise FolderLockedError(Path(folder), pid) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _HELD[key] = [fd, 1]


def release(folder: str | Path) -> None:
    """Undo one :func:`acquire` of ``folder``; the lock goes with the last one."""
    key = _key(folder)
    held = _HELD.get(key)
    if held is None:
        return
    held[1] -= 1
    if held[1] == 0:
        del _HELD[key]
        os.close(held[0])  # closing the descriptor drops the flock


@contextlib.contextmanager
def folder_lock(folder: str | Path) -> Iterator[Path]:
    """``with folder_lock(out):`` hold the lock of ``out`` while writing there (see :func:`acquire`)."""
    acquire(folder)
    try:
        yield Path(folder)
    finally:
        release(folder)


def check_not_locked(folder: str | Path) -> None:
    """Refuse when another process holds ``folder``'s lock (a no-op when this process holds it, or no lock file
    exists); takes and drops the lock otherwise.

    Raises:
        FolderLockedError: another process is writing ``folder``.
    """
    if is_held_here(folder) or not (Path(folder) / LOCK_FILE).exists():
        return
    with folder_lock(folder):
        pass
