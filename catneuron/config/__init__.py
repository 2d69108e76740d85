"""One configuration object (model, data, training, probe, classify, distributed) with named presets, overrides
and validation:

    cfg = preset("small")
    cfg = apply_overrides(cfg, ["model.sparsity=0.3", "train.steps=500", "model.stages.*.maps=16"])
    validate(cfg)               # raises ConfigError naming the setting
    geometry(cfg.model)         # per-stage sizes (catneuron.nn.geometry)

    schema.py    the dataclasses (the model's: nn/config.py)   presets.py   paper, small, tiny
    parse.py     dicts, files, overrides  validate.py  cross-setting checks

Config files (--config) are JSON or TOML with the same nested keys as ``to_dict``; keys they do
not give keep the preset's values.
"""
from catneuron.config.parse import apply_overrides, from_dict, load_file
from catneuron.config.presets import DEMO_STEPS, PRESETS, preset
from catneuron.config.schema import ClassifyConfig, Config, DataConfig, DistributedConfig, ProbeConfig, TrainConfig
from catneuron.nn.config import ModelConfig, StageConfig
from catneuron.config.validate import CHOICES, validate

__all__ = ["CHOICES", "DEMO_STEPS", "PRESETS", "ClassifyConfig", "Config", "DataConfig", "DistributedConfig",
           "ModelConfig", "ProbeConfig", "StageConfig", "TrainConfig", "apply_overrides", "from_dict", "load_file",
           "preset", "validate"]
