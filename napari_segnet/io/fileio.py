"""Atomic file writes: a reader never sees half a file, and a crashed save leaves no debris behind for long."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

#: A temporary file of the same target that has not been written to for this long belongs to a save that
#: died (killed, power loss): the next save of that target removes it. A live save keeps its file's mtime fresh.
STALE_SECONDS = 60.0


def atomic_write(path: str | os.PathLike, write: Callable[[str], object]) -> None:
    """Call ``write(tmp_path)``, then rename the temporary file over ``path``: a reader never sees half a file,
    and a failure (full or read-only disk) leaves any previous file intact. Temporary files
    ``.<name>.<random>.tmp`` left by earlier saves of the same target that died are removed first."""
    path = Path(path)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_umask())  # not mkstemp's 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale_temporaries(path: Path, older_than: float = STALE_SECONDS) -> list[Path]:
    """Delete ``.<path.name>.*.tmp`` files beside ``path`` untouched for ``older_than`` seconds; returns them."""
    now, removed = time.time(), []
    for tmp in path.parent.glob(f".{_glob_escape(path.name)}.*.tmp"):
        try:
            if now - tmp.stat().st_mtime >= older_than:
                tmp.unlink()
                removed.append(tmp)
        except OSError:  # vanished meanwhile, or not ours to delete: leave it
            continue
    return removed


def _glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
