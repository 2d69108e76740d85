"""Files written whole or not at all: a unique temporary name beside the target, then a rename.

Two processes writing the same file each publish a complete one (the last rename wins); a kill
leaves the previous file, never a half-written one, and at worst a hidden ``.NAME.*.tmp``.
"""
from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

# mkstemp creates files readable by their owner only; published files get the usual mode.
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def replacing(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yields a fresh temporary path in `path`'s folder to write; when the block succeeds it is
    renamed to `path`, otherwise removed. `suffix` ends the temporary name (np.savez wants .npz)."""
    path = Path(path)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def safe_name(name: str) -> str:
    """`name` usable as a file name: spaces and slashes become underscores ("cat faces" -> "cat_faces")."""
    return name.replace(" ", "_").replace("/", "_")


def write_text(path: str | Path, text: str) -> None:
    with replacing(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, data) -> None:
    write_text(path, json.dumps(data, indent=2, default=str))
