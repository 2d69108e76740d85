"""The network's settings, beside the network (as nanoGPT's GPTConfig beside GPT); `Config`
(catneuron/config) composes them with the data, training and probe settings."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class StageConfig:
    """One stage: locally connected filtering -> L2 pooling -> local contrast normalization."""
    maps: int = 8                # M: filters per location
    receptive_field: int = 18    # r: each filter sees r x r pixels of every input map
    stride: int = 1              # between neighbouring filter locations
    pool_size: int = 5           # L2 pooling window within one map
    pool_stride: int = 1         # between neighbouring pooling units
    lcn_size: int = 5            # Gaussian LCN window (odd)
    # lambda of this stage's sparsity term; None: model.sparsity. The stages' inputs differ in size
    # and energy (pixels, then LCN outputs), so one lambda weighs sparsity differently at each.
    sparsity: float | None = None


@dataclass
class ModelConfig:
    input_size: int = 200        # square input, pixels
    channels: int = 3            # 3 = RGB, 1 = grey
    stages: list[StageConfig] = field(default_factory=lambda: [StageConfig() for _ in range(3)])
    lcn: bool = True             # False: the paper's "without LCN" control
    tied_weights: bool = False   # True: decoder W2 = encoder W1 (the paper unties them)
    sparsity: float = 0.1        # lambda
    eps: float = 0.01            # inside the pooling square root
    lcn_c: float = 0.01          # lower bound of the LCN divisor
    # Which weights are renormalized to unit L2 norm per feature after each step; without it the
    # sparsity term is cheated by shrinking the encoder while the decoder grows.
    norm_constraint: Literal["decoder", "encoder", "both", "none"] = "decoder"
    # Scale of the initial encoder weights, in units of 1/sqrt(fan in). The gradients of W1 lie in
    # the span of the data, so whatever part of the initialization the data barely excite (most of
    # a white-noise filter, for natural images) is never unlearned: a small start leaves the
    # filters to what the data put there. See docs/architecture.md, "Making it learn".
    encoder_init: float = 1.0
    # random: N(0, 1/fan in) bases, renormalized. zero: the decoder starts empty and its first
    # gradient steps (the residual times the code) give each basis its direction; with the
    # unit-norm constraint a random start is otherwise kept at full norm for ever.
    decoder_init: Literal["random", "zero"] = "random"
    # False: each stage's input is a constant for its own objective, so a stage's weights move
    # only by its own objective (all stages still train at the same time on the summed loss).
    # True: the exact gradient of the summed objective, which also reaches the stages below.
    cross_stage_grad: bool = False
    backend: Literal["auto", "native", "triton", "batched", "torch"] = "auto"    # locally connected kernels: nn/local.py
    # Of the locally connected multiplies: fp32 | tf32 (CUDA) | bf16 (operands in bfloat16, float32
    # accumulation). Everything else stays float32. docs/RESULTS.md has its effect on the objective.
    precision: Literal["fp32", "tf32", "bf16"] = "fp32"
    # sparse: the paper's stages (filtering -> L2 pooling -> LCN). sigmoid: Table 1's "deep
    # autoencoder" baseline of the same connectivity: filtering + bias -> sigmoid, no pooling or
    # LCN, the sparsity term on the sigmoid outputs.
    kind: Literal["sparse", "sigmoid"] = "sparse"
