"""Locally connected kernels in plain PyTorch, row by row: the CPU fallback (any float dtype).

Activations are moved to an (H, W, C, N) layout. There, the r*C inputs that one kernel row of
one output location sees are a contiguous (r*C, N) block, and the blocks of all locations
along a row form one overlapping strided view, so each (output row, kernel row) pair is a
single batched matrix multiply with no unfold buffer. This is the path used on the CPU for
float64 or without a C++ compiler (the native kernel, lc_native, is several times faster); on
CUDA its thousands of small launches per layer are too slow, and lc_batched is used instead.

Shapes: x (N, C, H, W), y (N, M, Ho, Wo), weight (Ho, Wo, M, r, r, C).
"""
from __future__ import annotations

import torch


def _row_view(xh: torch.Tensor, h: int, width: int, cols: int, stride: int, col0: int = 0) -> torch.Tensor:
    """(width, cols*C, N) overlapping view of row h of an (H, W, C, N) tensor: entry j starts
    at column j*stride + col0."""
    _, _, C, N = xh.shape
    row = xh[h]
    return row.as_strided((width, cols * C, N), (stride * C * N, N, 1),
                          row.storage_offset() + col0 * C * N)


def forward(x: torch.Tensor, weight: torch.Tensor, stride: int) -> torch.Tensor:
    Ho, Wo, M, r, _, C = weight.shape
    xh = x.permute(2, 3, 1, 0).contiguous()
    y = x.new_zeros(Ho, Wo, M, x.shape[0])
    for i in range(Ho):
        for p in range(r):
            y[i].baddbmm_(weight[i, :, :, p].reshape(Wo, M, r * C), _row_view(xh, i * stride + p, Wo, r, stride))
    return y.permute(3, 2, 0, 1).contiguous()


def transpose(y: torch.Tensor, weight: torch.Tensor, stride: int, in_size: tuple[int, int]) -> torch.Tensor:
    Ho, Wo, M, r, _, C = weight.shape
    H, W = in_size
    yh = y.permute(2, 3, 1, 0).contiguous()  # (Ho, Wo, M, N)
    xh = y.new_zeros(H, W, C, y.shape[0])
    # Kernel columns are taken `stride` at a time so that the views written by one batched
    # multiply never overlap (windows of neighbouring locations do).
    for i in range(Ho):
        for p in range(r):
            wp = weight[i, :, :, p]  # (Wo, M, r, C)
            for q0 in range(0, r, stride):
                q1 = min(r, q0 + stride)
                out = _row_view(xh, i * stride + p, Wo, q1 - q0, stride, col0=q0)
                out.baddbmm_(wp[:, :, q0:q1].reshape(Wo, M, (q1 - q0) * C).transpose(1, 2), yh[i])
    return xh.permute(3, 2, 0, 1).contiguous()


def weight_grad(x: torch.Tensor, y: torch.Tensor, stride: int, receptive_field: int) -> torch.Tensor:
    N, C = x.shape[:2]
    _, M, Ho, Wo = y.shape
    r = receptive_field
    xh = x.permute(2, 3, 1, 0).contiguous()
    yh = y.permute(2, 3, 1, 0).contiguous()
    dw = x.new_empty(Ho, Wo, M, r, r, C)
    for i in range(Ho):
        for p in range(r):
            xv = _row_view(xh, i * stride + p, Wo, r, stride)
            dw[i, :, :, p] = torch.bmm(yh[i], xv.transpose(1, 2)).view(Wo, M, r, C)
    return dw
