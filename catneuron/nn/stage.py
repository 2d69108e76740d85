"""One stage of the network: locally connected filtering -> L2 pooling -> local contrast normalization."""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from catneuron.nn.lcn import LocalContrastNorm
from catneuron.nn.local import LocallyConnected2d, LocallyConnectedTranspose2d, locally_connected_transpose
from catneuron.nn.pool import L2Pool2d


class StageOutput(NamedTuple):
    filtered: torch.Tensor     # (N, M, Ho, Wo)   W1^T x
    pooled: torch.Tensor       # (N, M, Hp, Wp)   sqrt(eps + H (W1^T x)^2)
    normalized: torch.Tensor   # (N, M, Hp, Wp)   LCN(pooled), the input of the next stage


def unit_norm_(weight: torch.Tensor) -> None:
    """Scale each feature's filter weight[i, j, m] (over r, r, C) to unit L2 norm, in place."""
    norms = weight.flatten(3).norm(dim=3).clamp_min(1e-12)
    weight.div_(norms[..., None, None, None])


class Stage(nn.Module):
    """(N, C, H, W) -> StageOutput; sizes as in ``catneuron.config.geometry``.

    ``encoder.weight`` is W1 (Ho, Wo, M, r, r, C); ``decoder_weight`` is W2 (same shape; the
    encoder's when weights are tied).
    """

    def __init__(self, in_channels: int, in_size: int, maps: int, receptive_field: int, stride: int = 1,
                 pool_size: int = 5, pool_stride: int = 1, lcn_size: int = 5, *, lcn: bool = True,
                 tied_weights: bool = False, eps: float = 0.01, lcn_c: float = 0.01, backend: str = "auto",
                 device=None, dtype=None):
        super().__init__()
        self.encoder = LocallyConnected2d(in_channels, maps, in_size, receptive_field, stride, backend,
                                          device=device, dtype=dtype)
        self.decoder = None if tied_weights else LocallyConnectedTranspose2d(
            in_channels, maps, in_size, receptive_field, stride, backend, device=device, dtype=dtype)
        self.pool = L2Pool2d(pool_size, pool_stride, eps)
        self.lcn = LocalContrastNorm(lcn_size, lcn_c) if lcn else nn.Identity()

    @property
    def decoder_weight(self) -> torch.Tensor:
        return self.encoder.weight if self.decoder is None else self.decoder.weight

    def forward(self, x: torch.Tensor) -> StageOutput:
        filtered = self.encoder(x)
        pooled = self.pool(filtered)
        return StageOutput(filtered, pooled, self.lcn(pooled))

    def reconstruct(self, filtered: torch.Tensor) -> torch.Tensor:
        """W2 applied to the filter responses: (N, M, Ho, Wo) -> (N, C, H, W)."""
        if self.decoder is not None:
            return self.decoder(filtered)
        e = self.encoder
        return locally_connected_transpose(filtered, e.weight, e.stride, e.in_size, e.backend)

    @torch.no_grad()
    def project_(self, constraint: str) -> None:
        """Renormalize features after a step: 'decoder', 'encoder', 'both' or 'none'."""
        if constraint in ("encoder", "both"):
            unit_norm_(self.encoder.weight)
        if constraint in ("decoder", "both") and self.decoder is not None:
            unit_norm_(self.decoder.weight)
        if constraint == "decoder" and self.decoder is None:
            unit_norm_(self.encoder.weight)
