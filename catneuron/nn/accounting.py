"""Exact sizes of a model: parameters, connections, memory and FLOPs, from its config alone.

Parameter counts are read off a model built on the meta device (no memory), so they are the
counts of the real modules, not of a separate formula.
"""
from __future__ import annotations

from dataclasses import dataclass

from catneuron.nn.config import ModelConfig
from catneuron.nn.geometry import geometry
from catneuron.nn.autoencoder import DeepSparseAutoencoder

FLOAT_BYTES = 4


@dataclass
class StageCount:
    in_shape: tuple[int, int, int]       # (C, H, W)
    filter_shape: tuple[int, int, int]   # (M, Ho, Wo)
    pool_shape: tuple[int, int, int]     # (M, Hp, Wp)
    encoder_params: int                  # W1
    decoder_params: int                  # W2 (0 when tied)
    pool_window: int

    @property
    def connections(self) -> int:
        """Encoder connections: one per (filter unit, input value it sees) = W1 entries."""
        return self.encoder_params

    def activations(self) -> int:
        """Values per image of every sublayer output plus the reconstruction."""
        c, h, w = self.in_shape
        m, ho, wo = self.filter_shape
        _, hp, wp = self.pool_shape
        return m * ho * wo + 2 * m * hp * wp + c * h * w

    def train_flops(self, input_grad: bool) -> int:
        """Multiply-adds x2 per image for one training step of this stage's locally connected maps:
        encoder forward + weight gradient (+ input gradient), decoder forward + weight gradient +
        input gradient; pooling and LCN are included approximately."""
        lc = 2 * self.connections * (5 + int(input_grad))
        m, hp, wp = self.pool_shape
        pooling = 3 * 2 * m * hp * wp * self.pool_window ** 2
        return lc + pooling


@dataclass
class ModelCount:
    cfg: ModelConfig
    stages: list[StageCount]

    @property
    def parameters(self) -> int:
        return sum(s.encoder_params + s.decoder_params for s in self.stages)

    @property
    def connections(self) -> int:
        return sum(s.connections for s in self.stages)

    def forward_flops(self) -> int:
        """Per image, features only (encoder filtering + pooling), as the probe computes them."""
        return sum(2 * s.connections + 2 * s.pool_shape[0] * s.pool_shape[1] * s.pool_shape[2] * s.pool_window ** 2
                   for s in self.stages)

    def train_flops(self) -> int:
        return sum(s.train_flops(self.cfg.cross_stage_grad and k > 0) for k, s in enumerate(self.stages))

    def memory(self, batch: int, optimizer: str = "adagrad") -> dict[str, int]:
        """Bytes for a training step at this batch size (float32): weights, their gradients, the
        optimizer's state (one tensor the size of the weights per state: Adagrad 1, Adam 2, SGD 1),
        the activations autograd keeps for the backward pass (counted by running the objective on
        the meta device), and a workspace for what lives only during one layer's backward: the
        batched kernel's band buffers (patches and products, at most lc_batched.CHUNK_BYTES each,
        and a channels-last copy) and a few gradients of the largest sublayer output."""
        from catneuron.nn.lc_batched import CHUNK_BYTES
        p = self.parameters * FLOAT_BYTES
        largest = batch * FLOAT_BYTES * max(max(s.in_shape[0] * s.in_shape[1] * s.in_shape[2],
                                                s.filter_shape[0] * s.filter_shape[1] * s.filter_shape[2])
                                            for s in self.stages)
        return {"weights": p, "gradients": p, "optimizer_state": p * OPTIMIZER_STATES.get(optimizer, 1),
                "activations": saved_for_backward(self.cfg, batch), "workspace": 2 * CHUNK_BYTES + 5 * largest}


OPTIMIZER_STATES = {"adagrad": 1, "adam": 2, "sgd": 1}


def saved_for_backward(cfg: ModelConfig, batch: int) -> int:
    """Bytes of the tensors (other than the weights) that autograd keeps between the objective's
    forward and backward passes, at this batch size: the objective is run on the meta device, which
    allocates nothing, and every tensor saved for backward is counted once."""
    import torch
    model = DeepSparseAutoencoder(cfg, device="meta")
    x = torch.empty(batch, cfg.channels, cfg.input_size, cfg.input_size, device="meta")
    saved: dict[int, torch.Tensor] = {}      # by id; holding the tensor keeps its id from being reused

    def pack(t):
        if not (t.is_leaf and t.requires_grad):
            saved[id(t)] = t
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model.objective(x)
    return sum(t.numel() * t.element_size() for t in saved.values())


def count(cfg: ModelConfig) -> ModelCount:
    model = DeepSparseAutoencoder(cfg, device="meta")
    stages = []
    for g, st, stage in zip(geometry(cfg), cfg.stages, model.stages):
        dec = 0 if stage.decoder is None else stage.decoder.weight.numel()
        stages.append(StageCount((g.in_channels, g.in_size, g.in_size), (g.maps, g.filter_size, g.filter_size),
                                 (g.maps, g.pool_size, g.pool_size), stage.encoder.weight.numel(), dec,
                                 st.pool_size))
    return ModelCount(cfg, stages)
