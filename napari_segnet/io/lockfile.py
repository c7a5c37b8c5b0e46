"""One writing process per folder: an exclusive ``flock`` on a lock file, released by the kernel when its holder
exits, however it ends (killed, crashed): a lock is never stale. The file names the holder for the message.

Within one process a folder may be opened several times (the dock reopening its project, tests): the lock is
taken once and counted. Where ``fcntl`` is missing (Windows), ``msvcrt.locking`` does the same.
"""

from __future__ import annotations

import errno
import os
import socket
import threading
from pathlib import Path

NAME = ".napari-segnet.lock"
_HELD: dict[str, list[int]] = {}  # real path of the folder → [fd, count]
_GUARD = threading.Lock()
#: errors of a folder that refuses new files (read-only mount or permissions): nothing can be written there
READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM)


class FolderInUseError(OSError):
    """Another process holds the folder's lock."""


def acquire(folder: Path) -> str:
    """Lock ``folder`` for this process (again: counted); returns the key for :func:`release`. Raises
    :class:`FolderInUseError` naming the holder, or ``OSError`` if the lock file cannot be created (``errno``
    in :data:`READ_ONLY` for a folder that refuses writes)."""
    key = os.path.realpath(folder)
    with _GUARD:
        if key in _HELD:
            _HELD[key][1] += 1
            return key
        path = Path(key) / NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if not _try_lock(fd):
            holder = _holder(fd)
            os.close(fd)
            raise FolderInUseError(errno.EBUSY, f"{folder} is open in another napari-segnet ({holder}); close it "
                                   "there first (two writers would lose each other's model versions)")
        os.ftruncate(fd, 0)
        os.write(fd, f"process {os.getpid()} on {socket.gethostname()}".encode())
        _HELD[key] = [fd, 1]
        return key


def release(key: str) -> None:
    """Undo one :func:`acquire`; the last one unlocks the folder."""
    with _GUARD:
        held = _HELD.get(key)
        if held is None:
            return
        held[1] -= 1
        if held[1] == 0:
            del _HELD[key]
            os.close(held[0])  # closing the descriptor releases the lock


def _holder(fd: int) -> str:
    """Who holds the lock, as its holder wrote it ("process 123 on host")."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return os.read(fd, 200).decode(errors="replace").strip() or "another process"
    except OSError:  # Windows: the locked byte cannot be read
        return "another process"


def _try_lock(fd: int) -> bool:
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
