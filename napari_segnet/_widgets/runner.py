"""Run a core generator in a napari thread worker (or synchronously for tests) with napari progress."""

from __future__ import annotations

import os
from collections.abc import Callable, Generator

from napari.utils import progress
from napari.utils.notifications import show_error, show_info

#: Set to 1 to run predictions and fine-tunes in the calling thread (tests, scripts).
SYNC_ENV = "NAPARI_SEGNET_SYNC"

#: Errors a user can cause: shown as one notification, never a traceback.
USER_ERRORS = (ValueError, OSError, RuntimeError)


def synchronous() -> bool:
    return os.environ.get(SYNC_ENV, "") not in ("", "0")


def notify(error: BaseException) -> None:
    """One clear notification for an error a user can cause."""
    show_error(str(error) or type(error).__name__)


class Job:
    """A generator run with progress, Stop, and callbacks on each update, on success and at the end.

    ``total`` turns the updates' ``done``/``step`` fields into a napari progress bar.
    """

    def __init__(self, generator: Generator, description: str, on_update: Callable, on_done: Callable,
                 on_end: Callable[[], None] | None = None):
        self.generator, self.description = generator, description
        self.on_update, self.on_done, self.on_end = on_update, on_done, on_end
        self.worker = None
        self.stopped = False
        self.done = False
        self._bar = None

    def start(self) -> Job:
        if synchronous():
            self._run_here()
        else:
            from napari.qt.threading import create_worker

            self.worker = create_worker(self._results)
            self.worker.yielded.connect(self._update)
            self.worker.returned.connect(self.on_done)
            self.worker.errored.connect(notify)
            self.worker.finished.connect(self._end)
            self.worker.start()
        return self

    def stop(self) -> None:
        """Ask to stop at the next update; the core leaves the model and the layers as they were."""
        self.stopped = True
        if self.worker is not None:
            self.worker.quit()

    def _results(self):
        """Re-yield the core's updates; return its return value, or else its last update. Closing this
        (Stop) closes the core generator too."""
        last = None
        try:
            while True:
                last = next(self.generator)
                yield last
        except StopIteration as stop:
            return stop.value if stop.value is not None else last
        finally:
            self.generator.close()

    def _run_here(self) -> None:
        results = self._results()
        try:
            while True:
                update = next(results)
                self._update(update)
                if self.stopped:
                    results.close()
                    return
        except StopIteration as stop:
            self.on_done(stop.value)
        except USER_ERRORS as e:
            notify(e)
        finally:
            self._end()

    def _update(self, update) -> None:
        total = getattr(update, "total", None)
        if total and self._bar is None:
            self._bar = progress(total=total, desc=self.description)
        if self._bar is not None:
            self._bar.n = getattr(update, "done", getattr(update, "step", self._bar.n))
            self._bar.refresh()
        self.on_update(update)

    def _end(self) -> None:
        self.done = True
        if self._bar is not None:
            self._bar.close()
        if self.stopped:
            show_info(f"{self.description}: stopped; nothing was changed")
        if self.on_end is not None:
            self.on_end()
