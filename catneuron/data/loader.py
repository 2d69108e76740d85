"""A deterministic, resumable stream of training images.

Epoch e visits every record of every source once: the shards (and chunks of loose image files)
in an order drawn from (seed, e), each read sequentially, through a shuffle buffer also seeded
by (seed, e). The stream is therefore a function of (seed, epoch), and its position is just
(epoch, records consumed): resuming replays the epoch's record order without decoding and
continues at the same sample. Unreadable images are skipped, counted and reported. (A
torch.utils.data.DataLoader cannot resume mid-epoch without torchdata's StatefulDataLoader, and
its worker processes would make the order depend on their timing; a user's own DataLoader still
trains a run through IterableStream below.)

Decoding runs in a background thread, or in `workers` processes fed in order (the order, and so
the stream, is the same either way). A `small` training step consumes ~300 images/s, far below
what one decoding thread delivers (docs/RESULTS.md), so the default is no worker processes.
"""
from __future__ import annotations

import functools
import logging
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from catneuron.data.images import decode, fit_square
from catneuron.data.parallel import ordered_map
from catneuron.data.shards import Record
from catneuron.data.sources import Source, read_unit, units
from catneuron.errors import DataError

log = logging.getLogger(__name__)


@dataclass
class StreamState:
    epoch: int = 0
    position: int = 0      # records consumed in this epoch

    def as_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}


def _decode_indexed(item: tuple[int, Record], size: int, channels: int):
    pos, rec = item
    return pos, rec.origin, decode_record(rec, size, channels)


def decode_record(rec: Record, size: int, channels: int) -> tuple[np.ndarray | None, str | None]:
    """(image, None) or (None, why it is unreadable); runs in decode workers."""
    try:
        data = rec.require_image()
        return fit_square(decode(data, rec.origin, size), size, channels), None
    except DataError as err:
        return None, str(err)


class ImageStream:
    """Endless stream of uint8 (size, size, channels) images; see the module docstring."""

    def __init__(self, sources: list[Source], size: int, channels: int = 3, seed: int = 0,
                 shuffle_buffer: int = 2000, state: StreamState | None = None, workers: int = 0):
        self.units = units(sources)
        if not self.units:
            raise DataError("no training data: the sources hold no shards or images")
        self.size, self.channels, self.seed, self.buffer = size, channels, seed, max(1, shuffle_buffer)
        self.state = state or StreamState()
        self.workers = workers
        self.skipped: dict[str, str] = {}     # unreadable record -> why

    def epoch_records(self, epoch: int) -> Iterator[Record]:
        """All records of one epoch in the stream's order (not decoded)."""
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.units))
        buf: list[Record] = []
        for u in order:
            for rec in read_unit(self.units[u]):
                if len(buf) < self.buffer:
                    buf.append(rec)
                    continue
                j = int(rng.integers(len(buf)))
                buf[j], rec = rec, buf[j]
                yield rec
        rng.shuffle(buf)
        yield from buf

    def _decoded(self, records: Iterator[tuple[int, Record]]):
        """(position, origin, (image or None, why)) in order, decoded in `workers` processes (or here)."""
        work = functools.partial(_decode_indexed, size=self.size, channels=self.channels)
        return ordered_map(work, records, self.workers)

    def images(self) -> Iterator[tuple[np.ndarray, StreamState]]:
        """(image, state after it) forever, starting at self.state."""
        epoch, skip = self.state.epoch, self.state.position
        while True:
            usable = 0
            pending = ((pos, rec) for pos, rec in enumerate(self.epoch_records(epoch)) if pos >= skip)
            for pos, origin, (img, why) in self._decoded(pending):
                if img is None:
                    if origin not in self.skipped:
                        self.skipped[origin] = why
                        if len(self.skipped) <= 10:
                            log.warning("skipping %s", why)
                    continue
                usable += 1
                yield img, StreamState(epoch, pos + 1)
            if usable == 0 and skip == 0:
                example = f", e.g. {next(iter(self.skipped.values()))}" if self.skipped else ""
                raise DataError(f"no usable images in the training data ({len(self.skipped)} unreadable{example})")
            epoch, skip = epoch + 1, 0

    def batches(self, batch_size: int, prefetch: int = 4) -> Iterator[tuple[np.ndarray, StreamState]]:
        """uint8 (batch, size, size, channels) batches and the stream state after each, decoded in a
        background thread (PIL releases the GIL while decoding)."""
        q: queue.Queue = queue.Queue(maxsize=prefetch)
        stop = threading.Event()

        def put(item) -> bool:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    pass
            return False

        def produce():
            try:
                images = self.images()
                while True:
                    batch, state = [], None
                    for img, state in images:
                        batch.append(img)
                        if len(batch) == batch_size:
                            break
                    if not put((np.stack(batch), state)):
                        return
            except BaseException as err:  # surfaced in the consumer
                put(err)

        thread = threading.Thread(target=produce, daemon=True, name="catneuron-loader")
        thread.start()
        try:
            while True:
                item = q.get()
                if isinstance(item, BaseException):
                    raise item
                self.state = item[1]
                yield item
        finally:
            stop.set()
            thread.join()


PYTHON_DATA = "python:"          # data.train of a run fed by IterableStream: "python:<the iterable's type>"


def _labelled(item) -> bool:
    """Whether an item is an (images, labels) pair: labels are class indices (an int, a vector) or,
    beside an image that is not a path, a class name."""
    if not (isinstance(item, (tuple, list)) and len(item) == 2):
        return False
    images, labels = item
    return (isinstance(labels, (int, np.integer)) or (hasattr(labels, "ndim") and labels.ndim <= 1)
            or (isinstance(labels, str) and not isinstance(images, (str, Path))))


class IterableStream:
    """Training images from a Python iterable (a torch DataLoader, a Dataset, a list), gone
    through once per epoch. Each item is an image or a batch of them (what catneuron.data.inputs
    accepts), or an (images, labels) pair whose labels are ignored; every image is cut to its
    central square and resized, as a corpus's are. Shuffling is the iterable's (DataLoader(...,
    shuffle=True)). Unlike ImageStream its position is not saved: a resumed run goes through it
    again from the start."""

    def __init__(self, data, size: int, channels: int = 3, state: StreamState | None = None):
        self.name = type(data).__name__
        if hasattr(data, "__getitem__") and hasattr(data, "__len__") and not hasattr(data, "__iter__"):
            data = _Indexed(data)          # a map-style torch Dataset
        self.data, self.size, self.channels = data, size, channels
        self.state = StreamState(state.epoch if state else 0)
        self.skipped: dict[str, str] = {}

    def images(self) -> Iterator[tuple[np.ndarray, StreamState]]:
        from catneuron.data.inputs import as_batch
        while True:
            for item in self.data:
                if _labelled(item):
                    item = item[0]
                for img in as_batch(item, self.size, self.channels):
                    self.state = StreamState(self.state.epoch, self.state.position + 1)
                    yield img, self.state
            if self.state.position == 0:
                raise DataError(f"no training data: the {self.name} given as data yields no images")
            self.state = StreamState(self.state.epoch + 1)

    def batches(self, batch_size: int) -> Iterator[tuple[np.ndarray, StreamState]]:
        batch = []
        for img, state in self.images():
            batch.append(img)
            if len(batch) == batch_size:
                yield np.stack(batch), state
                batch = []


class _Indexed:
    def __init__(self, dataset):
        self.dataset = dataset

    def __iter__(self):
        return (self.dataset[k] for k in range(len(self.dataset)))
