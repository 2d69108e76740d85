"""Training a Classifier: the classifiers alone on frozen features, then fine-tuning everything."""
from __future__ import annotations

import math

import numpy as np
import torch

from catneuron.classify.datasets import LabeledSet
from catneuron.classify.model import Classifier
from catneuron.config import ClassifyConfig
from catneuron.data.preprocess import to_tensor
from catneuron.errors import CatneuronError
from catneuron.progress import progress as progress_bar


def _device(clf: Classifier) -> torch.device:
    return clf.head.weight.device


@torch.no_grad()
def raw_features(clf: Classifier, data: LabeledSet, batch_size: int, progress: bool, desc: str) -> torch.Tensor:
    clf.eval()
    out = []
    for i in progress_bar(range(0, len(data), batch_size), desc=desc, unit="batch", enabled=progress):
        out.append(clf.raw_features(to_tensor(data.images[i:i + batch_size], clf.preprocess, _device(clf))))
    return torch.cat(out)


def _finite(loss: float, epoch: int, setting: str, value: float) -> float:
    """`loss` when finite; else the error that stops a diverged training before anything is saved."""
    if not math.isfinite(loss):
        raise CatneuronError(f"classify: the training loss became {loss} in epoch {epoch + 1}; lower {setting} "
                             f"(now {value})")
    return loss


def fit_head(clf: Classifier, data: LabeledSet, cfg: ClassifyConfig, progress: bool = True) -> list[float]:
    """Network frozen: fix the feature standardization, then train the classifiers on the features
    computed once. Returns the mean training loss of each epoch."""
    raw = raw_features(clf, data, cfg.batch_size, progress, "features")
    clf.set_standardization(raw)
    feats = (raw - clf.mean) / clf.scale
    labels = torch.from_numpy(data.labels).to(feats.device)
    opt = torch.optim.Adam(clf.head.parameters(), lr=cfg.head_lr, weight_decay=cfg.l2)
    gen = torch.Generator().manual_seed(cfg.seed)
    losses = []
    for _ in progress_bar(range(cfg.head_epochs), desc="classifiers", unit="epoch", enabled=progress):
        total = 0.0
        for idx in torch.randperm(len(labels), generator=gen).split(cfg.batch_size):
            loss = clf.loss(clf.head(feats[idx]), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        losses.append(_finite(total / len(labels), len(losses), "classify.head_lr", cfg.head_lr))
    return losses


def finetune(clf: Classifier, data: LabeledSet, cfg: ClassifyConfig, progress: bool = True) -> list[float]:
    """The whole network with the classifiers, by backpropagation through every stage's encoder."""
    params = [p for p in clf.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=cfg.finetune_lr, weight_decay=cfg.l2)
    rng = np.random.default_rng(cfg.seed + 1)
    losses = []
    bar = progress_bar(total=cfg.finetune_epochs * len(data), desc="fine-tune", unit="img", enabled=progress)
    for _ in range(cfg.finetune_epochs):
        clf.train()
        total = 0.0
        order = rng.permutation(len(data))
        for start in range(0, len(order), cfg.batch_size):
            idx = np.sort(order[start:start + cfg.batch_size])
            x = to_tensor(data.images[idx], clf.preprocess, _device(clf))
            loss = clf.loss(clf(x), torch.from_numpy(data.labels[idx]).to(x.device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            bar.update(len(idx))
            bar.set_postfix(loss=f"{loss.item():.4g}")
        losses.append(_finite(total / len(data), len(losses), "classify.finetune_lr", cfg.finetune_lr))
    bar.close()
    return losses


def accuracy(clf: Classifier, data: LabeledSet, batch_size: int = 100) -> float:
    """Top-1 accuracy."""
    predicted = clf.scores(data.images, batch_size).argmax(1).numpy()
    return float((predicted == data.labels).mean())
