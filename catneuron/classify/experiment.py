"""The paper's supervised experiment: classifiers on the unsupervised features, then fine-tuning,
against the same network from random initialization and a linear classifier on raw pixels.

Each starting point gets the same budget (`classify.head_epochs` on frozen features, then
`classify.finetune_epochs` of the whole network) on the same seeded half of the labeled data, and
is scored by top-1 accuracy on the other half.
"""
from __future__ import annotations

import copy
import logging
import time
from pathlib import Path

import torch

from catneuron import config as C
from catneuron.classify import export
from catneuron.classify.datasets import LabeledSet, load_task
from catneuron.classify.model import Classifier
from catneuron.classify.train import accuracy, finetune, fit_head
from catneuron.nn.autoencoder import DeepSparseAutoencoder, random_baseline
from catneuron.provenance import environment
from catneuron.train.checkpoint import load_model, model_config
from catneuron.files import write_json, write_text
from catneuron.train.trainer import resolve_device

log = logging.getLogger(__name__)

INITS = {"pretrained": "unsupervised pretraining", "random": "random initialization",
         "pixels": "linear classifier on raw pixels"}


def build(init: str, run: str | Path | None, cfg: C.Config, classes: list[str]) -> tuple[Classifier, C.ModelConfig]:
    """A Classifier whose encoder is the trained network of `run`, the same architecture at its
    random initialization, or none (raw pixels)."""
    if init == "pretrained":
        encoder, run_cfg = load_model(run)
        model_cfg = run_cfg.model
    else:
        model_cfg = cfg.model
        torch.manual_seed(cfg.classify.seed)
        encoder = DeepSparseAutoencoder(random_baseline(model_cfg)) if init == "random" else None
    clf = Classifier(encoder, classes, model_cfg.input_size, model_cfg.channels, cfg.data.preprocess,
                     cfg.classify.loss)
    return clf, model_cfg


def train_one(init: str, run: str | Path | None, cfg: C.Config, train: LabeledSet, val: LabeledSet,
              out: Path | None, provenance: dict, progress: bool = True) -> dict:
    """Frozen, then (when the network has weights to tune and the budget allows) fine-tuned."""
    clf, model_cfg = build(init, run, cfg, train.classes)
    clf.to(resolve_device(cfg.train.device))
    start = time.perf_counter()
    head_losses = fit_head(clf, train, cfg.classify, progress)
    result = {"init": init, "label": INITS[init], "frozen": accuracy(clf, val, cfg.classify.batch_size),
              "frozen_train": accuracy(clf, train, cfg.classify.batch_size), "head_losses": head_losses}
    log.info("%s, frozen: top-1 %.2f %% (train %.2f %%)", INITS[init], 100 * result["frozen"],
             100 * result["frozen_train"])
    if clf.encoder is not None and cfg.classify.finetune_epochs:
        before = copy.deepcopy(clf.encoder.state_dict())
        result["finetune_losses"] = finetune(clf, train, cfg.classify, progress)
        result["finetuned"] = accuracy(clf, val, cfg.classify.batch_size)
        result["weights_changed"] = any(not torch.equal(before[k], v) for k, v in clf.encoder.state_dict().items())
        log.info("%s, fine-tuned: top-1 %.2f %%", INITS[init], 100 * result["finetuned"])
    result["seconds"] = round(time.perf_counter() - start, 1)
    if out is not None:
        export.save(clf, out, model_cfg, {**provenance, "init": init, "validation_top1": result.get(
            "finetuned", result["frozen"])})
    return result


def compare(run: str | Path, task: str, cfg: C.Config, out: str | Path, inits=tuple(INITS),
            progress: bool = True) -> dict:
    """The table for one task: every starting point in `inits`; results.json and table.md in `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = copy.deepcopy(cfg)
    cfg.model = model_config(run).model             # random init = the trained run's architecture
    m = cfg.model
    data = load_task(task, m.input_size, m.channels, cfg.data.root, cfg.classify.per_class, cfg.classify.seed,
                     progress)
    train, val = data.halves(cfg.classify.seed)
    provenance = {"run": str(Path(run).resolve()), "task": task, "classes": len(data.classes),
                  "train_images": len(train), "validation_images": len(val), "config": cfg.to_dict()}
    log.info("%s: %d classes, %d training and %d validation images (random halves, seed %d)", task,
             len(data.classes), len(train), len(val), cfg.classify.seed)
    results = {"task": task, **{k: v for k, v in provenance.items() if k != "config"},
               "chance": float(max((val.labels == k).mean() for k in range(len(data.classes)))),
               "environment": environment(), "config": cfg.to_dict(), "rows": []}
    for init in inits:
        row = train_one(init, run if init == "pretrained" else None, cfg, train, val, out / init, provenance,
                        progress)
        results["rows"].append(row)
        write_json(out / "results.json", results)        # partial results survive a kill
    write_text(out / "table.md", table_markdown(results))
    return results


def table_markdown(results: dict) -> str:
    lines = [f"{results['task']}: {results['classes']} classes, {results['train_images']:,} training / "
             f"{results['validation_images']:,} validation images (random halves); most frequent class "
             f"{100 * results['chance']:.1f} %", "",
             "| starting point | frozen + classifiers | fine-tuned |", "|---|---|---|"]
    for r in results["rows"]:
        tuned = f"{100 * r['finetuned']:.1f} %" if "finetuned" in r else "—"
        lines.append(f"| {r['label']} | {100 * r['frozen']:.1f} % | {tuned} |")
    return "\n".join(lines) + "\n"
