"""The native CPU kernel for locally connected layers (kernels/lc_cpu.cpp), built on first use.

The C++ source has no dependency on torch headers, so it compiles in about a second with the
system C++ compiler and is loaded with ctypes. The library is cached per source, compiler
flags and CPU (it is built with -march=native, so a cache shared between different machines
must not mix them). When no compiler is available or the build fails, callers fall back to the
PyTorch kernels with one warning.

Shapes are those of lc_torch: x (N, C, H, W), y (N, M, Ho, Wo), weight (Ho, Wo, M, r, r, C),
float32, CPU.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import subprocess
import tempfile
import warnings
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("kernels") / "lc_cpu.cpp"


def cache_dir() -> Path:
    root = os.environ.get("CATNEURON_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "catneuron")
    return Path(root) / "kernels"


def _cpu_signature() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith(("flags", "Features"))), "")
    except OSError:
        flags = ""
    return f"{platform.machine()}|{platform.processor()}|{flags}"


def _compile_command(output: Path) -> list[str]:
    machine = platform.machine().lower()
    arch = ["-march=native"] if machine in ("x86_64", "amd64", "i686") else (
        ["-mcpu=native"] if machine in ("aarch64", "arm64") else [])
    cxx = os.environ.get("CXX", "c++")
    return [cxx, "-O3", "-std=c++17", "-shared", "-fPIC", "-pthread", *arch, str(SOURCE), "-o", str(output)]


def build(directory: Path | None = None) -> Path:
    """Compile the kernel library if it is not cached yet; returns its path. Raises on failure."""
    directory = directory or cache_dir()
    source = SOURCE.read_bytes()
    key = hashlib.sha256(source + " ".join(_compile_command(Path("x"))).encode() + _cpu_signature().encode())
    target = directory / f"lc_cpu-{key.hexdigest()[:16]}.so"
    if target.exists():
        return target
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".so.tmp")
    os.close(fd)
    try:
        result = subprocess.run(_compile_command(Path(tmp)), capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"compiling {SOURCE.name} failed:\n{result.stderr.strip()}")
        os.replace(tmp, target)  # atomic: concurrent builders each publish a complete file
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


@functools.lru_cache(maxsize=1)
def library() -> ctypes.CDLL | None:
    """The loaded kernel library, or None (with one warning) when it cannot be built."""
    if os.environ.get("CATNEURON_LC_BACKEND", "auto") == "torch":
        return None
    try:
        lib = ctypes.CDLL(str(build()))
    except (OSError, RuntimeError) as err:
        warnings.warn(f"catneuron: native locally connected kernel unavailable, using the slower PyTorch "
                      f"kernels ({str(err).splitlines()[0]})", RuntimeWarning, stacklevel=2)
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


def _batch_first(lib, t: torch.Tensor, n: int) -> torch.Tensor:
    """(H, W, C, padded) -> (n, C, H, W)."""
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
    return _batch_first(lib, y, N)


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
    return _batch_first(lib, x, N)


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
