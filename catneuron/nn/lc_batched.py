"""Locally connected kernels as few large batched matmuls: the CUDA path, and reduced precision.

Each map is a batched matrix multiply over the output locations of a band of output rows:

    cols     (L, N, K)   the input patch of every location, K = r*r*C in the weights' (p, q, c) order,
                         gathered from a channels-last copy of x by one strided view and one copy
    forward        y[l] (N, M) = cols[l] (N, K) @ w[l]^T (K, M)
    weight_grad   dw[l] (M, K) = dy[l]^T (M, N) @ cols[l] (N, K)
    transpose   cols[l] (N, K) = dy[l] (N, M) @ w[l] (M, K), summed back onto the input grid by fold

L = rows x Wo locations per launch. Bands are as many output rows as keep the (L, N, K) patch
buffer under `chunk_bytes` (at least one row), so memory stays bounded at the paper's shapes
(one 183-location row of 18x18x3 patches at batch 100 is 71 MB) while the launches per layer
stay few (one bmm plus a copy or a fold per band, not one per row and kernel row as in lc_torch,
whose thousands of small launches bound it on a GPU). On the CPU the patch buffer's memory traffic
makes this several times slower than lc_torch (docs/RESULTS.md), so `auto` uses it on CUDA only.

precision: "fp32"; "tf32" (CUDA's TensorFloat-32 for these multiplies: 10-bit mantissa inputs,
float32 accumulation); "bf16" (operands rounded to bfloat16, products accumulated in float32 by the
matmul, results returned in the input's dtype). Only the multiplies change: the rest of the network
stays in the input's dtype.

Shapes: x (N, C, H, W), y (N, M, Ho, Wo), weight (Ho, Wo, M, r, r, C).
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F

CHUNK_BYTES = 256 << 20
PRECISIONS = ("fp32", "tf32", "bf16")


@contextmanager
def _matmul_precision(precision: str):
    if precision != "tf32":
        yield
        return
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous)


def _operand(t: torch.Tensor, precision: str) -> torch.Tensor:
    return t.to(torch.bfloat16) if precision == "bf16" and t.dtype == torch.float32 else t


def _bmm_into(out: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> None:
    if a.dtype == out.dtype:
        torch.bmm(a, b, out=out)
    else:
        out.copy_(torch.bmm(a, b))


def _bands(Ho: int, Wo: int, N: int, K: int, element: int, chunk_bytes: int):
    rows = max(1, chunk_bytes // max(1, Wo * N * K * element))
    for i0 in range(0, Ho, rows):
        yield i0, min(Ho, i0 + rows)


def _patches(x_last: torch.Tensor, i0: int, i1: int, Wo: int, r: int, stride: int) -> torch.Tensor:
    """(L, N, r*r*C) patches of output rows i0..i1-1 from channels-last x (N, H, W, C)."""
    N, H, W, C = x_last.shape
    sN, sH, sW, sC = x_last.stride()
    view = x_last.as_strided((i1 - i0, Wo, N, r, r, C), (stride * sH, stride * sW, sN, sH, sW, sC),
                             x_last.storage_offset() + i0 * stride * sH)
    return view.reshape((i1 - i0) * Wo, N, r * r * C)


def forward(x: torch.Tensor, weight: torch.Tensor, stride: int, precision: str = "fp32",
            chunk_bytes: int = CHUNK_BYTES) -> torch.Tensor:
    Ho, Wo, M, r, _, C = weight.shape
    N, K = x.shape[0], r * r * C
    x_last = _operand(x.permute(0, 2, 3, 1).contiguous(), precision)
    y = x.new_empty(Ho, Wo, N, M)
    with _matmul_precision(precision):
        for i0, i1 in _bands(Ho, Wo, N, K, x_last.element_size(), chunk_bytes):
            w = _operand(weight[i0:i1].reshape(-1, M, K), precision)
            _bmm_into(y[i0:i1].view(-1, N, M), _patches(x_last, i0, i1, Wo, r, stride), w.transpose(1, 2))
    return y.permute(2, 3, 0, 1).contiguous()


def weight_grad(x: torch.Tensor, dy: torch.Tensor, stride: int, receptive_field: int, precision: str = "fp32",
                chunk_bytes: int = CHUNK_BYTES) -> torch.Tensor:
    N, C = x.shape[:2]
    _, M, Ho, Wo = dy.shape
    r = receptive_field
    K = r * r * C
    x_last = _operand(x.permute(0, 2, 3, 1).contiguous(), precision)
    dy_l = _operand(dy.permute(2, 3, 1, 0).reshape(Ho * Wo, M, N), precision)
    dw = x.new_empty(Ho, Wo, M, r, r, C)
    with _matmul_precision(precision):
        for i0, i1 in _bands(Ho, Wo, N, K, x_last.element_size(), chunk_bytes):
            _bmm_into(dw[i0:i1].view(-1, M, K), dy_l[i0 * Wo:i1 * Wo], _patches(x_last, i0, i1, Wo, r, stride))
    return dw


def transpose(dy: torch.Tensor, weight: torch.Tensor, stride: int, in_size: tuple[int, int],
              precision: str = "fp32", chunk_bytes: int = CHUNK_BYTES) -> torch.Tensor:
    Ho, Wo, M, r, _, C = weight.shape
    H, W = in_size
    N, K = dy.shape[0], r * r * C
    dy_l = _operand(dy.permute(2, 3, 0, 1).reshape(Ho * Wo, N, M), precision)
    x = dy.new_zeros(N, C, H, W)
    element = 2 if precision == "bf16" else dy.element_size()
    with _matmul_precision(precision):
        for i0, i1 in _bands(Ho, Wo, N, K, element, chunk_bytes):
            # fold wants each patch in (c, p, q) order: reorder the weights (M x fewer values than the patches).
            w = _operand(weight[i0:i1].permute(0, 1, 2, 5, 3, 4).reshape(-1, M, K), precision)
            cols = torch.bmm(dy_l[i0 * Wo:i1 * Wo], w)                           # (L, N, K)
            band = (i1 - i0 - 1) * stride + r
            h0 = i0 * stride
            x[:, :, h0:h0 + band, :(Wo - 1) * stride + r] += F.fold(
                cols.permute(1, 2, 0).to(dy.dtype), (band, (Wo - 1) * stride + r), r, stride=stride)
    return x
