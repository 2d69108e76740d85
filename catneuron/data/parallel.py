"""Order-preserving parallel map with bounded memory.

`multiprocessing.Pool.imap` reads its whole input ahead and keeps every finished result until it is
consumed: over an epoch of images that is the whole dataset in memory. `ordered_map` keeps at most
`window` chunks of `chunk` items in flight.
"""
from __future__ import annotations

import itertools
import multiprocessing
import os
from collections import deque
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def _apply_chunk(fn: Callable[[T], R], chunk: list[T]) -> list[R]:
    return [fn(x) for x in chunk]


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int, chunk: int = 32,
                window: int | None = None) -> Iterator[R]:
    """fn over items, in order; in `workers` processes (fork where available), or here when 0."""
    if workers <= 0:
        yield from map(fn, items)
        return
    window = window or 4 * workers
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() and os.name == "posix" else "spawn"
    it = iter(items)
    with multiprocessing.get_context(method).Pool(workers) as pool:
        pending: deque = deque()
        while True:
            while len(pending) < window:
                part = list(itertools.islice(it, chunk))
                if not part:
                    break
                pending.append(pool.apply_async(_apply_chunk, (fn, part)))
            if not pending:
                return
            yield from pending.popleft().get()
