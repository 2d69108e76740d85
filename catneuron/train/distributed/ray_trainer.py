"""`catneuron train --distributed ray`: Downpour SGD on Ray.

    driver ──run(k steps)──▶ replica actors (R)  ──pull / push──▶ parameter-shard actors (S)

The driver hands each replica chunks of steps and gathers their statistics; replicas fetch
parameters from every shard every P steps and push their accumulated gradients every G steps,
in parallel over the shards and without waiting for each other; shards apply Adagrad as pushes
arrive. A replica whose process dies is restarted by Ray (`max_restarts`), given back its data
position, and rejoins; the others never wait for it. The driver checkpoints the shards (values,
Adagrad state, versions) and the replicas' data positions every `train.checkpoint_every` steps in
the run directory layout of single-process training, so `--resume` after killing the whole job
loses at most one interval. Runs on a local Ray by default or on a cluster with `address`.
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
from tqdm import tqdm

from catneuron.config import Config, load_file, validate
from catneuron.errors import CatneuronError
from catneuron.nn.autoencoder import DeepSparseAutoencoder
from catneuron.provenance import code_version
from catneuron.train import checkpoint, rundir
from catneuron.train.distributed.params import gather, partition, scatter
from catneuron.train.distributed.partition import ray_workers
from catneuron.train.distributed.replica import Replica, replica_sources
from catneuron.train.distributed.server import ParameterShard, normalized_runs
from catneuron.files import read_json, write_json
from catneuron.train.trainer import TrainResult, _truncate_metrics, _weights_metadata

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

    def __init__(self, shard_handles, *args, partitions: int = 1, gpus: "GpuPlacement | None" = None, **kwargs):
        self.shards = RayShards(shard_handles)
        gpus = gpus or GpuPlacement()
        # Band workers ask for no CPU of their own: they compute while the replica waits on them.
        workers = ray_workers(partitions, cpus_each=0, gpus_each=gpus.band) if partitions > 1 else None
        self.replica = Replica(*args, partitions=partitions, band_workers=workers,
                               device="cuda" if gpus.replica else "cpu", **kwargs)

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
        self.run_dir, self.resume, self.progress = Path(run_dir), resume, progress
        self.ckpt_dir = self.run_dir / "checkpoints"
        if cfg.train.schedule != "simultaneous":
            raise CatneuronError(f"train.schedule = {cfg.train.schedule}: the distributed trainer trains every "
                                 f"stage at every step (simultaneous)")

    def run(self) -> TrainResult:
        with rundir.locked(self.run_dir):
            rundir.refuse_existing(self.run_dir, self.resume)
            if self.resume:
                self._check_resume()
            checkpoint.remove_partial(self.ckpt_dir)
            return self._run()

    def _check_resume(self) -> None:
        """The saved shards and replica streams must fit this layout; checked before anything is written."""
        saved_cfg, layout = self.run_dir / "config.json", self.run_dir / "distributed.json"
        if not saved_cfg.exists():
            return
        saved = read_json(layout, "move it aside and give --ps-shards and --replicas as the run was started") \
            if layout.exists() else {}
        extra = {f"distributed.{key}": (saved.get(key), getattr(self.s, key))
                 for key in ("shards", "replicas") if key in saved}
        rundir.check_resume(self.run_dir, load_file(saved_cfg).to_dict(), self.cfg.to_dict(), extra)

    def _run(self) -> TrainResult:
        import ray
        cfg, s = self.cfg, self.s
        for r in range(s.replicas):        # a clear error here rather than replicas dying at start
            replica_sources(cfg, r, s.replicas)
        connect(s.address, s.object_store_mb)

        torch.manual_seed(cfg.train.seed)
        model = DeepSparseAutoencoder(cfg.model)
        specs = partition(model, s.shards, cfg.model.norm_constraint)
        step, images, streams, shard_states = 0, 0, [None] * s.replicas, None
        restored = checkpoint.load_latest(self.ckpt_dir, model, None, "cpu") if self.resume else None
        if restored is not None:
            _, state = restored
            step, images = state["step"], state["images_seen"]
            streams, shard_states = state["replica_streams"], state["shards"]
            log.info("resuming %s at step %d", self.run_dir, step)
        _truncate_metrics(self.run_dir / "metrics.jsonl", step)
        write_json(self.run_dir / "config.json", cfg.to_dict())
        write_json(self.run_dir / "distributed.json", {**dataclasses.asdict(s), "code_version": code_version(),
                                                        "shard_sizes": [spec.size for spec in specs]})

        shard_actor = ray.remote(num_cpus=0)(ParameterShard)
        initial = [gather(model, spec) for spec in specs]

        def start_shard(k: int):
            """Shard k, from the newest saved state when there is one, else from the start."""
            handle = shard_actor.remote(initial[k], normalized_runs(specs[k]), cfg.train)
            if shard_states is not None:
                ray.get(handle.load_state_dict.remote(shard_states[k]))
            return handle

        shards = [start_shard(k) for k in range(len(specs))]
        gpus = gpu_placement(ray.cluster_resources().get("GPU", 0), cfg.train.device, s.replicas, s.partitions)
        if gpus.replica or gpus.band:
            log.info("GPUs: %s per %s", gpus.replica or gpus.band, "replica" if gpus.replica else "band worker")
        replica_actor = ray.remote(num_cpus=s.threads, num_gpus=gpus.replica, max_restarts=s.max_restarts)(ReplicaActor)
        replicas = [replica_actor.remote(shards, cfg, r, s.replicas, specs, s.threads, s.fetch_every, s.push_every,
                                         streams[r], partitions=s.partitions, gpus=gpus) for r in range(s.replicas)]
        meta = _weights_metadata(cfg)

        def save():
            nonlocal shard_states
            states = ray.get([h.state_dict.remote() for h in shards])
            shard_states = states
            for k, spec in enumerate(specs):
                scatter(model, spec, states[k]["params"])
            checkpoint.save(self.ckpt_dir, step, model, _NoOptimizer(),
                            {"images_seen": images, "replica_streams": streams, "shards": states,
                             "distributed": dataclasses.asdict(s)}, meta)

        total = cfg.train.steps
        restarts, shard_restarts = [0] * s.replicas, [0] * len(shards)
        replaced: set[str] = set()         # actor ids of the shards restarted so far
        in_flight: dict = {}
        bar = tqdm(total=total, initial=step, unit="step", desc=f"train {cfg.preset} x{s.replicas} replicas",
                   disable=not self.progress, dynamic_ncols=True)
        start, next_ckpt = time.perf_counter(), (step // cfg.train.checkpoint_every + 1) * cfg.train.checkpoint_every
        scheduled = step

        def submit(r):
            nonlocal scheduled
            if scheduled >= total or (r > 0 and step < s.warm_start):
                return
            n = min(s.chunk, total - scheduled)
            scheduled += n
            in_flight[replicas[r].run.remote(n)] = (r, n)

        for r in range(s.replicas):
            submit(r)
        with open(self.run_dir / "metrics.jsonl", "a") as metrics:
            while in_flight:
                ready, _ = ray.wait(list(in_flight), num_returns=1)
                r, n = in_flight.pop(ready[0])
                try:
                    stats = ray.get(ready[0])
                except ray.exceptions.RayTaskError as err:
                    # Raised inside a live replica: its own error, or an actor it called died.
                    scheduled -= n
                    if not isinstance(err.cause, ray.exceptions.RayActorError):
                        raise CatneuronError(f"replica {r}: {str(err.cause).strip().splitlines()[0]}") from None
                    dead = _dead(shards)
                    for k in dead:
                        shard_restarts[k] += 1
                        if shard_restarts[k] > s.max_restarts:
                            raise CatneuronError(f"parameter-server shard {k} died {shard_restarts[k]} times; giving "
                                                 f"up (continue from the last checkpoint with --resume)") from None
                        log.warning("parameter-server shard %d died; restarting it from the last checkpoint's state "
                                    "(restart %d of %d)", k, shard_restarts[k], s.max_restarts)
                        replaced.add(shards[k]._actor_id.hex())
                        shards[k] = start_shard(k)
                        for replica in replicas:       # queued before the replica's next chunk
                            replica.replace_shard.remote(k, shards[k])
                        self._log(metrics, {"step": step, "images": images, "event": "parameter shard restarted",
                                            "shard": k, "restarts": shard_restarts[k]})
                    if not dead and err.cause.actor_id not in replaced:
                        # Neither a shard nor (already) replaced: one of the replica's band workers died.
                        restarts[r] += 1
                        if restarts[r] > s.max_restarts:
                            raise CatneuronError(f"replica {r} lost a band worker {restarts[r]} times; giving up") \
                                from None
                        ray.kill(replicas[r], no_restart=False)      # restarted with new band workers
                        if streams[r] is not None:
                            _call_when_restarted(replicas[r].set_stream, streams[r])
                    submit(r)
                    continue
                except ray.exceptions.RayActorError as err:
                    restarts[r] += 1
                    scheduled -= n
                    log.warning("replica %d died (%s); restart %d of %d", r, type(err).__name__, restarts[r],
                                s.max_restarts)
                    if restarts[r] > s.max_restarts:
                        raise CatneuronError(f"replica {r} died {restarts[r]} times; giving up") from None
                    if streams[r] is not None:
                        _call_when_restarted(replicas[r].set_stream, streams[r])
                    self._log(metrics, {"step": step, "images": images, "event": "replica restarted", "replica": r,
                                        "restarts": restarts[r]})
                    submit(r)
                    continue
                step += stats["steps"]
                images += stats["images"]
                streams[r] = stats["stream"]
                elapsed = time.perf_counter() - start
                row = {"step": step, "images": images, "elapsed": round(elapsed, 3), "replica": r,
                       "loss": float(np.mean(stats["losses"])),
                       "images_per_s": round(images / max(elapsed, 1e-9), 2) if step else 0.0,
                       "staleness_mean": float(np.mean(stats["staleness"])) if stats["staleness"] else 0.0,
                       "staleness_max": int(max(stats["staleness"])) if stats["staleness"] else 0,
                       "staleness": stats["staleness"], "pulls": stats["pulls"], "pushes": stats["pushes"],
                       "compute_s": round(stats["compute_s"], 4), "pull_s": round(stats["pull_s"], 4),
                       "push_s": round(stats["push_s"], 4), "restarts": sum(restarts), "pid": stats["pid"]}
                for k in range(len(cfg.model.stages)):
                    row[f"stage{k + 1}/reconstruction"] = float(np.mean([x["reconstruction"][k]
                                                                         for x in stats["stage_losses"]]))
                    row[f"stage{k + 1}/sparsity"] = float(np.mean([x["sparsity"][k] for x in stats["stage_losses"]]))
                self._log(metrics, row)
                bar.update(stats["steps"])
                bar.set_postfix(loss=f"{row['loss']:.4g}", stale=f"{row['staleness_mean']:.1f}")
                if step >= next_ckpt and step < total:
                    save()
                    next_ckpt += cfg.train.checkpoint_every
                submit(r)
                if step >= s.warm_start:
                    for other in range(s.replicas):
                        if other != r and not any(v[0] == other for v in in_flight.values()):
                            submit(other)
        bar.close()
        save()
        checkpoint.save_weights(model, self.run_dir / "model.safetensors", {**meta, "step": str(step)})
        counts = ray.get([h.counts.remote() for h in shards])
        write_json(self.run_dir / "distributed.json", {**dataclasses.asdict(s), "code_version": code_version(),
                                                        "shard_sizes": [spec.size for spec in specs],
                                                        "shard_counts": counts, "restarts": restarts,
                                                        "shard_restarts": shard_restarts})
        for actor in replicas + shards:
            ray.kill(actor)
        return TrainResult(self.run_dir, step, images, float("nan"), False)

    @staticmethod
    def _log(f, row: dict) -> None:
        f.write(json.dumps(row) + "\n")
        f.flush()


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
