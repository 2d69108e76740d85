"""Guards of a run directory: one training writes it at a time, and an existing run is continued
(``--resume``) or left alone, never silently overwritten."""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from catneuron.errors import CatneuronError

try:
    import fcntl
except ImportError:      # Windows: no advisory locks; the existing-run check still applies
    fcntl = None

LOCK = ".lock"
# What a run leaves behind; any of them means the directory holds a run.
RUN_FILES = ("model.safetensors", "config.json", "metrics.jsonl", "checkpoints")


def refuse_existing(run_dir: Path, resume: bool) -> None:
    if resume or not run_dir.is_dir():
        return
    found = [name for name in RUN_FILES if (run_dir / name).exists()]
    if found:
        raise CatneuronError(f"{run_dir} already holds a run ({', '.join(found)}); pass --resume to continue it "
                             f"or choose another --out")


@contextmanager
def locked(run_dir: Path) -> Iterator[None]:
    """Hold the run directory's lock for the block. The lock is the kernel's (flock): it is
    released when the process ends however it ends, so a killed training never leaves it held."""
    run_dir.mkdir(parents=True, exist_ok=True)
    if fcntl is None:
        yield
        return
    with open(run_dir / LOCK, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise CatneuronError(f"{run_dir} is being written by another training ({holder}); wait for it to "
                                 f"finish or choose another --out") from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}\n")
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
