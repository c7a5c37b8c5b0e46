"""What the headless commands share: exit statuses, messages on stderr, progress bars, the model argument."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

OK, FAILED, USAGE, NOT_ACCEPTED, INTERRUPTED = 0, 1, 2, 3, 130
#: At most this many classes are read from the largest label id; beyond, a (C, C) confusion matrix and C IU columns
#: (70000 instance ids: 36 GiB), or a model of that many classes, are surely not what was meant: --classes says so.
MAX_GUESSED_CLASSES = 256


class UsageError(Exception):
    """A mistake in the command line or its files, found before any work is done: exit status 2."""


def say(message: str) -> None:
    """One message on stderr (stdout is kept for results such as tables)."""
    print(message, file=sys.stderr, flush=True)


def load_model(spec: str):
    """The Segmenter of ``--model``: ``default`` (the shipped model) or a checkpoint path; ``UsageError`` else."""
    from ..io.checkpoint import CheckpointError
    from ..segmenter import Segmenter

    if spec == "default":
        return Segmenter.default()
    if not Path(spec).is_file():
        raise UsageError(f"no model file {spec} (use --model default for the shipped model)")
    try:
        return Segmenter.load(spec)
    except CheckpointError as e:
        raise UsageError(str(e)) from e


def writable_folder(path: str | Path) -> Path:
    """``path`` as a folder that exists (created if needed) and accepts files; ``UsageError`` otherwise."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
    except OSError as e:
        raise UsageError(f"cannot write to the output folder {path}: {e.strerror or e}") from e
    return path


class Bar:
    """A progress bar on stderr: tqdm when it is installed (it comes with napari), else a line every 10 %."""

    def __init__(self, total: int, desc: str, unit: str, position: int = 0, leave: bool = True,
                 enabled: bool = True):
        self.total, self.desc, self.unit, self.enabled, self._shown = total, desc, unit, enabled, -1
        self._bar = None
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                return
            self._bar = tqdm(total=total, desc=desc, unit=unit, position=position, leave=leave, file=sys.stderr,
                             dynamic_ncols=True)

    def update(self, done: int, total: int | None = None, **postfix) -> None:
        """Show ``done`` of ``total`` (default: the bar's) units, with ``postfix`` values (e.g. loss=0.3)."""
        total = self.total if total is None else total
        if self._bar is not None:
            self._bar.total = total
            if postfix:
                self._bar.set_postfix({k: f"{v:.4g}" if isinstance(v, float) else v for k, v in postfix.items()},
                                      refresh=False)
            self._bar.update(done - self._bar.n)  # redraws at most every 0.1 s
        elif self.enabled and (tenth := 10 * done // max(total, 1)) > self._shown:
            self._shown = tenth
            extra = "".join(f" {k}={v:.4g}" if isinstance(v, float) else f" {k}={v}" for k, v in postfix.items())
            say(f"{self.desc}: {done}/{total} {self.unit}{extra}")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
