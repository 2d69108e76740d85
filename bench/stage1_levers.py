"""One stage-1 lever experiment: the `small` preset's first stage alone, on natural-64/train.

    python bench/stage1_levers.py NAME [steps=400] [opt=adagrad|adam|sgd] [lr=0.002] [enc=1.0]
                                  [dec=random|zero] [wd=0] [lam=0.1] [pre=standardize|whiten|lcn]

A fast screen (about 2 minutes on 2 cores) of what makes the filters leave their initialization,
before paying for three-stage runs (bench/face_experiments.py): the stage (64x64x3 input, 8 maps,
12x12 fields, 5x5 pooling) trained on batches of 100 images drawn at random (seed 0) from the
decoded training set, with the given optimizer, encoder start scale (enc, in units of
1/sqrt(fan in)), decoder start, decoupled weight decay, sparsity weight and input preprocessing.
Prints and appends to experiments/stage1_levers.jsonl: relative reconstruction error, the structure
score (catneuron.nn.structure: spectral concentration; white noise 0.23) and localization of
encoder and decoder filters over all locations, and ||W1 - W1(init)|| / ||W1(init)||.
"""
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from catneuron import config as C
from catneuron.data.loader import decode_record
from catneuron.data.preprocess import to_tensor
from catneuron.data.sources import iter_records, resolve_all
from catneuron.nn.objective import stage_loss
from catneuron.nn.stage import Stage, unit_norm_
from catneuron.nn.structure import localization, spectral_concentration


def load(spec: str, size: int = 64) -> np.ndarray:
    images = []
    for rec, _ in iter_records(resolve_all([spec])):
        img, _ = decode_record(rec, size, 3)
        if img is not None:
            images.append(img)
    return np.stack(images)


def main() -> None:
    name, args = sys.argv[1], dict(a.split("=", 1) for a in sys.argv[2:])
    steps, opt, lr = int(args.get("steps", 400)), args.get("opt", "adagrad"), float(args.get("lr", 0.002))
    enc, dec, wd = float(args.get("enc", 1.0)), args.get("dec", "random"), float(args.get("wd", 0))
    lam, pre = float(args.get("lam", 0.1)), args.get("pre", "standardize")
    torch.manual_seed(0)
    torch.set_num_threads(2)
    model_cfg = C.preset("small").model
    model_cfg.stages = model_cfg.stages[:1]
    stage = Stage(model_cfg, 0)
    with torch.no_grad():
        stage.encoder.weight.mul_(enc)
        if dec == "zero":
            stage.decoder.weight.zero_()
        unit_norm_(stage.decoder.weight)
    w0 = stage.encoder.weight.detach().clone()
    data = load("natural-64/train")
    params = [stage.encoder.weight, stage.decoder.weight]
    optimizer = {"adam": lambda: torch.optim.Adam(params, lr=lr),
                 "sgd": lambda: torch.optim.SGD(params, lr=lr, momentum=0.9)}.get(
        opt, lambda: torch.optim.Adagrad(params, lr=lr))()
    rng, start = np.random.default_rng(0), time.time()
    for step in range(steps):
        x = to_tensor(data[rng.integers(0, len(data), 100)], pre)
        out = stage(x)
        loss = stage_loss(x, out.code, stage.reconstruct(out))
        optimizer.zero_grad()
        (loss.reconstruction + lam * loss.sparsity).backward()
        optimizer.step()
        with torch.no_grad():
            stage.encoder.weight.mul_(1 - lr * wd)
            unit_norm_(stage.decoder.weight)
        if step % 100 == 0 or step == steps - 1:
            print(step, f"relative reconstruction {loss.relative_reconstruction():.3f}", flush=True)
    w1, w2 = stage.encoder.weight.detach(), stage.decoder.weight.detach()
    row = {"name": name, "args": args, "seconds": round(time.time() - start),
           "relative_reconstruction": loss.relative_reconstruction(),
           "encoder_structure": float(spectral_concentration(w1).mean()),
           "decoder_structure": float(spectral_concentration(w2).mean()),
           "encoder_localization": float(localization(w1).mean()),
           "decoder_localization": float(localization(w2).mean()),
           "from_init": float((w1 - w0).norm() / w0.norm())}
    print(json.dumps(row))
    Path("experiments").mkdir(exist_ok=True)
    with open("experiments/stage1_levers.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
