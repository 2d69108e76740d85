"""A deterministic, resumable stream of training images.

Epoch e visits every record of every source once: the shards (and chunks of loose image files)
in an order drawn from (seed, e), each read sequentially, through a shuffle buffer also seeded
by (seed, e). The stream is therefore a function of (seed, epoch), and its position is just
(epoch, records consumed): resuming replays the epoch's record order without decoding and
continues at the same sample. Unreadable images are skipped, counted and reported.
"""
from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from catneuron.data.images import IMAGE_KEYS, decode, fit_square
from catneuron.data.shards import Record, iter_shard
from catneuron.data.sources import Source
from catneuron.errors import DataError

log = logging.getLogger(__name__)
FILES_PER_CHUNK = 1000


@dataclass
class StreamState:
    epoch: int = 0
    position: int = 0      # records consumed in this epoch

    def as_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}


def _image_file_records(paths: list[Path]) -> Iterator[Record]:
    for p in paths:
        try:
            data = p.read_bytes()
        except OSError as err:
            data = b""
            log.warning("skipping %s: %s", p, err.strerror)
        yield Record(p.stem, {p.suffix.lower().lstrip(".") or "img": data}, str(p))


def image_bytes(record: Record) -> bytes | None:
    for key in IMAGE_KEYS:
        if key in record.files:
            return record.files[key]
    return next((v for k, v in record.files.items() if k not in ("json", "txt", "cls")), None)


class ImageStream:
    """Endless stream of uint8 (size, size, channels) images; see the module docstring."""

    def __init__(self, sources: list[Source], size: int, channels: int = 3, seed: int = 0,
                 shuffle_buffer: int = 2000, state: StreamState | None = None):
        self.units: list[tuple[str, object]] = []
        for src in sources:
            self.units += [("shard", s) for s in src.shards]
            self.units += [("files", src.images[i:i + FILES_PER_CHUNK])
                           for i in range(0, len(src.images), FILES_PER_CHUNK)]
        if not self.units:
            raise DataError("no training data: the sources hold no shards or images")
        self.size, self.channels, self.seed, self.buffer = size, channels, seed, max(1, shuffle_buffer)
        self.state = state or StreamState()
        self.skipped: dict[str, str] = {}     # unreadable record -> why

    def _unit_records(self, unit) -> Iterator[Record]:
        kind, what = unit
        return iter_shard(what) if kind == "shard" else _image_file_records(what)

    def epoch_records(self, epoch: int) -> Iterator[Record]:
        """All records of one epoch in the stream's order (not decoded)."""
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.units))
        buf: list[Record] = []
        for u in order:
            for rec in self._unit_records(self.units[u]):
                if len(buf) < self.buffer:
                    buf.append(rec)
                    continue
                j = int(rng.integers(len(buf)))
                buf[j], rec = rec, buf[j]
                yield rec
        rng.shuffle(buf)
        yield from buf

    def _decode(self, rec: Record) -> np.ndarray | None:
        data = image_bytes(rec)
        try:
            if not data:
                raise DataError(f"{rec.origin}: no image data")
            return fit_square(decode(data, rec.origin), self.size, self.channels)
        except DataError as err:
            if rec.origin not in self.skipped:
                self.skipped[rec.origin] = str(err)
                if len(self.skipped) <= 10:
                    log.warning("skipping %s", err)
            return None

    def images(self) -> Iterator[tuple[np.ndarray, StreamState]]:
        """(image, state after it) forever, starting at self.state."""
        epoch, skip = self.state.epoch, self.state.position
        while True:
            usable = 0
            for pos, rec in enumerate(self.epoch_records(epoch)):
                if pos < skip:
                    continue
                img = self._decode(rec)
                if img is not None:
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
