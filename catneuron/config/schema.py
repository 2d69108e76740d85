"""The settings: one dataclass per part of the system, gathered in Config (the model's, as
nanoGPT's GPTConfig, beside the model: nn/config.py). A setting with a fixed set of values is a
Literal; validate.CHOICES is derived from these types."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from catneuron.nn.config import ModelConfig


@dataclass
class DataConfig:
    root: str | None = None      # data root for named sources; None: $CATNEURON_DATA or ../shared/datasets
    train: list[str] = field(default_factory=lambda: ["natural-64/train"])   # training sources (README: data sources)
    # standardize (per image: zero mean, unit variance) | whiten | lcn | none (data/preprocess.py)
    preprocess: Literal["standardize", "whiten", "lcn", "none"] = "standardize"
    shuffle_buffer: int = 2000   # images mixed at once across shards (the stream's order: data/loader.py)
    workers: int = 0             # decoding processes for training (0: a background thread is enough)


@dataclass
class TrainConfig:
    batch_size: int = 100        # images per step
    steps: int = 2000            # optimizer steps of the whole run (a resumed run continues to this)
    optimizer: Literal["adagrad", "sgd", "adam"] = "adagrad"     # adagrad: DistBelief's
    lr: float = 0.002            # Adagrad's first steps move every weight by ~lr: keep it well below 1/sqrt(r*r*C)
    momentum: float = 0.0        # sgd only
    # Decoupled weight decay, per step w <- w (1 - lr * weight_decay) (AdamW's form): removes what
    # the data do not support. Decoder bases under the unit-norm constraint are unaffected.
    weight_decay: float = 0.0
    # simultaneous: every stage trains at every step (the paper's). greedy: the steps are split
    # in equal phases, one per stage; in phase k only stage k trains, on the outputs of the
    # stages below it, which stay as the earlier phases left them (layer-wise pretraining).
    schedule: Literal["simultaneous", "greedy"] = "simultaneous"
    seed: int = 0                # initialization and data order
    device: str = "cpu"          # cpu | cuda | cuda:N | auto
    threads: int = 0             # CPU threads; 0 = PyTorch's default
    checkpoint_every: int = 500  # steps
    log_every: int = 10          # steps
    tensorboard: bool = False    # also log the metrics for TensorBoard (needs the tensorboard package)


@dataclass
class ProbeConfig:
    tasks: list[str] = field(default_factory=lambda: ["faces", "cat faces", "bodies"])   # test sets (docs/probe.md)
    modes: list[str] = field(default_factory=lambda: ["whole", "field"])   # how test images meet the input
    placements: int = 1          # field mode: placements per axis (1: centred on the top units' field)
    linear_filters: int = 100_000   # training-corpus patches tried as linear filters (the paper: 100,000)
    kmeans_centroids: int = 1000    # K-means baseline (the paper: 30,000 on its 10 M images)
    kmeans_size: int = 16           # images downsampled to this side for K-means
    kmeans_images: int = 20_000     # training images K-means is fitted on
    random_weights: bool = True     # score the same architecture at its initialization
    calibrate: bool = True          # each test set's ceiling (supervised CNN) and giveaway check (probe/calibration.py)
    ceiling_steps: int = 900        # training steps of the ceiling CNN
    batch_size: int = 100           # test images per forward pass
    max_positives: int = 0          # cap positives per test set (0: all the sources hold)
    seed: int = 0                   # test-set sampling, patches and K-means


@dataclass
class ClassifyConfig:
    """Supervised use of the features: linear classifiers on the top layer, then fine-tuning."""
    # one-vs-all: independent logistic classifiers, the paper's
    loss: Literal["one-vs-all", "softmax"] = "one-vs-all"
    l2: float = 0.0              # weight decay of the classifiers (the paper: none)
    head_epochs: int = 30        # classifiers alone, network frozen
    head_lr: float = 0.01        # Adam
    finetune_epochs: int = 2     # then the whole network with the classifiers (0: frozen only)
    finetune_lr: float = 0.0003  # Adam, network and classifiers
    batch_size: int = 100        # images per step
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
    object_store_mb: int | None = None   # Ray's object store on a machine it starts; None: Ray's default


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
