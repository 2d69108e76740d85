import subprocess
import sys
from pathlib import Path

import pytest

from catneuron.cli import main


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


@pytest.mark.parametrize("args, message", [
    (["train", "--data", "/nonexistent/data"], "data source /nonexistent/data: no such file or folder"),
    (["train", "--preset", "tiny", "--set", "model.stages.0.receptive_field=40"],
     "model.stages.0.receptive_field = 40 is larger than the stage's 20x20 input"),
    (["train", "--preset", "tiny", "--set", "model.stages.0.stride=0"], "model.stages.0.stride must be >= 1"),
    (["info", "--config", "/nonexistent.json"], "config file /nonexistent.json: cannot read"),
])
def test_user_errors_are_one_line(args, message, capsys, tmp_path):
    assert main([*args, *(["--out", str(tmp_path / "run")] if args[0] == "train" else [])]) == 2
    assert _error_line(capsys).startswith(f"catneuron: error: {message}")


def test_empty_folder_and_corrupt_image(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["train", "--preset", "tiny", "--data", str(empty), "--out", str(tmp_path / "a")]) == 2
    assert "folder contains no shards and no images" in _error_line(capsys)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    assert main(["train", "--preset", "tiny", "--data", str(bad), "--out", str(tmp_path / "b"),
                 "--no-progress"]) == 2
    line = _error_line(capsys)
    assert line.startswith("catneuron: error: no usable images in the training data (1 unreadable, e.g. ")
    assert "broken.jpg: not a readable image" in line


def test_info_paper_prints_counts(capsys):
    assert main(["info", "--preset", "paper"]) == 0
    out = capsys.readouterr().out
    assert "encoder connections (W1):     1,216,858,464" in out and "adam state 18.1 GiB" in out


def test_installed_entry_point_reports_errors_without_traceback():
    proc = subprocess.run([sys.executable, "-m", "catneuron.cli", "train", "--data", "/nonexistent"],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("catneuron: error: data source /nonexistent: no such file or folder")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_resume_keeps_the_runs_own_settings(tmp_path):
    from tests.data.helpers import random_images, write_shards
    write_shards(tmp_path / "data" / "set", random_images(40, size=24), per_shard=20)
    out = tmp_path / "run"
    common = ["train", "--preset", "tiny", "--data", str(tmp_path / "data"), "--out", str(out), "--no-progress"]
    assert main([*common, "--steps", "4", "--set", "train.lr=0.003"]) == 0
    assert main(["train", "--out", str(out), "--resume", "--steps", "8", "--no-progress"]) == 0
    import json
    saved = json.loads((out / "config.json").read_text())
    assert saved["train"]["lr"] == 0.003 and saved["train"]["steps"] == 8 and saved["preset"] == "tiny"


@pytest.mark.parametrize("args, message", [
    (["data", "compose", "--mix", "faces-200/test=1"], "compose: faces-200/test is a held-out test split"),
    (["data", "download", "imagenet-22k"], "unknown dataset 'imagenet-22k'"),
    (["data", "frames", "/nonexistent"], "video folder /nonexistent: not a folder"),
    (["data", "audit", "/nonexistent"], "data source /nonexistent: no such file or folder"),
])
def test_data_command_errors_are_one_line(args, message, capsys, tmp_path, datasets):
    extra = ["--out", str(tmp_path / "o")] if args[1] in ("compose", "frames") else []
    assert main([*args, *extra]) == 2
    assert _error_line(capsys).startswith(f"catneuron: error: {message}")


@pytest.mark.parametrize("args, message", [
    (["data", "compose", "--count", "0"], "argument --count: expected an integer >= 1, got 0"),
    (["data", "compose", "--count", "-3"], "argument --count: expected an integer >= 1, got -3"),
    (["data", "compose", "--size", "0"], "argument --size: expected an integer >= 1, got 0"),
    (["data", "compose", "--shard-size", "0"], "argument --shard-size: expected an integer >= 1, got 0"),
    (["data", "audit", "x", "--patches", "-1"], "argument --patches: expected an integer >= 0, got -1"),
    (["data", "audit", "x", "--pad", "-1"], "argument --pad: expected a number >= 0, got '-1'"),
    (["data", "audit", "x", "--pad", "inf"], "argument --pad: expected a number >= 0, got 'inf'"),
    (["data", "ingest", "x", "--out", "o", "--size", "0"], "argument --size: expected an integer >= 1, got 0"),
    (["data", "frames", "x", "--out", "o", "--size", "0"], "argument --size: expected an integer >= 1, got 0"),
    (["data", "frames", "x", "--out", "o", "--workers", "zero"], "argument --workers: expected an integer, got 'zero'"),
    (["explore", "run", "--port", "99999"], "argument --port: expected an integer from 1 to 65535, got 99999"),
    (["bench", "--repeats", "0"], "argument --repeats: expected an integer >= 1, got 0"),
    (["train", "--distributed", "ray", "--ps-shards", "0"], "argument --ps-shards: expected an integer >= 1, got 0"),
])
def test_numbers_out_of_range_are_refused_before_anything_runs(args, message, capsys):
    with pytest.raises(SystemExit) as stop:
        main(args)
    assert stop.value.code == 2 and message in capsys.readouterr().err


def test_a_refused_seed_or_mix_writes_nothing(tmp_path, capsys, datasets):
    out = tmp_path / "run"
    assert main(["train", "--preset", "tiny", "--seed", "-1", "--out", str(out)]) == 2
    assert _error_line(capsys) == "catneuron: error: train.seed must be >= 0, got -1" and not out.exists()
    for weight in ("nan", "inf", "0"):
        assert main(["data", "compose", "--mix", f"natural-64/train={weight}", "--out", str(out)]) == 2
        assert _error_line(capsys).endswith("the fraction must be a number > 0") and not out.exists()


def test_data_frames_command_writes_documented_outputs(tmp_path, capsys, datasets):
    assert main(["data", "frames", str(datasets / "videos" / "head-pose"), "--out", str(tmp_path / "f"),
                 "--size", "32", "--workers", "1"]) == 0
    assert "3 frames from 3 of 3 videos" in capsys.readouterr().out
    assert {p.name for p in (tmp_path / "f").iterdir()} == {"train-000000.tar.gz", "manifest.json", "report.json",
                                                           "progress.json"}


def test_device_flag_then_the_runs_device_where_present_then_auto(monkeypatch):
    import argparse

    import torch

    from catneuron import config as C
    from catneuron.cli.common import device as _device
    cfg = C.preset("tiny")
    cfg.train.device = "cuda:1"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert _device(argparse.Namespace(device=None), cfg) == "cpu"       # the run's GPU is not here
    assert _device(argparse.Namespace(device="cpu"), cfg) == "cpu"
    assert _device(argparse.Namespace(device=None), None) == "cpu"      # auto, no GPU
    cfg.train.device = "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert _device(argparse.Namespace(device=None), cfg) == "cpu"       # the run's own choice
    assert _device(argparse.Namespace(device=None), None) == "cuda"


def test_info_gpu_memory_and_device_flags(capsys):
    assert main(["info", "--preset", "paper", "--batch-size", "100", "--gpu-memory", "80GiB"]) == 0
    assert "on a GPU of 80 GiB (78 GiB usable): fits" in capsys.readouterr().out
    assert main(["info", "--preset", "tiny", "--gpu-memory", "1KB"]) == 0      # under the CUDA context's share
    assert "(0 B usable): does not fit: 516 MiB short" in capsys.readouterr().out
    assert main(["info", "--gpu-memory", "eighty"]) == 2
    assert "--gpu-memory 'eighty': expected a size" in _error_line(capsys)
    assert main(["probe", "runs/none", "--device", "cuda:7"]) == 2
    assert _error_line(capsys).startswith("catneuron: error: runs/none: not a run directory")


def _tiny_run(tmp_path, steps=2):
    from tests.data.helpers import random_images, write_shards
    write_shards(tmp_path / "data" / "set", random_images(40, size=24), per_shard=20)
    out = tmp_path / "run"
    assert main(["train", "--preset", "tiny", "--data", str(tmp_path / "data"), "--out", str(out), "--steps",
                 str(steps), "--no-progress"]) == 0
    return out


def test_damaged_run_files_are_one_line_errors(tmp_path, capsys):
    """The audit's tracebacks: a corrupt config.json on --resume, a truncated final model, a config
    file that is not UTF-8."""
    out = _tiny_run(tmp_path)
    capsys.readouterr()
    (out / "config.json").write_text('{"model": ')
    assert main(["train", "--resume", "--out", str(out), "--steps", "4"]) == 2
    assert _error_line(capsys).startswith(f"catneuron: error: config file {out / 'config.json'}: not valid JSON")
    weights = out / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])
    from catneuron.train.checkpoint import load_model
    from catneuron.errors import CatneuronError
    with pytest.raises(CatneuronError, match="model.safetensors: not a readable safetensors file"):
        load_model(out)
    latin = tmp_path / "latin.json"
    latin.write_bytes('{"preset": "tiny", "data": {"train": ["caf\xe9"]}}'.encode("latin-1"))
    assert main(["info", "--config", str(latin)]) == 2
    assert _error_line(capsys) == f"catneuron: error: config file {latin}: not UTF-8 text (expected JSON or TOML)"


def test_print_config_shows_the_merged_settings_and_runs_nothing(tmp_path, capsys):
    """--print-config prints what the command would run with (preset, file, --set, flags; on a
    run's commands, the run's own settings under them) as a config file, and writes nothing."""
    assert main(["train", "--preset", "tiny", "--set", "train.lr=0.02", "--steps", "7", "--out", str(tmp_path / "x"),
                 "--print-config"]) == 0
    printed = tmp_path / "printed.json"
    printed.write_text(capsys.readouterr().out)
    from catneuron import config as C
    cfg = C.load_file(printed)
    assert (cfg.preset, cfg.train.lr, cfg.train.steps) == ("tiny", 0.02, 7) and not (tmp_path / "x").exists()
    out = _tiny_run(tmp_path)
    capsys.readouterr()
    assert main(["probe", str(out), "--set", "probe.batch_size=3", "--print-config"]) == 0
    probed = C.from_dict(__import__("json").loads(capsys.readouterr().out))
    assert probed.probe.batch_size == 3 and probed.model == C.load_file(out / "config.json").model
    assert not (out / "probe").exists()
    # commands that have no settings of their own do not take any
    for command in (["explore", str(out)], ["classify", "predict", str(out), str(out)],
                    ["data", "frames", str(tmp_path), "--out", str(tmp_path / "f")]):
        with pytest.raises(SystemExit):
            main(command + ["--set", "train.lr=1"])
        assert "unrecognized arguments: --set" in capsys.readouterr().err


def test_a_trained_runs_network_and_settings_are_its_own(tmp_path, capsys):
    """The third audit: --preset was silently ignored on a run's commands, --set model.* silently
    dropped by the probe, and `classify train RUN --init random` built the small preset's network."""
    out = _tiny_run(tmp_path)
    capsys.readouterr()
    with pytest.raises(SystemExit):                     # a run's commands take no preset at all
        main(["probe", str(out), "--preset", "small"])
    assert "unrecognized arguments: --preset small" in _error_line(capsys)
    assert main(["visualize", str(out), "--set", "model.sparsity=3"]) == 2
    assert _error_line(capsys) == (f"catneuron: error: model.sparsity is 3.0 but {out} was trained with 0.1; a trained "
                                   f"network's settings cannot change (train a new run to change them)")
    from tests.data.helpers import png_bytes
    import numpy as np
    rng = np.random.default_rng(0)
    for name in ("a", "b", ".ipynb_checkpoints"):          # a hidden folder is not a class
        (tmp_path / "cls" / name).mkdir(parents=True)
        for i in range(4):
            (tmp_path / "cls" / name / f"{i}.png").write_bytes(png_bytes(rng.integers(0, 256, (24, 24, 3), np.uint8)))
    assert main(["classify", "train", str(out), "--init", "random", "--task", str(tmp_path / "cls"), "--out",
                 str(tmp_path / "clf"), "--set", "classify.head_epochs=1", "--set", "classify.finetune_epochs=0",
                 "--no-progress"]) == 0
    assert ": 2 classes;" in capsys.readouterr().out
    from catneuron import load
    from catneuron.train.checkpoint import model_config
    clf = load(tmp_path / "clf")
    trained = model_config(out).model
    assert clf.input_size == trained.input_size
    assert [s.maps for s in clf.encoder.cfg.stages] == [s.maps for s in trained.stages]


def test_unwritable_out_and_impossible_channels_are_one_line_errors(tmp_path, capsys):
    """An --out that cannot be created (here under a file: the same OSError path as a read-only
    folder or a full disk, and it holds for root too)."""
    from tests.data.helpers import random_images, write_shards
    write_shards(tmp_path / "data" / "set", random_images(20, size=24), per_shard=20)
    (tmp_path / "file").write_text("not a folder")
    assert main(["train", "--preset", "tiny", "--data", str(tmp_path / "data"), "--out",
                 str(tmp_path / "file" / "run"), "--steps", "2", "--no-progress"]) == 2
    assert _error_line(capsys) == f"catneuron: error: {tmp_path / 'file' / 'run'}: Not a directory"
    assert main(["train", "--preset", "tiny", "--set", "model.channels=2", "--out", str(tmp_path / "x")]) == 2
    assert _error_line(capsys) == "catneuron: error: model.channels = 2; expected 1 (grey) or 3 (RGB)"


def test_errors_name_the_users_path_never_a_temporary_one(tmp_path, capsys):
    from catneuron.files import write_text
    from catneuron.errors import CatneuronError
    with pytest.raises(CatneuronError, match=f"^{tmp_path / 'missing' / 'dir' / 'r.html'}: its folder .* does not"):
        write_text(tmp_path / "missing" / "dir" / "r.html", "x")
    (tmp_path / "taken").mkdir()
    with pytest.raises(CatneuronError, match=f"^{tmp_path / 'taken'}: is a folder; expected a file name to write$"):
        write_text(tmp_path / "taken", "x")
    # commands that write at the end say so before their work, not after it
    assert main(["bench", "--out", str(tmp_path / "taken")]) == 2
    assert _error_line(capsys) == f"catneuron: error: {tmp_path / 'taken'}: is a folder; expected a file name to write"
    from catneuron.cli.common import pairs
    with pytest.raises(CatneuronError, match="--compare ctl/v2=runs/x: the name 'ctl/v2' may hold letters"):
        pairs(["ctl/v2=runs/x"], "--compare")
    assert pairs(["ctl-v2.1=runs/x"], "--compare") == {"ctl-v2.1": "runs/x"}


def test_ctrl_c_before_training_starts_exits_130_without_a_traceback(monkeypatch, capsys):
    from catneuron.cli import info

    def interrupted(args):
        raise KeyboardInterrupt
    monkeypatch.setattr(info, "cmd_info", interrupted)
    assert main(["info"]) == 130
    assert capsys.readouterr().err.strip() == "catneuron: interrupted"


def test_help_and_info_do_not_import_torch():
    """`catneuron --help` printed after seconds of imports (torch, the probe, the trainer)."""
    code = ("import sys; from catneuron.cli import parser; parser().format_help(); "
            "print('torch' in sys.modules, 'catneuron.probe.run' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.stdout.split() == ["False", "False"], proc.stderr


def test_a_mistyped_choice_is_one_line_that_says_what_was_meant(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["train", "--preset", "tinny"])
    assert stop.value.code == 2
    line = _error_line(capsys)
    assert line.startswith("catneuron train: error: argument --preset: invalid choice: 'tinny'")
    assert line.endswith("; did you mean tiny? (see catneuron train --help)")


def test_config_show_lists_every_setting_with_its_meaning_and_what_differs(tmp_path, capsys):
    from catneuron import config as C
    assert main(["config", "show", "--preset", "small", "--set", "train.lr=0.01"]) == 0
    lines = capsys.readouterr().out.splitlines()
    keys = [line.split(" = ")[0] for line in lines if " = " in line]
    flat = C.preset("small").to_dict()
    want = ["preset"] + [f"{section}.{key}" for section in ("model", "data", "train", "probe", "classify", "distributed")
                         for key in flat[section] if key != "stages"]
    want += [f"model.stages.{k}.{key}" for k, stage in enumerate(flat["model"]["stages"]) for key in stage]
    assert sorted(keys) == sorted(want)
    lr = next(line for line in lines if line.startswith("train.lr = "))
    assert lr.startswith(f"train.lr = 0.01  (preset small: {C.preset('small').train.lr})") and "Adagrad" in lr
    assert main(["config", "show", "--preset", "small", "--changed", "--set", "model.stages.*.maps=4"]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("model.stages.0.maps = 4  (preset small: 8)")


def test_every_setting_has_a_meaning_in_the_schema():
    from catneuron.config.meanings import meanings
    assert [key for key, text in meanings().items() if not text] == []
