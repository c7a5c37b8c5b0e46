"""A three-stage tile pipeline: read the next batch and write the previous one while the network runs."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import numpy as np

from ..io.fileio import remove_stale_temporaries
from ..progress import Outcome, Progress

B = TypeVar("B")


def pipelined(batches: Sequence[B], read: Callable[[B], object], compute: Callable[[object], object],
              write: Callable[[B, object], None]) -> Iterator[int]:
    """Run ``write(b, compute(read(b)))`` for every batch b in order, reading batch k+1 on one thread and
    writing batch k−1 on another while ``compute`` (which should release the GIL, as torch does) runs batch k
    in this one; yields the number of batches computed after each.

    Every write has finished when the generator ends. An error in any stage is raised here; an error or closing
    the generator (Stop) waits for the one read and one write in flight, so no thread outlives it.
    """
    if not batches:
        return
    with ThreadPoolExecutor(1, thread_name_prefix="segnet-read") as reader, \
            ThreadPoolExecutor(1, thread_name_prefix="segnet-write") as writer:
        try:
            yield from _stages(batches, read, compute, write, reader, writer)
        finally:
            reader.shutdown(wait=True, cancel_futures=True)
            writer.shutdown(wait=True, cancel_futures=True)


def _stages(batches, read, compute, write, reader: ThreadPoolExecutor, writer: ThreadPoolExecutor
            ) -> Iterator[int]:
    next_input: Future = reader.submit(read, batches[0])
    writing: Future | None = None
    for k, batch in enumerate(batches):
        data = next_input.result()
        if k + 1 < len(batches):
            next_input = reader.submit(read, batches[k + 1])
        result = compute(data)
        if writing is not None:
            writing.result()  # at most one write in flight: memory stays bounded, errors surface at once
        writing = writer.submit(write, batch, result)
        yield k + 1
    writing.result()


def predict_to_file(path: str | os.PathLike, shape: tuple[int, ...], dtype,
                    make_steps: Callable[[np.ndarray], Iterator[Progress | Outcome]]
                    ) -> Iterator[Progress | Outcome]:
    """Predict into a ``.npy`` file at ``path`` (labels of ``shape``, ``dtype``): ``make_steps(out)`` is the
    prediction writing into the memory-mapped ``out``. The file appears (renamed from a temporary beside it)
    only when the prediction completes; an error or Stop removes the temporary, so no partial file is left.
    Yields the prediction's updates and its outcome."""
    path = Path(path)
    remove_stale_temporaries(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{id(shape):x}.tmp")
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=tuple(shape))
        for update in make_steps(out):
            if isinstance(update, Outcome):
                out.flush()
                os.replace(tmp, path)
            yield update
    finally:
        tmp.unlink(missing_ok=True)
