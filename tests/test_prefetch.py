"""The read-ahead thread: same items in the same order, the reader's exception at its item, and no
reader left running once the consumer stops (a thread still inside torch when the interpreter
exits aborts the process)."""

from __future__ import annotations

import threading
import time

import pytest

from ssfbench.runtime.prefetch import prefetched


def _readers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "ssfbench-prefetch"]


def test_items_come_in_order():
    assert list(prefetched(range(50), depth=3)) == list(range(50))
    assert not _readers()


def test_a_failure_in_the_reader_is_raised_at_its_item():
    def items():
        yield from (0, 1)
        raise OSError("frame 2 unreadable")

    got = []
    with pytest.raises(OSError, match="frame 2 unreadable"):
        for item in prefetched(items()):
            got.append(item)
    assert got == [0, 1]
    assert not _readers()


def test_closing_early_stops_the_reader_before_returning():
    started = []

    def endless():
        i = 0
        while True:
            started.append(i)
            time.sleep(0.02)  # an item being read when the consumer stops
            yield i
            i += 1

    stream = prefetched(endless(), depth=2)
    assert [next(stream) for _ in range(3)] == [0, 1, 2]
    stream.close()
    assert not _readers()
    read = len(started)
    time.sleep(0.1)
    assert len(started) == read  # nothing is read after close
