"""Checks across settings that their types alone do not express; ConfigError names the setting."""
from __future__ import annotations

import dataclasses
import typing

from catneuron.config.schema import Config
from catneuron.errors import ConfigError
from catneuron.nn.geometry import geometry


# The paper's network takes 200 px; beyond this its geometry alone takes minutes to check.
MAX_INPUT_SIZE = 4096

# "section.name" -> its allowed values, from the Literal types of the schema.
CHOICES = {f"{section.name}.{name}": typing.get_args(tp)
           for section in dataclasses.fields(Config) if dataclasses.is_dataclass(section.default_factory)
           for name, tp in typing.get_type_hints(section.default_factory).items()
           if typing.get_origin(tp) is typing.Literal}


def validate(cfg: Config) -> Config:
    m, t = cfg.model, cfg.train
    if not 1 <= m.input_size <= MAX_INPUT_SIZE:
        raise ConfigError(f"model.input_size must be from 1 to {MAX_INPUT_SIZE}, got {m.input_size}")
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
    stage_sparsity = [(f"model.stages.{k}.sparsity", st.sparsity, 0) for k, st in enumerate(m.stages)
                      if st.sparsity is not None]
    for key, value, lo in (("model.sparsity", m.sparsity, 0), ("model.eps", m.eps, 0), ("model.lcn_c", m.lcn_c, 0),
                           ("train.lr", t.lr, 0), ("train.weight_decay", t.weight_decay, 0), *stage_sparsity):
        if not value >= lo:
            raise ConfigError(f"{key} must be >= {lo}, got {value}")
    # bf16 is also the native CPU kernel's (lc_bf16); tf32 only the batched (CUDA) kernel's.
    if (m.backend == "torch" and m.precision != "fp32") or (m.backend == "native" and m.precision == "tf32"):
        raise ConfigError(f"model.precision = {m.precision!r} needs model.backend = auto, batched"
                          f"{' or native' if m.precision == 'bf16' else ''} (the {m.backend} kernel computes at fp32)")
    if not m.encoder_init > 0:
        raise ConfigError(f"model.encoder_init must be > 0, got {m.encoder_init}")
    if m.eps <= 0:
        raise ConfigError(f"model.eps must be > 0 (it keeps the pooling gradient finite), got {m.eps}")
    for key in ("batch_size", "steps", "checkpoint_every", "log_every"):
        if getattr(t, key) < 1:
            raise ConfigError(f"train.{key} must be >= 1, got {getattr(t, key)}")
    # numpy's generators refuse negative seeds, and only after the run directory is written
    for key, value in (("train.threads", t.threads), ("train.momentum", t.momentum), ("train.seed", t.seed),
                       ("data.workers", cfg.data.workers), ("data.shuffle_buffer", cfg.data.shuffle_buffer),
                       ("probe.seed", cfg.probe.seed), ("classify.seed", cfg.classify.seed)):
        if value < 0:
            raise ConfigError(f"{key} must be >= 0, got {value}")
    p = cfg.probe
    if not p.modes:
        raise ConfigError("probe.modes is empty; expected whole and/or field")
    for mode in p.modes:
        if mode not in ("whole", "field"):
            raise ConfigError(f"probe.modes: {mode!r}; expected whole and/or field")
    for key in ("placements", "batch_size", "kmeans_size", "ceiling_steps"):
        if getattr(p, key) < 1:
            raise ConfigError(f"probe.{key} must be >= 1, got {getattr(p, key)}")
    for key in ("linear_filters", "kmeans_centroids", "kmeans_images", "max_positives"):
        if getattr(p, key) < 0:
            raise ConfigError(f"probe.{key} must be >= 0, got {getattr(p, key)}")
    if p.kmeans_images < p.kmeans_centroids:
        raise ConfigError(f"probe.kmeans_images = {p.kmeans_images} is fewer than probe.kmeans_centroids = "
                          f"{p.kmeans_centroids}; K-means needs at least one image per centroid")
    c = cfg.classify
    if c.head_epochs < 1:               # the frozen result and the fine-tuning's start are the trained head
        raise ConfigError(f"classify.head_epochs must be >= 1, got {c.head_epochs}")
    for key in ("finetune_epochs", "per_class"):
        if getattr(c, key) < 0:
            raise ConfigError(f"classify.{key} must be >= 0, got {getattr(c, key)}")
    for key in ("head_lr", "finetune_lr", "l2"):
        if not getattr(c, key) >= 0:
            raise ConfigError(f"classify.{key} must be >= 0, got {getattr(c, key)}")
    if c.batch_size < 1:
        raise ConfigError(f"classify.batch_size must be >= 1, got {c.batch_size}")
    d = cfg.distributed
    for key in ("replicas", "shards", "fetch_every", "push_every", "partitions", "threads", "chunk"):
        if getattr(d, key) < 1:
            raise ConfigError(f"distributed.{key} must be >= 1, got {getattr(d, key)}")
    for key in ("warm_start", "max_restarts"):
        if getattr(d, key) < 0:
            raise ConfigError(f"distributed.{key} must be >= 0, got {getattr(d, key)}")
    if d.object_store_mb is not None and d.object_store_mb < 1:
        raise ConfigError(f"distributed.object_store_mb must be >= 1 (or null), got {d.object_store_mb}")
    if not (t.device in ("cpu", "cuda", "auto") or t.device.startswith("cuda:")):
        raise ConfigError(f"train.device = {t.device!r}; expected cpu, cuda, cuda:N or auto")
    return cfg
