"""Finding data: the data root, and what a data source names.

A source is one of
  - a named set under the data root, "natural-64/train" -> <root>/natural-64/train-*.tar.gz;
  - a shard file (.tar, .tar.gz, .tgz), a glob of shard files, or a folder holding shards;
  - a folder of image files (searched recursively).
The data root is the `data.root` setting, else $CATNEURON_DATA, else ../shared/datasets when it
exists (next to the working directory or next to this checkout).
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path

from catneuron.data.images import IMAGE_SUFFIXES
from catneuron.data.shards import SHARD_SUFFIXES, is_shard
from catneuron.errors import DataError

ENV_ROOT = "CATNEURON_DATA"


def data_root(setting: str | None = None) -> Path | None:
    if setting:
        return Path(setting).expanduser()
    if os.environ.get(ENV_ROOT):
        return Path(os.environ[ENV_ROOT]).expanduser()
    for candidate in (Path.cwd().parent / "shared" / "datasets",
                      Path(__file__).resolve().parents[3] / "shared" / "datasets"):
        if candidate.is_dir():
            return candidate
    return None


@dataclass
class Source:
    spec: str                                          # as the user wrote it
    shards: list[Path] = field(default_factory=list)
    images: list[Path] = field(default_factory=list)   # loose image files (from a folder)

    @property
    def files(self) -> list[Path]:
        return self.shards + self.images


def _images_under(folder: Path) -> list[Path]:
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
        images = _images_under(path)
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
        f" (no data root: set {ENV_ROOT} or data.root to use named sets like natural-64/train)"
    raise DataError(f"data source {spec}: no such file or folder{where}")


def resolve_all(specs: list[str], root_setting: str | None = None) -> list[Source]:
    if not specs:
        raise DataError("no training data given; expected --data with shards, an image folder or a named set")
    root = data_root(root_setting)
    return [resolve(s, root) for s in specs]
