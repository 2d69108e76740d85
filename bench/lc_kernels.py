"""The three native locally connected kernels alone, on buffers already in their layout.

    python bench/lc_kernels.py [--repeats 9]

Separates the kernels' own speed from the layout passes that `catneuron bench` includes; prints
GFLOP/s (useful FLOPs) and % of an sgemm measured in the same run.
"""
import argparse
import ctypes
import statistics
import time

import torch

from catneuron.bench import sgemm_peak
from catneuron.nn import lc_native
from catneuron.runtime import keep_freed_memory

SHAPES = [("64x64x8 rf18 s2", 8, 64, 18, 2), ("96x96x3 rf18 s2", 3, 96, 18, 2),
          ("64x64x3 rf12 s1", 3, 64, 12, 1), ("49x49x8 rf12 s1", 8, 49, 12, 1)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--batch", type=int, default=100)
    args = ap.parse_args()
    keep_freed_memory()
    lib = lc_native.library()
    if lib is None:
        raise SystemExit("the native kernel is not available (no C++ compiler?)")
    threads, N, M = torch.get_num_threads(), args.batch, 8
    vector = lib.catneuron_lc_vector_width()
    NP = (N + vector - 1) // vector * vector
    peak = sgemm_peak(5)
    print(f"sgemm peak {peak:.0f} GFLOP/s, {threads} threads, batch {N}")
    print(f"{'shape':<18}{'forward':>14}{'transpose':>14}{'weight grad':>14}   GFLOP/s (% of peak)")
    ptr = lambda t: ctypes.c_void_p(t.data_ptr())  # noqa: E731
    for name, C, H, r, s in SHAPES:
        Ho = (H - r) // s + 1
        WR = H * C + vector
        x, xt = torch.randn(H, H, C, NP), torch.randn(H, N, WR)
        w, y = torch.randn(Ho, Ho, M, r, r, C) * 0.01, torch.randn(Ho, Ho, M, NP)
        out_y, out_x, out_w = torch.empty(Ho, Ho, M, NP), torch.empty(H, H, C, NP), torch.empty_like(w)
        geom = (H, H, C, NP, Ho, Ho, M, r, s, threads)
        calls = {
            "forward": lambda: lib.catneuron_lc_forward(ptr(x), ptr(w), ptr(out_y), *geom),
            "transpose": lambda: lib.catneuron_lc_transpose(ptr(y), ptr(w), ptr(out_x), *geom),
            "weight grad": lambda: lib.catneuron_lc_weight_grad(ptr(xt), ptr(y), ptr(out_w), H, H, C, N, NP, WR,
                                                                 Ho, Ho, M, r, s, threads),
        }
        times = {k: [] for k in calls}
        for fn in calls.values():
            fn()
        for _ in range(args.repeats):
            for k, fn in calls.items():
                t = time.perf_counter()
                fn()
                times[k].append(time.perf_counter() - t)
        flops = 2 * Ho * Ho * M * r * r * C * N
        rates = [flops / statistics.median(times[k]) / 1e9 for k in calls]
        print(f"{name:<18}" + "".join(f"{f'{g:.0f} ({100 * g / peak:.0f}%)':>14}" for g in rates))


if __name__ == "__main__":
    main()
