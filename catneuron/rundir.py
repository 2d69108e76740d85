"""One owner of a run directory's files (after NetDissect-Lite's ExperimentDirectory).

    RUN/config.json            the full configuration the run trains with
    RUN/run.json               provenance: one entry per training session, the data files
    RUN/metrics.jsonl          one line per logged step
    RUN/checkpoints/           atomic checkpoints (train/checkpoint.py)
    RUN/model.safetensors      the final weights, with the config in their metadata
    RUN/distributed.json       the distributed trainer's layout and counts
    RUN/probe/results.json     `catneuron probe`: every neuron's scores
    RUN/probe/stages/          its score cache, one file per test set and detector set
    RUN/probe/pictures/        `catneuron visualize`, with pictures/index.json
    RUN/probe/explore/         `catneuron explore`'s picture cache

Every reader and writer of these paths goes through `RunDir`. It also guards the directory: one
training writes it at a time, and an existing run is continued (``--resume``) or left alone, never
silently overwritten.
"""
from __future__ import annotations

import json
import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from catneuron.config import load_file
from catneuron.errors import CatneuronError
from catneuron.files import safe_name, write_json, write_text

try:
    import fcntl
except ImportError:      # Windows: no advisory locks; the existing-run check still applies
    fcntl = None

log = logging.getLogger(__name__)

# What a resumed run must share with the run it continues: the network, and what its optimizer
# state and data position refer to. Rates, lengths and logging may change on --resume (the
# optimizer then takes the new values: checkpoint.load).
FIXED_ON_RESUME = ("train.optimizer", "train.seed", "train.schedule", "data.train", "data.preprocess",
                   "data.shuffle_buffer")
NOT_THE_NETWORK = ("backend", "precision")      # how the kernels compute it, not what it computes
SKIPPED_KEPT = 1000                              # unreadable files named per session (the count is whole)


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.config = self.path / "config.json"
        self.record = self.path / "run.json"
        self.metrics = self.path / "metrics.jsonl"
        self.checkpoints = self.path / "checkpoints"
        self.weights = self.path / "model.safetensors"
        self.distributed = self.path / "distributed.json"
        self.probe = self.path / "probe"
        self.results = self.probe / "results.json"
        self.score_cache = self.probe / "stages"
        self.pictures = self.probe / "pictures"
        self.pictures_index = self.pictures / "index.json"
        self.explore_cache = self.probe / "explore"

    def __str__(self) -> str:
        return str(self.path)

    def scores(self, task: str, key: str, suffix: str = ".npz") -> Path:
        """The score cache of one test set and detector set."""
        return self.score_cache / f"{safe_name(task)}__{key}{suffix}"

    def picture(self, name: str) -> Path:
        return self.pictures / f"{safe_name(name)}.png"

    def require_probe(self) -> Path:
        """results.json; a one-line error naming the command to run when the run was not probed."""
        if not self.results.exists():
            raise CatneuronError(f"{self.results}: not found; run `catneuron probe {self.path}` first")
        return self.results

    # -- training's guards and records ---------------------------------------------------------

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the run directory's lock for the block. The lock is the kernel's (flock): it is
        released when the process ends however it ends, so a killed training never leaves it held.
        A directory this call made and nothing but the lock went into (the training failed before
        writing: bad data, no such device) is removed again."""
        made = not self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            yield from self._flocked()
        finally:
            if made and {p.name for p in self.path.iterdir()} <= {".lock"}:
                (self.path / ".lock").unlink(missing_ok=True)
                self.path.rmdir()

    def _flocked(self) -> Iterator[None]:
        if fcntl is None:
            yield
            return
        with open(self.path / ".lock", "a+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.seek(0)
                holder = f.read().strip() or "another process"
                raise CatneuronError(f"{self.path} is being written by another training ({holder}); wait for it to "
                                     f"finish or choose another --out") from None
            f.seek(0)
            f.truncate()
            f.write(f"pid {os.getpid()}\n")
            f.flush()
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def refuse_existing(self, resume: bool) -> None:
        if resume or not self.path.is_dir():
            return
        found = [p.name for p in (self.weights, self.config, self.metrics, self.checkpoints) if p.exists()]
        if found:
            raise CatneuronError(f"{self.path} already holds a run ({', '.join(found)}); pass --resume to continue "
                                 f"it or choose another --out")

    def check_resume(self, wanted: dict, extra: dict[str, tuple] | None = None) -> None:
        """A one-line error naming the first setting that `wanted` (a config as a dict) changes from
        the run's saved config and that a resumed run cannot change; `extra` adds {name: (saved,
        wanted)} pairs (e.g. the distributed layout). Call it before writing anything."""
        if not self.config.exists():
            return
        saved = load_file(self.config).to_dict()     # through load_file: newer settings compare at their defaults
        model = [f"model.{k}" for k in sorted(set(saved.get("model", {})) | set(wanted.get("model", {})))
                 if k not in NOT_THE_NETWORK]
        pairs = {key: (_setting(saved, key), _setting(wanted, key)) for key in model + list(FIXED_ON_RESUME)}
        for key, (was, now) in {**pairs, **(extra or {})}.items():
            if was != now:
                raise CatneuronError(f"--resume: {key} is {now!r} but {self.path} was trained with {was!r}; a "
                                     f"resumed run keeps it (start a new run with another --out to change it)")

    def read_record(self) -> dict:
        if not self.record.exists():
            return {"sessions": []}
        try:
            run = json.loads(self.record.read_text())
            if isinstance(run, dict) and isinstance(run.get("sessions"), list):
                return run
        except (ValueError, OSError):
            pass
        raise CatneuronError(f"{self.record}: damaged (expected the run's JSON record); move it aside to start a "
                             f"new record")

    def record_session(self, config: dict, sources, session: dict) -> None:
        """A training session starts: its config, data files and `session` (environment, start step)."""
        run = self.read_record()
        run["config"] = config
        run["data"] = [{"source": s.spec, "files": [str(f) for f in s.files[:1000]], "file_count": len(s.files)}
                       for s in sources]
        run["sessions"].append(session)
        write_json(self.record, run)
        write_json(self.config, config)

    def record_skipped(self, skipped: dict[str, str]) -> None:
        """The unreadable training images this session met (file -> why) go into its run.json entry."""
        run = self.read_record()
        run["sessions"][-1]["skipped"] = dict(list(skipped.items())[:SKIPPED_KEPT])
        run["sessions"][-1]["skipped_count"] = len(skipped)
        write_json(self.record, run)

    def truncate_metrics(self, step: int) -> None:
        """Drop log lines past the checkpoint being resumed (they will be logged again); starting at
        step 0, all of them (the initialization's row is written again too). A line that does not
        parse (the last one, cut by a kill) is dropped with the rest."""
        if not self.metrics.exists():
            return
        keep = []
        for number, line in enumerate(self.metrics.read_text(errors="replace").splitlines(), 1):
            try:
                row_step = json.loads(line)["step"]
            except (ValueError, KeyError, TypeError):
                log.warning("%s line %d is not a complete metrics row: dropped", self.metrics, number)
                continue
            if step and row_step <= step:
                keep.append(line)
        write_text(self.metrics, "".join(line + "\n" for line in keep))


def _setting(d: dict, key: str):
    for part in key.split("."):
        d = d.get(part) if isinstance(d, dict) else None
    return d
