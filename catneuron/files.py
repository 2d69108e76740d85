"""Files (and folders) written whole or not at all: a unique temporary name beside the target,
then a rename.

Two processes writing the same file each publish a complete one (the last rename wins); a kill
leaves the previous file, never a half-written one, and at worst a hidden ``.NAME.*.tmp``.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from catneuron.errors import CatneuronError

log = logging.getLogger(__name__)

# mkstemp creates files readable by their owner only; published files get the usual mode.
_UMASK = os.umask(0)
os.umask(_UMASK)


def check_file_target(path: str | Path) -> Path:
    """`path` as a file to be written; a one-line error when it is a folder or its folder is
    missing. Commands that write at the end of long work call it first, so as not to lose it."""
    path = Path(path)
    if path.is_dir():
        raise CatneuronError(f"{path}: is a folder; expected a file name to write")
    if not path.parent.is_dir():
        raise CatneuronError(f"{path}: its folder {path.parent} does not exist")
    return path


@contextmanager
def replacing(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yields a fresh temporary path in `path`'s folder to write; when the block succeeds it is
    renamed to `path`, otherwise removed. `suffix` ends the temporary name (np.savez wants .npz)."""
    path = check_file_target(path)
    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    except OSError as err:          # name the file the user asked for, not our temporary name
        raise OSError(err.errno, err.strerror, str(path)) from None
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)     # after the block: a writer may have replaced the file (safetensors does)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def replacing_dir(path: str | Path) -> Iterator[Path]:
    """`replacing` for a folder: yields a fresh temporary folder beside `path`; when the block
    succeeds it takes `path`'s place whole (an existing one is removed), otherwise it is removed.
    Leftovers of writers that were killed (``.NAME.*``) are removed first."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OSError(err.errno, err.strerror, str(path)) from None
    for leftover in path.parent.glob(f".{path.name}.*"):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    try:
        os.chmod(tmp, 0o777 & ~_UMASK)
        yield tmp
        if path.exists():
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.old."))
            os.replace(path, old / path.name)
            shutil.rmtree(old)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def safe_name(name: str) -> str:
    """`name` usable as a file name: spaces and slashes become underscores ("cat faces" -> "cat_faces")."""
    return name.replace(" ", "_").replace("/", "_")


def write_text(path: str | Path, text: str) -> None:
    with replacing(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, data) -> None:
    write_text(path, json.dumps(data, indent=2, default=str))


def read_jsonl(path: str | Path) -> list[dict]:
    """The rows of a JSON-lines log (metrics.jsonl); a line that does not parse, such as the last
    one cut by a kill, is skipped with a warning: the rows before it are still the log."""
    rows = []
    for number, line in enumerate(Path(path).read_text(errors="replace").splitlines(), 1):
        try:
            row = json.loads(line) if line.strip() else None
        except ValueError:
            row = None
            log.warning("%s line %d is not a complete row: skipped", path, number)
        if isinstance(row, dict):
            rows.append(row)
    return rows


def read_json(path: str | Path, remedy: str):
    """The JSON document at `path`; a CatneuronError naming the file and `remedy` when it is damaged."""
    try:
        return json.loads(Path(path).read_text())
    except ValueError as err:
        raise CatneuronError(f"{path}: damaged ({err}); {remedy}") from None


def read_context(path: str | Path) -> dict | None:
    """A JSON file that only adds context to a page (run.json, a corpus manifest): None when it is
    missing or damaged (with a warning), so that the page is still made."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (ValueError, OSError) as err:
        log.warning("%s is damaged (%s): left out", path, err)
        return None
    return data if isinstance(data, dict) else None
