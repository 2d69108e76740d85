"""Named configurations: paper (the ICML 2012 network), small (the CPU reproduction), tiny (tests)."""
from __future__ import annotations

from catneuron.config.schema import Config, DataConfig, TrainConfig
from catneuron.nn.config import ModelConfig, StageConfig
from catneuron.errors import ConfigError


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


# Training steps per network of `catneuron demo`: its three trainings, probe and pictures take under
# 30 minutes on 2 CPU cores at this budget (docs/RESULTS.md).
DEMO_STEPS = 700

PRESETS = {"paper": _paper, "small": _small, "tiny": _tiny}


def preset(name: str) -> Config:
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; expected one of {', '.join(PRESETS)}")
    return PRESETS[name]()
