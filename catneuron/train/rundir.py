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


# What a resumed run must share with the run it continues: the network, and what its optimizer
# state and data position refer to. Rates, lengths and logging may change on --resume (the
# optimizer then takes the new values: checkpoint.load).
FIXED_ON_RESUME = ("train.optimizer", "train.seed", "train.schedule", "data.train", "data.preprocess",
                   "data.shuffle_buffer")
NOT_THE_NETWORK = ("backend", "precision")      # how the kernels compute it, not what it computes


def _setting(d: dict, key: str):
    for part in key.split("."):
        d = d.get(part) if isinstance(d, dict) else None
    return d


def check_resume(run_dir: Path, saved: dict, wanted: dict, extra: dict[str, tuple] | None = None) -> None:
    """A one-line error naming the first setting that `wanted` (a config as a dict) changes from
    the run's `saved` config and that a resumed run cannot change; `extra` adds {name: (saved,
    wanted)} pairs (e.g. the distributed layout). Call it before writing anything."""
    model = [f"model.{k}" for k in sorted(set(saved.get("model", {})) | set(wanted.get("model", {})))
             if k not in NOT_THE_NETWORK]
    pairs = {key: (_setting(saved, key), _setting(wanted, key)) for key in model + list(FIXED_ON_RESUME)}
    for key, (was, now) in {**pairs, **(extra or {})}.items():
        if was != now:
            raise CatneuronError(f"--resume: {key} is {now!r} but {run_dir} was trained with {was!r}; a resumed "
                                 f"run keeps it (start a new run with another --out to change it)")


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
