"""The native CPU kernel in bfloat16 (catneuron/kernels/lc_bf16.cpp): ``model.precision = "bf16"`` on the CPU.

Operands are rounded to bfloat16 as they are packed into the kernel's layouts; products are summed
in float32 and every result is float32, so the weights, their gradients and the optimizer's state
stay float32 (the master copy). It needs AVX-512 BF16 (``vdpbf16ps``: AMD Zen 4 and later, Intel
Cooper Lake, Sapphire Rapids and later); ``available()`` is False on other CPUs, without a
compiler, or when the environment sets ``CATNEURON_CPU_BF16=0``, and callers then compute in
float32 (catneuron.nn.local says so once).

Shapes are those of lc_torch: x (N, C, H, W), y (N, M, Ho, Wo), weight (Ho, Wo, M, r, r, C),
float32, CPU. Activations are rounded into the kernels' layouts here, one pass each; the weights
are rounded inside the kernels, a location (or an output row's kernel row) at a time into a buffer
its tiles reuse from cache, so no packed copy of the weights is ever written to memory.
"""
from __future__ import annotations

import ctypes
import functools
import os

import torch

from catneuron import native
from catneuron.nn import lc_native

VECTOR = 16     # float32 lanes of the kernel's vectors: the batch is padded to a multiple


@functools.lru_cache(maxsize=1)
def library() -> ctypes.CDLL | None:
    """The kernel library with its signatures declared, or None when it cannot be built or this
    CPU lacks the instructions."""
    lib = native.load("lc_bf16")
    if lib is None or not lib.catneuron_bf16_supported():
        return None
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    for name in ("catneuron_lc_forward_bf16", "catneuron_lc_transpose_bf16"):
        getattr(lib, name).argtypes = [ptr, ptr, ptr] + [i64] * 9 + [ctypes.c_int]
    lib.catneuron_lc_weight_grad_bf16.argtypes = [ptr, ptr, ptr] + [i64] * 10 + [ctypes.c_int]
    lib.catneuron_bf16_pairs_over_k.argtypes = [ptr, ptr] + [i64] * 5 + [ctypes.c_int] * 2
    lib.catneuron_bf16_pairs_over_n.argtypes = [ptr, ptr] + [i64] * 5 + [ctypes.c_int]
    lib.catneuron_bf16_batch_last.argtypes = [ptr, ptr] + [i64] * 4 + [ctypes.c_int]
    lib.catneuron_bf16_pairs_over_m.argtypes = [ptr, ptr] + [i64] * 4 + [ctypes.c_int]
    return lib


def available() -> bool:
    # lc_native's layout pass brings the outputs back to PyTorch's layout.
    return os.environ.get("CATNEURON_CPU_BF16", "1") != "0" and library() is not None and lc_native.available()


def supports(*tensors: torch.Tensor) -> bool:
    return all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors) and available()


def _padded(n: int) -> int:
    return (n + VECTOR - 1) // VECTOR * VECTOR


def _ptr(t: torch.Tensor) -> ctypes.c_void_p:
    return ctypes.c_void_p(t.data_ptr())


def _bf16(*shape: int) -> torch.Tensor:
    return torch.empty(*shape, dtype=torch.bfloat16)


def _threads() -> int:
    return torch.get_num_threads()


# Each operand into its kernel's layout (catneuron/kernels/lc_bf16.cpp), rounded to bfloat16.

def _pairs_over_k(x: torch.Tensor, stride: int) -> torch.Tensor:
    """x (N, C, H, W) -> (1 or 2, H, WC2, NP, 2): the forward's input, pairs along each row."""
    x = x.contiguous()
    N, C, H, W = x.shape
    odd_starts = stride * C % 2    # runs start at odd columns too: the kernel reads both pairings
    xq = _bf16(1 + odd_starts, H, (W * C + 2) // 2, _padded(N), 2)
    library().catneuron_bf16_pairs_over_k(_ptr(x), _ptr(xq), N, C, H, W, _padded(N), odd_starts, _threads())
    return xq


def _pairs_over_n(x: torch.Tensor) -> torch.Tensor:
    """x (N, C, H, W) -> (H, NP/2, W*C + 16, 2): the weight gradient's input, pairs of samples."""
    x = x.contiguous()
    N, C, H, W = x.shape
    xn = _bf16(H, _padded(N) // 2, W * C + VECTOR, 2)
    library().catneuron_bf16_pairs_over_n(_ptr(x), _ptr(xn), N, C, H, W, _padded(N), _threads())
    return xn


def _batch_last(y: torch.Tensor) -> torch.Tensor:
    """y (N, M, Ho, Wo) -> (Ho, Wo, M, NP): the weight gradient's output gradient."""
    y = y.contiguous()
    N, M, Ho, Wo = y.shape
    yb = _bf16(Ho, Wo, M, _padded(N))
    library().catneuron_bf16_batch_last(_ptr(y), _ptr(yb), N, M, Ho * Wo, _padded(N), _threads())
    return yb


def _pairs_over_m(y: torch.Tensor) -> torch.Tensor:
    """y (N, M, Ho, Wo) -> (Ho*Wo, M2, NP, 2): the transpose's input, pairs of maps."""
    y = y.contiguous()
    N, M, Ho, Wo = y.shape
    yq = _bf16(Ho * Wo, (M + 1) // 2, _padded(N), 2)
    library().catneuron_bf16_pairs_over_m(_ptr(y), _ptr(yq), N, M, Ho * Wo, _padded(N), _threads())
    return yq


def layout_passes(x: torch.Tensor, y: torch.Tensor, stride: int) -> dict:
    """name -> call, for each layout pass of one forward + backward (bench/lc_kernels.py times them)."""
    return {"bf16 pairs over k (x, forward)": lambda: _pairs_over_k(x, stride),
            "bf16 pairs over n (x, weight grad)": lambda: _pairs_over_n(x),
            "bf16 batch-last (y, weight grad)": lambda: _batch_last(y),
            "bf16 pairs over m (y, transpose)": lambda: _pairs_over_m(y)}


def forward(x: torch.Tensor, weight: torch.Tensor, stride: int) -> torch.Tensor:
    N, C, H, W = x.shape
    Ho, Wo, M, r, _, _ = weight.shape
    # Operands are named: a temporary's memory would be freed before the kernel reads it.
    xq, w, y = _pairs_over_k(x, stride), weight.contiguous(), x.new_empty(Ho, Wo, M, _padded(N))
    library().catneuron_lc_forward_bf16(_ptr(xq), _ptr(w), _ptr(y), H, W, C, _padded(N), Ho, Wo, M, r, stride,
                                        _threads())
    return lc_native.from_batch_last(y, N)


def transpose(y: torch.Tensor, weight: torch.Tensor, stride: int, in_size: tuple[int, int]) -> torch.Tensor:
    N, M, Ho, Wo = y.shape
    _, _, _, r, _, C = weight.shape
    H, W = in_size
    yq, w, x = _pairs_over_m(y), weight.contiguous(), y.new_empty(H, W, C, _padded(N))
    library().catneuron_lc_transpose_bf16(_ptr(yq), _ptr(w), _ptr(x), H, W, C, _padded(N), Ho, Wo, M, r, stride,
                                          _threads())
    return lc_native.from_batch_last(x, N)


def weight_grad(x: torch.Tensor, y: torch.Tensor, stride: int, receptive_field: int) -> torch.Tensor:
    N, C, H, W = x.shape
    _, M, Ho, Wo = y.shape
    xn, yb = _pairs_over_n(x), _batch_last(y)
    dw = x.new_empty(Ho, Wo, M, receptive_field, receptive_field, C)
    library().catneuron_lc_weight_grad_bf16(_ptr(xn), _ptr(yb), _ptr(dw), H, W, C, _padded(N), Ho, Wo, M,
                                            receptive_field, stride, N, _threads())
    return dw
