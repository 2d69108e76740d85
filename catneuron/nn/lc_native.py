"""The native CPU kernel for locally connected layers (catneuron/kernels/lc_cpu.cpp).

Built on first use (see catneuron.native); when it cannot be, callers use the PyTorch kernels.

Shapes are those of lc_torch: x (N, C, H, W), y (N, M, Ho, Wo), weight (Ho, Wo, M, r, r, C),
float32, CPU.
"""
from __future__ import annotations

import ctypes
import functools

import torch

from catneuron import native

@functools.lru_cache(maxsize=1)
def library() -> ctypes.CDLL | None:
    """The kernel library with its signatures declared, or None when it cannot be built."""
    lib = native.load("lc_cpu")
    if lib is None:
        return None
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    lib.catneuron_lc_forward.argtypes = [ptr, ptr, ptr] + [i64] * 9 + [ctypes.c_int]
    lib.catneuron_lc_transpose.argtypes = [ptr, ptr, ptr] + [i64] * 9 + [ctypes.c_int]
    lib.catneuron_lc_weight_grad.argtypes = [ptr, ptr, ptr] + [i64] * 11 + [ctypes.c_int]
    lib.catneuron_to_batch_last.argtypes = [ptr, ptr] + [i64] * 4 + [ctypes.c_int]
    lib.catneuron_from_batch_last.argtypes = [ptr, ptr] + [i64] * 4 + [ctypes.c_int]
    lib.catneuron_to_rows.argtypes = [ptr, ptr] + [i64] * 5 + [ctypes.c_int]
    lib.catneuron_lc_vector_width.restype = ctypes.c_int
    return lib


def available() -> bool:
    return library() is not None


def supports(*tensors: torch.Tensor) -> bool:
    return all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors) and available()


def _padded(n: int, lib: ctypes.CDLL) -> int:
    v = lib.catneuron_lc_vector_width()
    return (n + v - 1) // v * v


def _batch_last(lib, t: torch.Tensor, padded: int) -> torch.Tensor:
    """(N, C, H, W) -> (H, W, C, padded) with the extra samples zero."""
    N, C, H, W = t.shape
    t = t.contiguous()
    out = t.new_empty(H, W, C, padded)
    lib.catneuron_to_batch_last(_ptr(t), _ptr(out), N, C, H * W, padded, torch.get_num_threads())
    return out


def from_batch_last(t: torch.Tensor, n: int) -> torch.Tensor:
    """(H, W, C, padded) float32 -> (n, C, H, W): the first n samples, in PyTorch's layout."""
    lib = library()
    H, W, C, padded = t.shape
    out = t.new_empty(n, C, H, W)
    lib.catneuron_from_batch_last(_ptr(t), _ptr(out), n, C, H * W, padded, torch.get_num_threads())
    return out


def _rows(lib, t: torch.Tensor, pad: int) -> torch.Tensor:
    """(N, C, H, W) -> (H, N, W*C + pad): per (row, sample), the row's values with channels innermost."""
    N, C, H, W = t.shape
    t = t.contiguous()
    out = t.new_empty(H, N, W * C + pad)
    lib.catneuron_to_rows(_ptr(t), _ptr(out), N, C, H, W, W * C + pad, torch.get_num_threads())
    return out


def _ptr(t: torch.Tensor) -> ctypes.c_void_p:
    return ctypes.c_void_p(t.data_ptr())


def forward(x: torch.Tensor, weight: torch.Tensor, stride: int) -> torch.Tensor:
    lib = library()
    N, C, H, W = x.shape
    Ho, Wo, M, r, _, _ = weight.shape
    NP = _padded(N, lib)
    xp, w = _batch_last(lib, x, NP), weight.contiguous()
    y = x.new_empty(Ho, Wo, M, NP)
    lib.catneuron_lc_forward(_ptr(xp), _ptr(w), _ptr(y), H, W, C, NP, Ho, Wo, M, r, stride,
                             torch.get_num_threads())
    return from_batch_last(y, N)


def transpose(y: torch.Tensor, weight: torch.Tensor, stride: int, in_size: tuple[int, int]) -> torch.Tensor:
    lib = library()
    N, M, Ho, Wo = y.shape
    _, _, _, r, _, C = weight.shape
    H, W = in_size
    NP = _padded(N, lib)
    yp, w = _batch_last(lib, y, NP), weight.contiguous()
    x = y.new_empty(H, W, C, NP)
    lib.catneuron_lc_transpose(_ptr(yp), _ptr(w), _ptr(x), H, W, C, NP, Ho, Wo, M, r, stride,
                               torch.get_num_threads())
    return from_batch_last(x, N)


def weight_grad(x: torch.Tensor, y: torch.Tensor, stride: int, receptive_field: int) -> torch.Tensor:
    lib = library()
    N, C, H, W = x.shape
    _, M, Ho, Wo = y.shape
    NP = _padded(N, lib)
    vector = lib.catneuron_lc_vector_width()
    # The tail pad of each row absorbs the over-read of the last tile.
    xt = _rows(lib, x, vector)
    yp = _batch_last(lib, y, NP)
    dw = x.new_empty(Ho, Wo, M, receptive_field, receptive_field, C)
    lib.catneuron_lc_weight_grad(_ptr(xt), _ptr(yp), _ptr(dw), H, W, C, N, NP, W * C + vector, Ho, Wo, M,
                                 receptive_field, stride, torch.get_num_threads())
    return dw
