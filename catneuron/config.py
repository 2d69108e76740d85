"""One configuration object (model, data, training) with named presets, overrides and validation.

    cfg = preset("small")
    cfg = apply_overrides(cfg, ["model.sparsity=0.3", "train.steps=500", "model.stages.*.maps=16"])
    validate(cfg)               # raises ConfigError naming the setting
    geometry(cfg.model)         # per-stage sizes (catneuron.nn.geometry)

Config files (--config) are JSON or TOML with the same nested keys as ``to_dict``; keys they do
not give keep the preset's values.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from catneuron.errors import ConfigError
from catneuron.nn.geometry import geometry

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


@dataclass
class StageConfig:
    """One stage: locally connected filtering -> L2 pooling -> local contrast normalization."""
    maps: int = 8                # M: filters per location
    receptive_field: int = 18    # r: each filter sees r x r pixels of every input map
    stride: int = 1              # between neighbouring filter locations
    pool_size: int = 5           # L2 pooling window within one map
    pool_stride: int = 1
    lcn_size: int = 5            # Gaussian LCN window (odd)


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
class Config:
    preset: str = "paper"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    classify: ClassifyConfig = field(default_factory=ClassifyConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def _stages(n: int, **kw) -> list[StageConfig]:
    return [StageConfig(**kw) for _ in range(n)]


def _learns(cfg: Config) -> Config:
    """The start and optimizer that make the network learn (docs/RESULTS.md, "Making the network
    learn"): a small encoder start, an empty decoder, Adam and weight decay. The paper's Adagrad
    from a full-scale random start leaves the filters at their initialization."""
    cfg.model.encoder_init, cfg.model.decoder_init = 0.01, "zero"
    cfg.train.optimizer, cfg.train.lr, cfg.train.weight_decay = "adam", 0.001, 5.0
    return cfg


def _paper() -> Config:
    # Strides are not published. Stride 1 everywhere gives 1.22 billion encoder connections, the
    # paper's "1 billion connections" (its "1 billion parameters" would rather be strides 1, 2, 1:
    # docs/architecture.md), and the smallest top fields (76-88 of the 200 pixels).
    return _learns(Config("paper", ModelConfig(input_size=200, channels=3, stages=_stages(3))))


def _small() -> Config:
    # The CPU preset for the laptop reproduction; docs/RESULTS.md has the throughput behind it.
    cfg = Config("small",
                  ModelConfig(input_size=64, channels=3,
                              stages=[StageConfig(maps=8, receptive_field=12, pool_size=5, lcn_size=5),
                                      StageConfig(maps=8, receptive_field=12, pool_size=5, lcn_size=5),
                                      StageConfig(maps=8, receptive_field=12, pool_size=5, lcn_size=5)]),
                  data=DataConfig(train=["corpora/default"]),
                  train=TrainConfig(steps=3000, checkpoint_every=250))
    return _learns(cfg)


def _tiny() -> Config:
    # For tests: three stages on 20x20 colour images, a few thousand weights.
    return Config("tiny",
                  ModelConfig(input_size=20, channels=3,
                              stages=[StageConfig(maps=4, receptive_field=5, pool_size=3, lcn_size=3),
                                      StageConfig(maps=4, receptive_field=5, pool_size=3, lcn_size=3),
                                      StageConfig(maps=4, receptive_field=3, pool_size=3, lcn_size=3)]),
                  train=TrainConfig(batch_size=20, steps=200, lr=0.02, checkpoint_every=50))


PRESETS = {"paper": _paper, "small": _small, "tiny": _tiny}


def preset(name: str) -> Config:
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; expected one of {', '.join(PRESETS)}")
    return PRESETS[name]()


# ---------------------------------------------------------------------------------------------
# Building from dicts, files and "key=value" overrides

def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return None if value is None else _coerce(value, args[0], key)
    if origin is list:
        (item,) = typing.get_args(tp)
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        if not isinstance(value, list):
            raise ConfigError(f"setting {key}: expected a list, got {value!r}")
        return [_coerce(v, item, f"{key}.{i}") for i, v in enumerate(value)]
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"setting {key}: expected a table of {tp.__name__} fields, got {value!r}")
        return _from_dict(tp, value, key)
    if tp is bool:
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
            return value.lower() in ("true", "1", "yes")
        if isinstance(value, bool):
            return value
        raise ConfigError(f"setting {key}: expected true or false, got {value!r}")
    if tp in (int, float):
        try:
            number = tp(value)
        except (TypeError, ValueError):
            raise ConfigError(f"setting {key}: expected {'an integer' if tp is int else 'a number'}, got {value!r}")
        if tp is int and isinstance(value, float) and value != number:
            raise ConfigError(f"setting {key}: expected an integer, got {value!r}")
        return number
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"setting {key}: expected a string, got {value!r}")
        return value
    return value


def _from_dict(cls, data: dict, prefix: str = "", base=None):
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - known
    if unknown:
        where = f" in {prefix}" if prefix else ""
        raise ConfigError(f"unknown setting{'s' if len(unknown) > 1 else ''} {', '.join(sorted(unknown))}{where}; "
                          f"expected {', '.join(sorted(known))}")
    obj = copy.deepcopy(base) if base is not None else cls()
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else name
        current = getattr(obj, name)
        if dataclasses.is_dataclass(current) and isinstance(value, dict):
            setattr(obj, name, _from_dict(type(current), value, key, current))
        else:
            setattr(obj, name, _coerce(value, hints[name], key))
    return obj


def from_dict(data: dict, base: Config | None = None) -> Config:
    """A Config from nested dicts; missing keys come from `base` (or the preset named in data)."""
    if base is None:
        base = preset(data.get("preset", "paper"))
    return _from_dict(Config, data, base=base)


def load_file(path: str | Path, base: Config | None = None) -> Config:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"config file {path}: cannot read ({err.strerror})")
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path}: not UTF-8 text (expected JSON or TOML)") from None
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"config file {path}: not valid {'TOML' if path.suffix == '.toml' else 'JSON'} ({err})")
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a table of settings at the top level")
    return from_dict(data, base)


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def apply_overrides(cfg: Config, overrides: list[str]) -> Config:
    """Apply "dotted.key=value" overrides; list items by index, or all of them with "*"."""
    cfg = copy.deepcopy(cfg)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected key=value, e.g. train.lr=0.01")
        key, text = item.split("=", 1)
        _set_path(cfg, key.strip().split("."), _parse_value(text.strip()), key.strip())
    return cfg


def _set_path(obj: Any, parts: list[str], value: Any, key: str) -> None:
    head, rest = parts[0], parts[1:]
    if isinstance(obj, list):
        if head == "*":
            targets = range(len(obj))
        elif head.isdigit() and int(head) < len(obj):
            targets = [int(head)]
        else:
            raise ConfigError(f"override {key}: {head!r} is not an index below {len(obj)} or *")
        for i in targets:
            if rest:
                _set_path(obj[i], rest, value, key)
            else:
                obj[i] = value
        return
    if not dataclasses.is_dataclass(obj) or head not in {f.name for f in dataclasses.fields(obj)}:
        raise ConfigError(f"override {key}: unknown setting {head!r}")
    if rest:
        _set_path(getattr(obj, head), rest, value, key)
    else:
        setattr(obj, head, _coerce(value, typing.get_type_hints(type(obj))[head], key))


# ---------------------------------------------------------------------------------------------
# Validation

CHOICES = {
    "model.norm_constraint": ("decoder", "encoder", "both", "none"),
    "model.backend": ("auto", "native", "batched", "torch"),
    "model.precision": ("fp32", "tf32", "bf16"),
    "model.kind": ("sparse", "sigmoid"),
    "model.decoder_init": ("random", "zero"),
    "data.preprocess": ("standardize", "whiten", "lcn", "none"),
    "train.optimizer": ("adagrad", "sgd", "adam"),
    "classify.loss": ("one-vs-all", "softmax"),
}


def validate(cfg: Config) -> Config:
    m, t = cfg.model, cfg.train
    if m.input_size < 1:
        raise ConfigError(f"model.input_size must be >= 1, got {m.input_size}")
    if m.channels not in (1, 3):       # images are decoded as grey or RGB
        raise ConfigError(f"model.channels = {m.channels}; expected 1 (grey) or 3 (RGB)")
    if not m.stages:
        raise ConfigError("model.stages is empty; expected at least one stage")
    geometry(m)
    for key, allowed in CHOICES.items():
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        if value not in allowed:
            raise ConfigError(f"{key} = {value!r}; expected one of {', '.join(allowed)}")
    for key, value, lo in (("model.sparsity", m.sparsity, 0), ("model.eps", m.eps, 0), ("model.lcn_c", m.lcn_c, 0),
                           ("train.lr", t.lr, 0), ("train.weight_decay", t.weight_decay, 0)):
        if not value >= lo:
            raise ConfigError(f"{key} must be >= {lo}, got {value}")
    if m.backend in ("native", "torch") and m.precision != "fp32":
        raise ConfigError(f"model.precision = {m.precision!r} needs model.backend = auto or batched "
                          f"(the {m.backend} kernel computes at fp32)")
    if not m.encoder_init > 0:
        raise ConfigError(f"model.encoder_init must be > 0, got {m.encoder_init}")
    if m.eps <= 0:
        raise ConfigError(f"model.eps must be > 0 (it keeps the pooling gradient finite), got {m.eps}")
    for key in ("batch_size", "steps", "checkpoint_every", "log_every"):
        if getattr(t, key) < 1:
            raise ConfigError(f"train.{key} must be >= 1, got {getattr(t, key)}")
    if t.threads < 0:
        raise ConfigError(f"train.threads must be >= 0, got {t.threads}")
    if cfg.data.workers < 0:
        raise ConfigError(f"data.workers must be >= 0, got {cfg.data.workers}")
    p = cfg.probe
    for mode in p.modes:
        if mode not in ("whole", "field"):
            raise ConfigError(f"probe.modes: {mode!r}; expected whole and/or field")
    for key in ("placements", "batch_size", "kmeans_size"):
        if getattr(p, key) < 1:
            raise ConfigError(f"probe.{key} must be >= 1, got {getattr(p, key)}")
    for key in ("linear_filters", "kmeans_centroids", "kmeans_images", "max_positives"):
        if getattr(p, key) < 0:
            raise ConfigError(f"probe.{key} must be >= 0, got {getattr(p, key)}")
    c = cfg.classify
    for key in ("head_epochs", "finetune_epochs", "per_class"):
        if getattr(c, key) < 0:
            raise ConfigError(f"classify.{key} must be >= 0, got {getattr(c, key)}")
    for key in ("head_lr", "finetune_lr", "l2"):
        if not getattr(c, key) >= 0:
            raise ConfigError(f"classify.{key} must be >= 0, got {getattr(c, key)}")
    if c.batch_size < 1:
        raise ConfigError(f"classify.batch_size must be >= 1, got {c.batch_size}")
    if not (t.device in ("cpu", "cuda", "auto") or t.device.startswith("cuda:")):
        raise ConfigError(f"train.device = {t.device!r}; expected cpu, cuda, cuda:N or auto")
    return cfg
