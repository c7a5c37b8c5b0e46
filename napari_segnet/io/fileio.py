"""Atomic file writes: a reader never sees half a file, and a crashed save leaves no debris behind for long."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

#: A temporary file of the same target that has not been written to for this long belongs to a save that
#: died (killed, power loss): the next save of that target removes it. A live save keeps its file's mtime fresh.
STALE_SECONDS = 60.0


def atomic_write(path: str | os.PathLike, write: Callable[[str], object]) -> None:
    """Call ``write(tmp_path)``, then rename the temporary file over ``path``: a reader never sees half a file,
    and a failure (full or read-only disk) leaves any previous file intact. The temporary file lies in a folder
    of its own, ``.<name>.<random>.tmp``, so that what a writing library makes beside it (safetensors writes
    a temporary ``.tmp…`` file of its own and renames it) goes there too; such folders (and files) left by
    earlier saves of the same target that died are removed first."""
    path = Path(path)
    remove_stale_temporaries(path)
    folder = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    tmp = folder / path.name
    try:
        write(str(tmp))
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_umask())  # not mkstemp's 0600
        os.replace(tmp, path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def remove_stale_temporaries(path: Path, older_than: float = STALE_SECONDS) -> list[Path]:
    """Delete the temporary files and folders ``.<path.name>.*.tmp`` beside ``path`` in which nothing changed
    for ``older_than`` seconds; returns them."""
    now, removed = time.time(), []
    for tmp in path.parent.glob(f".{_glob_escape(path.name)}.*.tmp"):
        try:
            if now - _last_change(tmp) >= older_than:
                shutil.rmtree(tmp) if tmp.is_dir() and not tmp.is_symlink() else tmp.unlink()
                removed.append(tmp)
        except OSError:  # vanished meanwhile, or not ours to delete: leave it
            continue
    return removed


def _last_change(path: Path) -> float:
    """The newest modification time of ``path`` and, for a folder, of what it holds (a live save's file)."""
    times = [path.stat().st_mtime]
    if path.is_dir():
        times += [p.stat().st_mtime for p in path.iterdir()]
    return max(times)


def _glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
