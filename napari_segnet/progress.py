"""The one protocol of long operations (predict, fine-tune): a generator of typed progress, then its outcome.

A long operation is a function that checks its inputs, then returns a generator. The generator yields
:class:`Progress` updates (``done`` of ``total`` units of work) and, as its very last item, one
:class:`Outcome` that carries the result. Closing the generator early (Stop) abandons the work; the operation
guarantees what that leaves behind (fine-tune: the model unchanged). :func:`run` drives such a generator to its
outcome in the calling thread (scripts, tests, ``NAPARI_SEGNET_SYNC=1``); the dock's ``Job`` drives the same
generator in a napari thread worker.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import ClassVar, TypeVar


@dataclass(frozen=True)
class Progress:
    """``done`` of ``total`` units of work are finished (tiles for predict, steps for fine-tune)."""

    done: int
    total: int
    unit: ClassVar[str] = "units"


class Outcome:
    """Base class of the last item a long operation yields: its result."""


class Cancelled(RuntimeError):
    """A long operation was stopped by its progress callback; nothing it would have changed was changed."""


O = TypeVar("O", bound=Outcome)


def run(steps: Iterator[Progress | O], progress: Callable[[int, int], bool | None] | None = None) -> O:
    """Drive ``steps`` to its outcome in this thread and return it.

    ``progress(done, total)`` is called after every update; returning ``False`` closes the generator and raises
    :class:`Cancelled`. Raises ``RuntimeError`` if the generator ends without an outcome (a bug).
    """
    for update in steps:
        if isinstance(update, Outcome):
            steps.close()
            return update
        if progress is not None and progress(update.done, update.total) is False:
            steps.close()
            raise Cancelled(f"cancelled after {update.done} of {update.total} {update.unit}")
    raise RuntimeError("a long operation ended without its outcome")
