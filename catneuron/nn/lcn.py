"""Local contrast normalization (Jarrett et al. 2009), the third sublayer of each stage.

    v[n, i, j, k] = x[n, i, j, k] - sum_{i', p, q} G[p, q] x[n, i', j+p, k+q]
    y[n, i, j, k] = v[n, i, j, k] / max(c, sqrt(sum_{i', p, q} G[p, q] v[n, i', j+p, k+q]^2))

G is a size x size Gaussian window over space, shared by all maps, and normalized so that its
sum over (i', p, q) is 1: the subtracted term is a weighted local mean over space and maps, the
divisor a weighted local RMS. Near the border the window is cut by the image edge; the weights
that fall inside are renormalized to sum to 1 (rather than padding with zeros, which would pull
border means towards 0). Output size = input size.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def gaussian_window(size: int, sigma: float, dtype=torch.float32, device=None) -> torch.Tensor:
    """1-D Gaussian of odd length `size`, summing to 1 (the 2-D window is its outer product)."""
    t = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-t * t / (2 * sigma * sigma))
    return g / g.sum()


def _local_mean(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Gaussian-weighted mean over maps and a window of space, edge-renormalized: (N,C,H,W) -> (N,1,H,W)."""
    k = g.numel()
    pad = k // 2

    def blur(t):  # separable: rows, then columns
        t = F.conv2d(t, g.view(1, 1, k, 1), padding=(pad, 0))
        return F.conv2d(t, g.view(1, 1, 1, k), padding=(0, pad))

    ones = torch.ones(1, 1, *x.shape[-2:], dtype=x.dtype, device=x.device)
    return blur(x.mean(dim=1, keepdim=True)) / blur(ones)


def local_contrast_norm(x: torch.Tensor, size: int = 5, c: float = 0.01, sigma: float | None = None) -> torch.Tensor:
    g = gaussian_window(size, sigma if sigma is not None else size / 4, x.dtype, x.device)
    v = x - _local_mean(x, g)
    return v / torch.clamp(torch.sqrt(_local_mean(v * v, g)), min=c)


class LocalContrastNorm(nn.Module):
    """Subtractive then divisive normalization over a size x size Gaussian window and all maps.

    (N, C, H, W) -> (N, C, H, W). `c` bounds the divisor below (the paper: 0.01); `sigma` of the
    window defaults to size / 4.
    """

    def __init__(self, size: int = 5, c: float = 0.01, sigma: float | None = None):
        super().__init__()
        if size < 1 or size % 2 == 0:
            raise ValueError(f"LCN size must be a positive odd number, got {size}")
        self.size, self.c, self.sigma = size, c, sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return local_contrast_norm(x, self.size, self.c, self.sigma)

    def extra_repr(self) -> str:
        return f"size={self.size}, c={self.c}, sigma={self.sigma if self.sigma is not None else self.size / 4}"
