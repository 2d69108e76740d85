"""Where a training step's time goes: torch.profiler over whole steps, grouped by part, per precision.

    python bench/step_profile.py [--preset small] [--steps 3] [--rounds 5] [--precisions fp32 bf16]

Steps on one random batch (no data path). Each round profiles `steps` steps of each precision in
turn; each part's time per step (self CPU time of its operators) is the median over the rounds,
so that the machine's drift hits every precision alike.
"""
import argparse
import statistics

from catneuron.runtime import keep_freed_memory, yield_idle_cores

yield_idle_cores()  # as the command line does, before torch loads

import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

from catneuron.config import preset  # noqa: E402
from catneuron.nn.autoencoder import DeepSparseAutoencoder  # noqa: E402
from catneuron.train.optim import make_optimizer  # noqa: E402
from catneuron.train.trainer import train_step  # noqa: E402

# (part, operator-name fragments): the first part whose fragment an operator's name holds takes it.
PARTS = [
    ("LC decoder backward (forward + weight grad)", ("_LocallyConnectedTransposeBackward",)),
    ("LC encoder backward (weight grad)", ("_LocallyConnectedBackward",)),
    ("LC decoder (transpose)", ("_LocallyConnectedTranspose",)),
    ("LC encoder (forward)", ("_LocallyConnected",)),
    ("optimizer (AdamW, decay)", ("adam", "Optimizer.step", "_foreach")),
    ("pooling and LCN convolutions", ("convolution", "conv2d")),
    ("zero_grad (freeing gradients)", ("zero_grad",)),
    ("norm constraint", ("norm",)),
]


def part_of(name: str) -> str:
    return next((part for part, keys in PARTS if any(k.lower() in name.lower() for k in keys)),
                "elementwise, reductions and the rest")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="small")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    args = ap.parse_args()
    keep_freed_memory()
    runs = {}
    for precision in args.precisions:
        cfg = preset(args.preset)
        cfg.model.precision = precision
        torch.manual_seed(0)
        model = DeepSparseAutoencoder(cfg.model)
        runs[precision] = (cfg, model, make_optimizer(cfg.train, model.parameters()))
    x = torch.randn(cfg.train.batch_size, cfg.model.channels, cfg.model.input_size, cfg.model.input_size)
    for cfg, model, opt in runs.values():       # warm-up: kernel builds, allocator
        train_step(model, opt, cfg, x)
    names = [p for p, _ in PARTS] + ["elementwise, reductions and the rest"]
    samples = {precision: {name: [] for name in names} for precision in runs}
    for _ in range(args.rounds):
        for precision, (cfg, model, opt) in runs.items():
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(args.steps):
                    train_step(model, opt, cfg, x)
            parts = dict.fromkeys(names, 0.0)
            for event in prof.key_averages():
                parts[part_of(event.key)] += event.self_cpu_time_total / 1e3 / args.steps     # ms per step
            for name in names:
                samples[precision][name].append(parts[name])
    shares = {p: {name: statistics.median(v) for name, v in parts.items()} for p, parts in samples.items()}
    print(f"{args.preset}, batch {cfg.train.batch_size}, {torch.get_num_threads()} threads, ms per step "
          f"(self CPU time; median over {args.rounds} rounds of {args.steps} profiled steps each)")
    print(f"{'part':<46}" + "".join(f"{p:>10}" for p in runs))
    for name in names:
        print(f"{name:<46}" + "".join(f"{shares[p].get(name, 0.0):>10.1f}" for p in runs))
    print(f"{'step':<46}" + "".join(f"{sum(shares[p].values()):>10.1f}" for p in runs))


if __name__ == "__main__":
    main()
