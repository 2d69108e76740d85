"""``catneuron bench``: the locally connected layer against its baselines, in one process.

For each layer shape, forward + backward (input and weight gradients) of
  native   our C++ kernel (lc_native)
  torch    our batched-matmul kernel (lc_torch, the CUDA path)
  naive    F.unfold + einsum (the obvious PyTorch implementation)
  conv2d   torch.nn.functional.conv2d of the same shape (shared weights, the vendor kernel)
and a large sgemm for the machine's peak. Throughput counts useful FLOPs only
(3 x 2 x locations x maps x r*r*C x batch); times are medians over repeats, interleaved so that
machine noise hits every implementation alike. Peak memory is the growth of the process's
resident set while one forward + backward runs, in a fresh process (Linux). It ends with the
training throughput of the configured preset.
"""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from catneuron.config import Config, geometry
from catneuron.nn import lc_native
from catneuron.nn.local import locally_connected, output_size
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


IMPLS = ("native", "torch", "naive", "conv2d")


def _implementations(case: LayerCase, names: tuple[str, ...]):
    """name -> (forward function, leaves to differentiate), for the available ones among `names`.
    Tensors are filled in place, so no temporary inflates the memory high-water mark."""
    g = torch.Generator().manual_seed(0)
    r, C, M, Ho = case.receptive_field, case.channels, case.maps, case.out
    x = torch.empty(case.batch, C, case.size, case.size).normal_(generator=g).requires_grad_()

    def lc_weight():
        return torch.empty(Ho, Ho, M, r, r, C).normal_(0, 0.01, generator=g).requires_grad_()

    impls = {}
    for name in names:
        if name == "native" and lc_native.available():
            w = lc_weight()
            impls[name] = (lambda w=w: locally_connected(x, w, case.stride, backend="native"), (x, w))
        elif name == "torch":
            w = lc_weight()
            impls[name] = (lambda w=w: locally_connected(x, w, case.stride, backend="torch"), (x, w))
        elif name == "naive":
            w = lc_weight()
            impls[name] = (lambda w=w: _naive(x, w, case.stride), (x, w))
        elif name == "conv2d":
            w = torch.empty(M, C, r, r).normal_(0, 0.01, generator=g).requires_grad_()
            impls[name] = (lambda w=w: F.conv2d(x, w, stride=case.stride), (x, w))
    return impls


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


def _peak_memory_mib(case: LayerCase, impl: str) -> float | None:
    """Peak resident memory added by one forward + backward, measured in a fresh process (the
    benchmark process keeps freed memory for reuse, so its own high-water mark says little).
    Linux only; None elsewhere."""
    if not Path("/proc/self/status").exists():
        return None
    code = "import sys; from catneuron import bench; bench._memory_probe(sys.argv[1], sys.argv[2])"
    try:
        out = subprocess.run([sys.executable, "-c", code, json.dumps(asdict(case)), impl], capture_output=True,
                             text=True, timeout=600)
        return int(out.stdout.strip()) / 1024 if out.returncode == 0 else None
    except (subprocess.SubprocessError, ValueError, OSError):
        return None


def sgemm_peak(repeats: int, n: int = 4096) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return 2 * n ** 3 / statistics.median(times) / 1e9


def bench_case(case: LayerCase, repeats: int, include_naive: bool, peak: float) -> list[dict]:
    impls = _implementations(case, IMPLS if include_naive else tuple(n for n in IMPLS if n != "naive"))
    memory = {name: _peak_memory_mib(case, name) for name in impls}
    times = {name: [] for name in impls}
    for name, (fn, leaves) in impls.items():  # warm-up (and kernel build)
        _fwd_bwd(fn, leaves)
    for _ in range(repeats):
        for name, (fn, leaves) in impls.items():
            t = time.perf_counter()
            _fwd_bwd(fn, leaves)
            times[name].append(time.perf_counter() - t)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    rows = []
    for name in impls:
        gflops = case.flops() / med[name] / 1e9
        rows.append({"case": case.name, "impl": name, "ms": med[name] * 1e3, "gflops": gflops,
                     "peak_pct": 100 * gflops / peak,
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


def train_throughput(cfg: Config, steps: int) -> dict:
    """Images/s of full training steps (objective, backward, Adagrad, projection) on random input."""
    from catneuron.nn.autoencoder import DeepSparseAutoencoder
    from catneuron.train.trainer import make_optimizer
    torch.manual_seed(0)
    model = DeepSparseAutoencoder(cfg.model)
    opt = make_optimizer(cfg, model.parameters())
    x = torch.randn(cfg.train.batch_size, cfg.model.channels, cfg.model.input_size, cfg.model.input_size)
    times = []
    for i in range(steps + 1):
        t = time.perf_counter()
        obj = model.objective(x)
        opt.zero_grad(set_to_none=True)
        obj.total.backward()
        opt.step()
        model.project_()
        if i:
            times.append(time.perf_counter() - t)
    step = statistics.median(times)
    return {"preset": cfg.preset, "batch": cfg.train.batch_size, "ms_per_step": step * 1e3,
            "images_per_s": cfg.train.batch_size / step}


def format_table(rows: list[dict], peak: float) -> str:
    lines = [f"sgemm peak (4096^3, median): {peak:.0f} GFLOP/s", "",
             f"{'case':<36}{'impl':<8}{'ms':>9}{'GFLOP/s':>9}{'% peak':>8}{'x naive':>9}{'x conv':>8}"
             f"{'peak MiB':>10}"]
    for r in rows:
        xn = f"{r['x_naive']:.1f}" if r["x_naive"] is not None else "-"
        mem = f"{r['peak_mib']:.0f}" if r["peak_mib"] is not None else "-"
        lines.append(f"{r['case']:<36}{r['impl']:<8}{r['ms']:>9.1f}{r['gflops']:>9.1f}{r['peak_pct']:>8.1f}"
                     f"{xn:>9}{r['x_conv2d']:>8.2f}{mem:>10}")
    return "\n".join(lines)


def run_benchmark(cfg: Config, quick: bool = False, repeats: int = 5, out: str | None = None) -> dict:
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    repeats = min(repeats, 3) if quick else repeats
    peak = sgemm_peak(repeats)
    rows = []
    for case in cases(cfg):
        rows += bench_case(case, repeats, include_naive=not quick or case.flops() < 5e9, peak=peak)
        print(format_table([r for r in rows if r["case"] == case.name], peak).split("\n", 3)[-1], flush=True)
    train = train_throughput(cfg, 3 if quick else 10)
    print()
    print(format_table(rows, peak))
    print(f"\n{train['preset']} preset training: {train['ms_per_step']:.0f} ms per step of {train['batch']} images = "
          f"{train['images_per_s']:.0f} images/s")
    result = {"sgemm_gflops": peak, "layers": rows, "train": train, "environment": environment(),
              "cases": [asdict(c) for c in cases(cfg)]}
    if out:
        Path(out).write_text(json.dumps(result, indent=2))
    return result
