"""Background prefetching of a step-indexed producer."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")

_POLL_S = 0.1  # how often a blocked worker checks whether the consumer went away


def prefetch(produce: Callable[[int], T], start: int, buffer_size: int = 2) -> Iterator[T]:
    """Yields ``produce(start), produce(start + 1), ...``, computed ahead by one daemon thread.

    At most ``buffer_size`` results wait in the queue. An exception raised by ``produce``
    is re-raised by the iterator at the step where it happened. The thread starts at
    the first ``next`` and stops soon after the iterator is closed or garbage-collected.
    """
    if buffer_size < 1:
        raise ValueError(f"buffer_size must be >= 1, got {buffer_size}")
    results: queue.Queue = queue.Queue(maxsize=buffer_size)
    stop = threading.Event()

    def work() -> None:
        step = start
        while not stop.is_set():
            try:
                item = (produce(step), None)
            except Exception as error:  # handed to the consumer, which re-raises it
                item = (None, error)
            while not stop.is_set():
                try:
                    results.put(item, timeout=_POLL_S)
                    break
                except queue.Full:
                    continue
            if item[1] is not None:
                return
            step += 1

    def consume() -> Iterator[T]:
        threading.Thread(target=work, name="kacjax-prefetch", daemon=True).start()
        try:
            while True:
                value, error = results.get()
                if error is not None:
                    raise error
                yield value
        finally:
            stop.set()

    return consume()
