"""One stage of the network, built from the model's config and its index (as nanoGPT's Block(config)):

    Stage          locally connected filtering -> L2 pooling -> local contrast normalization (the paper's)
    SigmoidStage   filtering + bias -> sigmoid (Table 1's "deep autoencoder" baseline, same connectivity)

Both encode with W1 (``encoder``) and reconstruct their input with W2 (``decoder``, or W1 when
weights are tied), and their outputs name the same things: ``filtered`` (W1^T x), ``code`` (what
the sparsity term sums), ``normalized`` (the next stage's input) and ``sublayers`` (every
sublayer's output by its kind in catneuron.nn.geometry, for the probe).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from catneuron.nn.config import ModelConfig
from catneuron.nn.geometry import geometry
from catneuron.nn.lcn import LocalContrastNorm
from catneuron.nn.local import LocallyConnected2d, LocallyConnectedTranspose2d, locally_connected_transpose
from catneuron.nn.pool import L2Pool2d


class StageOutput(NamedTuple):
    filtered: torch.Tensor     # (N, M, Ho, Wo)   W1^T x
    pooled: torch.Tensor       # (N, M, Hp, Wp)   sqrt(eps + H (W1^T x)^2)
    normalized: torch.Tensor   # (N, M, Hp, Wp)   LCN(pooled), the input of the next stage

    @property
    def code(self) -> torch.Tensor:
        return self.pooled

    @property
    def sublayers(self) -> dict[str, torch.Tensor]:
        return {"filter": self.filtered, "pool": self.pooled, "lcn": self.normalized}


class SigmoidOutput(NamedTuple):
    filtered: torch.Tensor     # (N, M, Ho, Wo)   W1^T x + b
    hidden: torch.Tensor       # (N, M, Ho, Wo)   sigmoid(W1^T x + b): the code and the next stage's input

    @property
    def code(self) -> torch.Tensor:
        return self.hidden

    @property
    def normalized(self) -> torch.Tensor:
        return self.hidden

    @property
    def sublayers(self) -> dict[str, torch.Tensor]:
        return {"filter": self.filtered, "sigmoid": self.hidden}


def unit_rows_(rows: torch.Tensor) -> None:
    """Scale each row of a (features, values) view to unit L2 norm, in place: the norm constraint,
    on a stage's weights here and on a parameter server's flat slice of them."""
    rows.div_(rows.norm(dim=1, keepdim=True).clamp_min(1e-12))


def unit_norm_(weight: torch.Tensor) -> None:
    """Scale each feature's filter weight[i, j, m] (over r, r, C) to unit L2 norm, in place."""
    unit_rows_(weight.view(-1, weight[0, 0, 0].numel()))


class _Autoencoding(nn.Module):
    """Encoder W1 and decoder W2 of stage `index` of a model, and the unit-norm constraint."""

    def __init__(self, cfg: ModelConfig, index: int, device=None, dtype=None):
        super().__init__()
        st, g = cfg.stages[index], geometry(cfg)[index]
        layer = dict(in_channels=g.in_channels, out_maps=st.maps, in_size=g.in_size,
                     receptive_field=st.receptive_field, stride=st.stride, backend=cfg.backend,
                     precision=cfg.precision, device=device, dtype=dtype)
        self.encoder = LocallyConnected2d(**layer)
        self.decoder = None if cfg.tied_weights else LocallyConnectedTranspose2d(**layer)

    @property
    def decoder_weight(self) -> torch.Tensor:
        """W2 (Ho, Wo, M, r, r, C): the decoder's, or the encoder's when weights are tied."""
        return self.encoder.weight if self.decoder is None else self.decoder.weight

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """W2 applied to a (N, M, Ho, Wo) code -> (N, C, H, W)."""
        if self.decoder is not None:
            return self.decoder(code)
        e = self.encoder
        return locally_connected_transpose(code, e.weight, e.stride, e.in_size, e.backend, e.precision)

    @torch.no_grad()
    def project_(self, constraint: str) -> None:
        """Renormalize features after a step: 'decoder', 'encoder', 'both' or 'none'."""
        if constraint in ("encoder", "both"):
            unit_norm_(self.encoder.weight)
        if constraint in ("decoder", "both") and self.decoder is not None:
            unit_norm_(self.decoder.weight)
        if constraint == "decoder" and self.decoder is None:
            unit_norm_(self.encoder.weight)


class Stage(_Autoencoding):
    """(N, C, H, W) -> StageOutput, sizes as in ``catneuron.nn.geometry``; reconstruction W2 W1^T x."""

    def __init__(self, cfg: ModelConfig, index: int, device=None, dtype=None):
        super().__init__(cfg, index, device, dtype)
        st = cfg.stages[index]
        self.pool = L2Pool2d(st.pool_size, st.pool_stride, cfg.eps)
        self.lcn = LocalContrastNorm(st.lcn_size, cfg.lcn_c) if cfg.lcn else nn.Identity()

    def forward(self, x: torch.Tensor) -> StageOutput:
        filtered = self.encoder(x)
        pooled = self.pool(filtered)
        return StageOutput(filtered, pooled, self.lcn(pooled))

    def sublayer(self, x: torch.Tensor, kind: str) -> torch.Tensor:
        """One sublayer's output ("filter", "pool" or "lcn"), computing nothing above it."""
        filtered = self.encoder(x)
        if kind == "filter":
            return filtered
        pooled = self.pool(filtered)
        return pooled if kind == "pool" else self.lcn(pooled)

    def reconstruct(self, out: StageOutput) -> torch.Tensor:
        return self.decode(out.filtered)


class SigmoidStage(_Autoencoding):
    """(N, C, H, W) -> SigmoidOutput: h = sigmoid(W1^T x + b); reconstruction W2 h + c. No pooling or LCN."""

    def __init__(self, cfg: ModelConfig, index: int, device=None, dtype=None):
        super().__init__(cfg, index, device, dtype)
        e = self.encoder
        self.hidden_bias = nn.Parameter(torch.zeros(e.out_maps, *e.out_size, device=device, dtype=dtype))
        self.visible_bias = nn.Parameter(torch.zeros(e.in_channels, *e.in_size, device=device, dtype=dtype))

    def forward(self, x: torch.Tensor) -> SigmoidOutput:
        filtered = self.encoder(x) + self.hidden_bias
        return SigmoidOutput(filtered, torch.sigmoid(filtered))

    def sublayer(self, x: torch.Tensor, kind: str) -> torch.Tensor:
        """One sublayer's output ("filter" or "sigmoid")."""
        return self(x).sublayers[kind]

    def reconstruct(self, out: SigmoidOutput) -> torch.Tensor:
        return self.decode(out.hidden) + self.visible_bias


def make_stage(cfg: ModelConfig, index: int, device=None, dtype=None) -> Stage | SigmoidStage:
    return (SigmoidStage if cfg.kind == "sigmoid" else Stage)(cfg, index, device, dtype)
