"""Is a distributed run's loss gap asynchrony or a bug? The `small` recipe on replicas and
parameter-server shards in one process (no Ray), so the staleness is set, not left to timing:

    python bench/staleness.py DATA [--steps 120] [--set train.lr=0.0005 ...]

prints the mean loss of every 10 steps for one replica (the single-process update rule), two
replicas taking turns (each fetches after the other's push: staleness 0), and two replicas that
both fetch, then both push (staleness 1, what concurrent replicas on Ray do).
"""
import argparse

import numpy as np
import torch

from catneuron import config as C
from catneuron.nn.autoencoder import DeepSparseAutoencoder
from catneuron.train.distributed.params import gather, partition
from catneuron.train.distributed.replica import ChunkStats, Replica
from catneuron.train.distributed.server import InProcessShards, ParameterShard, normalized_runs
from catneuron.train.monitor import LearningMonitor


def losses(cfg: C.Config, replicas: int, stale: bool, steps: int) -> list[float]:
    cfg.distributed.replicas = replicas
    torch.manual_seed(cfg.train.seed)
    model = DeepSparseAutoencoder(cfg.model)
    specs = partition(model, 2, cfg.model.norm_constraint)
    shards = InProcessShards([ParameterShard(gather(model, s), normalized_runs(s), cfg.train) for s in specs])
    reps = [Replica(cfg, r, specs, LearningMonitor.of(model).initial) for r in range(replicas)]
    stats = ChunkStats(0)
    for rep in reps:
        rep.batches = rep.stream.batches(cfg.train.batch_size)
    for _ in range(steps // replicas):
        if stale:                      # all fetch and compute, then all push
            for rep in reps:
                rep._fetch(shards, stats)
                rep._compute(stats)
            for rep in reps:
                rep._push(shards, stats)
        else:                          # one after the other
            for rep in reps:
                rep._fetch(shards, stats)
                rep._compute(stats)
                rep._push(shards, stats)
    return stats.losses


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    args = ap.parse_args()
    cfg = C.apply_overrides(C.preset("small"), [f"data.train={args.data}", "distributed.threads=2", *args.overrides])
    for label, replicas, stale in (("1 replica", 1, False), ("2 replicas, taking turns", 2, False),
                                   ("2 replicas, staleness 1", 2, True)):
        loss = losses(cfg, replicas, stale, args.steps)
        means = [round(float(np.mean(loss[k - 10:k]))) for k in range(10, len(loss) + 1, 10)]
        print(f"{label}: mean loss per 10 steps {means}", flush=True)


if __name__ == "__main__":
    main()
