"""Read ahead in a background thread: with no DataLoader worker processes (the default on small CPU
machines, where a worker process would only compete with the model's threads), the next batches
are read and decoded while the model computes, with no copies between processes.

The reader runs at the lowest CPU priority: it uses the cycles the model's threads leave and does
not preempt them (on 2 cores embedding reached 0.953 of the encoder's own speed with it, 0.910
without; BENCHMARKS.md). Order is kept, so a stream that is a pure function of its index
(pretraining windows, embedding batches) yields exactly what plain iteration yields. An exception
in the reader is raised in the consumer at the item where it happened; closing the consumer (or an
exception in it) stops the reader and waits for it to finish the item it is reading.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_END = object()


def _lowest_priority() -> None:
    """Make the calling thread the last to run when the cores are busy (Linux; best effort)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError):
        pass


def prefetched(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """The items of ``items`` in order, produced by a daemon thread up to ``depth`` items ahead."""
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def fill() -> None:
        _lowest_priority()
        try:
            for item in items:
                if not put(item):
                    return
            put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            put(_Failure(exc))

    reader = threading.Thread(target=fill, name="ssfbench-prefetch", daemon=True)
    reader.start()
    try:
        while True:
            item = slots.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        stop.set()
        reader.join()  # at most the item being read: no thread left inside torch at interpreter exit


__all__ = ["prefetched"]
