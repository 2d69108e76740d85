"""A model replica: fetches parameters every P steps, pushes accumulated gradients every G steps.

Plain Python around any `shards` object with `pull()` / `push(grads, versions, steps)` (under Ray,
`RayShards`: one parallel remote call per parameter-server shard). Between fetches the replica
computes gradients on the parameters it last fetched, as in DistBelief's Downpour SGD; it never
applies updates itself. At the end of each chunk it reports what the single-process trainer logs
about learning (train/monitor.py), measured on the parameters it last fetched.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from catneuron.config import Config, validate
from catneuron.data.loader import ImageStream, StreamState
from catneuron.data.preprocess import to_tensor
from catneuron.data.sources import Source, resolve_all, units
from catneuron.errors import CatneuronError
from catneuron.nn.autoencoder import DeepSparseAutoencoder
from catneuron.rundir import SKIPPED_KEPT
from catneuron.train.distributed.params import ShardSpec, gather, scatter
from catneuron.train.distributed.partition import SpatialPartition
from catneuron.train.monitor import LearningMonitor


def replica_sources(cfg: Config, index: int, replicas: int) -> list[Source]:
    """Replica `index`'s disjoint portion of the corpus: every replicas-th shard (or chunk of files)."""
    parts = units(resolve_all(cfg.data.train, cfg.data.root))
    mine = parts[index::replicas]
    if not mine:
        raise CatneuronError(f"the training data has {len(parts)} shards (or chunks of files), fewer than the "
                             f"{replicas} replicas; use fewer replicas or more shards")
    return [Source(f"{u.spec}[replica {index}]", shards=list(u.paths) if u.kind == "shard" else [],
                   images=list(u.paths) if u.kind == "files" else []) for u in mine]


@dataclass
class ChunkStats:
    replica: int
    steps: int = 0
    images: int = 0
    losses: list[float] = field(default_factory=list)
    stage_losses: list[dict] = field(default_factory=list)
    learning: dict[str, float] = field(default_factory=dict)     # LearningMonitor.row at the chunk's last step
    pulls: int = 0
    pushes: int = 0
    staleness: list[int] = field(default_factory=list)
    compute_s: float = 0.0
    pull_s: float = 0.0
    push_s: float = 0.0
    stream: dict = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)        # unreadable images met so far
    pid: int = 0


class Replica:
    def __init__(self, cfg: Config, index: int, specs: list[ShardSpec], initial: list[torch.Tensor],
                 stream: dict | None = None, band_workers=None, device: str = "cpu"):
        """Replica `index` of cfg.distributed.replicas, training the parameters laid out as `specs`
        from data position `stream`; `initial`: the initialization's filter sample (LearningMonitor)
        the learning metrics compare with; `band_workers`: where the locally connected layers of
        its cfg.distributed.partitions spatial bands compute (Ray actors; None: in-process)."""
        self.cfg, self.index, self.specs = validate(cfg), index, specs
        s = self.cfg.distributed
        if s.threads:
            torch.set_num_threads(s.threads)
        torch.manual_seed(cfg.train.seed + 1000 * index)
        self.device = torch.device(device)
        self.model = DeepSparseAutoencoder(cfg.model, device=self.device)
        self.monitor = LearningMonitor(initial)
        self.partition = SpatialPartition(self.model, s.partitions, band_workers) if s.partitions > 1 else None
        self.stream = ImageStream(replica_sources(cfg, index, s.replicas), cfg.model.input_size, cfg.model.channels,
                                  cfg.train.seed + index, cfg.data.shuffle_buffer,
                                  StreamState(**stream) if stream else None)
        self.batches = None
        self.versions = [0] * len(specs)
        self.accumulated = 0
        self.since_fetch = None            # None: fetch before the first step

    def restart_exchange(self) -> None:
        """After a parameter-server shard was replaced: drop the gradients accumulated against the old
        parameters and fetch before the next step."""
        self.model.zero_grad(set_to_none=True)
        self.accumulated = 0
        self.since_fetch = None

    def set_stream(self, state: dict) -> None:
        self.stream.state = StreamState(**state)
        self.batches = None

    def run(self, shards, steps: int) -> ChunkStats:
        """Train `steps` minibatches against the parameter servers."""
        stats = ChunkStats(self.index, pid=os.getpid())
        if self.batches is None:
            self.batches = self.stream.batches(self.cfg.train.batch_size)
        objective = None
        for _ in range(steps):
            if self.since_fetch is None or self.since_fetch >= self.cfg.distributed.fetch_every:
                self._fetch(shards, stats)
            objective = self._compute(stats)
            if self.accumulated >= self.cfg.distributed.push_every:
                self._push(shards, stats)
        if objective is not None:
            stats.learning = self.monitor.row(self.model, objective.filtered)
        stats.stream = self.stream.state.as_dict()
        stats.skipped = dict(list(self.stream.skipped.items())[:SKIPPED_KEPT])
        return stats

    def _fetch(self, shards, stats: ChunkStats) -> None:
        t = time.perf_counter()
        for k, (version, values) in enumerate(shards.pull()):
            scatter(self.model, self.specs[k], values)
            self.versions[k] = version
        if self.partition is not None:
            self.partition.sync()
        stats.pull_s += time.perf_counter() - t
        stats.pulls += 1
        self.since_fetch = 0

    def _compute(self, stats: ChunkStats):
        """One minibatch's gradients, added to .grad (they sum over the G steps between pushes)."""
        t = time.perf_counter()
        batch, _ = next(self.batches)
        objective = self.model.objective(to_tensor(batch, self.cfg.data.preprocess, self.device))
        objective.total.backward()
        stats.compute_s += time.perf_counter() - t
        loss = objective.total.item()
        if not np.isfinite(loss):
            raise CatneuronError(f"replica {self.index}: the objective became {loss}; lower train.lr")
        stats.losses.append(loss)
        stats.stage_losses.append({"reconstruction": [s.reconstruction.item() for s in objective.stages],
                                   "sparsity": [s.sparsity.item() for s in objective.stages]})
        self.accumulated += 1
        self.since_fetch += 1
        stats.steps += 1
        stats.images += len(batch)
        return objective

    def _push(self, shards, stats: ChunkStats) -> None:
        t = time.perf_counter()
        grads = [gather(self.model, spec, grads=True) for spec in self.specs]
        stats.staleness += shards.push(grads, self.versions, self.accumulated)
        self.model.zero_grad(set_to_none=True)
        self.accumulated = 0
        stats.push_s += time.perf_counter() - t
        stats.pushes += 1
