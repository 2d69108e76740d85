"""Pictures as PNG bytes (matplotlib, no display): response histograms, image grids, curves.

The optimal stimulus itself is computed in optvis.py.
"""
from __future__ import annotations

import io

import numpy as np
import torch


def to_image(x: torch.Tensor) -> np.ndarray:
    """(C, H, W) network-space tensor -> uint8 (H, W, 3), stretched to the full range."""
    a = x.detach().float().cpu().numpy()
    a = (a - a.min()) / max(1e-12, float(a.max() - a.min()))
    a = np.transpose(a, (1, 2, 0))
    if a.shape[2] == 1:
        a = np.repeat(a, 3, 2)
    return (a * 255).round().astype(np.uint8)


def png(fig) -> bytes:
    import matplotlib.pyplot as plt
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def histogram_png(pos: np.ndarray, neg: np.ndarray, title: str, positive: str = "faces", seed: int = 0,
                  threshold: float | None = None) -> bytes:
    """Response histograms, positives vs an equal number of randomly drawn distractors (as the paper)."""
    plt = pyplot()
    rng = np.random.default_rng(seed)
    n = min(len(pos), len(neg))
    pos, neg = rng.choice(pos, n, replace=False), rng.choice(neg, n, replace=False)
    bins = np.linspace(min(pos.min(), neg.min()), max(pos.max(), neg.max()), 50)
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    ax.hist(neg, bins, alpha=0.6, color="tab:blue", label=f"distractors ({n})")
    ax.hist(pos, bins, alpha=0.6, color="tab:red", label=f"{positive} ({n})")
    if threshold is not None:
        ax.axvline(threshold, color="k", ls="--", lw=1, label="threshold")
    ax.set_xlabel("response")
    ax.set_ylabel("images")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    return png(fig)


def grid_png(images: list[np.ndarray], columns: int = 8, title: str = "", scale: float = 1.0) -> bytes:
    plt = pyplot()
    rows = (len(images) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(columns * scale, rows * scale + (0.3 if title else 0)))
    for ax in np.atleast_1d(axes).ravel():
        ax.axis("off")
    for ax, img in zip(np.atleast_1d(axes).ravel(), images):
        ax.imshow(img, interpolation="nearest")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.subplots_adjust(wspace=0.05, hspace=0.05)
    return png(fig)


def curve_png(curves: dict[str, tuple[list[float], list[float], list[float]]], xlabel: str, title: str) -> bytes:
    """curves: label -> (x, mean, std)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.2, 3.0))
    for label, (xs, mean, std) in curves.items():
        mean, std = np.asarray(mean), np.asarray(std)
        ax.plot(xs, mean, marker="o", ms=3, label=label)
        ax.fill_between(xs, mean - std, mean + std, alpha=0.2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("response")
    ax.set_title(title, fontsize=9)
    if len(curves) > 1:
        ax.legend(fontsize=7)
    return png(fig)
