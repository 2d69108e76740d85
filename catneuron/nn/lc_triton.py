"""Locally connected kernels in Triton: the fused GPU path (cuda-convnet's filterActs idea).

One program per output location (and block of the batch, or of the filter's inputs) gathers the
location's input patch straight from a channels-last copy of x and multiplies it with that
location's own weights, so no unfolded patch buffer is ever written (lc_batched writes r*r copies
of every input value) and each weight is read once per batch:

    forward      y[l] (N, M) = patch[l] (N, K) @ w[l]^T (K, M)      grid (L), loop over N
    weight_grad dw[l] (M, K) = dy[l]^T (M, N) @ patch[l] (N, K)     grid (L, K / BLOCK_K), loop over N
    transpose   dx[patch[l]] += dy[l] (N, M) @ w[l] (M, K)           grid (L, N / BLOCK_N, K / BLOCK_K)

K = r*r*C in the weights' (p, q, c) order; in channels-last x the r*C values of one kernel row
are contiguous, so a patch is r contiguous runs. The M maps (8 in the paper) are padded to the
16 columns a tensor-core dot needs, in registers only. The transpose adds each location's
contribution with float32 atomics: overlapping fields make neighbouring locations write the
same inputs, and atomics avoid a second pass, at the price of a summation order (and so the
last bits of dx) that varies from run to run, as cuDNN's convolution gradients do by default.

precision: "fp32" (IEEE float32 multiplies), "tf32" (tensor-core TF32), "bf16" (operands rounded
to bfloat16, float32 accumulation); results come back in the input's dtype (float32).

Off a GPU the kernels run in Triton's interpreter (TRITON_INTERPRET=1, set before triton is first
imported: tests/conftest.py does so on a machine without CUDA): slowly, but the same programs,
which is how the tests check them against the reference kernels on the CPU. The
interpreter cannot multiply bfloat16 operands, so there bf16 rounds them and multiplies in float32
(the same arithmetic). Block sizes are fixed, not autotuned: no GPU has measured them yet
(bench/device_check.sh does).

Shapes: x (N, C, H, W), y (N, M, Ho, Wo), weight (Ho, Wo, M, r, r, C).
"""
from __future__ import annotations

import contextlib
import functools
import os
import warnings

import torch

try:
    import triton
    import triton.language as tl
except ImportError:       # an optional dependency: `auto` falls back to lc_batched without it
    triton = tl = None

PRECISIONS = ("fp32", "tf32", "bf16")
BLOCK_N, BLOCK_K = 64, 64


def available() -> bool:
    return triton is not None


def interpreting() -> bool:
    if triton is None:
        return False
    knobs = getattr(triton, "knobs", None)           # older triton has no knobs: the variable itself
    return bool(knobs.runtime.interpret) if knobs is not None else os.environ.get("TRITON_INTERPRET") == "1"


def supports(*tensors: torch.Tensor) -> bool:
    """Float32 tensors on a CUDA device where the kernels compile and agree with lc_batched, or on
    the CPU under Triton's interpreter."""
    if triton is None or any(t.dtype != torch.float32 for t in tensors):
        return False
    device = tensors[0].device
    if device.type == "cuda":
        return launch_problem(str(device)) is None
    return device.type == "cpu" and interpreting()


@functools.cache
def launch_problem(device: str) -> str | None:
    """None if the three kernels compile on `device` and agree with lc_batched on a small layer;
    else why not (said once: `auto` then falls back to lc_batched). Triton builds its launcher with
    the machine's C compiler and ptxas at first use, which a machine may lack."""
    from catneuron.nn import lc_batched
    try:
        g = torch.Generator(device).manual_seed(0)
        x = torch.randn(3, 2, 9, 9, device=device, generator=g)
        dy = torch.randn(3, 5, 3, 3, device=device, generator=g)
        w = torch.randn(3, 3, 5, 3, 3, 2, device=device, generator=g)
        ours = forward(x, w, 3), transpose(dy, w, 3, (9, 9)), weight_grad(x, dy, 3, 3)
        reference = (lc_batched.forward(x, w, 3), lc_batched.transpose(dy, w, 3, (9, 9)),
                     lc_batched.weight_grad(x, dy, 3, 3))
        if not all(torch.allclose(a, b, rtol=1e-3, atol=1e-3) for a, b in zip(ours, reference)):
            problem = "their results differ from lc_batched's"
        else:
            return None
    except Exception as err:        # noqa: BLE001 - any failure to build or launch means: do not use them
        problem = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    warnings.warn(f"catneuron: the Triton locally connected kernels do not run on {device} ({problem}); "
                  f"using lc_batched", RuntimeWarning, stacklevel=2)
    return problem


def _jit(fn):
    return triton.jit(fn) if triton is not None else fn


@_jit
def _forward(x, w, y, N, M, K, Wo, rC, xs_n, xs_h, row_step, col_step,
             BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr, PRECISION: tl.constexpr):
    l = tl.program_id(0).to(tl.int64)
    m = tl.arange(0, BLOCK_M)
    base = (l // Wo) * row_step + (l % Wo) * col_step
    # every batch block in this program: the location's weights come back from cache, not memory
    for n0 in range(0, N, BLOCK_N):
        n = (n0 + tl.arange(0, BLOCK_N)).to(tl.int64)
        acc = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
        for k0 in range(0, K, BLOCK_K):
            k = k0 + tl.arange(0, BLOCK_K)
            p = k // rC
            a = tl.load(x + n[:, None] * xs_n + (base + p * xs_h + k - p * rC)[None, :],
                        mask=(n[:, None] < N) & (k[None, :] < K), other=0.0)
            b = tl.load(w + l * M * K + m[None, :] * K + k[:, None], mask=(k[:, None] < K) & (m[None, :] < M),
                        other=0.0)
            if PRECISION == "bf16":
                acc += tl.dot(a.to(tl.bfloat16), b.to(tl.bfloat16))
            elif PRECISION == "bf16-rounded":
                acc += tl.dot(a.to(tl.bfloat16).to(tl.float32), b.to(tl.bfloat16).to(tl.float32),
                              input_precision="ieee")
            else:
                acc += tl.dot(a, b, input_precision=PRECISION)
        tl.store(y + l * N * M + n[:, None] * M + m[None, :], acc, mask=(n[:, None] < N) & (m[None, :] < M))


@_jit
def _weight_grad(x, dy, dw, N, M, K, Wo, rC, xs_n, xs_h, row_step, col_step,
                 BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr, PRECISION: tl.constexpr):
    l = tl.program_id(0).to(tl.int64)
    k = tl.program_id(1) * BLOCK_K + tl.arange(0, BLOCK_K)
    m = tl.arange(0, BLOCK_M)
    p = k // rC
    offsets = (l // Wo) * row_step + (l % Wo) * col_step + p * xs_h + k - p * rC
    acc = tl.zeros((BLOCK_M, BLOCK_K), dtype=tl.float32)
    for n0 in range(0, N, BLOCK_N):
        n = (n0 + tl.arange(0, BLOCK_N)).to(tl.int64)
        a = tl.load(dy + l * N * M + n[None, :] * M + m[:, None], mask=(m[:, None] < M) & (n[None, :] < N), other=0.0)
        b = tl.load(x + n[:, None] * xs_n + offsets[None, :], mask=(n[:, None] < N) & (k[None, :] < K), other=0.0)
        if PRECISION == "bf16":
            acc += tl.dot(a.to(tl.bfloat16), b.to(tl.bfloat16))
        elif PRECISION == "bf16-rounded":
            acc += tl.dot(a.to(tl.bfloat16).to(tl.float32), b.to(tl.bfloat16).to(tl.float32), input_precision="ieee")
        else:
            acc += tl.dot(a, b, input_precision=PRECISION)
    tl.store(dw + l * M * K + m[:, None] * K + k[None, :], acc, mask=(m[:, None] < M) & (k[None, :] < K))


@_jit
def _transpose(dy, w, dx, N, M, K, Wo, rC, xs_n, xs_h, row_step, col_step,
               BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr, PRECISION: tl.constexpr):
    l = tl.program_id(0).to(tl.int64)
    n = (tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)).to(tl.int64)
    k = tl.program_id(2) * BLOCK_K + tl.arange(0, BLOCK_K)
    m = tl.arange(0, BLOCK_M)
    p = k // rC
    offsets = (l // Wo) * row_step + (l % Wo) * col_step + p * xs_h + k - p * rC
    a = tl.load(dy + l * N * M + n[:, None] * M + m[None, :], mask=(n[:, None] < N) & (m[None, :] < M), other=0.0)
    b = tl.load(w + l * M * K + m[:, None] * K + k[None, :], mask=(m[:, None] < M) & (k[None, :] < K), other=0.0)
    if PRECISION == "bf16":
        cols = tl.dot(a.to(tl.bfloat16), b.to(tl.bfloat16))
    elif PRECISION == "bf16-rounded":
        cols = tl.dot(a.to(tl.bfloat16).to(tl.float32), b.to(tl.bfloat16).to(tl.float32), input_precision="ieee")
    else:
        cols = tl.dot(a, b, input_precision=PRECISION)
    # relaxed: only the sums matter, not the order other programs see them in
    tl.atomic_add(dx + n[:, None] * xs_n + offsets[None, :], cols, mask=(n[:, None] < N) & (k[None, :] < K),
                  sem="relaxed")


def _require() -> None:
    if triton is None:
        raise RuntimeError("model.backend triton needs the triton package (pip install triton)")


def _dot_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    if precision == "bf16":
        return "bf16-rounded" if interpreting() else "bf16"
    return "ieee" if precision == "fp32" else "tf32"


def _geometry(x_last: torch.Tensor, weight_shape, stride: int) -> tuple:
    """The integer arguments every kernel takes, for channels-last x (N, H, W, C)."""
    Ho, Wo, M, r, _, C = weight_shape
    N, H, W, _ = x_last.shape
    return N, M, r * r * C, Wo, r * C, H * W * C, W * C, stride * W * C, stride * C


def _blocks(M: int) -> dict:
    return dict(BLOCK_N=BLOCK_N, BLOCK_M=max(16, triton.next_power_of_2(M)), BLOCK_K=BLOCK_K)


def _on(device: torch.device):
    """Triton launches on the current CUDA device, whichever the tensors are on."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


def _channels_last(t: torch.Tensor) -> torch.Tensor:
    return t.permute(0, 2, 3, 1).contiguous()


def _per_location(t: torch.Tensor) -> torch.Tensor:
    """(N, M, Ho, Wo) -> (Ho*Wo, N, M): each location's (N, M) block contiguous."""
    return t.permute(2, 3, 0, 1).reshape(-1, t.shape[0], t.shape[1]).contiguous()


def forward(x: torch.Tensor, weight: torch.Tensor, stride: int, precision: str = "fp32") -> torch.Tensor:
    _require()
    Ho, Wo, M = weight.shape[:3]
    x_last = _channels_last(x)
    args = _geometry(x_last, weight.shape, stride)
    N = args[0]
    y = torch.empty(Ho * Wo, N, M, device=x.device, dtype=torch.float32)
    with _on(x.device):
        _forward[(Ho * Wo,)](x_last, weight.contiguous(), y, *args, **_blocks(M), PRECISION=_dot_precision(precision))
    return y.view(Ho, Wo, N, M).permute(2, 3, 0, 1).contiguous().to(x.dtype)


def weight_grad(x: torch.Tensor, dy: torch.Tensor, stride: int, receptive_field: int,
                precision: str = "fp32") -> torch.Tensor:
    _require()
    N, C = x.shape[:2]
    _, M, Ho, Wo = dy.shape
    r = receptive_field
    x_last = _channels_last(x)
    args = _geometry(x_last, (Ho, Wo, M, r, r, C), stride)
    dw = torch.empty(Ho, Wo, M, r, r, C, device=x.device, dtype=torch.float32)
    grid = (Ho * Wo, triton.cdiv(r * r * C, BLOCK_K))
    with _on(x.device):
        _weight_grad[grid](x_last, _per_location(dy), dw, *args, **_blocks(M), PRECISION=_dot_precision(precision))
    return dw.to(x.dtype)


def transpose(dy: torch.Tensor, weight: torch.Tensor, stride: int, in_size: tuple[int, int],
              precision: str = "fp32") -> torch.Tensor:
    _require()
    Ho, Wo, M, r, _, C = weight.shape
    H, W = in_size
    N = dy.shape[0]
    dx_last = torch.zeros(N, H, W, C, device=dy.device, dtype=torch.float32)
    args = _geometry(dx_last, weight.shape, stride)
    grid = (Ho * Wo, triton.cdiv(N, BLOCK_N), triton.cdiv(r * r * C, BLOCK_K))
    with _on(dy.device):
        _transpose[grid](_per_location(dy), weight.contiguous(), dx_last, *args, **_blocks(M),
                         PRECISION=_dot_precision(precision))
    return dx_last.permute(0, 3, 1, 2).contiguous().to(dy.dtype)
