"""The effect of reduced precision (model.precision) on training: the same network, start and batches.

    python bench/precision.py [--preset small] [--steps 60] [--batch 50] [--device cpu]
                              [--precisions fp32,bf16]

Trains one network per precision from the same seed on the same batches (drawn at random from the
decoded natural-64/train set), all on the batched kernel so that only the multiplies' precision
differs, and prints per precision: the objective over the last 10 steps and its relative
difference from fp32's, the relative distance of the final weights from fp32's, stage-1 W1's
structure score (nn.structure; white noise 0.23) and the median seconds per step. Appends the
result to experiments/precision.jsonl. On a GPU add tf32 to --precisions.
"""
import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from catneuron import config as C
from catneuron.data.preprocess import to_tensor
from catneuron.nn.autoencoder import DeepSparseAutoencoder
from catneuron.nn.structure import spectral_concentration
from catneuron.provenance import environment
from catneuron.train.optim import make_optimizer
from catneuron.train.trainer import train_step

from stage1_levers import load


def train(cfg: C.Config, images: np.ndarray, picks: np.ndarray, device: torch.device) -> dict:
    torch.manual_seed(cfg.train.seed)
    model = DeepSparseAutoencoder(cfg.model, device=device)
    opt = make_optimizer(cfg.train, model.parameters())
    losses, times = [], []
    for batch in picks:
        x = to_tensor(images[batch], cfg.data.preprocess, device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        losses.append(train_step(model, opt, cfg, x).total.item())
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return {"model": model, "losses": losses, "seconds_per_step": statistics.median(times)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="small")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precisions", default="fp32,bf16")
    args = ap.parse_args()
    device = torch.device(args.device)
    base = C.preset(args.preset)
    base.model.backend = "batched"
    images = load("natural-64/train", base.model.input_size)
    picks = np.random.default_rng(0).integers(0, len(images), size=(args.steps, args.batch))
    runs = {}
    for precision in args.precisions.split(","):
        cfg = C.preset(args.preset)
        cfg.model.backend, cfg.model.precision = "batched", precision
        runs[precision] = train(C.validate(cfg), images, picks, device)
    ref = runs["fp32"]
    ref_weights = torch.cat([p.detach().flatten() for p in ref["model"].parameters()])
    rows = []
    for precision, r in runs.items():
        weights = torch.cat([p.detach().flatten() for p in r["model"].parameters()])
        last, ref_last = np.mean(r["losses"][-10:]), np.mean(ref["losses"][-10:])
        w1 = r["model"].stages[0].encoder.weight.detach().float().cpu()
        row = {"precision": precision, "objective_last10": float(last),
               "objective_vs_fp32": float((last - ref_last) / ref_last),
               "max_step_objective_vs_fp32": float(max(abs(a - b) / b for a, b in zip(r["losses"], ref["losses"]))),
               "weights_vs_fp32": float((weights - ref_weights).norm() / ref_weights.norm()),
               "w1_structure": float(spectral_concentration(w1).mean()),
               "seconds_per_step": r["seconds_per_step"]}
        rows.append(row)
        print(f"{precision:<6} objective (last 10 steps) {last:.5g} ({100 * row['objective_vs_fp32']:+.3f} % vs fp32, "
              f"largest step {100 * row['max_step_objective_vs_fp32']:.3f} %), weights {row['weights_vs_fp32']:.2e} "
              f"from fp32's, W1 structure {row['w1_structure']:.3f}, {row['seconds_per_step']:.2f} s/step")
    out = Path("experiments")
    out.mkdir(exist_ok=True)
    with open(out / "precision.jsonl", "a") as f:
        f.write(json.dumps({"args": vars(args), "rows": rows, "environment": environment()}) + "\n")


if __name__ == "__main__":
    main()
