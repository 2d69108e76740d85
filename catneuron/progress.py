"""Progress on long work: a tqdm bar on a terminal, a log line every half minute elsewhere.

A bar redrawn with carriage returns is unreadable in a log file or a CI page (tqdm writes every
frame there), and `--no-progress` alone would leave a long job silent until its end. So
`progress(...)` gives tqdm only when progress is on and stderr is a terminal; otherwise a
LineProgress with tqdm's interface that logs "train small: 300/1,000 step (30 %), loss=8.12e+03,
310 img/s ... ETA 2 min 10 s" at most every `every` seconds, and once at the end of work that took
that long.
"""
from __future__ import annotations

import logging
import sys
import threading
import time
from contextlib import contextmanager

from tqdm import tqdm

log = logging.getLogger("catneuron")
EVERY = 30.0           # seconds between two log lines


def progress(iterable=None, *, total: int | None = None, desc: str = "", unit: str = "it", initial: int = 0,
             enabled: bool = True, every: float = EVERY, **bar):
    """tqdm(iterable, total=..., desc=..., unit=..., initial=..., **bar) on a terminal, else LineProgress."""
    if enabled and sys.stderr.isatty():
        return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, dynamic_ncols=True, **bar)
    return LineProgress(iterable, total, desc, unit, initial, every)


@contextmanager
def heartbeat(desc: str, every: float = EVERY):
    """Around a call that reports no progress of its own (a library's fit): says it started, then
    that it is still running every `every` seconds, then how long it took."""
    log.info("%s ...", desc)
    start, done = time.monotonic(), threading.Event()

    def beat():
        while not done.wait(every):
            log.info("%s: still running (%s)", desc, duration(time.monotonic() - start))
    thread = threading.Thread(target=beat, daemon=True, name="catneuron-heartbeat")
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
    log.info("%s: done in %s", desc, duration(time.monotonic() - start))


def duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


class LineProgress:
    """The part of tqdm's interface catneuron uses, as periodic log lines."""

    def __init__(self, iterable=None, total: int | None = None, desc: str = "", unit: str = "it", initial: int = 0,
                 every: float = EVERY):
        if total is None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.iterable, self.total, self.desc, self.unit, self.every = iterable, total, desc, unit, every
        self.n = self.initial = self.shown = initial
        self.start = self.last = time.monotonic()
        self.postfix = ""

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update(1)
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            self._log(now)

    def set_postfix(self, **values) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def set_description(self, desc: str) -> None:
        self.desc = desc

    def reset(self, total: int | None = None) -> None:
        self.total, self.n, self.initial, self.shown, self.start = total, 0, 0, 0, time.monotonic()

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        now = time.monotonic()
        if self.n != self.shown and now - self.start >= self.every:
            self._log(now)

    def _log(self, now: float) -> None:
        self.shown = self.n
        done = f"{self.n:,}/{self.total:,} {self.unit}" if self.total else f"{self.n:,} {self.unit}"
        if self.total:
            done += f" ({100 * self.n / self.total:.0f} %)"
        rate = (self.n - self.initial) / max(now - self.start, 1e-9)
        eta = f", ETA {duration((self.total - self.n) / rate)}" if self.total and rate > 0 else ""
        extra = f", {self.postfix}" if self.postfix else ""
        log.info("%s: %s%s, %.3g %s/s%s", self.desc or "progress", done, extra, rate, self.unit, eta)
