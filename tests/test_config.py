import json

import pytest

from catneuron import config as C
from catneuron.errors import ConfigError
from catneuron.nn.geometry import geometry


@pytest.mark.parametrize("name", sorted(C.PRESETS))
def test_presets_validate_and_survive_a_round_trip_through_json(name, tmp_path):
    cfg = C.preset(name)
    assert C.validate(cfg) is cfg and cfg.preset == name
    path = tmp_path / "config.json"
    path.write_text(cfg.to_json())
    assert C.load_file(path).to_dict() == cfg.to_dict()
    # each stage's input is the one below's pooled output: filters (in - r) / stride + 1, pooling likewise
    for below, stage, st in zip([None, *geometry(cfg.model)], geometry(cfg.model), cfg.model.stages):
        assert stage.in_size == (below.pool_size if below else cfg.model.input_size)
        assert stage.filter_size == (stage.in_size - st.receptive_field) // st.stride + 1
        assert stage.pool_size == (stage.filter_size - st.pool_size) // st.pool_stride + 1 >= 1


def test_paper_top_units_see_76_to_88_pixels():
    # stage 1: 18, +4 pooling = 22, +2x4 for LCN's two centred 5x5 windows = 30; stage 2: 30 + 17 = 47,
    # 51, 59; stage 3: 59 + 17 = 76, 80, 88 (all at jump 1).
    top = geometry(C.preset("paper").model)[-1].sublayers
    assert [(s.kind, s.field, s.start) for s in top] == [("filter", 76, -8), ("pool", 80, -8), ("lcn", 88, -12)]


def test_overrides_and_files(tmp_path):
    cfg = C.apply_overrides(C.preset("small"), ["train.lr=0.02", "model.stages.*.maps=16", "model.stages.0.stride=2",
                                                "data.train=a,b", "model.lcn=false"])
    assert cfg.train.lr == 0.02 and [s.maps for s in cfg.model.stages] == [16, 16, 16]
    assert cfg.model.stages[0].stride == 2 and cfg.data.train == ["a", "b"] and cfg.model.lcn is False
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"preset": "tiny", "train": {"steps": 7}}))
    loaded = C.load_file(path)
    assert loaded.preset == "tiny" and loaded.train.steps == 7 and loaded.model.input_size == 20
    toml = tmp_path / "c.toml"
    toml.write_text('[model]\nsparsity = 0.3\n')
    assert C.load_file(toml, C.preset("small")).model.sparsity == 0.3
    assert C.from_dict(cfg.to_dict()) == cfg     # round trip


@pytest.mark.parametrize("overrides, message", [
    (["model.stages.0.receptive_field=80"], "model.stages.0.receptive_field = 80 is larger than"),
    (["model.stages.1.stride=0"], "model.stages.1.stride must be >= 1"),
    (["model.stages.2.pool_size=40"], "model.stages.2.pool_size = 40 is larger"),
    (["train.optimizer=rmsprop"], "train.optimizer = 'rmsprop'; expected one of adagrad, sgd, adam"),
    (["train.lr=fast"], "train.lr: expected a number"),
    (["model.nope=1"], "unknown setting 'nope'"),
    (["train.lr"], "expected key=value"),
    (["model.stages.7.maps=1"], "not an index below 3"),
    (["model.stages.1.sparsity=-1"], "model.stages.1.sparsity must be >= 0, got -1"),
    (["model.backend=native", "model.precision=tf32"], "needs model.backend = auto, batched (the native"),
    (["model.backend=torch", "model.precision=bf16"], "needs model.backend = auto, batched or native"),
    # the second audit's numbers that were tracebacks (OverflowError) or silently accepted
    (["train.batch_size=1e400"], "train.batch_size: expected an integer, got inf"),
    (["train.steps=Infinity"], "train.steps: expected an integer, got inf"),
    (["train.lr=NaN"], "train.lr: expected a number, got nan"),
    (["train.steps=true"], "train.steps: expected an integer, got True"),
    (["train.steps=2.5"], "train.steps: expected an integer, got 2.5"),
    (['model.stages.0={"maps": "x"}'], "model.stages.0.maps: expected an integer, got 'x'"),
    (["model.stages.0=3"], "model.stages.0: expected a table of StageConfig fields, got 3"),
    (["train.seed=-1"], "train.seed must be >= 0, got -1"),
    (["train.momentum=-0.5"], "train.momentum must be >= 0, got -0.5"),
    (["probe.seed=-2"], "probe.seed must be >= 0, got -2"),
    (["data.shuffle_buffer=-1"], "data.shuffle_buffer must be >= 0, got -1"),
    (["classify.head_epochs=0"], "classify.head_epochs must be >= 1, got 0"),
    (["probe.kmeans_centroids=50", "probe.kmeans_images=3"], "probe.kmeans_images = 3 is fewer than"),
    (["model.input_size=100000"], "model.input_size must be from 1 to 4096, got 100000"),
])
def test_bad_settings_give_one_line_naming_the_setting(overrides, message):
    with pytest.raises(ConfigError) as err:
        C.validate(C.apply_overrides(C.preset("small"), overrides))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_bf16_is_a_native_cpu_precision():
    cfg = C.apply_overrides(C.preset("small"), ["model.backend=native", "model.precision=bf16"])
    assert C.validate(cfg).model.precision == "bf16"


def test_bad_config_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        C.load_file(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        C.load_file(tmp_path / "missing.json")


def test_a_stage_given_as_a_table_changes_only_the_fields_it_names(tmp_path):
    """A config file's stage list (and a --set of a whole stage) starts from the preset's stages,
    not from the class defaults: 'maps = 16' must not also reset the receptive field to 18."""
    small = C.preset("small")
    path = tmp_path / "c.toml"
    path.write_text('[[model.stages]]\nmaps = 16\n[[model.stages]]\n[[model.stages]]\nsparsity = 1.0\n')
    loaded = C.load_file(path, C.preset("small"))
    assert [st.maps for st in loaded.model.stages] == [16, small.model.stages[1].maps, small.model.stages[2].maps]
    assert [st.receptive_field for st in loaded.model.stages] == [st.receptive_field for st in small.model.stages]
    assert loaded.model.stages[2].sparsity == 1.0 and loaded.model.stages[0].sparsity is None
    two = tmp_path / "two.json"        # a shorter list is the whole list: two stages, each the preset's
    two.write_text(json.dumps({"preset": "small", "model": {"stages": [{}, {"stride": 2}]}}))
    shorter = C.load_file(two)
    assert len(shorter.model.stages) == 2 and shorter.model.stages[1].stride == 2
    assert shorter.model.stages[1].receptive_field == small.model.stages[1].receptive_field
    cfg = C.apply_overrides(small, ['model.stages.1={"maps": 4}'])
    assert cfg.model.stages[1].maps == 4
    assert cfg.model.stages[1].receptive_field == small.model.stages[1].receptive_field


def test_a_preset_that_is_not_a_name_and_absurd_memory_sizes_are_config_errors():
    with pytest.raises(ConfigError, match=r"setting preset: expected a preset's name, got \['x'\]"):
        C.from_dict({"preset": ["x"]})
    from catneuron.cli.info import parse_bytes
    for text in ("1e999GB", "nanGB", "0GB", "-3GiB"):
        with pytest.raises(ConfigError, match="--gpu-memory .*expected a size"):
            parse_bytes(text, "--gpu-memory")
    assert parse_bytes("1.5GB", "--gpu-memory") == 1_500_000_000
