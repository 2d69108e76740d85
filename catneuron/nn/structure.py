"""How much structure a filter bank has, and how sparse its codes are, as pure functions.

A random initialization is white noise: its power spreads over all spatial frequencies and its
energy over the whole receptive field. What sparse coding, ICA and sparse autoencoders learn on
natural images (oriented edges, Gabor-like patches, colour blobs, smooth colour-opponent filters)
puts its power into a few spatial frequencies. So the structure score of a filter is

    spectral concentration = (power in the strongest 10 % of its 2-D frequency bins) / (total power)

with the power spectrum |FFT2|^2 of each input map summed over the maps. It is invariant to the
filter's scale and sign, needs no model fit, works for any receptive field and any number of input
maps (stages 2-3 alike), and separates the two cases far apart: white noise scores about 0.23 for a
12x12x3 filter (the expected share of the top 10 % of chi-square bins), a Gabor patch or a
uniform-colour blob above 0.8. ``localization`` adds where the energy sits (the share in the best
placed window of half the side: 0.31 for noise, near 1 for a localized edge), which the spectrum
alone cannot see. Both come with their value at random initialization wherever they are reported.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def spectral_concentration(weight: torch.Tensor, top: float = 0.1) -> torch.Tensor:
    """(..., r, r, C) filters -> (...): share of power in the strongest `top` of the frequency bins."""
    power = torch.fft.fft2(weight.movedim(-1, -3).float()).abs().pow(2).sum(-3).flatten(-2)
    k = max(1, math.ceil(top * power.shape[-1]))
    return power.topk(k, dim=-1).values.sum(-1) / power.sum(-1).clamp_min(1e-30)


def localization(weight: torch.Tensor) -> torch.Tensor:
    """(..., r, r, C) filters -> (...): share of energy in the best-placed ceil(r/2) x ceil(r/2) window."""
    energy = weight.float().pow(2).sum(-1)
    h = (energy.shape[-1] + 1) // 2
    c = F.pad(energy.cumsum(-1).cumsum(-2), (1, 0, 1, 0))       # summed-area table
    window = c[..., h:, h:] - c[..., :-h, h:] - c[..., h:, :-h] + c[..., :-h, :-h]
    return window.flatten(-2).amax(-1) / energy.flatten(-2).sum(-1).clamp_min(1e-30)


def duplicated(weight: torch.Tensor, threshold: float = 0.9) -> torch.Tensor:
    """(Ho, Wo, M, r, r, C) -> scalar: the share of filters that have a near-copy (|cosine| above
    `threshold`, either sign) among the other maps at their own location. Untied maps at one
    location see the same input, so two alike code the same thing twice: capacity lost."""
    w = F.normalize(weight.detach().float().flatten(3), dim=-1)           # (Ho, Wo, M, D)
    cos = (w @ w.transpose(-1, -2)).abs()
    cos.diagonal(dim1=-2, dim2=-1).zero_()
    return (cos.amax(-1) > threshold).float().mean()


def kurtosis(codes: torch.Tensor) -> torch.Tensor:
    """(N, M, H, W) filter outputs -> scalar: E[z^4] / E[z^2]^2 per unit over the batch, averaged.

    3 for Gaussian codes (a random filter on varied inputs); sparse codes, mostly near zero with a
    few large values, score higher.
    """
    z = codes.float().flatten(1)
    second = z.pow(2).mean(0)
    return (z.pow(4).mean(0) / second.pow(2).clamp_min(1e-30)).mean()


def sample_locations(out_size: tuple[int, int], per_axis: int = 4) -> tuple[list[int], list[int]]:
    """An evenly spaced grid of filter locations (rows, cols), corners included: the filters of
    untied layers differ by location, and the border ones see other statistics than the centre."""
    rows = sorted({round(v) for v in torch.linspace(0, out_size[0] - 1, per_axis).tolist()})
    cols = sorted({round(v) for v in torch.linspace(0, out_size[1] - 1, per_axis).tolist()})
    return rows, cols


def location_sample(weight: torch.Tensor, per_axis: int = 4) -> torch.Tensor:
    """(Ho, Wo, M, r, r, C) -> (L, M, r, r, C): the filters at ``sample_locations``."""
    rows, cols = sample_locations(weight.shape[:2], per_axis)
    return weight[rows][:, cols].flatten(0, 1)


def summary(weight: torch.Tensor, per_axis: int = 4) -> dict[str, float]:
    """(Ho, Wo, M, r, r, C) -> mean structure and localization of the filters at ``sample_locations``."""
    sample = location_sample(weight.detach(), per_axis)
    return {"structure": float(spectral_concentration(sample).mean()),
            "localization": float(localization(sample).mean())}
