"""The update rule, one for both trainers: the optimizer train.optimizer names, decoupled weight
decay, and the config's rates applied to a restored optimizer state. The single-process trainer
steps the model's parameters with it; each parameter-server shard steps its slice."""
from __future__ import annotations

import torch

from catneuron.config import TrainConfig


def make_optimizer(t: TrainConfig, params) -> torch.optim.Optimizer:
    params = list(params)
    # The fused CPU kernels make one pass over the weights instead of several; with tens of
    # millions of weights the optimizer step is memory-bound, so this is ~10x faster.
    fused = all(p.device.type == "cpu" for p in params)
    if t.optimizer == "adagrad":
        return torch.optim.Adagrad(params, lr=t.lr, fused=fused)
    if t.optimizer == "adam":     # AdamW's decay is train.weight_decay's, in the same pass
        return torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay, fused=fused)
    return torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, fused=fused)


@torch.no_grad()
def decay_(t: TrainConfig, params) -> None:
    """Decoupled weight decay (train.weight_decay) for the optimizers that lack it (AdamW has it)."""
    if t.weight_decay and t.optimizer != "adam":    # only what this step trained (greedy: one stage)
        torch._foreach_mul_([p for p in params if p.grad is not None], 1.0 - t.lr * t.weight_decay)


def restore(optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Load a saved optimizer state: the moments and sums are the run's, the rates the config's
    (so a resumed run trains at the rate its config.json says)."""
    optimizer.load_state_dict(state)
    for group in optimizer.param_groups:
        group.update(optimizer.defaults)
