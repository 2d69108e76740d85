"""The optimal stimulus of a neuron, with composable objectives and transforms (after lucent's optvis).

    objective = unit(det, candidate)                  # or channel(det, stage, sublayer, map), sums, scalings
    x = optimal_stimulus(objective, (C, S, S), norm=input_norm(det, images),
                         transforms=[jitter(2)],      # applied to x before each evaluation
                         after_step=[blur(0.5)])      # applied to each accepted iterate

It solves the paper's x* = argmax_x f(x) subject to ||x||_2 = rho. The paper writes rho = 1 for
its inputs; ours are standardized images with ||x||_2 = sqrt(C S S) (about 111 for 64x64x3), and
the network is not scale-invariant (eps in the pooling, the floor c of LCN): at unit norm every
pooling unit sits in its eps-dominated regime and every LCN unit at its floor, a function the
network never computes on data. So rho is the norm of the network's actual inputs
(``input_norm``). It is found by projected gradient ascent with a backtracking line search: step
along the gradient, project back onto the sphere, halve the step until the objective grows, and
try a larger step next time. With jitter and blur (lucent's regularization) the neuron is
evaluated on randomly shifted copies and the image is smoothed a little after each step, which
favours stimuli that do not depend on single pixels.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from catneuron.probe.detectors import NetworkDetectors, UnitAddress

Transform = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


class Objective:
    """A differentiable function of network inputs (N, C, S, S) -> (N,). Objectives add, subtract and
    scale: ``unit(det, a) - 0.5 * unit(det, b)`` drives a up and b down."""

    def __init__(self, f: Callable[[torch.Tensor], torch.Tensor], name: str):
        self.f, self.name = f, name

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.f(x)

    def __add__(self, other: "Objective") -> "Objective":
        return Objective(lambda x: self(x) + other(x), f"{self.name} + {other.name}")

    def __mul__(self, k: float) -> "Objective":
        return Objective(lambda x: k * self(x), f"{k} * {self.name}")

    __rmul__ = __mul__

    def __neg__(self) -> "Objective":
        return self * -1.0

    def __sub__(self, other: "Objective") -> "Objective":
        return self + (-other)


def _sublayer(det: NetworkDetectors, stage: int, sublayer: str, x: torch.Tensor) -> torch.Tensor:
    """The output of one sublayer of the detectors' network on input x, computing nothing above it."""
    return det.model.sublayer(x.to(det.device), stage, sublayer)


def neuron(det: NetworkDetectors, a: UnitAddress) -> Objective:
    """The response of the unit at an address (lucent's neuron(layer, channel, x, y)); the
    objective sees the network's input, so the address's placement plays no part."""
    return Objective(lambda x: _sublayer(det, a.stage, a.sublayer, x)[:, a.map, a.i, a.j], a.name)


def unit(det: NetworkDetectors, candidate: int) -> Objective:
    """The response of one candidate neuron (as NetworkDetectors numbers them)."""
    return neuron(det, det.address(candidate))


def channel(det: NetworkDetectors, stage: int, sublayer: str, m: int) -> Objective:
    """The mean response of map m of a sublayer over all its locations."""
    return Objective(lambda x: _sublayer(det, stage, sublayer, x)[:, m].flatten(1).mean(1),
                     f"stage{stage}/{sublayer} map {m}")


def jitter(pixels: int) -> Transform:
    """Shift the image by up to `pixels` in each direction (wrapping around), a new shift each time."""
    def shift(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        dy, dx = torch.randint(-pixels, pixels + 1, (2,), generator=g).tolist()
        return torch.roll(x, (dy, dx), dims=(2, 3))
    return shift


def blur(sigma: float, size: int = 5) -> Transform:
    """Separable Gaussian blur, reflecting at the borders."""
    def smooth(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        t = torch.arange(size, dtype=x.dtype) - size // 2
        w = torch.exp(-t * t / (2 * sigma * sigma))
        w = (w / w.sum()).to(x.device)
        c = x.shape[1]
        x = F.conv2d(F.pad(x, (size // 2,) * 4, mode="reflect"), w.view(1, 1, 1, size).expand(c, 1, 1, size),
                     groups=c)
        return F.conv2d(x, w.view(1, 1, size, 1).expand(c, 1, size, 1), groups=c)
    return smooth


def project(x: torch.Tensor, norm: float = 1.0) -> torch.Tensor:
    """Each image of x scaled to L2 norm `norm`."""
    return norm * x / x.flatten(1).norm(dim=1).clamp_min(1e-12)[:, None, None, None]


def input_norm(det: NetworkDetectors, images) -> float:
    """Median L2 norm of the network inputs that uint8 `images` become (after preprocessing)."""
    with torch.no_grad():
        return float(det.canvases(images).flatten(1).norm(dim=1).median())


@dataclass
class OptimalStimulus:
    image: torch.Tensor        # (C, S, S), L2 norm `norm`
    response: float
    start_response: float
    history: list[float]


def optimal_stimulus(objective: Objective, shape: tuple[int, int, int], steps: int = 200, seed: int = 0,
                     transforms: list[Transform] = (), after_step: list[Transform] = (),
                     start: torch.Tensor | None = None, norm: float = 1.0) -> OptimalStimulus:
    """argmax objective(x) over ||x|| = norm by projected gradient ascent with a backtracking line
    search, from `start` or a seeded random image. `transforms` act on x before each gradient
    evaluation, `after_step` on each candidate step (both draw from the same seeded generator);
    the response and history are the objective on the untransformed image."""
    g = torch.Generator().manual_seed(seed)
    x = project((start.detach().cpu().clone()[None] if start is not None else torch.randn(1, *shape, generator=g)),
                norm)

    def value(z):
        for t in transforms:
            z = t(z, g)
        return objective(z).sum()

    with torch.no_grad():
        start_value = float(objective(x).sum())
    lr, history, current = norm, [], start_value
    for _ in range(steps):
        x.requires_grad_(True)
        (grad,) = torch.autograd.grad(value(x), x)
        x = x.detach()
        grad = grad / grad.flatten().norm().clamp_min(1e-12)
        for _ in range(20):                              # backtracking: halve until it improves
            cand = project(x + lr * grad, norm)
            for t in after_step:
                cand = project(t(cand, g), norm)
            with torch.no_grad():
                new = float(objective(cand).sum())
            if new > current:
                x, current = cand, new
                lr *= 1.5
                break
            lr *= 0.5
        history.append(current)
        if lr < 1e-6 * norm:
            break
    return OptimalStimulus(x[0].detach(), current, start_value, history)
