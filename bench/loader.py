"""The data loader against the trainer's appetite, in one process.

    python bench/loader.py [CORPUS] [--batches 40] [--steps 20]

Prints images/s of (1) the loader alone (decode, resize, batch, preprocess) with 0, 1 and 2
decoding processes, (2) `small` training steps on an in-memory batch (what the trainer can
consume), (3) the same steps fed by the loader. If (3) matches (2), the loader is not the
bottleneck.
"""
import argparse
import statistics
import time

import torch

from catneuron import config as C
from catneuron.data.loader import ImageStream
from catneuron.data.preprocess import to_tensor
from catneuron.data.sources import resolve_all
from catneuron.nn.autoencoder import DeepSparseAutoencoder
from catneuron.runtime import keep_freed_memory
from catneuron.train.optim import make_optimizer


def loader_rate(sources, cfg, workers: int, batches: int) -> float:
    stream = ImageStream(sources, cfg.model.input_size, cfg.model.channels, seed=1, workers=workers)
    it = stream.batches(cfg.train.batch_size)
    to_tensor(next(it)[0])                      # warm-up: workers started, buffer filled
    t = time.perf_counter()
    n = 0
    for _ in range(batches):
        batch, _ = next(it)
        to_tensor(batch, cfg.data.preprocess)
        n += len(batch)
    rate = n / (time.perf_counter() - t)
    it.close()
    return rate


def training_rate(cfg, steps: int, sources=None) -> float:
    torch.manual_seed(0)
    model = DeepSparseAutoencoder(cfg.model)
    opt = make_optimizer(cfg.train, model.parameters())
    fixed = torch.randn(cfg.train.batch_size, cfg.model.channels, cfg.model.input_size, cfg.model.input_size)
    it = ImageStream(sources, cfg.model.input_size, seed=2).batches(cfg.train.batch_size) if sources else None
    times = []
    for i in range(steps + 2):
        t = time.perf_counter()
        x = to_tensor(next(it)[0], cfg.data.preprocess) if it else fixed
        obj = model.objective(x)
        opt.zero_grad(set_to_none=True)
        obj.total.backward()
        opt.step()
        model.project_()
        if i >= 2:
            times.append(time.perf_counter() - t)
    if it:
        it.close()
    return cfg.train.batch_size / statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus", nargs="?", default="corpora/default")
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    keep_freed_memory()
    cfg = C.preset("small")
    sources = resolve_all([args.corpus])
    for workers in (0, 1, 2):
        print(f"loader alone, {workers} decoding processes: {loader_rate(sources, cfg, workers, args.batches):,.0f} "
              f"images/s")
    fixed = training_rate(cfg, args.steps)
    fed = training_rate(cfg, args.steps, sources)
    print(f"small training, in-memory batch: {fixed:,.0f} images/s")
    print(f"small training, fed by the loader (0 processes): {fed:,.0f} images/s ({100 * fed / fixed:.0f} %)")


if __name__ == "__main__":
    main()
