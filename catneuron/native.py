"""Native CPU kernels (catneuron/kernels/*.cpp), compiled on first use and loaded with ctypes.

The sources have no dependency on torch headers, so each compiles in about a second with the
system C++ compiler. Libraries are cached per source, compiler flags and CPU (they are built with
-march=native, so a cache shared between different machines must not mix them). When no compiler
is available or a build fails, `load` returns None after one warning and callers use their
PyTorch path.

Not torch.utils.cpp_extension.load: it builds a Python extension module against libtorch
(pybind11, ninja, a compiler matching PyTorch's ABI, most of a minute per build); these kernels take
raw pointers through ctypes and need none of it.
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

KERNELS = Path(__file__).with_name("kernels")


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


def _compile_command(source: Path, output: Path) -> list[str]:
    machine = platform.machine().lower()
    arch = ["-march=native"] if machine in ("x86_64", "amd64", "i686") else (
        ["-mcpu=native"] if machine in ("aarch64", "arm64") else [])
    cxx = os.environ.get("CXX", "c++")
    return [cxx, "-O3", "-std=c++17", "-shared", "-fPIC", "-pthread", *arch, str(source), "-o", str(output)]


def build(name: str, directory: Path | None = None) -> Path:
    """Compile kernels/<name>.cpp if it is not cached yet; returns the library's path. Raises on failure."""
    source = KERNELS / f"{name}.cpp"
    directory = directory or cache_dir()
    headers = b"".join(h.read_bytes() for h in sorted(KERNELS.glob("*.h")))   # included by the sources
    key = hashlib.sha256(source.read_bytes() + headers + " ".join(_compile_command(Path("s"), Path("x"))).encode()
                         + _cpu_signature().encode())
    target = directory / f"{name}-{key.hexdigest()[:16]}.so"
    if target.exists():
        return target
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".so.tmp")
    os.close(fd)
    try:
        result = subprocess.run(_compile_command(source, Path(tmp)), capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"compiling {source.name} failed:\n{result.stderr.strip()}")
        os.replace(tmp, target)  # atomic: concurrent builders each publish a complete file
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


@functools.lru_cache(maxsize=None)
def load(name: str) -> ctypes.CDLL | None:
    """The loaded library kernels/<name>.cpp, or None (with one warning) when it cannot be built.
    CATNEURON_NATIVE=0 turns every native kernel off."""
    if os.environ.get("CATNEURON_NATIVE", "1") == "0" or os.environ.get("CATNEURON_LC_BACKEND") == "torch":
        return None
    try:
        return ctypes.CDLL(str(build(name)))
    except (OSError, RuntimeError) as err:
        warnings.warn(f"catneuron: native kernel {name} unavailable, using the slower PyTorch path "
                      f"({str(err).splitlines()[0]})", RuntimeWarning, stacklevel=2)
        return None
