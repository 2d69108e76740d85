"""The per-stage training objective (Le et al. 2012, eq. 1), as pure functions.

For a stage with input x (one image), encoder W1, decoder W2 and pooling H:

    J(x) = ||W2 W1^T x - x||^2  +  lambda * sum_j sqrt(eps + H_j (W1^T x)^2)

The second term is the sum of the stage's L2 pooling outputs. We minimize the mean of J over the
minibatch (the paper's sum over examples divided by the batch size, which keeps learning rates
independent of the batch size) and sum it over the stages.
"""
from __future__ import annotations

from typing import NamedTuple

import torch


class StageLoss(NamedTuple):
    reconstruction: torch.Tensor   # mean over the batch of ||W2 W1^T x - x||^2
    sparsity: torch.Tensor         # mean over the batch of sum_j sqrt(eps + H_j (W1^T x)^2)
    input_energy: torch.Tensor     # mean over the batch of ||x||^2 (not optimized; for reports)

    def total(self, sparsity_weight: float) -> torch.Tensor:
        return self.reconstruction + sparsity_weight * self.sparsity

    def relative_reconstruction(self) -> float:
        """Reconstruction error as a fraction of the input's energy (1.0 = no better than zeros)."""
        return (self.reconstruction / self.input_energy.clamp_min(1e-12)).item()


def reconstruction_error(reconstruction: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) x 2 -> scalar: the mean over the batch of the squared error of each image."""
    return (reconstruction - x).pow(2).flatten(1).sum(1).mean()


def pooled_sparsity(pooled: torch.Tensor) -> torch.Tensor:
    """(N, M, Hp, Wp) L2-pooled activations -> scalar: mean over the batch of their sum."""
    return pooled.flatten(1).sum(1).mean()


def stage_loss(x: torch.Tensor, pooled: torch.Tensor, reconstruction: torch.Tensor) -> StageLoss:
    with torch.no_grad():
        energy = x.pow(2).flatten(1).sum(1).mean()
    return StageLoss(reconstruction_error(reconstruction, x), pooled_sparsity(pooled), energy)
