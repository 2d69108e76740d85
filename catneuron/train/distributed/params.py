"""How the model's parameters are cut into parameter-server shards.

Every parameter is seen as rows: one row per feature of a locally connected layer (the r*r*C
weights of filter m at location (i, j)), one row per value of a bias. Shards take contiguous runs
of rows, balanced by size, so a layer may span shards but a feature never does: the unit-norm
projection of a feature (after every update) then needs only the shard that holds it.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Piece:
    name: str          # parameter name in the model's state dict
    row_start: int
    row_end: int
    row_size: int

    @property
    def size(self) -> int:
        return (self.row_end - self.row_start) * self.row_size


@dataclass(frozen=True)
class ShardSpec:
    index: int
    pieces: tuple[Piece, ...]
    normalized: tuple[bool, ...]     # per piece: rows to keep at unit L2 norm

    @property
    def size(self) -> int:
        return sum(p.size for p in self.pieces)


def _rows(param: torch.Tensor, name: str) -> tuple[int, int]:
    """(rows, row size): LC weights (Ho, Wo, M, r, r, C) -> one row per feature; others -> one per value."""
    if name.endswith("weight") and param.dim() == 6:
        return int(np.prod(param.shape[:3])), int(np.prod(param.shape[3:]))
    return param.numel(), 1


def normalized_names(model: torch.nn.Module, constraint: str) -> set[str]:
    """Parameters whose features the config keeps at unit norm (see Stage.project_)."""
    names = set()
    for k, stage in enumerate(model.stages):
        enc, dec = f"stages.{k}.encoder.weight", f"stages.{k}.decoder.weight"
        if constraint in ("encoder", "both") or (constraint == "decoder" and stage.decoder is None):
            names.add(enc)
        if constraint in ("decoder", "both") and stage.decoder is not None:
            names.add(dec)
    return names


def partition(model: torch.nn.Module, shards: int, constraint: str = "decoder") -> list[ShardSpec]:
    """Cut the parameters into `shards` runs of rows; each cut falls on the row boundary nearest
    to k/shards of the total size."""
    if shards < 1:
        raise ValueError(f"need at least one shard, got {shards}")
    params = list(model.named_parameters())
    total = sum(p.numel() for _, p in params)
    cuts = [total * k / shards for k in range(1, shards)]
    norm = normalized_names(model, constraint)
    groups: list[list[Piece]] = [[]]
    offset = 0
    for name, p in params:
        rows, size = _rows(p, name)
        row = 0
        while row < rows:
            next_cut = cuts[len(groups) - 1] if len(groups) <= len(cuts) else None
            take = rows - row if next_cut is None else min(rows - row, max(0, round((next_cut - offset) / size)))
            if take:
                groups[-1].append(Piece(name, row, row + take, size))
                row, offset = row + take, offset + take * size
            if next_cut is not None and offset + size / 2 >= next_cut:
                groups.append([])
    groups += [[] for _ in range(shards - len(groups))]
    return [ShardSpec(k, tuple(g), tuple(piece.name in norm for piece in g)) for k, g in enumerate(groups)]


def gather(model: torch.nn.Module, spec: ShardSpec, grads: bool = False) -> np.ndarray:
    """The shard's values (or gradients) from the model, as one flat float32 array."""
    named = dict(model.named_parameters())
    parts = []
    for piece in spec.pieces:
        t = named[piece.name].grad if grads else named[piece.name].data
        flat = t.detach().reshape(-1, piece.row_size)[piece.row_start:piece.row_end].reshape(-1)
        parts.append(flat.cpu().numpy())
    return np.concatenate(parts).astype(np.float32, copy=False) if parts else np.zeros(0, np.float32)


def scatter(model: torch.nn.Module, spec: ShardSpec, values: np.ndarray) -> None:
    """Write the shard's flat values into the model's parameters."""
    named = dict(model.named_parameters())
    offset = 0
    with torch.no_grad(), warnings.catch_warnings():
        # Arrays fetched from Ray's object store are read-only; they are only read from here.
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        for piece in spec.pieces:
            view = named[piece.name].data.view(-1, piece.row_size)[piece.row_start:piece.row_end]
            view.copy_(torch.as_tensor(values[offset:offset + piece.size]).view_as(view))
            offset += piece.size
