"""Pictures of a neuron: response histograms, top stimuli, the optimal stimulus.

The optimal stimulus is the paper's x* = argmax_x f(x) subject to ||x||_2 = rho (f: the neuron's
response to the network input x). The paper writes rho = 1 for its inputs; ours are standardized
images with ||x||_2 = sqrt(C S S) (about 111 for 64x64x3), and the network is not scale-invariant
(eps in the pooling, the floor c of LCN): at unit norm every pooling unit sits in its eps-dominated
regime and every LCN unit at its floor, a function the network never computes on data. So rho is
the norm of the network's actual inputs (``input_norm``). It is found by projected gradient ascent
with a backtracking line search: step along the gradient, project back onto the sphere, halve the
step until the response grows, and try a larger step next time. The regularized variant (as in lucent's render loop)
evaluates the neuron on randomly jittered copies and blurs the image a little after each step,
which favours stimuli that do not depend on single pixels.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from catneuron.probe.detectors import NetworkDetectors


def neuron_response(det: NetworkDetectors, candidate: int):
    """f(x) for network inputs x (N, C, S, S) -> (N,): the candidate's unit, differentiable."""
    info = det.describe(candidate)
    stage, sub, m, i, j = info["stage"], info["sublayer"], info["map"], info["i"], info["j"]

    def f(x: torch.Tensor) -> torch.Tensor:
        h = x
        for k, st in enumerate(det.model.stages, start=1):
            out = st(h)
            if k == stage:
                return out.sublayers[sub][:, m, i, j]
            h = out.normalized
        raise IndexError(candidate)
    return f


def _project(x: torch.Tensor, norm: float = 1.0) -> torch.Tensor:
    return norm * x / x.flatten(1).norm(dim=1).clamp_min(1e-12)[:, None, None, None]


def input_norm(det: NetworkDetectors, images) -> float:
    """Median L2 norm of the network inputs that uint8 `images` become (after preprocessing)."""
    with torch.no_grad():
        return float(det.canvases(images).flatten(1).norm(dim=1).median())


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    k = 5
    t = torch.arange(k, dtype=x.dtype) - k // 2
    g = torch.exp(-t * t / (2 * sigma * sigma))
    g = (g / g.sum()).to(x.device)
    c = x.shape[1]
    x = F.conv2d(F.pad(x, (k // 2,) * 4, mode="reflect"), g.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)
    return F.conv2d(x, g.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)


@dataclass
class OptimalStimulus:
    image: torch.Tensor        # (C, S, S), L2 norm `norm`
    response: float
    start_response: float
    history: list[float]


def optimal_stimulus(f, shape: tuple[int, int, int], steps: int = 200, seed: int = 0, regularize: bool = False,
                     jitter: int = 2, blur_sigma: float = 0.5, start: torch.Tensor | None = None,
                     norm: float = 1.0) -> OptimalStimulus:
    """argmax f(x) over ||x|| = norm by projected gradient ascent with a backtracking line search."""
    g = torch.Generator().manual_seed(seed)
    x = _project((start.clone()[None] if start is not None else torch.randn(1, *shape, generator=g)), norm)

    def value(z):
        if regularize and jitter:
            dy, dx = torch.randint(-jitter, jitter + 1, (2,), generator=g).tolist()
            z = torch.roll(z, (dy, dx), dims=(2, 3))
        return f(z).sum()

    with torch.no_grad():
        start_value = float(f(x).sum())
    lr, history = norm, []
    current = start_value
    for _ in range(steps):
        x.requires_grad_(True)
        val = value(x)
        (grad,) = torch.autograd.grad(val, x)
        x = x.detach()
        grad = grad / grad.flatten().norm().clamp_min(1e-12)
        for _ in range(20):                              # backtracking: halve until it improves
            cand = _project(x + lr * grad, norm)
            if regularize and blur_sigma:
                cand = _project(_blur(cand, blur_sigma), norm)
            with torch.no_grad():
                new = float(f(cand).sum())
            if new > current:
                x, current = cand, new
                lr *= 1.5
                break
            lr *= 0.5
        history.append(current)
        if lr < 1e-6 * norm:
            break
    return OptimalStimulus(x[0].detach(), current, start_value, history)


# ---------------------------------------------------------------------------------------------
# Rendering (matplotlib, PNG bytes)

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


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def histogram_png(pos: np.ndarray, neg: np.ndarray, title: str, positive: str = "faces", seed: int = 0,
                  threshold: float | None = None) -> bytes:
    """Response histograms, positives vs an equal number of randomly drawn distractors (as the paper)."""
    plt = _pyplot()
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
    plt = _pyplot()
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
    plt = _pyplot()
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
