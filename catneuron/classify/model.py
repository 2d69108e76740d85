"""A classifier on top of the learned features: (N, C, S, S) images -> (N, K) class scores.

Features are the top layer of a trained DeepSparseAutoencoder (the last stage's LCN output,
flattened), or the raw pixels for the linear baseline. They are standardized with the training
set's per-feature mean and deviation (buffers fixed before training; a reparametrization of
the same linear model that keeps its optimization well conditioned, not a regularizer).
On top: one linear classifier per class, trained one-vs-all (independent logistic regressions,
the paper's choice) or with a softmax.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from catneuron.data.images import fit_inside
from catneuron.data.inputs import as_batch
from catneuron.data.preprocess import to_tensor
from catneuron.nn.autoencoder import DeepSparseAutoencoder


class Classifier(nn.Module):
    def __init__(self, encoder: DeepSparseAutoencoder | None, classes: list[str], input_size: int,
                 channels: int = 3, preprocess: str = "standardize", loss: str = "one-vs-all"):
        super().__init__()
        self.encoder, self.classes, self.loss_kind = encoder, list(classes), loss
        self.input_size, self.channels, self.preprocess = input_size, channels, preprocess
        with torch.no_grad():
            dim = self.raw_features(torch.zeros(1, channels, input_size, input_size)).shape[1]
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))
        self.head = nn.Linear(dim, len(classes))
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def raw_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, S, S) -> (N, D): the top layer's LCN output, or the pixels without an encoder."""
        return (self.encoder(x)[-1].normalized if self.encoder is not None else x).flatten(1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return (self.raw_features(x) - self.mean) / self.scale

    @torch.no_grad()
    def set_standardization(self, raw: torch.Tensor) -> None:
        """Fix the feature standardization from the training set's raw features (N, D)."""
        self.mean.copy_(raw.mean(0))
        self.scale.copy_(raw.std(0).clamp_min(1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.loss_kind == "softmax":
            return F.cross_entropy(logits, labels)
        # One logistic classifier per class, each against all the others; summed over classes.
        targets = F.one_hot(labels, len(self.classes)).to(logits.dtype)
        return F.binary_cross_entropy_with_logits(logits, targets, reduction="sum") / len(labels)

    @torch.no_grad()
    def predict(self, images, batch_size: int = 100) -> list[str]:
        """Class names for images (an image path, a PIL image, an array or tensor, or a list or batch
        of them: catneuron.data.inputs)."""
        scores = self.scores(images, batch_size)
        return [self.classes[i] for i in scores.argmax(1).tolist()]

    @torch.no_grad()
    def predict_proba(self, images, batch_size: int = 100) -> torch.Tensor:
        """(N, classes) probabilities, columns in `classes` order: softmax for a softmax classifier;
        for one-vs-all, each class's own logistic probability against the rest (rows need not sum to 1)."""
        scores = self.scores(images, batch_size)
        return scores.softmax(1) if self.loss_kind == "softmax" else scores.sigmoid()

    @torch.no_grad()
    def scores(self, images, batch_size: int = 100) -> torch.Tensor:
        """(N, classes) logits."""
        self.eval()
        # Whole images, letterboxed: how the classification tasks' images were prepared.
        batch = as_batch(images, self.input_size, self.channels, fit=fit_inside)
        device = self.head.weight.device
        out = [self(to_tensor(batch[i:i + batch_size], self.preprocess, device)).cpu()
               for i in range(0, len(batch), batch_size)]
        return torch.cat(out) if out else torch.zeros(0, len(self.classes))
