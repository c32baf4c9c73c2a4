"""Pipelining for the writers: read the next frames and write the previous outputs while the model runs.

* :func:`read_ahead` iterates a frame source on a helper thread, ``depth`` items ahead, and yields the items
  in order; an exception of the source (a corrupt frame's :class:`vidseg.errors.DataError`, naming the file)
  is raised in the caller at the position it happened.
* :class:`OrderedJobs` runs jobs (encode and write a mask, add an overlay frame) on one helper thread in
  submission order, at most ``depth`` waiting; the first failure is raised in the caller (at its next
  ``submit`` or when the block ends) and later jobs are not run. Leaving the block waits for every
  submitted job, so a writer returns only once its files are complete; each file is still written atomically
  (:func:`vidseg.fileio.atomic_path`), so resume and staging behave as without pipelining.

Both take ``enabled=False`` / ``depth=0`` to run everything on the calling thread (``--no-pipeline``); the
files are byte-identical either way (tests/test_pipeline.py). The work overlaps because image decoding, PNG
compression and the model's kernels release the GIL.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
READ_AHEAD = 4  # frames decoded ahead of the model
WRITE_BEHIND = 4  # outputs waiting to be written
_END = object()
_POLL = 0.1  # seconds between checks for a cancelled pipeline while a queue is full


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def _put(q: queue.Queue, item: Any, stop: threading.Event) -> bool:
    """Put ``item`` unless ``stop`` is set first (True when it was put)."""
    while not stop.is_set():
        try:
            q.put(item, timeout=_POLL)
            return True
        except queue.Full:
            continue
    return False


def read_ahead(items: Iterable[T], depth: int = READ_AHEAD, name: str = "vidseg-read") -> Iterator[T]:
    """Yield ``items`` in order while a helper thread produces up to ``depth`` of them ahead.

    ``depth <= 0`` iterates on the calling thread. Closing the generator early stops the helper thread.
    """
    if depth <= 0:
        yield from items
        return
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if not _put(q, item, stop):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            _put(q, _Failure(exc), stop)
            return
        _put(q, _END, stop)

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        stop.set()
        thread.join()


class OrderedJobs:
    """Run submitted jobs in order on one helper thread (a context manager; see the module docstring).

    Args:
        enabled: False runs each job at ``submit`` on the calling thread.
        depth: most jobs waiting before ``submit`` blocks.
    """

    def __init__(self, enabled: bool = True, depth: int = WRITE_BEHIND, name: str = "vidseg-write") -> None:
        self.enabled = enabled
        self._queue: queue.Queue = queue.Queue(maxsize=max(int(depth), 1))
        self._stop = threading.Event()
        self._failure: BaseException | None = None
        self._reported = False
        self._thread = threading.Thread(target=self._work, name=name, daemon=True) if enabled else None

    def __enter__(self) -> OrderedJobs:
        if self._thread is not None:
            self._thread.start()
        return self

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is _END:
                return
            if self._failure is not None:
                continue  # after a failure the remaining jobs are dropped
            fn, args = job
            try:
                fn(*args)
            except BaseException as exc:  # noqa: BLE001 - raised in the submitting thread
                self._failure = exc
                self._stop.set()

    def _raise_failure(self) -> None:
        if self._failure is not None and not self._reported:
            self._reported = True  # raised once; the worker keeps dropping jobs
            raise self._failure

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` after the jobs submitted before it; raises an earlier job's failure."""
        if self._thread is None:
            fn(*args)
            return
        self._raise_failure()
        if not _put(self._queue, (fn, args), self._stop):
            self._raise_failure()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._thread is None:
            return
        self._queue.put(_END)  # the worker drains the queue, so this cannot block for long
        self._thread.join()
        if exc_type is None:
            self._raise_failure()
