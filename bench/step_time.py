"""Median time of a whole training step of one precision, for comparing code versions.

    PYTHONPATH=CHECKOUT python bench/step_time.py fp32|bf16 [--preset small] [--steps 10]

Runs against whichever catneuron PYTHONPATH points at (this change's, or a checkout of an older
main), with that version's own process settings, on one random batch; prints milliseconds. Run the
versions in turn, several times: separate processes cannot be interleaved step by step.
"""
import argparse
import statistics
import time

try:
    from catneuron.runtime import yield_idle_cores
    yield_idle_cores()     # what this version's command line does before torch loads
except ImportError:        # versions before it had no such setting
    pass
from catneuron.runtime import keep_freed_memory  # noqa: E402

import torch  # noqa: E402

from catneuron.config import preset  # noqa: E402
from catneuron.nn.autoencoder import DeepSparseAutoencoder  # noqa: E402
from catneuron.train.optim import make_optimizer  # noqa: E402
from catneuron.train.trainer import train_step  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("precision", choices=["fp32", "bf16"])
    ap.add_argument("--preset", default="small")
    ap.add_argument("--steps", type=int, default=10)
    args = ap.parse_args()
    keep_freed_memory()
    cfg = preset(args.preset)
    cfg.model.precision = args.precision
    torch.manual_seed(0)
    model = DeepSparseAutoencoder(cfg.model)
    opt = make_optimizer(cfg.train, model.parameters())
    x = torch.randn(cfg.train.batch_size, cfg.model.channels, cfg.model.input_size, cfg.model.input_size)
    times = []
    for i in range(args.steps + 3):     # three warm-up steps: kernel builds, allocator
        t = time.perf_counter()
        train_step(model, opt, cfg, x)
        if i >= 3:
            times.append(time.perf_counter() - t)
    print(f"{statistics.median(times) * 1e3:.1f}")


if __name__ == "__main__":
    main()
