"""Image ingest: folders or shards -> resized shards, without exact or near duplicates.

    catneuron data ingest SRC... --out corpora/mine [--size 200] [--near 3] [--workers 2]

Each image is decoded, resized on its shorter side and center-cropped to size x size RGB, and
stored as JPEG (an image already at that size and in JPEG keeps its bytes). Duplicates are judged
on the resized pixels: exact ones by SHA-1, near ones by a 64-bit perceptual hash (DCT of the
32x32 grey image, sign of the 8x8 low frequencies against their median) within `near` bits of an
image already kept. Near-duplicate search uses multi-index hashing: the hash is cut into near + 1
pieces, and two hashes within `near` bits share at least one piece exactly, so candidates are
found by lookups rather than by comparing against every kept image.
"""
from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import numpy as np
from PIL import Image

from catneuron.data.images import decode, encode_jpeg, fit_square
from catneuron.data.jobs import WorkResult, job_metadata, run_job
from catneuron.files import write_json
from catneuron.data.shards import Record, iter_shard
from catneuron.data.sources import Source, Unit, count_records, read_unit, units
from catneuron.errors import DataError

_DCT = None


def _dct_matrix(n: int = 32) -> np.ndarray:
    k = np.arange(n)
    m = np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n)) * np.sqrt(2 / n)
    m[0] /= np.sqrt(2)
    return m


def phash(rgb: np.ndarray) -> int:
    """64-bit perceptual hash of an image (uint8 array). The `imagehash` package's phash is the same
    DCT hash, but goes through PIL and SciPy per image; this is one matrix product on the array the
    ingest already holds, with no dependency."""
    global _DCT
    if _DCT is None:
        _DCT = _dct_matrix(32)
    grey = np.asarray(Image.fromarray(rgb).convert("L").resize((32, 32), Image.BILINEAR), dtype=np.float64)
    low = (_DCT @ grey @ _DCT.T)[:8, :8].ravel()
    bits = low > np.median(low[1:])
    return int(np.packbits(bits).view(">u8")[0])


class NearDuplicateIndex:
    """Hashes kept so far; `find(h)` returns one within `near` bits of h, or None."""

    def __init__(self, near: int = 3):
        if not 0 <= near < 16:
            raise DataError(f"near-duplicate distance must be 0..15 bits, got {near}")
        self.near = near
        pieces = near + 1
        bounds = np.linspace(0, 64, pieces + 1).astype(int)
        self._pieces = [(int(lo), int(hi)) for lo, hi in zip(bounds[:-1], bounds[1:])]
        self._tables: list[dict[int, list[int]]] = [{} for _ in self._pieces]

    def _keys(self, h: int):
        for lo, hi in self._pieces:
            yield (h >> lo) & ((1 << (hi - lo)) - 1)

    def find(self, h: int) -> int | None:
        for table, key in zip(self._tables, self._keys(h)):
            for other in table.get(key, ()):
                if bin(h ^ other).count("1") <= self.near:
                    return other
        return None

    def add(self, h: int) -> None:
        for table, key in zip(self._tables, self._keys(h)):
            table.setdefault(key, []).append(h)


def _prepare(rec: Record, size: int) -> tuple[str, dict[str, bytes]]:
    data = rec.require_image()
    img = decode(data, rec.origin)
    rgb = fit_square(img, size)
    keep_bytes = img.format == "JPEG" and img.size == (size, size) and img.mode == "RGB"
    meta = rec.meta() if "json" in rec.files else {}
    meta.update({"origin": rec.origin, "sha1": hashlib.sha1(rgb.tobytes()).hexdigest(), "phash": f"{phash(rgb):016x}",
                 "original_width": img.size[0], "original_height": img.size[1]})
    key = hashlib.sha1(rec.origin.encode()).hexdigest()[:20]
    return key, {"jpg": data if keep_bytes else encode_jpeg(rgb), "json": json.dumps(meta).encode()}


def _work(unit: Unit, size: int) -> WorkResult:
    result = WorkResult(files=0)
    for rec in read_unit(unit):
        result.files += 1
        try:
            result.records.append(_prepare(rec, size))
        except DataError as err:
            result.skipped.append((rec.origin, str(err).split(": ", 1)[-1]))
    return result


class _Deduplicator:
    """accept(key, files) for run_job: None for a new image, else which kept image it repeats."""

    def __init__(self, near: int | None):
        self.exact: dict[str, str] = {}          # sha1 -> origin
        self.hashes: dict[int, str] = {}         # phash -> origin
        self.index = NearDuplicateIndex(near) if near is not None else None

    def remember(self, meta: dict) -> None:
        self.exact[meta["sha1"]] = meta["origin"]
        h = int(meta["phash"], 16)
        self.hashes.setdefault(h, meta["origin"])
        if self.index is not None:
            self.index.add(h)

    def __call__(self, key: str, files: dict[str, bytes]) -> str | None:
        meta = json.loads(files["json"])
        if meta["sha1"] in self.exact:
            return f"exact duplicate of {self.exact[meta['sha1']]}"
        h = int(meta["phash"], 16)
        other = self.index.find(h) if self.index is not None else None
        if other is not None:
            return f"near duplicate of {self.hashes[other]} ({bin(h ^ other).count('1')} bits)"
        self.remember(meta)
        return None


def ingest(sources: list[Source], out: Path, size: int = 200, near: int | None = 3, workers: int = 0,
           shard_size: int = 5000, progress: bool = True):
    """Resized, de-duplicated shards of every image in `sources`; returns the job report."""
    parts = units(sources)
    total = count_records(sources)
    if total == 0:
        raise DataError("ingest: the sources hold no images")
    dedup = _Deduplicator(near)
    for done in sorted(out.glob("train-*.tar.gz")) if out.exists() else []:
        for rec in iter_shard(done):           # resuming: what is already kept counts as seen
            dedup.remember(rec.meta())
    report = run_job(out, parts, functools.partial(_work, size=size), workers=workers, shard_size=shard_size,
                     desc="ingest", accept=dedup, progress=progress, total_files=total,
                     job=dict(kind="ingest", sources=[s.spec for s in sources], size=size, near=near,
                              shard_size=shard_size))
    if report.written == 0:
        raise DataError(f"ingest: none of the {total} inputs was a usable image "
                        f"(e.g. {next(iter(report.skipped.items()), ('?', '?'))})")
    write_json(out / "manifest.json", job_metadata(
        kind="ingest", sources=[s.spec for s in sources], size=size, near_duplicate_bits=near, inputs=total,
        written=report.written, duplicates=report.dropped, unreadable=len(report.skipped), shards=report.shards))
    return report
