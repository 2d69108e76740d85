"""Single-process training against Downpour SGD on a local Ray, in one run on one machine.

    python bench/distributed.py [CORPUS] [--steps 120] [--preset small] [--out /tmp/bench-distributed]

Runs, one after the other on the same corpus and seed: single-process training (all cores), then
2 replicas x 1 thread with P = G = 1 and with P = G = 5 (2 parameter-server shards). Prints
steady-state images/s (the first quarter of each run is warm-up and excluded) and its ratio to
single-process, the loss over the last quarter of images relative to single-process, the time each
replica spent computing vs pulling vs pushing, and the staleness distribution. Last, a projection
for the `paper` preset from these measurements (see docs/distributed.md).
"""
import argparse
import collections
import json
import shutil
import statistics
from pathlib import Path

from catneuron import config as C
from catneuron.nn.accounting import count
from catneuron.train.distributed.ray_trainer import DistributedSettings, DistributedTrainer, connect
from catneuron.train.trainer import Trainer


def rows(run: Path) -> list[dict]:
    return [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in r]


def tail_loss(rs: list[dict]) -> float:
    last = rs[-1]["images"]
    return statistics.mean(r["loss"] for r in rs if r["images"] >= 0.75 * last)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", nargs="?", default="corpora/default")
    ap.add_argument("--preset", default="small")
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--out", default="/tmp/bench-distributed")
    args = ap.parse_args()
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    cfg = C.preset(args.preset)
    cfg.data.train = [args.corpus]
    cfg.train.steps, cfg.train.log_every, cfg.train.checkpoint_every = args.steps, 5, 10 * args.steps

    single = rows(Trainer(cfg, out / "single", progress=False).run().run_dir)
    rates = [r["images_per_s"] for r in single if r["images"] > 0.25 * single[-1]["images"]]
    base_rate, base_loss = statistics.median(rates), tail_loss(single)
    print(f"single process ({args.preset}, {args.steps} steps of {cfg.train.batch_size}): "
          f"{base_rate:.1f} images/s, loss over the last quarter {base_loss:.4g}")

    connect(None)
    report = {"single": {"images_per_s": base_rate, "tail_loss": base_loss}}
    for every in (1, 5):
        name = f"ray-2x1-P{every}G{every}"
        settings = DistributedSettings(replicas=2, shards=2, fetch_every=every, push_every=every, threads=1,
                                       chunk=every * 2)
        DistributedTrainer(cfg, out / name, settings, progress=False).run()
        rs = rows(out / name)
        steady = [r for r in rs if r["images"] > 0.25 * rs[-1]["images"]]
        rate = (steady[-1]["images"] - steady[0]["images"]) / (steady[-1]["elapsed"] - steady[0]["elapsed"])
        compute, pull, push = (sum(r[k] for r in rs) for k in ("compute_s", "pull_s", "push_s"))
        busy = compute + pull + push
        stale = collections.Counter(s for r in rs for s in r["staleness"])
        loss = tail_loss(rs)
        report[name] = {"images_per_s": rate, "ratio": rate / base_rate, "tail_loss": loss,
                        "loss_ratio": loss / base_loss, "compute": compute / busy, "pull": pull / busy,
                        "push": push / busy, "staleness": dict(sorted(stale.items()))}
        print(f"{name}: {rate:.1f} images/s = {rate / base_rate:.2f}x single; loss over the last quarter "
              f"{loss:.4g} = {loss / base_loss:.3f}x single; replica time: compute {100 * compute / busy:.0f} %, "
              f"pull {100 * pull / busy:.0f} %, push {100 * push / busy:.0f} %; staleness {dict(sorted(stale.items()))}")
    report["projection"] = project(cfg, base_rate)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    print(f"report: {out / 'report.json'}")


def project(cfg: C.Config, single_rate: float, cores: int = 2, machine_cores: int = 16,
            nic_gbytes: float = 1.25, step_images: int = 100) -> dict:
    """The paper preset on DistBelief-like machines, from this machine's measured speeds.

    Compute: the `paper` preset's FLOPs per training image at the GFLOP/s per core that `small`
    training reached here. Traffic: a full pull and a full push of the parameters (float32) per
    P = G steps, spread over S shards, each behind a `nic_gbytes` GB/s network link.
    """
    small, paper = count(cfg.model), count(C.preset("paper").model)
    per_core = small.train_flops() * single_rate / cores                   # FLOP/s per core, measured
    step_flop = paper.train_flops() * step_images
    param_bytes = 4 * paper.parameters
    rows = []
    for machines in (1, 16, 64, 169):
        step_s = step_flop / (per_core * machines * machine_cores)
        for every in (1, 5):
            traffic = 2 * param_bytes / every                           # bytes per step per replica
            per_replica_gbs = traffic / step_s / 1e9
            rows.append({"machines_per_replica": machines, "P=G": every, "step_s": round(step_s, 3),
                         "traffic_gb_per_step": round(traffic / 1e9, 2),
                         "shards_per_replica": max(1, round(per_replica_gbs / nic_gbytes + 0.5))})
    print(f"paper preset: {paper.parameters:,} parameters ({param_bytes / 1e9:.1f} GB), "
          f"{step_flop / 1e12:.2f} TFLOP per step of {step_images}; measured {per_core / 1e9:.1f} GFLOP/s per core")
    for r in rows:
        print(f"  {r['machines_per_replica']:>4} machines x {machine_cores} cores per replica, P=G={r['P=G']}: "
              f"{r['step_s']:.2f} s per step, {r['traffic_gb_per_step']} GB to/from the servers per step -> "
              f"{r['shards_per_replica']} shard links per replica")
    return {"gflops_per_core": per_core / 1e9, "paper_parameters": paper.parameters,
            "paper_step_tflop": step_flop / 1e12, "rows": rows}


if __name__ == "__main__":
    main()
