"""WebDataset-style tar shards: ``<key>.jpg`` followed by ``<key>.json`` (plain or gzip-compressed tar).

Reading streams each shard once from the start (a .tar.gz has no random access). Writing goes to
a temporary name that is renamed when the shard is complete, so a reader never sees half a shard.
"""
from __future__ import annotations

import io
import json
import os
import tarfile
import time
from pathlib import Path
from typing import Iterator, NamedTuple

from catneuron.data.images import IMAGE_KEYS
from catneuron.errors import DataError

SHARD_SUFFIXES = (".tar", ".tar.gz", ".tgz")


class Record(NamedTuple):
    key: str
    files: dict[str, bytes]   # extension (e.g. "jpg", "json") -> content
    origin: str               # "shard.tar.gz:key" or the image file path, for reports
    error: str | None = None  # why the files could not be read (an unreadable file or shard)

    def meta(self) -> dict:
        """The record's JSON sidecar (empty when it has none); DataError naming the record when the
        sidecar is not a JSON object."""
        raw = self.files.get("json")
        if not raw:
            return {}
        try:
            meta = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as err:       # JSONDecodeError is a ValueError
            raise DataError(f"{self.origin}: its .json sidecar is not valid JSON ({err})") from None
        if not isinstance(meta, dict):
            raise DataError(f"{self.origin}: its .json sidecar is a {type(meta).__name__}, expected an object")
        return meta

    def require_image(self) -> bytes:
        """The image bytes, or DataError naming the record and what is wrong."""
        if self.error:
            raise DataError(f"{self.origin}: {self.error}")
        data = self.image()
        if not data:
            raise DataError(f"{self.origin}: no image data")
        return data

    def image(self) -> bytes | None:
        """The record's image file (the first of jpg, png, ... present; else any non-metadata entry)."""
        for key in IMAGE_KEYS:
            if key in self.files:
                return self.files[key]
        return next((v for k, v in self.files.items() if k not in ("json", "txt", "cls")), None)


def is_shard(path: Path) -> bool:
    return path.name.endswith(SHARD_SUFFIXES)


def _split(name: str) -> tuple[str, str]:
    base = os.path.basename(name)
    key, _, ext = base.partition(".")
    return os.path.join(os.path.dirname(name), key), ext


class _EndMarkedTarInfo(tarfile.TarInfo):
    """Notes on its archive whether reading stopped at the end-of-archive marker (a zero block).
    tarfile ends quietly at a header cut short, so a shard cut inside a header would otherwise
    read as a complete, shorter one."""

    @classmethod
    def fromtarfile(cls, tar):
        try:
            return super().fromtarfile(tar)
        except tarfile.EOFHeaderError:
            tar.end_marker_seen = True
            raise


def iter_shard(path: Path) -> Iterator[Record]:
    """Records of one shard in stored order; members sharing a key (up to the first dot) are grouped.
    A shard cut short anywhere (inside a member, a header, or before the end-of-archive marker) is
    a DataError, after the records before the cut."""
    key, files = None, {}
    try:
        with tarfile.open(path, "r|*", tarinfo=_EndMarkedTarInfo) as tar:
            for member in tar:
                if not member.isfile():
                    continue
                k, ext = _split(member.name)
                if key is not None and k != key:
                    yield Record(key, files, f"{path}:{key}")
                    files = {}
                key = k
                files[ext] = tar.extractfile(member).read()
            if not getattr(tar, "end_marker_seen", False):
                raise DataError(f"shard {path}: truncated (it ends before the end-of-archive marker)")
    except (tarfile.TarError, OSError, EOFError) as err:
        raise DataError(f"shard {path}: unreadable ({err})") from None
    if key is not None:
        yield Record(key, files, f"{path}:{key}")


class ShardWriter:
    """Write records into shards ``<prefix>-000000.tar.gz``, ``-000001``, ... of at most `max_count` records.

    Each shard is written as ``<name>.tmp`` and renamed on completion. Use as a context manager;
    ``close`` finishes the last shard, an exception drops it. ``written`` lists completed shards.
    With ``max_count=None`` shards end only when ``end_shard`` is called (callers that must cut
    shards at their own boundaries, e.g. between input files of a resumable job).
    """

    def __init__(self, prefix: str | Path, max_count: int | None = 10000, start_index: int = 0,
                 compress: bool = True):
        self.prefix, self.max_count, self.index, self.compress = Path(prefix), max_count, start_index, compress
        self.prefix.parent.mkdir(parents=True, exist_ok=True)
        self.written: list[Path] = []
        self.count = 0                     # records in the shard being written
        self._tar, self._tmp, self._final = None, None, None

    def _open(self) -> None:
        suffix = ".tar.gz" if self.compress else ".tar"
        self._final = self.prefix.parent / f"{self.prefix.name}-{self.index:06d}{suffix}"
        self._tmp = self._final.with_name(self._final.name + ".tmp")
        self._tar = tarfile.open(self._tmp, "w:gz" if self.compress else "w")
        self.count = 0

    def write(self, key: str, files: dict[str, bytes]) -> None:
        if self._tar is None:
            self._open()
        now = time.time()
        for ext, data in files.items():
            info = tarfile.TarInfo(f"{key}.{ext}")
            info.size, info.mtime, info.mode = len(data), now, 0o444
            self._tar.addfile(info, io.BytesIO(data))
        self.count += 1
        if self.max_count is not None and self.count >= self.max_count:
            self.end_shard()

    def end_shard(self) -> None:
        """Complete the shard in progress (if any): close it and rename it to its final name."""
        if self._tar is None:
            return
        self._tar.close()
        os.replace(self._tmp, self._final)
        self.written.append(self._final)
        self._tar = None
        self.count = 0
        self.index += 1

    def close(self) -> None:
        self.end_shard()

    def abort(self) -> None:
        """Drop the shard in progress (its temporary file) without publishing it."""
        if self._tar is not None:
            self._tar.close()
            self._tmp.unlink(missing_ok=True)
            self._tar = None
            self.count = 0

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
