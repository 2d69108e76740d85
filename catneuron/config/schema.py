"""The settings: one dataclass per part of the system, gathered in Config."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class StageConfig:
    """One stage: locally connected filtering -> L2 pooling -> local contrast normalization."""
    maps: int = 8                # M: filters per location
    receptive_field: int = 18    # r: each filter sees r x r pixels of every input map
    stride: int = 1              # between neighbouring filter locations
    pool_size: int = 5           # L2 pooling window within one map
    pool_stride: int = 1
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
    norm_constraint: str = "decoder"   # decoder | encoder | both | none
    # Scale of the initial encoder weights, in units of 1/sqrt(fan in). The gradients of W1 lie in
    # the span of the data, so whatever part of the initialization the data barely excite (most of
    # a white-noise filter, for natural images) is never unlearned: a small start leaves the
    # filters to what the data put there. See docs/architecture.md, "Making it learn".
    encoder_init: float = 1.0
    # random: N(0, 1/fan in) bases, renormalized. zero: the decoder starts empty and its first
    # gradient steps (the residual times the code) give each basis its direction; with the
    # unit-norm constraint a random start is otherwise kept at full norm for ever.
    decoder_init: str = "random"
    # False: each stage's input is a constant for its own objective, so a stage's weights move
    # only by its own objective (all stages still train at the same time on the summed loss).
    # True: the exact gradient of the summed objective, which also reaches the stages below.
    cross_stage_grad: bool = False
    backend: str = "auto"        # locally connected kernels: auto | native | batched | torch (nn/local.py)
    # Of the locally connected multiplies: fp32 | tf32 (CUDA) | bf16 (operands in bfloat16, float32
    # accumulation). Everything else stays float32. docs/RESULTS.md has its effect on the objective.
    precision: str = "fp32"
    # sparse: the paper's stages (filtering -> L2 pooling -> LCN). sigmoid: Table 1's "deep
    # autoencoder" baseline of the same connectivity: filtering + bias -> sigmoid, no pooling or
    # LCN, the sparsity term on the sigmoid outputs.
    kind: str = "sparse"


@dataclass
class DataConfig:
    root: str | None = None      # data root for named sources; None: $CATNEURON_DATA or ../shared/datasets
    train: list[str] = field(default_factory=lambda: ["natural-64/train"])
    preprocess: str = "standardize"    # standardize (per image: zero mean, unit variance) | none
    shuffle_buffer: int = 2000
    workers: int = 0             # decoding processes for training (0: a background thread is enough)


@dataclass
class TrainConfig:
    batch_size: int = 100
    steps: int = 2000
    optimizer: str = "adagrad"   # adagrad (DistBelief's) | sgd | adam
    lr: float = 0.002            # Adagrad's first steps move every weight by ~lr: keep it well below 1/sqrt(r*r*C)
    momentum: float = 0.0        # sgd only
    # Decoupled weight decay, per step w <- w (1 - lr * weight_decay) (AdamW's form): removes what
    # the data do not support. Decoder bases under the unit-norm constraint are unaffected.
    weight_decay: float = 0.0
    # simultaneous: every stage trains at every step (the paper's). greedy: the steps are split
    # in equal phases, one per stage; in phase k only stage k trains, on the outputs of the
    # stages below it, which stay as the earlier phases left them (layer-wise pretraining).
    schedule: str = "simultaneous"
    seed: int = 0
    device: str = "cpu"          # cpu | cuda | cuda:N | auto
    threads: int = 0             # CPU threads; 0 = PyTorch's default
    checkpoint_every: int = 500  # steps
    log_every: int = 10          # steps
    tensorboard: bool = False


@dataclass
class ProbeConfig:
    tasks: list[str] = field(default_factory=lambda: ["faces", "cat faces", "bodies"])
    modes: list[str] = field(default_factory=lambda: ["whole", "field"])   # how test images meet the input
    placements: int = 1          # field mode: placements per axis (1: centred on the top units' field)
    linear_filters: int = 100_000   # training-corpus patches tried as linear filters (the paper: 100,000)
    kmeans_centroids: int = 1000    # K-means baseline (the paper: 30,000 on its 10 M images)
    kmeans_size: int = 16           # images downsampled to this side for K-means
    kmeans_images: int = 20_000     # training images K-means is fitted on
    random_weights: bool = True     # score the same architecture at its initialization
    calibrate: bool = True          # each test set's ceiling (supervised CNN) and giveaway check (probe/calibration.py)
    ceiling_steps: int = 900        # training steps of the ceiling CNN
    batch_size: int = 100
    max_positives: int = 0          # cap positives per test set (0: all the sources hold)
    seed: int = 0


@dataclass
class ClassifyConfig:
    """Supervised use of the features: linear classifiers on the top layer, then fine-tuning."""
    loss: str = "one-vs-all"     # one-vs-all (independent logistic classifiers, the paper's) | softmax
    l2: float = 0.0              # weight decay of the classifiers (the paper: none)
    head_epochs: int = 30        # classifiers alone, network frozen
    head_lr: float = 0.01        # Adam
    finetune_epochs: int = 2     # then the whole network with the classifiers (0: frozen only)
    finetune_lr: float = 0.0003  # Adam, network and classifiers
    batch_size: int = 100
    per_class: int = 0           # cap images per class (0: all)
    seed: int = 0                # the split into halves and the training order


@dataclass
class DistributedConfig:
    """Downpour SGD on Ray (`catneuron train --distributed ray`; docs/distributed.md)."""
    replicas: int = 2             # model replicas, each on its part of the data
    shards: int = 2               # parameter-server shards
    fetch_every: int = 1          # P: a replica fetches the parameters every P steps
    push_every: int = 1           # G: and pushes its summed gradients every G steps
    partitions: int = 1           # K: spatial partitions of each replica's network (model parallelism)
    threads: int = 1              # CPU threads per replica
    address: str | None = None    # an existing Ray cluster; None: start one on this machine
    warm_start: int = 0           # steps one replica trains alone before the others join
    chunk: int = 10               # steps per driver call to a replica
    max_restarts: int = 3         # per replica
    object_store_mb: int | None = None


@dataclass
class Config:
    preset: str = "paper"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    classify: ClassifyConfig = field(default_factory=ClassifyConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)
