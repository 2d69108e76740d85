"""A parameter-server shard: its slice of the parameters, Adagrad applied on the server.

Plain Python, so it runs in-process (tests, the local backend) or as a Ray actor. Replicas push
gradients computed on parameters they fetched at some version; the shard applies each push at
once (asynchronous SGD: no waiting for the other replicas) and counts how many updates happened
between that fetch and the push (the staleness).
"""
from __future__ import annotations

import numpy as np
import torch


class ParameterShard:
    def __init__(self, values: np.ndarray, normalized_rows: list[tuple[int, int, int]], lr: float,
                 optimizer: str = "adagrad", eps: float = 1e-10, momentum: float = 0.0, weight_decay: float = 0.0):
        """`normalized_rows`: (offset, rows, row size) runs of features kept at unit L2 norm."""
        self.params = torch.from_numpy(np.array(values, dtype=np.float32, copy=True))
        self.state = torch.zeros_like(self.params)           # Adagrad's sum of squares, or SGD's momentum
        self.normalized = normalized_rows
        self.lr, self.optimizer, self.eps, self.momentum = lr, optimizer, eps, momentum
        self.weight_decay = weight_decay      # decoupled, as the single-process trainer's
        self.version = 0
        self.pushes = 0
        self.pulls = 0

    def pull(self) -> tuple[int, np.ndarray]:
        self.pulls += 1
        return self.version, self.params.numpy()

    def push(self, grad: np.ndarray, version: int, steps: int = 1) -> int:
        """Apply a gradient (summed over `steps` minibatches, averaged here) computed at `version`;
        returns its staleness: updates other replicas applied since that version."""
        g = torch.from_numpy(grad) / steps
        if self.optimizer == "adagrad":
            self.state.addcmul_(g, g)
            self.params.addcdiv_(g, self.state.sqrt().add_(self.eps), value=-self.lr)
        else:
            self.state.mul_(self.momentum).add_(g)
            self.params.add_(self.state, alpha=-self.lr)
        if self.weight_decay:
            self.params.mul_(1.0 - self.lr * self.weight_decay)
        for offset, rows, size in self.normalized:
            view = self.params[offset:offset + rows * size].view(rows, size)
            view.div_(view.norm(dim=1, keepdim=True).clamp_min(1e-12))
        staleness = self.version - version
        self.version += 1
        self.pushes += 1
        return staleness

    def state_dict(self) -> dict:
        return {"params": self.params.clone(), "state": self.state.clone(), "version": self.version,
                "pushes": self.pushes, "pulls": self.pulls}

    def load_state_dict(self, d: dict) -> None:
        self.params = torch.as_tensor(d["params"], dtype=torch.float32).clone()
        self.state = torch.as_tensor(d["state"], dtype=torch.float32).clone()
        self.version, self.pushes, self.pulls = d["version"], d["pushes"], d["pulls"]

    def counts(self) -> dict:
        return {"version": self.version, "pushes": self.pushes, "pulls": self.pulls}


def normalized_runs(spec) -> list[tuple[int, int, int]]:
    """(offset, rows, row size) of the shard's pieces whose features are kept at unit norm."""
    runs, offset = [], 0
    for piece, flag in zip(spec.pieces, spec.normalized):
        if flag:
            runs.append((offset, piece.row_end - piece.row_start, piece.row_size))
        offset += piece.size
    return runs
