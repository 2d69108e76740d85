"""A parameter-server shard: its slice of the parameters and the optimizer that steps it
(train/optim.py, the single-process trainer's: Adagrad as in DistBelief, or Adam, or SGD).

Plain Python, so it runs in-process (tests) or as a Ray actor. Replicas push
gradients computed on parameters they fetched at some version; the shard applies each push at
once (asynchronous SGD: no waiting for the other replicas) and counts how many updates happened
between that fetch and the push (the staleness).
"""
from __future__ import annotations

import copy

import numpy as np
import torch

from catneuron.config import TrainConfig
from catneuron.errors import CatneuronError
from catneuron.nn.stage import unit_rows_
from catneuron.train.optim import decay_, make_optimizer, restore


class ParameterShard:
    def __init__(self, values: np.ndarray, normalized_rows: list[tuple[int, int, int]], train: TrainConfig):
        """`normalized_rows`: (offset, rows, row size) runs of features kept at unit L2 norm; `train`
        names the optimizer and its rates, built as the single-process trainer builds its own."""
        self.params = torch.from_numpy(np.array(values, dtype=np.float32, copy=True))
        self.train = train
        self.optimizer = make_optimizer(train, [self.params])
        self.normalized = normalized_rows
        self.version = 0
        self.pushes = 0
        self.pulls = 0

    def pull(self) -> tuple[int, np.ndarray]:
        self.pulls += 1
        return self.version, self.params.numpy()

    def push(self, grad: np.ndarray, version: int, steps: int = 1) -> int:
        """Apply a gradient (summed over `steps` minibatches, averaged here) computed at `version`;
        returns its staleness: updates other replicas applied since that version."""
        self.params.grad = torch.from_numpy(grad).div(steps)
        self.optimizer.step()
        decay_(self.train, [self.params])
        for offset, rows, size in self.normalized:
            unit_rows_(self.params[offset:offset + rows * size].view(rows, size))
        staleness = self.version - version
        self.version += 1
        self.pushes += 1
        return staleness

    def state_dict(self) -> dict:
        return {"params": self.params.clone(), "optimizer": copy.deepcopy(self.optimizer.state_dict()),
                "version": self.version, "pushes": self.pushes, "pulls": self.pulls}

    def load_state_dict(self, d: dict) -> None:
        if "optimizer" not in d:
            raise CatneuronError("a parameter shard saved by an earlier catneuron (its own Adagrad state): resume it "
                                 "with that version, or start a new run")
        with torch.no_grad():
            self.params.copy_(torch.as_tensor(d["params"], dtype=torch.float32))
        restore(self.optimizer, d["optimizer"])
        self.version, self.pushes, self.pulls = d["version"], d["pushes"], d["pulls"]

    def counts(self) -> dict:
        return {"version": self.version, "pushes": self.pushes, "pulls": self.pulls}


class InProcessShards:
    """Shards as a replica sees them (under Ray, RayShards), called in this process one after the
    other: the replica's update rule without Ray (tests, bench/staleness.py)."""

    def __init__(self, shards: list[ParameterShard]):
        self.shards = shards

    def pull(self):
        return [s.pull() for s in self.shards]

    def push(self, grads, versions, steps):
        return [s.push(g, v, steps) for s, g, v in zip(self.shards, grads, versions)]


def normalized_runs(spec) -> list[tuple[int, int, int]]:
    """(offset, rows, row size) of the shard's pieces whose features are kept at unit norm."""
    runs, offset = [], 0
    for piece, flag in zip(spec.pieces, spec.normalized):
        if flag:
            runs.append((offset, piece.row_end - piece.row_start, piece.row_size))
        offset += piece.size
    return runs
