"""Finding data: the data root, and what a data source names.

A source is one of
  - a named set under the data root, "natural-64/train" -> <root>/natural-64/train-*.tar.gz;
  - a shard file (.tar, .tar.gz, .tgz), a glob of shard files, or a folder holding shards;
  - a folder of image files (searched recursively).
The data root is the `data.root` setting, else $CATNEURON_DATA, else ../shared/datasets when it
exists (next to the working directory or next to this checkout), else the folder that
`catneuron data download` fills by default (~/.cache/catneuron/datasets) when it exists.
"""
from __future__ import annotations

import glob
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, NamedTuple

from catneuron.data.images import IMAGE_SUFFIXES
from catneuron.data.shards import SHARD_SUFFIXES, Record, is_shard, iter_shard
from catneuron.errors import DataError

ENV_ROOT = "CATNEURON_DATA"
DEFAULT_CORPUS = "corpora/default"     # where `catneuron data compose` writes the default corpus


def data_root(setting: str | None = None) -> Path | None:
    if setting:
        return Path(setting).expanduser()
    if os.environ.get(ENV_ROOT):
        return Path(os.environ[ENV_ROOT]).expanduser()
    for candidate in (Path.cwd().parent / "shared" / "datasets",
                      Path(__file__).resolve().parents[3] / "shared" / "datasets", default_download_root()):
        if candidate.is_dir():
            return candidate
    return None


def default_download_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "catneuron" / "datasets"


@dataclass
class Source:
    spec: str                                          # as the user wrote it
    shards: list[Path] = field(default_factory=list)
    images: list[Path] = field(default_factory=list)   # loose image files (from a folder)

    @property
    def files(self) -> list[Path]:
        return self.shards + self.images


def images_under(folder: Path) -> list[Path]:
    """Image files under `folder` (recursive), sorted."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def resolve(spec: str, root: Path | None = None) -> Source:
    """What `spec` names (see the module docstring); DataError when it names nothing usable."""
    path = Path(spec).expanduser()
    if path.is_file():
        if is_shard(path):
            return Source(spec, shards=[path])
        if path.suffix.lower() in IMAGE_SUFFIXES:
            return Source(spec, images=[path])
        raise DataError(f"data source {spec}: not a shard ({', '.join(SHARD_SUFFIXES)}) or an image file")
    if path.is_dir():
        shards = sorted(p for p in path.iterdir() if is_shard(p))
        if shards:
            return Source(spec, shards=shards)
        images = images_under(path)
        if not images:
            raise DataError(f"data source {spec}: folder contains no shards and no images "
                            f"({', '.join(IMAGE_SUFFIXES)})")
        return Source(spec, images=images)
    if any(ch in spec for ch in "*?["):
        matches = sorted(Path(p) for p in glob.glob(os.path.expanduser(spec)) if is_shard(Path(p)))
        if matches:
            return Source(spec, shards=matches)
        raise DataError(f"data source {spec}: the pattern matches no shard files")
    if root is not None and "/" in spec and not spec.startswith(("/", ".")):
        name, split = spec.rsplit("/", 1)
        named = sorted(p for p in (root / name).glob(f"{split}-*") if is_shard(p))
        if named:
            return Source(spec, shards=named)
    where = f" or a named set under {root}" if root is not None else \
        f" (no data root: set {ENV_ROOT} or data.root to use named sets like natural-64/train, or fetch them " \
        f"with `catneuron data download`)"
    hint = "; make it with `catneuron data compose`" if spec.rstrip("/") == DEFAULT_CORPUS else ""
    raise DataError(f"data source {spec}: no such file or folder{where}{hint}")


def resolve_all(specs: list[str], root_setting: str | None = None) -> list[Source]:
    if not specs:
        raise DataError("no training data given; expected --data with shards, an image folder or a named set")
    root = data_root(root_setting)
    return [resolve(s, root) for s in specs]


FILES_PER_UNIT = 256


class Unit(NamedTuple):
    """A piece of a source read sequentially by one worker: a shard, or a chunk of image files."""
    kind: str                 # "shard" | "files"
    paths: tuple[Path, ...]
    spec: str                 # the source it belongs to


def units(sources: list[Source]) -> list[Unit]:
    out = []
    for src in sources:
        out += [Unit("shard", (p,), src.spec) for p in src.shards]
        out += [Unit("files", tuple(src.images[i:i + FILES_PER_UNIT]), src.spec)
                for i in range(0, len(src.images), FILES_PER_UNIT)]
    return out


def read_unit(unit: Unit) -> Iterator[Record]:
    """Records of one unit, in stored order. An unreadable file, or the unreadable rest of a shard,
    comes as a record with `error` set, so that every consumer reports it and carries on."""
    if unit.kind == "shard":
        try:
            yield from iter_shard(unit.paths[0])
        except DataError as err:
            yield Record(unit.paths[0].name, {}, str(unit.paths[0]), str(err).split(": ", 1)[-1])
        return
    for p in unit.paths:
        try:
            yield Record(p.stem, {p.suffix.lower().lstrip(".") or "img": p.read_bytes()}, str(p))
        except OSError as err:
            yield Record(p.stem, {}, str(p), f"unreadable ({err.strerror})")


def iter_records(sources: list[Source]) -> Iterator[tuple[Record, str]]:
    """(record, source spec) for every record of every source."""
    for unit in units(sources):
        for rec in read_unit(unit):
            yield rec, unit.spec


def unit_size(unit: Unit) -> int:
    """Records in a unit, from tar headers alone (no decompression of the images)."""
    if unit.kind == "files":
        return len(unit.paths)
    keys = set()
    try:
        with tarfile.open(unit.paths[0], "r|*") as tar:
            for member in tar:
                if member.isfile():
                    keys.add(member.name.split(".", 1)[0])
    except (tarfile.TarError, OSError, EOFError):
        keys.add(None)           # the unreadable rest counts as one (error) record, as read_unit yields
    return len(keys)


def count_records(sources: list[Source]) -> int:
    return sum(unit_size(u) for u in units(sources))
