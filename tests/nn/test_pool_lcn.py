import math

import pytest
import torch

from catneuron.nn.lcn import LocalContrastNorm, gaussian_window, local_contrast_norm
from catneuron.nn.pool import L2Pool2d, l2_pool


def test_l2_pool_equals_formula():
    f = torch.randn(2, 3, 9, 8, dtype=torch.float64)
    size, stride, eps = 3, 2, 0.05
    p = l2_pool(f, size, stride, eps)
    assert p.shape == (2, 3, 4, 3)
    for n in range(2):
        for m in range(3):
            for i in range(4):
                for j in range(3):
                    window = f[n, m, i * stride:i * stride + size, j * stride:j * stride + size]
                    assert math.isclose(p[n, m, i, j].item(), math.sqrt(eps + (window ** 2).sum().item()),
                                        rel_tol=1e-12)


def test_l2_pool_gradcheck():
    f = torch.randn(2, 2, 7, 7, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(L2Pool2d(3, 1, eps=0.01), (f,))


def _lcn_direct(x, size, c, sigma):
    """Jarrett et al.'s formulas, pixel by pixel, with the window renormalized where the border cuts it."""
    N, C, H, W = x.shape
    g = gaussian_window(size, sigma, torch.float64)
    G = torch.outer(g, g)
    half = size // 2

    def local_mean(t, n, j, k):
        total, weight = 0.0, 0.0
        for p in range(-half, half + 1):
            for q in range(-half, half + 1):
                if 0 <= j + p < H and 0 <= k + q < W:
                    w = G[p + half, q + half].item()
                    total += w * t[n, :, j + p, k + q].sum().item() / C
                    weight += w
        return total / weight

    v = torch.empty_like(x)
    for n in range(N):
        for j in range(H):
            for k in range(W):
                v[n, :, j, k] = x[n, :, j, k] - local_mean(x, n, j, k)
    y = torch.empty_like(x)
    for n in range(N):
        for j in range(H):
            for k in range(W):
                y[n, :, j, k] = v[n, :, j, k] / max(c, math.sqrt(local_mean(v * v, n, j, k)))
    return y


@pytest.mark.parametrize("c", [0.01, 0.8])  # 0.8 exercises the max(c, sigma) branch
def test_lcn_equals_formula(c):
    x = torch.randn(2, 3, 6, 7, dtype=torch.float64)
    torch.testing.assert_close(local_contrast_norm(x, 5, c, 1.25), _lcn_direct(x, 5, c, 1.25))


def test_lcn_gradcheck():
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(LocalContrastNorm(3, c=0.01), (x,))


def test_lcn_removes_local_brightness_and_contrast():
    x = torch.randn(2, 4, 12, 12, dtype=torch.float64)
    torch.testing.assert_close(local_contrast_norm(3.0 * x + 5.0, 5), local_contrast_norm(x, 5))


def test_lcn_rejects_even_window():
    with pytest.raises(ValueError, match="odd"):
        LocalContrastNorm(4)
