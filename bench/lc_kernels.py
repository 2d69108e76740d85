"""The native locally connected kernels alone (fp32 and bf16), on activations already in their
layouts (the bf16 kernels round the float32 weights themselves), and the layout passes around them.

    python bench/lc_kernels.py [--repeats 9] [--batch 100]

Separates the kernels' own speed from the layout passes that `catneuron bench` includes; prints
GFLOP/s (useful FLOPs) and % of the matmul peak of the same precision measured in the same run
(fp32: torch's sgemm; bf16: torch's bfloat16 matmul), then the milliseconds of each pass that
brings PyTorch's (N, C, H, W) float32 into a kernel's layout or back. Everything is interleaved,
medians over repeats.
"""
import argparse
import ctypes
import statistics
import time

from catneuron.runtime import keep_freed_memory, yield_idle_cores

yield_idle_cores()  # as the command line does, before torch loads

import torch  # noqa: E402

from catneuron.bench import cpu_matrix_units, sgemm_peak  # noqa: E402
from catneuron.nn import lc_bf16, lc_native  # noqa: E402

SHAPES = [("64x64x8 rf18 s2", 8, 64, 18, 2), ("96x96x3 rf18 s2", 3, 96, 18, 2),
          ("64x64x3 rf12 s1", 3, 64, 12, 1), ("49x49x8 rf12 s1", 8, 49, 12, 1), ("34x34x8 rf12 s1", 8, 34, 12, 1)]


def _ptr(t: torch.Tensor) -> ctypes.c_void_p:
    return ctypes.c_void_p(t.data_ptr())


def _median_ms(calls: dict, repeats: int) -> dict:
    times = {k: [] for k in calls}
    for fn in calls.values():
        fn()
    for _ in range(repeats):
        for k, fn in calls.items():
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}


def _fp32_calls(lib, H, C, r, s, N, NP, M, threads):
    Ho, vector = (H - r) // s + 1, lib.catneuron_lc_vector_width()
    WR = H * C + vector
    x, xt = torch.randn(H, H, C, NP), torch.randn(H, N, WR)
    w, y = torch.randn(Ho, Ho, M, r, r, C) * 0.01, torch.randn(Ho, Ho, M, NP)
    out_y, out_x, out_w = torch.empty(Ho, Ho, M, NP), torch.empty(H, H, C, NP), torch.empty_like(w)
    geom = (H, H, C, NP, Ho, Ho, M, r, s, threads)
    return {
        "forward": lambda: lib.catneuron_lc_forward(_ptr(x), _ptr(w), _ptr(out_y), *geom),
        "transpose": lambda: lib.catneuron_lc_transpose(_ptr(y), _ptr(w), _ptr(out_x), *geom),
        "weight grad": lambda: lib.catneuron_lc_weight_grad(_ptr(xt), _ptr(y), _ptr(out_w), H, H, C, N, NP, WR,
                                                            Ho, Ho, M, r, s, threads),
    }


def _bf16_calls(lib, H, C, r, s, N, NP, M, threads):
    Ho, M2, bf = (H - r) // s + 1, (M + 1) // 2, torch.bfloat16
    xq, w = torch.randn(2, H, (H * C + 2) // 2, NP, 2).to(bf), torch.randn(Ho, Ho, M, r, r, C) * 0.01
    yq = torch.randn(Ho * Ho, M2, NP, 2).to(bf)
    xn, yb = torch.randn(H, NP // 2, H * C + 16, 2).to(bf), torch.randn(Ho, Ho, M, NP).to(bf)
    out_y, out_x, out_w = torch.empty(Ho, Ho, M, NP), torch.empty(H, H, C, NP), torch.empty(Ho, Ho, M, r, r, C)
    geom = (H, H, C, NP, Ho, Ho, M, r, s, threads)
    return {
        "forward": lambda: lib.catneuron_lc_forward_bf16(_ptr(xq), _ptr(w), _ptr(out_y), *geom),
        "transpose": lambda: lib.catneuron_lc_transpose_bf16(_ptr(yq), _ptr(w), _ptr(out_x), *geom),
        "weight grad": lambda: lib.catneuron_lc_weight_grad_bf16(_ptr(xn), _ptr(yb), _ptr(out_w), *geom[:-1], N,
                                                                 threads),
    }


def _layout_calls(H, C, r, s, N, M):
    """Each layout pass of one forward + backward, on this shape's input and code."""
    Ho = (H - r) // s + 1
    x, y = torch.randn(N, C, H, H), torch.randn(N, M, Ho, Ho)
    calls = {"fp32 to batch-last (x)": lambda: lc_native._batch_last(lc_native.library(), x, lc_bf16.VECTOR),
             "fp32 rows (x, weight grad)": lambda: lc_native._rows(lc_native.library(), x, 16),
             "fp32 from batch-last (y)": lambda: lc_native.from_batch_last(torch.empty(Ho, Ho, M, lc_bf16.VECTOR * 7), N)}
    if lc_bf16.available():
        calls.update(lc_bf16.layout_passes(x, y, s))
    return calls


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
    NP = (N + lc_bf16.VECTOR - 1) // lc_bf16.VECTOR * lc_bf16.VECTOR
    peaks = {"fp32": sgemm_peak(5), "bf16": sgemm_peak(5, dtype=torch.bfloat16)}
    print(cpu_matrix_units())
    print(f"matmul peaks: fp32 {peaks['fp32']:.0f}, bf16 {peaks['bf16']:.0f} GFLOP/s; {threads} threads, batch {N}")
    print(f"{'shape':<18}{'precision':<11}{'forward':>14}{'transpose':>14}{'weight grad':>14}   "
          f"GFLOP/s (% of the precision's peak)")
    for name, C, H, r, s in SHAPES:
        kernels = {"fp32": _fp32_calls(lib, H, C, r, s, N, NP, M, threads)}
        if lc_bf16.available():
            kernels["bf16"] = _bf16_calls(lc_bf16.library(), H, C, r, s, N, NP, M, threads)
        ms = _median_ms({(p, k): fn for p, calls in kernels.items() for k, fn in calls.items()}, args.repeats)
        Ho = (H - r) // s + 1
        flops = 2 * Ho * Ho * M * r * r * C * N
        for precision, calls in kernels.items():
            rates = [flops / ms[(precision, k)] / 1e6 for k in calls]
            print(f"{name:<18}{precision:<11}" + "".join(f"{f'{g:.0f} ({100 * g / peaks[precision]:.0f}%)':>14}"
                                                       for g in rates))
    print("\nlayout passes, ms (median)")
    for name, C, H, r, s in SHAPES:
        ms = _median_ms(_layout_calls(H, C, r, s, N, M), args.repeats)
        print(f"{name:<18}" + ", ".join(f"{k} {v:.2f}" for k, v in ms.items()))


if __name__ == "__main__":
    main()
