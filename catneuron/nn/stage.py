"""One stage of the network: locally connected filtering -> L2 pooling -> local contrast normalization."""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from catneuron.nn.lcn import LocalContrastNorm
from catneuron.nn.local import LocallyConnected2d, LocallyConnectedTranspose2d, locally_connected_transpose
from catneuron.nn.pool import L2Pool2d


class StageOutput(NamedTuple):
    filtered: torch.Tensor     # (N, M, Ho, Wo)   W1^T x  (+ bias, sigmoid stages)
    pooled: torch.Tensor       # (N, M, Hp, Wp)   sqrt(eps + H (W1^T x)^2)  (sigmoid stages: the sigmoid)
    normalized: torch.Tensor   # (N, M, Hp, Wp)   LCN(pooled), the input of the next stage


def unit_norm_(weight: torch.Tensor) -> None:
    """Scale each feature's filter weight[i, j, m] (over r, r, C) to unit L2 norm, in place."""
    norms = weight.flatten(3).norm(dim=3).clamp_min(1e-12)
    weight.div_(norms[..., None, None, None])


class Stage(nn.Module):
    """(N, C, H, W) -> StageOutput; sizes as in ``catneuron.nn.geometry``.

    ``encoder.weight`` is W1 (Ho, Wo, M, r, r, C); ``decoder_weight`` is W2 (same shape; the
    encoder's when weights are tied). With ``kind="sigmoid"`` the stage is the paper's "deep
    autoencoder" baseline instead: h = sigmoid(W1^T x + b), reconstruction W2 h + c, no pooling or
    LCN (``pooled`` and ``normalized`` are both h).
    """

    def __init__(self, in_channels: int, in_size: int, maps: int, receptive_field: int, stride: int = 1,
                 pool_size: int = 5, pool_stride: int = 1, lcn_size: int = 5, *, lcn: bool = True,
                 tied_weights: bool = False, eps: float = 0.01, lcn_c: float = 0.01, backend: str = "auto",
                 precision: str = "fp32", kind: str = "sparse", device=None, dtype=None):
        super().__init__()
        self.kind = kind
        self.encoder = LocallyConnected2d(in_channels, maps, in_size, receptive_field, stride, backend, precision,
                                          device=device, dtype=dtype)
        self.decoder = None if tied_weights else LocallyConnectedTranspose2d(
            in_channels, maps, in_size, receptive_field, stride, backend, precision, device=device, dtype=dtype)
        if kind == "sigmoid":
            self.hidden_bias = nn.Parameter(torch.zeros(maps, *self.encoder.out_size, device=device, dtype=dtype))
            self.visible_bias = nn.Parameter(torch.zeros(in_channels, *self.encoder.in_size, device=device,
                                                         dtype=dtype))
        else:
            self.pool = L2Pool2d(pool_size, pool_stride, eps)
            self.lcn = LocalContrastNorm(lcn_size, lcn_c) if lcn else nn.Identity()

    @property
    def decoder_weight(self) -> torch.Tensor:
        return self.encoder.weight if self.decoder is None else self.decoder.weight

    def forward(self, x: torch.Tensor) -> StageOutput:
        filtered = self.encoder(x)
        if self.kind == "sigmoid":
            filtered = filtered + self.hidden_bias
            h = torch.sigmoid(filtered)
            return StageOutput(filtered, h, h)
        pooled = self.pool(filtered)
        return StageOutput(filtered, pooled, self.lcn(pooled))

    def reconstruct(self, out: StageOutput) -> torch.Tensor:
        """The decoder on the stage's code: W2 W1^T x, or W2 h + c for sigmoid stages. -> (N, C, H, W)."""
        code = out.pooled if self.kind == "sigmoid" else out.filtered
        if self.decoder is not None:
            x = self.decoder(code)
        else:
            e = self.encoder
            x = locally_connected_transpose(code, e.weight, e.stride, e.in_size, e.backend, e.precision)
        return x + self.visible_bias if self.kind == "sigmoid" else x

    @torch.no_grad()
    def project_(self, constraint: str) -> None:
        """Renormalize features after a step: 'decoder', 'encoder', 'both' or 'none'."""
        if constraint in ("encoder", "both"):
            unit_norm_(self.encoder.weight)
        if constraint in ("decoder", "both") and self.decoder is not None:
            unit_norm_(self.decoder.weight)
        if constraint == "decoder" and self.decoder is None:
            unit_norm_(self.encoder.weight)
