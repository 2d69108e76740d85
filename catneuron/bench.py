"""``catneuron bench``: the locally connected layer against its baselines, in one process.

For each layer shape, forward + backward (input and weight gradients) of
  native        our C++ kernel (lc_native; CPU)
  native-bf16   our C++ kernel in bfloat16 (lc_bf16; CPU with AVX-512 BF16): model.precision bf16
  torch         our row-by-row matmul kernel (lc_torch; the CPU fallback)
  triton        our fused Triton kernels (lc_triton; CUDA with triton), also at tf32 and bf16
  batched       our banded batched-matmul kernel (lc_batched; CUDA without triton), and on CUDA
                also at precision tf32 and bf16
  naive         F.unfold + einsum (the obvious PyTorch implementation)
  conv2d        torch.nn.functional.conv2d of the same shape (shared weights, the vendor kernel)
and a large matmul for the device's peaks in fp32 and bf16 (on CUDA also TF32). Each row's "% matmul"
is of the matmul at its own precision; on the CPU "% arith" is of the arithmetic peak at that
precision (register-only FMAs or bf16 dot products, kernels/peak.cpp: the matmul libraries may
reach far less of it, MKL's sgemm about half on AMD processors), and the CPU's bfloat16
instructions are named. Throughput counts
useful FLOPs only (3 x 2 x locations x maps x r*r*C x batch); times are medians over repeats,
interleaved so that machine noise hits every implementation alike, with the device synchronized
around each. Peak memory is, on the CPU, the growth of the resident set while one forward +
backward runs in a fresh process (Linux); on CUDA, the allocator's peak over what was allocated
before. It ends with the training throughput of the configured preset in fp32 and in bf16: on
random input, and through the data path (decoding, transfer, preprocessing on the device) when its
data are found.
"""
from __future__ import annotations

import copy
import ctypes
import json
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from catneuron.config import Config
from catneuron.files import write_json
from catneuron.nn import lc_bf16, lc_native, lc_triton
from catneuron.nn.geometry import geometry, output_size
from catneuron.nn.local import locally_connected
from catneuron.provenance import environment


@dataclass
class LayerCase:
    name: str
    channels: int
    size: int
    receptive_field: int
    stride: int
    maps: int
    batch: int = 100

    @property
    def out(self) -> int:
        return output_size(self.size, self.receptive_field, self.stride)

    def flops(self) -> int:
        """Useful FLOPs of forward + both gradients."""
        return 3 * 2 * self.out ** 2 * self.maps * self.receptive_field ** 2 * self.channels * self.batch


def _naive(x, w, stride):
    Ho, Wo, M, r, _, C = w.shape
    cols = F.unfold(x, r, stride=stride)                                     # (N, C*r*r, L)
    wl = w.permute(0, 1, 2, 5, 3, 4).reshape(Ho * Wo, M, C * r * r)           # (L, M, C*r*r)
    return torch.einsum("nkl,lmk->nml", cols, wl).reshape(x.shape[0], M, Ho, Wo)


def implementation_names(device: torch.device, include_naive: bool = True) -> tuple[str, ...]:
    if device.type == "cpu":
        names = ("native", "native-bf16", "torch", "batched", "naive", "conv2d")
    else:       # lc_torch's thousands of launches per layer take seconds at these shapes
        names = ("triton", "triton-tf32", "triton-bf16", "batched", "batched-tf32", "batched-bf16", "naive",
                 "conv2d", "conv2d-tf32")
    return names if include_naive else tuple(n for n in names if n != "naive")


def _implementations(case: LayerCase, names: tuple[str, ...], device="cpu"):
    """name -> (forward function, leaves to differentiate), for the available ones among `names`.
    Tensors are filled in place, so no temporary inflates the memory high-water mark."""
    g = torch.Generator(device).manual_seed(0)
    r, C, M, Ho = case.receptive_field, case.channels, case.maps, case.out
    x = torch.empty(case.batch, C, case.size, case.size, device=device).normal_(generator=g).requires_grad_()

    def lc_weight():
        return torch.empty(Ho, Ho, M, r, r, C, device=device).normal_(0, 0.01, generator=g).requires_grad_()

    impls = {}
    for name in names:
        kind, _, precision = name.partition("-")
        if kind == "native" and not (lc_bf16.available() if precision == "bf16" else lc_native.available()):
            continue
        if kind == "triton" and not lc_triton.available():
            continue
        if kind in ("native", "torch", "batched", "triton"):
            w = lc_weight()
            impls[name] = (lambda w=w, kind=kind, p=precision or "fp32": locally_connected(
                x, w, case.stride, backend=kind, precision=p), (x, w))
        elif kind == "naive":
            w = lc_weight()
            impls[name] = (lambda w=w: _naive(x, w, case.stride), (x, w))
        elif kind == "conv2d":
            w = torch.empty(M, C, r, r, device=device).normal_(0, 0.01, generator=g).requires_grad_()
            impls[name] = (lambda w=w, p=precision: _with_matmul_precision(
                p, lambda: F.conv2d(x, w, stride=case.stride)), (x, w))
    return impls


def _with_matmul_precision(precision: str, fn):
    """fn() with cuDNN's TF32 allowed (precision "tf32") or not (PyTorch allows it for
    convolutions by default: the fp32 row is then cuDNN at full precision, like ours)."""
    if not torch.cuda.is_available():
        return fn()
    with torch.backends.cudnn.flags(enabled=True, allow_tf32=precision == "tf32"):
        return fn()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _fwd_bwd(fn, leaves):
    for t in leaves:
        t.grad = None
    y = fn()
    y.backward(torch.ones_like(y))


def _high_water_kib() -> int:
    """This process's peak resident set (VmHWM, which starts afresh at exec; getrusage's
    ru_maxrss would include the parent's peak)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))


def _memory_probe(case_json: str, impl: str) -> None:
    case = LayerCase(**json.loads(case_json))
    fn, leaves = _implementations(case, (impl,))[impl]
    before = _high_water_kib()
    _fwd_bwd(fn, leaves)
    print(_high_water_kib() - before)


def _peak_memory_mib(case: LayerCase, impl: str, device: torch.device, impls: dict) -> float | None:
    """Peak memory added by one forward + backward. On the CPU it is measured in a fresh process
    (the benchmark process keeps freed memory for reuse, so its own high-water mark says little;
    Linux only, None elsewhere)."""
    if device.type == "cuda":
        fn, leaves = impls[impl]
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        _fwd_bwd(fn, leaves)
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - before) / 2 ** 20
    if not Path("/proc/self/status").exists():
        return None
    code = "import sys; from catneuron import bench; bench._memory_probe(sys.argv[1], sys.argv[2])"
    try:
        out = subprocess.run([sys.executable, "-c", code, json.dumps(asdict(case)), impl], capture_output=True,
                             text=True, timeout=600)
        return int(out.stdout.strip()) / 1024 if out.returncode == 0 else None
    except (subprocess.SubprocessError, ValueError, OSError):
        return None


def sgemm_peak(repeats: int, n: int = 4096, device="cpu", dtype=torch.float32, precision: str = "highest") -> float:
    """GFLOP/s of an n x n x n matmul, median over repeats; precision "high" allows TF32."""
    device = torch.device(device)
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(precision)
    try:
        a @ b
        times = []
        for _ in range(repeats):
            sync(device)
            t = time.perf_counter()
            a @ b
            sync(device)
            times.append(time.perf_counter() - t)
    finally:
        torch.set_float32_matmul_precision(previous)
    return 2 * n ** 3 / statistics.median(times) / 1e9


def matmul_peaks(repeats: int, device: torch.device) -> dict[str, float]:
    peaks = {"fp32": sgemm_peak(repeats, device=device)}
    if device.type == "cuda":
        peaks["tf32"] = sgemm_peak(repeats, 8192, device, precision="high")
        peaks["bf16"] = sgemm_peak(repeats, 8192, device, dtype=torch.bfloat16)
    else:
        peaks["bf16"] = sgemm_peak(repeats, device=device, dtype=torch.bfloat16)
    return peaks


def instruction_peaks(repeats: int, threads: int) -> dict[str, float]:
    """GFLOP/s of register-only fp32 FMAs and bfloat16 dot products on `threads` threads (median of
    repeats; kernels/peak.cpp), the arithmetic ceiling that no kernel passes; {} without the kernel."""
    from catneuron import native
    lib = native.load("peak")
    if lib is None:
        return {}
    lib.catneuron_peak_gflops.restype = ctypes.c_double
    lib.catneuron_peak_gflops.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int]
    peaks = {}
    for name, bf16 in (("fp32", 0), ("bf16", 1)):
        value = statistics.median(lib.catneuron_peak_gflops(bf16, 20_000_000, threads) for _ in range(repeats))
        if value > 0:
            peaks[name] = value
    return peaks


def _precision(impl: str) -> str:
    return impl.partition("-")[2] or "fp32"


def cpu_matrix_units() -> str:
    """The CPU's bfloat16 instructions, and which of them catneuron's bf16 kernel uses."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = set(next((line for line in f if line.startswith("flags")), "").split())
    except OSError:
        flags = set()
    found = [name for flag, name in (("amx_bf16", "AMX-BF16"), ("avx512_bf16", "AVX-512 BF16")) if flag in flags]
    used = "AVX-512 BF16 (vdpbf16ps)" if lc_bf16.available() else "none: bf16 computes in fp32 here"
    return f"bfloat16 units: {', '.join(found) or 'none found'}; catneuron's bf16 kernel uses: {used}"


def bench_case(case: LayerCase, repeats: int, include_naive: bool, peaks: dict[str, float],
               device="cpu", arithmetic: dict[str, float] | None = None) -> list[dict]:
    device = torch.device(device)
    impls = _implementations(case, implementation_names(device, include_naive), device)
    memory = {name: _peak_memory_mib(case, name, device, impls) for name in impls}
    times = {name: [] for name in impls}
    for name, (fn, leaves) in impls.items():  # warm-up (and kernel build)
        _fwd_bwd(fn, leaves)
    for _ in range(repeats):
        for name, (fn, leaves) in impls.items():
            sync(device)
            t = time.perf_counter()
            _fwd_bwd(fn, leaves)
            sync(device)
            times[name].append(time.perf_counter() - t)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    rows = []
    for name in impls:
        gflops = case.flops() / med[name] / 1e9
        rows.append({"case": case.name, "impl": name, "ms": med[name] * 1e3, "gflops": gflops,
                     "peak_pct": 100 * gflops / peaks.get(_precision(name), peaks["fp32"]),
                     "arithmetic_pct": 100 * gflops / arithmetic[_precision(name)]
                     if _precision(name) in (arithmetic or {}) else None,
                     "x_naive": med["naive"] / med[name] if "naive" in med else None,
                     "x_conv2d": med["conv2d"] / med[name], "peak_mib": memory[name]})
    return rows


def cases(cfg: Config) -> list[LayerCase]:
    out = [LayerCase("64x64x8 rf18 s2", 8, 64, 18, 2, 8), LayerCase("96x96x3 rf18 s2", 3, 96, 18, 2, 8)]
    for k, (g, st) in enumerate(zip(geometry(cfg.model), cfg.model.stages)):
        out.append(LayerCase(f"{cfg.preset} stage {k + 1} ({g.in_size}x{g.in_size}x{g.in_channels} rf"
                             f"{st.receptive_field} s{st.stride})", g.in_channels, g.in_size, st.receptive_field,
                             st.stride, st.maps, cfg.train.batch_size))
    return out


def train_precisions(cfg: Config, device: torch.device) -> tuple[str, ...]:
    """fp32, and bf16 where it multiplies in bfloat16 (CUDA, or a CPU with the bf16 kernel)."""
    return ("fp32", "bf16") if device.type == "cuda" or lc_bf16.available() else ("fp32",)


def train_throughput(cfg: Config, steps: int, device="cpu", data: bool = False) -> list[dict]:
    """Images/s of full training steps (objective, backward, optimizer, projection) in each of
    train_precisions, their steps interleaved: on one random batch already on the device, or
    (data=True) on the configured training data through the trainer's data path."""
    from catneuron.data.loader import ImageStream
    from catneuron.data.preprocess import to_tensor
    from catneuron.data.sources import resolve_all
    from catneuron.nn.autoencoder import DeepSparseAutoencoder
    from catneuron.train.optim import make_optimizer
    from catneuron.train.trainer import train_step
    device = torch.device(device)
    runs = {}
    for precision in train_precisions(cfg, device):
        run_cfg = copy.deepcopy(cfg)
        run_cfg.model.precision = precision
        torch.manual_seed(0)
        model = DeepSparseAutoencoder(run_cfg.model, device=device)
        runs[precision] = (run_cfg, model, make_optimizer(run_cfg.train, model.parameters()))
    B, S = cfg.train.batch_size, cfg.model.input_size
    if data:
        stream = ImageStream(resolve_all(cfg.data.train, cfg.data.root), S, cfg.model.channels,
                             workers=cfg.data.workers)
        batches = stream.batches(B)

        def batch():
            return to_tensor(next(batches)[0], cfg.data.preprocess, device)
    else:
        x = torch.randn(B, cfg.model.channels, S, S, device=device)

        def batch():
            return x
    times = {precision: [] for precision in runs}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:
        for i in range(steps + 1):
            for precision, (run_cfg, model, opt) in runs.items():
                sync(device)
                t = time.perf_counter()
                train_step(model, opt, run_cfg, batch())
                sync(device)
                if i:
                    times[precision].append(time.perf_counter() - t)
    finally:
        if data:
            batches.close()
    peak = torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == "cuda" else None
    out = []
    for precision, ts in times.items():
        step = statistics.median(ts)
        out.append({"preset": cfg.preset, "batch": B, "data": "corpus" if data else "random", "device": str(device),
                    "precision": precision, "ms_per_step": step * 1e3, "images_per_s": B / step,
                    "peak_gib": peak})
    return out


def format_table(rows: list[dict], peaks: dict[str, float], arithmetic: dict[str, float] | None = None) -> str:
    lines = ["matmul peak (median): " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peaks.items())
             + ("; arithmetic peak: " + ", ".join(f"{k} {v:.0f}" for k, v in arithmetic.items()) if arithmetic else ""),
             "",
             f"{'case':<36}{'impl':<14}{'ms':>9}{'GFLOP/s':>9}{'% matmul':>9}{'% arith':>8}{'x naive':>9}"
             f"{'x conv':>8}{'peak MiB':>10}"]
    for r in rows:
        xn = f"{r['x_naive']:.1f}" if r["x_naive"] is not None else "-"
        mem = f"{r['peak_mib']:.0f}" if r["peak_mib"] is not None else "-"
        arith = f"{r['arithmetic_pct']:.1f}" if r.get("arithmetic_pct") is not None else "-"
        lines.append(f"{r['case']:<36}{r['impl']:<14}{r['ms']:>9.2f}{r['gflops']:>9.1f}{r['peak_pct']:>9.1f}{arith:>8}"
                     f"{xn:>9}{r['x_conv2d']:>8.2f}{mem:>10}")
    return "\n".join(lines)


def run_benchmark(cfg: Config, quick: bool = False, repeats: int = 5, out: str | None = None,
                  device="cpu") -> dict:
    from catneuron.errors import DataError
    device = torch.device(device)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    repeats = min(repeats, 3) if quick else repeats
    peaks = matmul_peaks(repeats, device)
    arithmetic = instruction_peaks(repeats, torch.get_num_threads()) if device.type == "cpu" else {}
    if device.type == "cpu":
        print(cpu_matrix_units())
    rows = []
    for case in cases(cfg):
        rows += bench_case(case, repeats, include_naive=not quick or case.flops() < 5e9, peaks=peaks,
                           device=device, arithmetic=arithmetic)
        print(format_table([r for r in rows if r["case"] == case.name], peaks, arithmetic).split("\n", 3)[-1],
              flush=True)
    steps = 3 if quick else 10
    train = []
    for data in (False, True):
        try:
            train += train_throughput(cfg, steps, device, data)
        except DataError as err:
            print(f"(training through the data path not measured: {err})")
    print()
    print(format_table(rows, peaks, arithmetic))
    for t in train:
        memory = f", peak {t['peak_gib']:.1f} GiB" if t["peak_gib"] is not None else ""
        print(f"{t['preset']} preset training on {t['device']} ({t['data']} input, {t['precision']}): "
              f"{t['ms_per_step']:.0f} ms per step of {t['batch']} images = {t['images_per_s']:.0f} images/s{memory}")
    for data in ("random", "corpus"):
        pair = {t["precision"]: t["ms_per_step"] for t in train if t["data"] == data}
        if len(pair) == 2:
            print(f"bf16 step vs fp32 step ({data} input): {pair['fp32'] / pair['bf16']:.2f}x")
    result = {"matmul_gflops": peaks, "arithmetic_gflops": arithmetic, "matrix_units": cpu_matrix_units(),
              "layers": rows, "train": train, "environment": environment(),
              "device": str(device), "cases": [asdict(c) for c in cases(cfg)]}
    if out:
        write_json(out, result)
    return result
