import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from catneuron import config as C
from catneuron.errors import CatneuronError
from catneuron.nn.autoencoder import DeepSparseAutoencoder
from catneuron.train import checkpoint
from catneuron.train.trainer import Trainer
from tests.data.helpers import random_images, write_shards


def _cfg(data: list[str], steps: int, **train) -> C.Config:
    cfg = C.preset("tiny")
    cfg.data.train = data
    cfg.train.steps = steps
    for k, v in train.items():
        setattr(cfg.train, k, v)
    return cfg


@pytest.fixture
def shards(tmp_path):
    write_shards(tmp_path / "data" / "set", random_images(120, size=24), per_shard=50)
    return str(tmp_path / "data")


def test_tiny_run_on_real_images_lowers_the_objective(tmp_path, datasets):
    cfg = _cfg(["natural-64/train"], 200, log_every=10)
    result = Trainer(cfg, tmp_path / "run", progress=False).run()
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert result.step == 200 and result.images_seen == 200 * 20 and len(rows) == 21
    init, rows = rows[0], rows[1:]
    assert init["step"] == 0 and "loss" not in init and 0.1 < init["stage1/structure"] < 0.5
    assert rows[-1]["loss"] < 0.6 * rows[0]["loss"]
    assert all(rows[-1][f"stage{k}/from_init"] > 0 and rows[-1][f"stage{k}/kurtosis"] > 0 for k in (1, 2, 3))
    meta = checkpoint.read_metadata(tmp_path / "run" / "model.safetensors")
    assert meta["config"]["preset"] == "tiny" and "code_version" in meta
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["data"][0]["file_count"] == 5 and run["sessions"][0]["torch"] == torch.__version__


def test_resumed_run_equals_uninterrupted_run(tmp_path, shards):
    Trainer(_cfg([shards], 30, checkpoint_every=10), tmp_path / "straight", progress=False).run()
    Trainer(_cfg([shards], 15, checkpoint_every=10), tmp_path / "split", progress=False).run()
    Trainer(_cfg([shards], 30, checkpoint_every=10), tmp_path / "split", resume=True, progress=False).run()
    a, b = load_file(tmp_path / "straight" / "model.safetensors"), load_file(tmp_path / "split" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    steps = [json.loads(line)["step"] for line in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps))          # no duplicated log lines after the resume


def _spawn_training(out: Path, data: str, steps: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "catneuron.cli", "train", "--preset", "tiny", "--data", data, "--out", str(out),
           "--steps", str(steps), "--set", "train.checkpoint_every=10", "--no-progress"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[2])


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.time() < deadline, f"{path} did not appear"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM])
def test_killed_run_resumes_to_the_same_weights(tmp_path, shards, sig):
    steps = 400
    proc = _spawn_training(tmp_path / "killed", shards, steps)
    _wait_for(tmp_path / "killed" / "checkpoints" / "step-00000020", proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    saved = checkpoint.latest(tmp_path / "killed" / "checkpoints")
    if sig != signal.SIGKILL:     # Ctrl-C, SIGTERM: checkpoint the step it stopped at, exit 128 + signal
        assert proc.returncode == 128 + sig and "interrupted at step" in err
        assert f"interrupted at step {int(saved.name.split('-')[1])};" in err
    else:
        assert proc.returncode == -signal.SIGKILL
    Trainer(_cfg([shards], steps, checkpoint_every=10), tmp_path / "killed", resume=True, progress=False).run()
    Trainer(_cfg([shards], steps, checkpoint_every=10), tmp_path / "straight", progress=False).run()
    a = load_file(tmp_path / "straight" / "model.safetensors")
    b = load_file(tmp_path / "killed" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_existing_run_needs_resume(tmp_path, shards):
    Trainer(_cfg([shards], 2), tmp_path / "run", progress=False).run()
    with pytest.raises(CatneuronError, match="already holds a run .*; pass --resume"):
        Trainer(_cfg([shards], 4), tmp_path / "run", progress=False).run()


def test_a_finished_run_without_checkpoints_is_not_overwritten(tmp_path, shards):
    """The audit's case: checkpoints/ deleted, then a new training into the same --out replaced the
    300-step model and cut metrics.jsonl to 5 rows."""
    import shutil
    Trainer(_cfg([shards], 6, log_every=1), tmp_path / "run", progress=False).run()
    shutil.rmtree(tmp_path / "run" / "checkpoints")
    model, metrics = (tmp_path / "run" / "model.safetensors").read_bytes(), (tmp_path / "run" / "metrics.jsonl")
    rows = metrics.read_text()
    with pytest.raises(CatneuronError, match=r"already holds a run \(model.safetensors, config.json, metrics.jsonl\)"):
        Trainer(_cfg([shards], 2), tmp_path / "run", progress=False).run()
    assert (tmp_path / "run" / "model.safetensors").read_bytes() == model and metrics.read_text() == rows


def test_a_run_directory_has_one_writer_and_a_killed_writer_frees_it(tmp_path, shards):
    from catneuron.rundir import RunDir
    with RunDir(tmp_path / "run").locked():
        with pytest.raises(CatneuronError, match=r"being written by another training \(pid \d+\)"):
            Trainer(_cfg([shards], 2), tmp_path / "run", progress=False).run()
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path; "
                               "from catneuron.rundir import RunDir; cm = RunDir(sys.argv[1]).locked(); "
                               "cm.__enter__(); print('locked', flush=True); time.sleep(60)", str(tmp_path / "run")],
                              stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2])
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(CatneuronError, match="being written by another training"):
        Trainer(_cfg([shards], 2), tmp_path / "run", progress=False).run()
    holder.kill()
    holder.wait()
    assert Trainer(_cfg([shards], 2), tmp_path / "run", progress=False).run().step == 2


def test_resume_survives_a_cut_metrics_line_a_damaged_checkpoint_and_a_killed_save(tmp_path, shards):
    Trainer(_cfg([shards], 30, checkpoint_every=10, log_every=5), tmp_path / "run", progress=False).run()
    run = tmp_path / "run"
    (run / "model.safetensors").unlink()          # as if killed after the step-30 checkpoint
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 35, "lo')                # a kill in the middle of a line
    newest = checkpoint.latest(run / "checkpoints")
    weights = newest / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])   # damaged after it was written
    stale = run / "checkpoints" / ".step-00000040.abc123"
    stale.mkdir()                                  # what a save killed midway leaves
    result = Trainer(_cfg([shards], 40, checkpoint_every=10, log_every=5), run, resume=True, progress=False).run()
    assert result.step == 40 and not stale.exists()
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [0, 5, 10, 15, 20, 25, 30, 35, 40]        # resumed from step 20, the intact checkpoint


def test_every_checkpoint_damaged_is_one_clear_error(tmp_path, shards):
    Trainer(_cfg([shards], 20, checkpoint_every=10), tmp_path / "run", progress=False).run()
    for c in checkpoint.complete(tmp_path / "run" / "checkpoints"):
        (c / "trainer.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CatneuronError, match="none of the 2 checkpoints is readable"):
        Trainer(_cfg([shards], 30, checkpoint_every=10), tmp_path / "run", resume=True, progress=False).run()


class _RunsCode:
    """A pickle that runs a shell command when loaded."""
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_checkpoint_that_would_run_code_is_refused_and_runs_nothing(tmp_path, shards):
    Trainer(_cfg([shards], 20, checkpoint_every=10), tmp_path / "run", progress=False).run()
    marker = tmp_path / "code-ran"
    for c in checkpoint.complete(tmp_path / "run" / "checkpoints"):
        state = torch.load(c / "trainer.pt", weights_only=True)
        torch.save({**state, "payload": _RunsCode(marker)}, c / "trainer.pt")
    done = subprocess.run([sys.executable, "-m", "catneuron.cli", "train", "--preset", "tiny", "--data", shards,
                           "--steps", "30", "--no-progress", "--resume", "--out", str(tmp_path / "run")],
                          capture_output=True, text=True)
    assert not marker.exists()
    assert done.returncode == 2 and "none of the 2 checkpoints is readable" in done.stderr
    assert "not loaded, since unpickling it could run code" in done.stderr and "Traceback" not in done.stderr


def test_checkpoints_restore_every_random_generator(tmp_path, shards):
    Trainer(_cfg([shards], 10, checkpoint_every=10), tmp_path / "run", progress=False).run()
    model = DeepSparseAutoencoder(C.preset("tiny").model)
    checkpoint.load(checkpoint.latest(tmp_path / "run" / "checkpoints"), model, torch.optim.SGD(model.parameters()),
                    "cpu")
    draws = (torch.rand(3), np.random.rand(3), random.random())
    checkpoint.load(checkpoint.latest(tmp_path / "run" / "checkpoints"), model, torch.optim.SGD(model.parameters()),
                    "cpu")
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(draws[0], again[0]) and np.array_equal(draws[1], again[1]) and draws[2] == again[2]


def test_unreadable_training_images_are_kept_in_run_json(tmp_path):
    from PIL import Image
    folder = tmp_path / "imgs"
    folder.mkdir()
    for k in range(8):
        Image.fromarray(np.full((24, 24, 3), 30 * k, np.uint8)).save(folder / f"{k}.png")
    (folder / "broken.png").write_bytes(b"\x89PNG broken")
    Trainer(_cfg([str(folder)], 3), tmp_path / "run", progress=False).run()
    session = json.loads((tmp_path / "run" / "run.json").read_text())["sessions"][-1]
    assert session["skipped_count"] == 1 and list(session["skipped"]) == [str(folder / "broken.png")]


def test_resume_refuses_a_different_model(tmp_path, shards):
    Trainer(_cfg([shards], 2), tmp_path / "run", progress=False).run()
    cfg = _cfg([shards], 4)
    cfg.model.sparsity = 0.5
    with pytest.raises(CatneuronError, match="model.sparsity is 0.5 but .* was trained with 0.1"):
        Trainer(cfg, tmp_path / "run", resume=True, progress=False).run()


@pytest.mark.parametrize("key, value", [("optimizer", "adam"), ("seed", 7)])
def test_resume_refuses_what_the_saved_state_depends_on_before_writing_anything(tmp_path, shards, key, value):
    Trainer(_cfg([shards], 4, checkpoint_every=2, optimizer="adagrad"), tmp_path / "run", progress=False).run()
    before = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir() if p.is_file()}
    with pytest.raises(CatneuronError, match=f"--resume: train.{key} is {value!r} but"):
        Trainer(_cfg([shards], 8, **{"optimizer": "adagrad", key: value}), tmp_path / "run", resume=True,
                progress=False).run()
    after = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir() if p.is_file()}
    assert after == before
    resumed = Trainer(_cfg([shards], 8, optimizer="adagrad"), tmp_path / "run", resume=True, progress=False).run()
    assert resumed.step == 8                      # the run is intact for a correct --resume


def test_a_resumed_run_trains_at_the_rate_its_config_says(tmp_path, shards):
    Trainer(_cfg([shards], 10, checkpoint_every=10, optimizer="adam", lr=0.01), tmp_path / "run",
            progress=False).run()
    before = load_file(tmp_path / "run" / "model.safetensors")
    Trainer(_cfg([shards], 20, checkpoint_every=10, optimizer="adam", lr=0.0, weight_decay=0.0), tmp_path / "run",
            resume=True, progress=False).run()
    after = load_file(tmp_path / "run" / "model.safetensors")
    assert all(torch.allclose(before[k], after[k], atol=1e-6) for k in before)


def test_a_run_stopped_after_training_past_its_final_weights_is_read_at_its_newest_checkpoint(tmp_path, shards):
    """A finished run, resumed for more steps and stopped midway, keeps its earlier
    model.safetensors beside newer checkpoints: probe and visualize silently scored the old weights."""
    import shutil
    from catneuron.train.checkpoint import weights_file
    run = tmp_path / "run"
    Trainer(_cfg([shards], 10, checkpoint_every=5), run, progress=False).run()
    shutil.copy2(run / "model.safetensors", tmp_path / "final-10.safetensors")
    Trainer(_cfg([shards], 20, checkpoint_every=5), run, resume=True, progress=False).run()
    shutil.copy2(tmp_path / "final-10.safetensors", run / "model.safetensors")     # as if stopped before the end
    assert weights_file(run) == run / "checkpoints" / "step-00000020" / "model.safetensors"
    Trainer(_cfg([shards], 20, checkpoint_every=5), run, resume=True, progress=False).run()
    assert weights_file(run) == run / "model.safetensors"         # finished again: the final weights are newest


def test_a_diverging_run_keeps_its_last_good_checkpoint_and_says_what_to_do(tmp_path, shards):
    Trainer(_cfg([shards], 10, checkpoint_every=5), tmp_path / "run", progress=False).run()
    good = {c.name: load_file(c / "model.safetensors") for c in checkpoint.complete(tmp_path / "run" / "checkpoints")}
    with pytest.raises(CatneuronError, match=r"between steps \d+ and \d+; the last good checkpoint is "
                                             r"step-00000010. Lower train.lr \(now 1e\+30\)"):
        Trainer(_cfg([shards], 40, checkpoint_every=5, log_every=5, lr=1e30), tmp_path / "run", resume=True,
                progress=False).run()
    kept = checkpoint.complete(tmp_path / "run" / "checkpoints")
    assert [c.name for c in kept] == list(good)
    assert all(torch.isfinite(t).all() for c in kept for t in load_file(c / "model.safetensors").values())
    resumed = Trainer(_cfg([shards], 15, checkpoint_every=5), tmp_path / "run", resume=True, progress=False).run()
    assert resumed.step == 15 and np.isfinite(resumed.final_loss)


def test_non_finite_weights_are_never_written_or_loaded(tmp_path):
    model = DeepSparseAutoencoder(C.preset("tiny").model)
    with torch.no_grad():
        next(model.parameters()).view(-1)[3] = float("nan")
    with pytest.raises(CatneuronError, match=r"m.safetensors: not written: .*holds NaN or inf"):
        checkpoint.save_weights(model, tmp_path / "m.safetensors", {})
    assert not (tmp_path / "m.safetensors").exists()
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "m.safetensors"),
              metadata={"config": json.dumps(C.preset("tiny").to_dict())})
    with pytest.raises(CatneuronError, match="holds NaN or inf .*retrain with a lower train.lr"):
        checkpoint.load_model(tmp_path / "m.safetensors")


def test_resume_may_change_how_the_kernels_compute(tmp_path, shards):
    Trainer(_cfg([shards], 2), tmp_path / "run", progress=False).run()
    cfg = _cfg([shards], 4)
    cfg.model.backend, cfg.model.precision = "batched", "bf16"
    assert Trainer(cfg, tmp_path / "run", resume=True, progress=False).run().step == 4
    assert json.loads((tmp_path / "run" / "config.json").read_text())["model"]["precision"] == "bf16"


def test_resume_accepts_a_run_saved_before_a_setting_existed(tmp_path, shards):
    Trainer(_cfg([shards], 2), tmp_path / "run", progress=False).run()
    path = tmp_path / "run" / "config.json"
    saved = json.loads(path.read_text())
    del saved["model"]["kind"]                      # as written by a version without that setting
    path.write_text(json.dumps(saved))
    assert Trainer(_cfg([shards], 4), tmp_path / "run", resume=True, progress=False).run().step == 4


def test_checkpoints_are_pruned_and_never_partial(tmp_path, shards):
    Trainer(_cfg([shards], 50, checkpoint_every=10), tmp_path / "run", progress=False).run()
    names = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert names == ["step-00000040", "step-00000050"]


def test_image_folder_as_data(tmp_path):
    from PIL import Image
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, img in enumerate(random_images(30, size=40)):
        Image.fromarray(img).save(folder / f"{i}.png")
    result = Trainer(_cfg([str(folder)], 5), tmp_path / "run", progress=False).run()
    assert result.images_seen == 100


def test_resume_without_checkpoint_starts_the_log_afresh(tmp_path, shards):
    """A run killed before its first checkpoint left log lines; resuming it starts from step 0 and
    must not keep them (one initialization row, no stale steps)."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 0, "images": 0}\n{"step": 10, "images": 200, "loss": 1.0}\n')
    Trainer(_cfg([shards], 5), run, resume=True, progress=False).run()
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [0, 5]


def test_a_full_disk_while_saving_is_a_clear_error_and_leaves_no_file(tmp_path, monkeypatch):
    from safetensors import SafetensorError

    from catneuron.nn.autoencoder import DeepSparseAutoencoder

    def full(*args, **kwargs):
        raise SafetensorError("Error while serializing: IoError(Os { code: 28, message: \"No space left\" })")
    monkeypatch.setattr(checkpoint, "save_file", full)
    model = DeepSparseAutoencoder(C.preset("tiny").model)
    with pytest.raises(CatneuronError, match="model.safetensors: cannot write .*No space left"):
        checkpoint.save_weights(model, tmp_path / "model.safetensors", {})
    assert list(tmp_path.iterdir()) == []


def test_greedy_schedule_trains_one_stage_per_phase():
    """train.schedule = greedy: 9 steps in three phases; a step of phase k moves stage k's weights
    only, and the objective it returns is that stage's, the stages above not computed."""
    from catneuron.nn.autoencoder import DeepSparseAutoencoder
    from catneuron.train.optim import make_optimizer
    from catneuron.train.trainer import active_stage, train_step
    cfg = _cfg([], steps=9, schedule="greedy", optimizer="sgd", weight_decay=0.1)
    assert [active_stage(cfg, s) for s in range(9)] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    torch.manual_seed(0)
    model = DeepSparseAutoencoder(cfg.model)
    optimizer = make_optimizer(cfg.train, model.parameters())
    x = torch.randn(8, 3, 20, 20)
    for step in (0, 3, 6):
        active = active_stage(cfg, step)
        before = [[p.detach().clone() for p in stage.parameters()] for stage in model.stages]
        objective = train_step(model, optimizer, cfg, x, active)
        assert len(objective.stages) == active + 1
        lam = model.sparsity_weight(active)
        torch.testing.assert_close(objective.total, objective.stages[active].total(lam))
        for k, stage in enumerate(model.stages):
            moved = any(not torch.equal(a, b) for a, b in zip(before[k], stage.parameters()))
            assert moved == (k == active), f"stage {k} at step {step}"
    assert active_stage(_cfg([], steps=9), 4) is None


def test_a_greedy_run_trains_and_logs_every_phase(tmp_path, shards):
    cfg = _cfg([shards], steps=6, schedule="greedy", log_every=1, checkpoint_every=3)
    Trainer(cfg, tmp_path / "run", progress=False).run()
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()][1:]
    # kurtosis only for the stages each step computed: phase k (steps 2k+1, 2k+2) reaches stage k+1
    assert [sum(f"stage{k}/kurtosis" in r for k in (1, 2, 3)) for r in rows] == [1, 1, 2, 2, 3, 3]
    assert (tmp_path / "run" / "model.safetensors").exists()


def test_distributed_trainer_refuses_the_greedy_schedule(tmp_path):
    from catneuron.train.distributed.ray_trainer import DistributedTrainer
    cfg = _cfg([], steps=10, schedule="greedy")
    with pytest.raises(CatneuronError, match="train.schedule = greedy"):
        DistributedTrainer(cfg, tmp_path / "run")


def test_a_torch_dataloader_trains_a_run_that_resumes_only_with_its_data(tmp_path):
    from torch.utils.data import DataLoader, TensorDataset
    images = torch.from_numpy(np.stack(random_images(30, size=24))).permute(0, 3, 1, 2).float() / 255
    loader = DataLoader(TensorDataset(images, torch.zeros(30)), batch_size=8, shuffle=True)
    cfg = _cfg(["natural-64/train"], 4, batch_size=10, checkpoint_every=2)
    result = Trainer(cfg, tmp_path / "run", progress=False, data=loader).run()
    assert result.step == 4 and result.images_seen == 40
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["config"]["data"]["train"] == ["python:DataLoader"] and run["data"] == []
    epochs = [json.loads(line).get("epoch") for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert epochs[-1] == 1                     # 40 images of a 30-image loader: into its second pass
    more = C.apply_overrides(C.load_file(tmp_path / "run" / "config.json"), ["train.steps=6"])  # as --resume reads it
    with pytest.raises(CatneuronError, match="was trained on data given in Python .*resume it there"):
        Trainer(more, tmp_path / "run", resume=True, progress=False).run()
    assert Trainer(more, tmp_path / "run", resume=True, progress=False, data=loader).run().step == 6


def test_a_training_that_fails_before_writing_leaves_no_run_directory(tmp_path):
    with pytest.raises(Exception, match="no such file or folder"):
        Trainer(_cfg([str(tmp_path / "missing")], 2), tmp_path / "runs" / "new", progress=False).run()
    assert not (tmp_path / "runs" / "new").exists()
    (tmp_path / "kept").mkdir()                          # a folder the user made stays
    with pytest.raises(Exception, match="no such file or folder"):
        Trainer(_cfg([str(tmp_path / "missing")], 2), tmp_path / "kept", progress=False).run()
    assert (tmp_path / "kept").is_dir()
