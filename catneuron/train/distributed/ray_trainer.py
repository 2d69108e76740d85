"""`catneuron train --distributed ray`: Downpour SGD on Ray.

    driver ──run(k steps)──▶ replica actors (R)  ──pull / push──▶ parameter-shard actors (S)

The driver hands each replica chunks of steps and gathers their statistics; replicas fetch
parameters from every shard every P steps and push their accumulated gradients every G steps,
in parallel over the shards and without waiting for each other; each shard steps its slice with
the single-process trainer's optimizer (train/optim.py) as pushes arrive. A replica whose process
dies is restarted by Ray (`max_restarts`), given back its data position, and rejoins; the others
never wait for it. The driver checkpoints the shards (values, optimizer state, versions) and the
replicas' data positions every `train.checkpoint_every` steps in the run directory of
single-process training (catneuron/rundir.py: config, run.json sessions, metrics with the same
learning measures), so `--resume` after killing the whole job loses at most one interval. Runs on
a local Ray by default or on a cluster with `distributed.address`.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from catneuron.config import Config, validate
from catneuron.data.sources import resolve_all
from catneuron.errors import CatneuronError
from catneuron.nn.autoencoder import DeepSparseAutoencoder
from catneuron.progress import progress as progress_bar
from catneuron.provenance import code_version, environment
from catneuron.rundir import RunDir
from catneuron.train import checkpoint
from catneuron.train.distributed.params import gather, partition, scatter
from catneuron.train.distributed.partition import ray_workers
from catneuron.train.distributed.replica import Replica, replica_sources
from catneuron.train.distributed.server import ParameterShard, normalized_runs
from catneuron.files import read_json, write_json
from catneuron.train.monitor import LearningMonitor
from catneuron.train.trainer import TrainResult, weights_metadata

log = logging.getLogger(__name__)


@dataclass
class GpuPlacement:
    """GPU share of each replica actor and of each band worker (Ray's num_gpus)."""
    replica: float = 0.0
    band: float = 0.0


def gpu_placement(cluster_gpus: float, device: str, replicas: int, partitions: int) -> GpuPlacement:
    """Where the FLOPs go: without model parallelism the replicas compute, with it their band
    workers (the head then only pools and normalizes). The cluster's GPUs are shared evenly among
    those workers, at most one each; train.device = cpu keeps everything on CPUs."""
    if device == "cpu" or cluster_gpus <= 0:
        return GpuPlacement()
    workers = replicas * partitions
    share = min(1.0, cluster_gpus / workers)
    return GpuPlacement(band=share) if partitions > 1 else GpuPlacement(replica=share)


class RayShards:
    """The shards' actor handles, called in parallel (one remote call per shard)."""

    def __init__(self, handles):
        self.handles = handles

    def pull(self):
        import ray
        return ray.get([h.pull.remote() for h in self.handles])

    def push(self, grads, versions, steps):
        import ray
        return ray.get([h.push.remote(g, v, steps) for h, g, v in zip(self.handles, grads, versions)])


class ReplicaActor:
    """Replica + its view of the shards, as one Ray actor."""

    def __init__(self, shard_handles, cfg: Config, index: int, specs, initial, stream: dict | None,
                 gpus: GpuPlacement):
        self.shards = RayShards(shard_handles)
        partitions = cfg.distributed.partitions
        # Band workers ask for no CPU of their own: they compute while the replica waits on them.
        workers = ray_workers(partitions, cpus_each=0, gpus_each=gpus.band) if partitions > 1 else None
        self.replica = Replica(cfg, index, specs, initial, stream, band_workers=workers,
                               device="cuda" if gpus.replica else "cpu")

    def run(self, steps: int):
        return dataclasses.asdict(self.replica.run(self.shards, steps))

    def set_stream(self, state: dict) -> None:
        self.replica.set_stream(state)

    def replace_shard(self, index: int, handle) -> None:
        """Talk to a restarted parameter-server shard from now on."""
        self.shards.handles[index] = handle
        self.replica.restart_exchange()


def _check_reachable(address: str) -> None:
    """Fail fast: ray.init retries an address where nothing listens for minutes."""
    if address in ("auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=10).close()
    except (OSError, ValueError) as err:
        raise CatneuronError(f"Ray: no cluster reachable at {address} ({err})") from None


def connect(address: str | None, object_store_mb: int | None = None) -> None:
    """ray.init once per process; a clear error when no cluster answers at `address`."""
    import ray
    if ray.is_initialized():
        return
    if address:
        _check_reachable(address)
    kwargs = {"include_dashboard": False, "log_to_driver": False, "ignore_reinit_error": True}
    if address:
        kwargs["address"] = address
    else:
        # A cluster of this machine alone: advertise loopback, so that no other machine can join it
        # or be sent its tasks.
        kwargs["_node_ip_address"] = "127.0.0.1"
        if object_store_mb:
            kwargs["object_store_memory"] = object_store_mb * 1024 * 1024
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise CatneuronError(f"Ray: no cluster reachable at {address} ({str(err).splitlines()[0]})") from None


class DistributedTrainer:
    def __init__(self, cfg: Config, run_dir: str | Path, resume: bool = False, progress: bool = True):
        """The replicas, shards and the rest of the layout are cfg.distributed's."""
        self.cfg = validate(cfg)
        self.s = self.cfg.distributed
        self.rundir, self.resume, self.progress = RunDir(run_dir), resume, progress
        if cfg.train.schedule != "simultaneous":
            raise CatneuronError(f"train.schedule = {cfg.train.schedule}: the distributed trainer trains every "
                                 f"stage at every step (simultaneous)")

    def run(self) -> TrainResult:
        with self.rundir.locked():
            self.rundir.refuse_existing(self.resume)
            if self.resume:
                self._check_resume()
            checkpoint.remove_partial(self.rundir.checkpoints)
            for r in range(self.s.replicas):        # a clear error here rather than replicas dying at start
                replica_sources(self.cfg, r, self.s.replicas)
            connect(self.s.address, self.s.object_store_mb)
            return _Job(self.cfg, self.rundir, self.resume, self.progress).train()

    def _check_resume(self) -> None:
        """The saved shards and replica streams must fit this layout; checked before anything is written."""
        layout = self.rundir.distributed
        saved = read_json(layout, "move it aside and give --ps-shards and --replicas as the run was started") \
            if layout.exists() and self.rundir.config.exists() else {}
        extra = {f"distributed.{key}": (saved.get(key), getattr(self.s, key))
                 for key in ("shards", "replicas") if key in saved}
        self.rundir.check_resume(self.cfg.to_dict(), extra)


class _Job:
    """One training session on Ray: the shard and replica actors, the driver's loop that hands the
    replicas chunks of steps, logs what they report, checkpoints, and restarts what died."""

    def __init__(self, cfg: Config, rundir: RunDir, resume: bool, progress: bool):
        self.cfg, self.s, self.rundir, self.progress = cfg, cfg.distributed, rundir, progress
        torch.manual_seed(cfg.train.seed)
        self.model = DeepSparseAutoencoder(cfg.model)
        self.monitor = LearningMonitor.of(self.model)     # the seed fixes the initialization, resumed or not
        self.specs = partition(self.model, self.s.shards, cfg.model.norm_constraint)
        self.initial = [gather(self.model, spec) for spec in self.specs]
        self.step, self.images = 0, 0
        self.streams: list[dict | None] = [None] * self.s.replicas
        self.skipped: list[dict] = [{} for _ in range(self.s.replicas)]
        self.shard_states = None
        restored = checkpoint.load_latest(rundir.checkpoints, self.model, None, "cpu") if resume else None
        if restored is not None:
            _, state = restored
            self.step, self.images = state["step"], state["images_seen"]
            self.streams, self.shard_states = state["replica_streams"], state["shards"]
            log.info("resuming %s at step %d", rundir, self.step)
        self.scheduled = self.step             # steps handed to the replicas, finished or not
        self.restarts, self.shard_restarts = [0] * self.s.replicas, [0] * len(self.specs)
        self.replaced: set[str] = set()         # actor ids of the shards restarted so far
        self.in_flight: dict = {}               # chunk's object ref -> (replica, steps)
        self.meta = weights_metadata(cfg)

    def train(self) -> TrainResult:
        import ray
        cfg = self.cfg
        self.rundir.truncate_metrics(self.step)
        self.rundir.record_session(cfg.to_dict(), resolve_all(cfg.data.train, cfg.data.root),
                                   {**environment(), "start_step": self.step})
        self._write_layout()
        self.shards = [self._start_shard(k) for k in range(len(self.specs))]
        self.replicas = self._start_replicas()
        self.started, self.images_at_start = time.perf_counter(), self.images
        bar = progress_bar(total=cfg.train.steps, initial=self.step, unit="step", enabled=self.progress,
                           desc=f"train {cfg.preset} x{self.s.replicas} replicas")
        with open(self.rundir.metrics, "a") as self.metrics:
            if self.step == 0:      # the initialization's values, for every curve to start from
                self._log({"step": 0, "images": 0, **self.monitor.row(self.model)})
            self._loop(bar)
        bar.close()
        self._save()
        checkpoint.save_weights(self.model, self.rundir.weights, {**self.meta, "step": str(self.step)})
        self.rundir.record_skipped({k: v for d in self.skipped for k, v in d.items()})
        self._write_layout(shard_counts=ray.get([h.counts.remote() for h in self.shards]),
                           restarts=self.restarts, shard_restarts=self.shard_restarts)
        for actor in self.replicas + self.shards:
            ray.kill(actor)
        return TrainResult(self.rundir.path, self.step, self.images, float("nan"), False)

    def _write_layout(self, **counts) -> None:
        write_json(self.rundir.distributed, {**dataclasses.asdict(self.s), "code_version": code_version(),
                                             "shard_sizes": [spec.size for spec in self.specs], **counts})

    def _start_shard(self, k: int):
        """Shard k, from the newest saved state when there is one, else from the start."""
        import ray
        handle = ray.remote(num_cpus=0)(ParameterShard).remote(self.initial[k], normalized_runs(self.specs[k]),
                                                               self.cfg.train)
        if self.shard_states is not None:
            ray.get(handle.load_state_dict.remote(self.shard_states[k]))
        return handle

    def _start_replicas(self) -> list:
        import ray
        s = self.s
        gpus = gpu_placement(ray.cluster_resources().get("GPU", 0), self.cfg.train.device, s.replicas, s.partitions)
        if gpus.replica or gpus.band:
            log.info("GPUs: %s per %s", gpus.replica or gpus.band, "replica" if gpus.replica else "band worker")
        actor = ray.remote(num_cpus=s.threads, num_gpus=gpus.replica, max_restarts=s.max_restarts)(ReplicaActor)
        return [actor.remote(self.shards, self.cfg, r, self.specs, self.monitor.initial, self.streams[r], gpus)
                for r in range(s.replicas)]

    def _save(self) -> None:
        """A checkpoint of the shards' values and optimizer states, and of the replicas' data positions."""
        import ray
        self.shard_states = ray.get([h.state_dict.remote() for h in self.shards])
        for spec, state in zip(self.specs, self.shard_states):
            scatter(self.model, spec, state["params"])
        checkpoint.save(self.rundir.checkpoints, self.step, self.model, _NoOptimizer(),
                        {"images_seen": self.images, "replica_streams": self.streams, "shards": self.shard_states,
                         "distributed": dataclasses.asdict(self.s)}, self.meta)

    def _submit(self, r: int) -> None:
        """Give replica r its next chunk of steps, if any are left (and once the warm start is over)."""
        if self.scheduled >= self.cfg.train.steps or (r > 0 and self.step < self.s.warm_start):
            return
        n = min(self.s.chunk, self.cfg.train.steps - self.scheduled)
        self.scheduled += n
        self.in_flight[self.replicas[r].run.remote(n)] = (r, n)

    def _loop(self, bar) -> None:
        import ray
        every = self.cfg.train.checkpoint_every
        next_ckpt = (self.step // every + 1) * every
        for r in range(self.s.replicas):
            self._submit(r)
        while self.in_flight:
            ready, _ = ray.wait(list(self.in_flight), num_returns=1)
            r, n = self.in_flight.pop(ready[0])
            try:
                stats = ray.get(ready[0])
            except ray.exceptions.RayTaskError as err:
                # Raised inside a live replica: its own error, or an actor it called died.
                self.scheduled -= n
                if not isinstance(err.cause, ray.exceptions.RayActorError):
                    raise CatneuronError(f"replica {r}: {str(err.cause).strip().splitlines()[0]}") from None
                if not self._restart_dead_shards() and err.cause.actor_id not in self.replaced:
                    self._lost_band_worker(r)
                self._submit(r)
                continue
            except ray.exceptions.RayActorError as err:
                self.scheduled -= n
                self._replica_died(r, err)
                self._submit(r)
                continue
            self._record_chunk(r, stats, bar)
            if next_ckpt <= self.step < self.cfg.train.steps:
                self._save()
                next_ckpt += every
            self._submit(r)
            if self.step >= self.s.warm_start:
                busy = {v[0] for v in self.in_flight.values()}
                for other in range(self.s.replicas):
                    if other != r and other not in busy:
                        self._submit(other)

    def _record_chunk(self, r: int, stats: dict, bar) -> None:
        """A chunk came back: count it and log it as the single-process trainer logs a step."""
        self.step += stats["steps"]
        self.images += stats["images"]
        self.streams[r], self.skipped[r] = stats["stream"], stats["skipped"]
        staleness = stats["staleness"]
        elapsed = time.perf_counter() - self.started
        row = {"step": self.step, "images": self.images, "elapsed": round(elapsed, 3), "replica": r,
               "loss": float(np.mean(stats["losses"])),
               "images_per_s": round((self.images - self.images_at_start) / max(elapsed, 1e-9), 2),
               "staleness_mean": float(np.mean(staleness)) if staleness else 0.0,
               "staleness_max": int(max(staleness)) if staleness else 0,
               "staleness": staleness, "pulls": stats["pulls"], "pushes": stats["pushes"],
               "compute_s": round(stats["compute_s"], 4), "pull_s": round(stats["pull_s"], 4),
               "push_s": round(stats["push_s"], 4), "restarts": sum(self.restarts), "pid": stats["pid"]}
        for k in range(len(self.cfg.model.stages)):
            row[f"stage{k + 1}/reconstruction"] = float(np.mean([x["reconstruction"][k]
                                                                 for x in stats["stage_losses"]]))
            row[f"stage{k + 1}/sparsity"] = float(np.mean([x["sparsity"][k] for x in stats["stage_losses"]]))
        row.update(stats["learning"])
        self._log(row)
        bar.update(stats["steps"])
        bar.set_postfix(loss=f"{row['loss']:.4g}", stale=f"{row['staleness_mean']:.1f}")

    def _restart_dead_shards(self) -> list[int]:
        """Restart, from the last checkpoint's state, the parameter-server shards that died; their indices."""
        dead = _dead(self.shards)
        for k in dead:
            self.shard_restarts[k] += 1
            if self.shard_restarts[k] > self.s.max_restarts:
                raise CatneuronError(f"parameter-server shard {k} died {self.shard_restarts[k]} times; giving up "
                                     f"(continue from the last checkpoint with --resume)") from None
            log.warning("parameter-server shard %d died; restarting it from the last checkpoint's state "
                        "(restart %d of %d)", k, self.shard_restarts[k], self.s.max_restarts)
            self.replaced.add(self.shards[k]._actor_id.hex())
            self.shards[k] = self._start_shard(k)
            for replica in self.replicas:       # queued before the replica's next chunk
                replica.replace_shard.remote(k, self.shards[k])
            self._log({"step": self.step, "images": self.images, "event": "parameter shard restarted", "shard": k,
                       "restarts": self.shard_restarts[k]})
        return dead

    def _lost_band_worker(self, r: int) -> None:
        """Neither a shard died nor was one replaced: one of replica r's band workers did. Ray
        restarts the replica with new band workers; it continues from its data position."""
        import ray
        self.restarts[r] += 1
        if self.restarts[r] > self.s.max_restarts:
            raise CatneuronError(f"replica {r} lost a band worker {self.restarts[r]} times; giving up") from None
        ray.kill(self.replicas[r], no_restart=False)
        if self.streams[r] is not None:
            _call_when_restarted(self.replicas[r].set_stream, self.streams[r])

    def _replica_died(self, r: int, err: Exception) -> None:
        self.restarts[r] += 1
        log.warning("replica %d died (%s); restart %d of %d", r, type(err).__name__, self.restarts[r],
                    self.s.max_restarts)
        if self.restarts[r] > self.s.max_restarts:
            raise CatneuronError(f"replica {r} died {self.restarts[r]} times; giving up") from None
        if self.streams[r] is not None:
            _call_when_restarted(self.replicas[r].set_stream, self.streams[r])
        self._log({"step": self.step, "images": self.images, "event": "replica restarted", "replica": r,
                   "restarts": self.restarts[r]})

    def _log(self, row: dict) -> None:
        self.metrics.write(json.dumps(row) + "\n")
        self.metrics.flush()


def _dead(handles, timeout: float = 30.0) -> list[int]:
    """Indices of the actors that no longer answer."""
    import ray
    dead = []
    for k, h in enumerate(handles):
        try:
            ray.get(h.counts.remote(), timeout=timeout)
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
            dead.append(k)
    return dead


def _call_when_restarted(method, *args, timeout: float = 300.0):
    """Call an actor method, waiting while Ray restarts the actor ("temporarily unavailable")."""
    import ray
    deadline = time.monotonic() + timeout
    while True:
        try:
            return ray.get(method.remote(*args))
        except ray.exceptions.ActorUnavailableError:
            if time.monotonic() > deadline:
                raise CatneuronError(f"a replica did not come back within {timeout:.0f} s of its restart") from None
            time.sleep(0.5)


class _NoOptimizer:
    """checkpoint.save wants an optimizer; in Downpour SGD the optimizer state lives on the shards."""

    def state_dict(self) -> dict:
        return {}
