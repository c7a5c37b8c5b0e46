"""Drive a core long operation (progress generator, then outcome) in a napari thread worker or inline."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

from napari.utils import progress
from napari.utils.notifications import Notification, NotificationSeverity, notification_manager, show_error, show_info

from ..progress import Outcome, Progress
from ..training.loop import TrainingAborted

#: Set to 1 to run predictions and fine-tunes in the calling thread (tests, scripts).
SYNC_ENV = "NAPARI_SEGNET_SYNC"

#: Errors a user can cause (bad input, a full disk, a fine-tune that diverged): one notification, never a
#: traceback. Anything else is a bug and reaches the log with its traceback.
USER_ERRORS = (ValueError, OSError, TrainingAborted)


def synchronous() -> bool:
    return os.environ.get(SYNC_ENV, "") not in ("", "0")


def notify(error: BaseException) -> None:
    """One clear notification for an error a user can cause."""
    show_error(str(error) or type(error).__name__)


def warn(message: str, *actions) -> None:
    """A warning notification, with buttons for ``actions`` ((label, callback) pairs)."""
    notification_manager.dispatch(Notification(message, severity=NotificationSeverity.WARNING, actions=actions))


def guarded(method):
    """Turn an error a user can cause into a notification (never a traceback); nothing else changes."""
    def wrapper(self, *args):
        try:
            return method(self, *args)
        except USER_ERRORS as e:
            notify(e)
    wrapper.__name__, wrapper.__doc__ = method.__name__, method.__doc__
    return wrapper



class Job:
    """A long operation (see :mod:`napari_segnet.progress`) run with a napari progress bar and Stop.

    ``on_update(progress)`` is called with every :class:`Progress`, ``on_done(outcome)`` with the
    :class:`Outcome` when the operation completes, ``on_end()`` at the end in every case (done, stopped,
    failed). Errors a user can cause become a notification; others propagate (inline) or reach napari's
    error reporting (threaded) with their traceback.
    """

    def __init__(self, steps: Iterator, description: str, on_update: Callable[[Progress], None],
                 on_done: Callable[[Outcome], None], on_end: Callable[[], None] | None = None):
        self.steps, self.description = steps, description
        self.on_update, self.on_done, self.on_end = on_update, on_done, on_end
        self.worker = None
        self.stopped = False
        self.done = False
        self._bar = None

    def start(self) -> Job:
        """Run inline when ``NAPARI_SEGNET_SYNC`` is set, else in a thread worker; returns self."""
        if synchronous():
            self._run_here()
        else:
            from napari.qt.threading import create_worker

            self.worker = create_worker(self._results)
            self.worker.yielded.connect(self._receive)
            self.worker.errored.connect(self._failed)
            self.worker.finished.connect(self._end)
            self.worker.start()
        return self

    def stop(self) -> None:
        """Ask to stop at the next update; the core leaves the model and the layers as they were."""
        self.stopped = True
        if self.worker is not None:
            self.worker.quit()

    def _results(self):
        """Re-yield the core's updates and outcome; closing this (Stop) closes the core generator too."""
        try:
            yield from self.steps
        finally:
            self.steps.close()

    def _run_here(self) -> None:
        results = self._results()
        try:
            for item in results:
                self._receive(item)
                if self.stopped:
                    results.close()
                    return
        except USER_ERRORS as e:
            notify(e)
        finally:
            self._end()

    def _receive(self, item: Progress | Outcome) -> None:
        if isinstance(item, Outcome):
            self.on_done(item)
            return
        if self._bar is None:
            self._bar = progress(total=item.total, desc=self.description, unit=item.unit)
        if self._bar.total != item.total:
            self._bar.total = item.total
        # update(), not n = …: it emits the value event the activity panel's bar follows, and the eta text
        # ("elapsed<time left, rate") from tqdm's rate
        self._bar.update(item.done - self._bar.n)
        self.on_update(item)

    @staticmethod
    def _failed(error: BaseException) -> None:
        if isinstance(error, USER_ERRORS):
            notify(error)
        else:
            raise error  # a bug: napari's error reporting shows it with its traceback

    def _end(self) -> None:
        self.done = True
        if self._bar is not None:
            self._bar.close()
        if self.stopped:
            show_info(f"{self.description}: stopped; nothing was changed")
        if self.on_end is not None:
            self.on_end()
