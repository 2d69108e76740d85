"""Locally connected layers: every output location has its own filters (untied weights).

    y[n, m, i, j] = sum_{p, q, c} weight[i, j, m, p, q, c] * x[n, c, i*s + p, j*s + q]

This is a convolution whose weights differ at every location (Le et al. 2012 use it for the
filtering sublayers, encoder W1 and decoder W2). The transpose maps features back to the input
grid with the same connectivity; it is the decoder and the input gradient of the layer.

Five kernel sets compute the three primitive maps (forward, transpose, weight gradient):
``lc_native`` (C++, CPU float32, the fast path there), ``lc_bf16`` (C++, CPU, bfloat16 multiplies
with float32 sums: ``precision="bf16"`` on a CPU with AVX-512 BF16), ``lc_triton`` (fused Triton
kernels: CUDA float32 when the triton package is installed), ``lc_batched`` (one batched matmul per
band of output rows: CUDA without triton, any accelerator's dtype, reduced precision on the CPU)
and ``lc_torch`` (row by row: the CPU fallback for float64 or without a compiler).
``backend="auto"`` picks by device and dtype in that order of preference. ``precision`` ("fp32", "tf32", "bf16") sets the multiplies'
precision; where the CPU cannot multiply in bfloat16, bf16 computes in float32 and says so once.
"""
from __future__ import annotations

import math
import warnings
from typing import Literal

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from catneuron.nn import lc_batched, lc_bf16, lc_native, lc_torch, lc_triton
from catneuron.nn.geometry import output_size

Backend = Literal["auto", "native", "triton", "batched", "torch"]
Precision = Literal["fp32", "tf32", "bf16"]


def select_kernels(backend: Backend, precision: Precision, *tensors: torch.Tensor):
    """(kernel module, its keyword options) for these tensors."""
    if precision == "bf16" and backend in ("auto", "native") and tensors[0].device.type == "cpu":
        if lc_bf16.supports(*tensors):
            return lc_bf16, {}
        warnings.warn("catneuron: precision bf16 needs AVX-512 BF16 and a C++ compiler on the CPU (or "
                      "CATNEURON_CPU_BF16 is 0); the locally connected layers compute in float32",
                      RuntimeWarning, stacklevel=2)
        precision = "fp32"
    if backend == "triton" or (backend == "auto" and tensors[0].device.type == "cuda" and lc_triton.supports(*tensors)):
        if not lc_triton.supports(*tensors):
            raise RuntimeError("the triton locally connected kernel needs the triton package, float32 CUDA tensors "
                               "and a GPU it builds for (a warning said what failed; on the CPU: TRITON_INTERPRET=1, "
                               "slowly, for tests)")
        return lc_triton, {"precision": precision}
    if backend == "batched" or precision != "fp32":
        if backend in ("native", "torch"):
            cpu_bf16 = precision == "bf16" and tensors[0].device.type == "cpu"
            raise RuntimeError(f"precision {precision} needs backend auto, batched{' or native' if cpu_bf16 else ''}; "
                               f"the {backend} kernel computes at the tensors' precision fp32")
        return lc_batched, {"precision": precision}
    if backend in ("auto", "native") and lc_native.supports(*tensors):
        return lc_native, {}
    if backend == "native":
        raise RuntimeError("the native locally connected kernel needs float32 CPU tensors and a C++ compiler")
    if backend == "auto" and tensors[0].device.type != "cpu":
        return lc_batched, {"precision": precision}
    return lc_torch, {}


class _LocallyConnected(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, stride, backend, precision):
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.backend, ctx.precision = stride, backend, precision
        k, opts = select_kernels(backend, precision, x, weight)
        return k.forward(x, weight, stride, **opts)

    @staticmethod
    @once_differentiable
    def backward(ctx, dy):
        x, weight = ctx.saved_tensors
        k, opts = select_kernels(ctx.backend, ctx.precision, x, weight, dy)
        dy = dy.contiguous()
        dx = k.transpose(dy, weight, ctx.stride, x.shape[-2:], **opts) if ctx.needs_input_grad[0] else None
        dw = k.weight_grad(x, dy, ctx.stride, weight.shape[3], **opts) if ctx.needs_input_grad[1] else None
        return dx, dw, None, None, None


class _LocallyConnectedTranspose(torch.autograd.Function):
    @staticmethod
    def forward(ctx, y, weight, stride, in_size, backend, precision):
        ctx.save_for_backward(y, weight)
        ctx.stride, ctx.backend, ctx.precision = stride, backend, precision
        k, opts = select_kernels(backend, precision, y, weight)
        return k.transpose(y, weight, stride, in_size, **opts)

    @staticmethod
    @once_differentiable
    def backward(ctx, dx):
        y, weight = ctx.saved_tensors
        k, opts = select_kernels(ctx.backend, ctx.precision, y, weight, dx)
        dx = dx.contiguous()
        dy = k.forward(dx, weight, ctx.stride, **opts) if ctx.needs_input_grad[0] else None
        dw = k.weight_grad(dx, y, ctx.stride, weight.shape[3], **opts) if ctx.needs_input_grad[1] else None
        return dy, dw, None, None, None, None


def locally_connected(x: torch.Tensor, weight: torch.Tensor, stride: int = 1, backend: Backend = "auto",
                      precision: Precision = "fp32") -> torch.Tensor:
    """x (N, C, H, W), weight (Ho, Wo, M, r, r, C) -> (N, M, Ho, Wo)."""
    return _LocallyConnected.apply(x.contiguous(), weight, stride, backend, precision)


def locally_connected_transpose(y: torch.Tensor, weight: torch.Tensor, stride: int, in_size: tuple[int, int],
                                backend: Backend = "auto", precision: Precision = "fp32") -> torch.Tensor:
    """The adjoint of ``locally_connected``: y (N, M, Ho, Wo) -> (N, C, H, W)."""
    return _LocallyConnectedTranspose.apply(y.contiguous(), weight, stride, tuple(in_size), backend, precision)


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


class LocallyConnected2d(nn.Module):
    """Locally connected filtering: (N, C, H, W) -> (N, M, Ho, Wo), Ho = (H - r) // stride + 1.

    ``weight`` has shape (Ho, Wo, M, r, r, C): M filters of r x r x C at each output location,
    connected to all input channels. No bias, as in the paper's W1^T x.
    """

    def __init__(self, in_channels: int, out_maps: int, in_size: int | tuple[int, int], receptive_field: int,
                 stride: int = 1, backend: Backend = "auto", precision: Precision = "fp32", device=None,
                 dtype=None):
        super().__init__()
        H, W = _pair(in_size)
        if receptive_field > min(H, W):
            raise ValueError(f"receptive_field {receptive_field} is larger than the input {H}x{W}")
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        self.in_channels, self.out_maps, self.in_size = in_channels, out_maps, (H, W)
        self.receptive_field, self.stride, self.backend, self.precision = receptive_field, stride, backend, precision
        self.out_size = (output_size(H, receptive_field, stride), output_size(W, receptive_field, stride))
        self.weight = nn.Parameter(torch.empty(*self.out_size, out_maps, receptive_field, receptive_field,
                                               in_channels, device=device, dtype=dtype))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        fan_in = self.receptive_field ** 2 * self.in_channels
        nn.init.normal_(self.weight, std=1.0 / math.sqrt(fan_in))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return locally_connected(x, self.weight, self.stride, self.backend, self.precision)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_maps}, in_size={self.in_size}, "
                f"receptive_field={self.receptive_field}, stride={self.stride}, out_size={self.out_size}")


class LocallyConnectedTranspose2d(LocallyConnected2d):
    """The decoder of a LocallyConnected2d with the same geometry: (N, M, Ho, Wo) -> (N, C, H, W).

    ``weight[i, j, m]`` is the r x r x C basis that feature (m, i, j) adds to the reconstruction.
    Input positions no filter covers (when (H - r) is not a multiple of the stride) stay zero.
    """

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return locally_connected_transpose(y, self.weight, self.stride, self.in_size, self.backend, self.precision)
