"""Downpour SGD on a local Ray (loopback only): one Ray session for all these tests."""
import json
import os
import signal
import threading
import time

import pytest

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow

from catneuron import config as C  # noqa: E402
from catneuron.config import DistributedConfig  # noqa: E402
from catneuron.errors import CatneuronError  # noqa: E402
from catneuron.train.distributed.ray_trainer import DistributedTrainer  # noqa: E402
from tests.data.helpers import random_images, write_shards  # noqa: E402


@pytest.fixture
def data(tmp_path):
    write_shards(tmp_path / "data" / "set", random_images(200, size=24), per_shard=25)
    return str(tmp_path / "data")


def _cfg(data, steps, distributed):
    cfg = C.preset("tiny")
    cfg.distributed = distributed
    cfg.data.train = [data]
    cfg.train.steps = steps
    cfg.train.checkpoint_every = 20
    return cfg


def _rows(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_async_training_lowers_the_objective_and_honours_p_and_g(local_ray, data, tmp_path):
    settings = DistributedConfig(replicas=2, shards=3, fetch_every=2, push_every=4, chunk=8)
    result = DistributedTrainer(_cfg(data, 64, settings), tmp_path / "run", progress=False).run()
    rows = [r for r in _rows(tmp_path / "run") if "loss" in r]
    assert result.step == 64 and {r["replica"] for r in rows} == {0, 1}
    assert rows[-1]["loss"] < 0.8 * rows[0]["loss"]
    assert sum(r["pulls"] for r in rows) == 64 // 2 and sum(r["pushes"] for r in rows) == 64 // 4
    info = json.loads((tmp_path / "run" / "distributed.json").read_text())
    assert [c["pushes"] for c in info["shard_counts"]] == [16, 16, 16]
    assert all(s >= 0 for r in rows for s in r["staleness"])
    assert (tmp_path / "run" / "model.safetensors").exists()
    # logged as the single-process trainer logs: the initialization's row, then learning per chunk
    first = _rows(tmp_path / "run")[0]
    assert first["step"] == 0 and first["stage1/from_init"] == 0
    assert all(0 < r["stage1/from_init"] and "stage2/kurtosis" in r for r in rows)
    assert rows[-1]["stage1/from_init"] > rows[0]["stage1/from_init"]
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert [s["start_step"] for s in record["sessions"]] == [0]
    assert record["data"][0]["file_count"] == 8 and record["sessions"][0]["skipped_count"] == 0


def _run_and_kill(trainer, run, pick_pid) -> tuple:
    """Run `trainer`; meanwhile, once pick_pid(metrics rows) names a process, SIGKILL it.
    Returns (the result, the killed pid or None)."""
    killed = []

    def kill():
        deadline = time.time() + 120
        while time.time() < deadline:
            path = run / "metrics.jsonl"
            pid = pick_pid([json.loads(line) for line in path.read_text().splitlines()] if path.exists() else [])
            if pid:
                killed.append(pid)
                os.kill(pid, signal.SIGKILL)
                return
            time.sleep(0.2)

    thread = threading.Thread(target=kill)
    thread.start()
    result = trainer.run()
    thread.join()
    return result, (killed or [None])[0]


def test_a_killed_replica_is_restarted_and_training_goes_on(local_ray, data, tmp_path):
    settings = DistributedConfig(replicas=2, shards=2, chunk=4, max_restarts=2)
    trainer = DistributedTrainer(_cfg(data, 120, settings), tmp_path / "run", progress=False)
    # the replica process that reported last
    result, killed = _run_and_kill(trainer, tmp_path / "run", lambda rows: len(rows) >= 4 and rows[-1]["pid"])
    assert killed, "no replica was killed"
    rows = _rows(tmp_path / "run")
    restarted = [r for r in rows if r.get("event") == "replica restarted"]
    assert result.step == 120 and restarted
    after = [r for r in rows[rows.index(restarted[0]):] if "loss" in r]
    assert {r["replica"] for r in after} == {0, 1}                 # both train after the restart
    assert killed not in {r["pid"] for r in after}                 # ... one of them in a new process


def _shard_pids():
    pids = []
    for proc in os.listdir("/proc"):
        try:
            with open(f"/proc/{proc}/cmdline", "rb") as f:
                if b"ray::ParameterShard" in f.read():
                    pids.append(int(proc))
        except (OSError, ValueError):
            pass
    return pids


def test_a_killed_parameter_shard_is_restarted_from_its_checkpoint(local_ray, data, tmp_path):
    """The audit's case: a dead shard used to be blamed on the live replicas ("restart 4 of 3")."""
    settings = DistributedConfig(replicas=2, shards=2, chunk=4, max_restarts=2)
    trainer = DistributedTrainer(_cfg(data, 120, settings), tmp_path / "run", progress=False)
    def after_the_first_checkpoint(rows):
        return any(r.get("step", 0) >= 28 for r in rows) and min(_shard_pids(), default=None)

    result, killed = _run_and_kill(trainer, tmp_path / "run", after_the_first_checkpoint)
    assert killed, "no shard was killed"
    rows = _rows(tmp_path / "run")
    events = [r["event"] for r in rows if "event" in r]
    assert result.step == 120 and events.count("parameter shard restarted") == 1
    assert "replica restarted" not in events
    after = [r for r in rows[[r.get("event") for r in rows].index("parameter shard restarted"):] if "loss" in r]
    assert {r["replica"] for r in after} == {0, 1}
    info = json.loads((tmp_path / "run" / "distributed.json").read_text())
    assert sorted(info["shard_restarts"]) == [0, 1] and info["restarts"] == [0, 0]


def test_a_local_cluster_advertises_loopback(monkeypatch):
    from catneuron.train.distributed import ray_trainer
    calls = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: calls.append(kw))
    ray_trainer.connect(None)
    assert calls[-1]["_node_ip_address"] == "127.0.0.1" and "address" not in calls[-1]


def test_model_parallel_replicas_on_ray_band_workers(local_ray, data, tmp_path):
    settings = DistributedConfig(replicas=1, shards=2, partitions=2, chunk=10)
    result = DistributedTrainer(_cfg(data, 30, settings), tmp_path / "run", progress=False).run()
    rows = [r for r in _rows(tmp_path / "run") if "loss" in r]
    assert result.step == 30 and rows[-1]["loss"] < rows[0]["loss"]


def test_warm_start_trains_one_replica_alone_first(local_ray, data, tmp_path):
    settings = DistributedConfig(replicas=2, shards=2, chunk=5, warm_start=20)
    DistributedTrainer(_cfg(data, 50, settings), tmp_path / "run", progress=False).run()
    rows = [r for r in _rows(tmp_path / "run") if "loss" in r]
    assert {r["replica"] for r in rows if r["step"] <= 20} == {0}
    assert {r["replica"] for r in rows if r["step"] > 20} == {0, 1}


def test_resume_after_the_whole_job_is_killed(local_ray, data, tmp_path):
    settings = DistributedConfig(replicas=2, shards=2, chunk=10)
    DistributedTrainer(_cfg(data, 40, settings), tmp_path / "run", progress=False).run()
    result = DistributedTrainer(_cfg(data, 60, settings), tmp_path / "run", resume=True, progress=False).run()
    steps = [r["step"] for r in _rows(tmp_path / "run") if "loss" in r]
    assert result.step == 60 and steps[-1] == 60 and max(steps[:-1]) < 60
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert [s["start_step"] for s in record["sessions"]] == [0, 40]
    # the layout is a setting like any other: config.json keeps it, a resume may not change it
    saved = C.load_file(tmp_path / "run" / "config.json")
    assert saved.distributed == settings
    with pytest.raises(CatneuronError, match=r"--resume: distributed.shards is 3 but .* was trained with 2"):
        DistributedTrainer(_cfg(data, 80, DistributedConfig(replicas=2, shards=3, chunk=10)), tmp_path / "run",
                           resume=True, progress=False).run()


def test_unreachable_cluster_is_one_clear_error(data, tmp_path):
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, "-m", "catneuron.cli", "train", "--preset", "tiny", "--data", data,
                           "--out", str(tmp_path / "run"), "--distributed", "ray", "--address", "127.0.0.1:1"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("catneuron: error: Ray: no cluster reachable at 127.0.0.1:1")
