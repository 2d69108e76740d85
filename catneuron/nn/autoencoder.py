"""The deep sparse autoencoder: N identical stages (3 stages = the paper's 9 layers)."""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import torch
from torch import nn

from catneuron.nn.config import ModelConfig
from catneuron.nn.objective import StageLoss, stage_loss
from catneuron.nn.stage import SigmoidOutput, StageOutput, make_stage


class Objective(NamedTuple):
    total: torch.Tensor            # sum over stages of reconstruction + lambda * sparsity
    stages: list[StageLoss]
    filtered: list[torch.Tensor]   # each stage's filter outputs W1^T x, (N, M, Ho, Wo), as StageOutput.filtered


class DeepSparseAutoencoder(nn.Module):
    """(N, C, S, S) images -> per-stage filtering, pooling and LCN outputs, and the training objective.

    Build from a ModelConfig; on ``device="meta"`` it allocates nothing (for counting the paper model).
    """

    def __init__(self, cfg: ModelConfig, device=None, dtype=None):
        super().__init__()
        self.cfg = cfg
        self.stages = nn.ModuleList(make_stage(cfg, k, device, dtype) for k in range(len(cfg.stages)))
        self._initialize()
        self.project_()

    @torch.no_grad()
    def _initialize(self) -> None:
        """The start ModelConfig.encoder_init and decoder_init ask for (on top of each layer's N(0, 1/fan in))."""
        for stage in self.stages:
            stage.encoder.weight.mul_(self.cfg.encoder_init)
            if self.cfg.decoder_init == "zero" and stage.decoder is not None:
                stage.decoder.weight.zero_()

    def forward(self, x: torch.Tensor) -> list[StageOutput | SigmoidOutput]:
        """All sublayer activations, stage by stage (the probe reads every one of them)."""
        outputs = []
        for stage in self.stages:
            out = stage(x)
            outputs.append(out)
            x = out.normalized
        return outputs

    def sublayer(self, x: torch.Tensor, stage: int, kind: str) -> torch.Tensor:
        """(N, C, S, S) -> (N, M, H, W): one sublayer of stage `stage` (from 1), computing nothing above it."""
        for below in self.stages[:stage - 1]:
            x = below(x).normalized
        return self.stages[stage - 1].sublayer(x, kind)

    def sparsity_weight(self, index: int) -> float:
        """lambda of stage `index`: its own (StageConfig.sparsity) or the model's."""
        own = self.cfg.stages[index].sparsity
        return self.cfg.sparsity if own is None else own

    def objective(self, x: torch.Tensor, active: int | None = None) -> Objective:
        """Summed stage objectives on a batch; see ModelConfig.cross_stage_grad for what reaches which
        stage. With `active` (greedy training) the total is stage `active`'s objective alone, the
        stages below it compute without gradients, and those above it not at all."""
        losses, filtered = [], []
        for k, stage in enumerate(self.stages[:len(self.stages) if active is None else active + 1]):
            if not self.cfg.cross_stage_grad or active is not None:
                x = x.detach()
            with torch.set_grad_enabled(torch.is_grad_enabled() and (active is None or k == active)):
                out = stage(x)
                losses.append(stage_loss(x, out.code, stage.reconstruct(out)))
            filtered.append(out.filtered)
            x = out.normalized
        terms = [loss.total(self.sparsity_weight(k)) for k, loss in enumerate(losses)]
        total = sum(terms) if active is None else terms[active]
        return Objective(total, losses, filtered)

    @torch.no_grad()
    def project_(self, only: int | None = None) -> None:
        """Apply the unit-norm constraint of the config (after every optimizer step), to every
        stage or to stage `only` (the one a greedy step trained: the others stay bit for bit)."""
        for k, stage in enumerate(self.stages):
            if only is None or k == only:
                stage.project_(self.cfg.norm_constraint)


def random_baseline(cfg: ModelConfig) -> ModelConfig:
    """The architecture of `cfg` with the conventional random start (encoders N(0, 1/fan in),
    random unit-norm decoders): the "random weights" baseline of the probe and of classify,
    whatever start the run trained from. A small `encoder_init` left untrained puts every pooling
    unit in its eps regime and every LCN unit at its floor, a weaker baseline than this one."""
    return dataclasses.replace(cfg, encoder_init=1.0, decoder_init="random")
