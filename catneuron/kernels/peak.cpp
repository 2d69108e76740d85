// The CPU's arithmetic peak, measured: `threads` threads each run independent chains of fp32 FMAs
// (or bfloat16 pair dot products, vdpbf16ps) on registers only, so nothing but the vector units
// bounds them. `catneuron bench` reports the kernels' throughput against it beside the matmul
// libraries' (MKL's sgemm reaches about half of it on AMD processors).
#include <chrono>
#include <cstdint>

#include "parallel.h"

#if defined(__AVX512F__)
#include <immintrin.h>
#define CHAINS 16  // independent accumulators: more than the FMA latency times the FMA ports

template <bool BF16>
__attribute__((noinline)) static float chains(int64_t iterations, float seed) {
  __m512 acc[CHAINS];
  for (int i = 0; i < CHAINS; ++i) acc[i] = _mm512_set1_ps(seed * i);
  const __m512 a = _mm512_set1_ps(seed), b = _mm512_set1_ps(1.0f - seed);
#if defined(__AVX512BF16__)
  const __m512bh ab = (__m512bh)_mm512_set1_epi32(0x3f803f80), bb = (__m512bh)_mm512_set1_epi32(0x30003000);
#endif
  for (int64_t t = 0; t < iterations; ++t) {
#pragma GCC unroll 16
    for (int i = 0; i < CHAINS; ++i) {
#if defined(__AVX512BF16__)
      if (BF16) {
        acc[i] = _mm512_dpbf16_ps(acc[i], ab, bb);
        continue;
      }
#endif
      acc[i] = _mm512_fmadd_ps(a, b, acc[i]);
    }
  }
  __m512 s = acc[0];
  for (int i = 1; i < CHAINS; ++i) s = _mm512_add_ps(s, acc[i]);
  return _mm512_reduce_add_ps(s);
}

extern "C" {
// GFLOP/s of `iterations` x CHAINS instructions per thread: fp32 FMAs (bf16 = 0; 32 FLOPs each) or
// bfloat16 pair dot products (bf16 = 1; 64 FLOPs each). 0 where the instruction is missing.
double catneuron_peak_gflops(int bf16, int64_t iterations, int threads) {
#if !defined(__AVX512BF16__)
  if (bf16) return 0.0;
#endif
  const auto start = std::chrono::steady_clock::now();
  parallel_for(threads, threads, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      volatile float result = bf16 ? chains<true>(iterations, 1e-9f) : chains<false>(iterations, 1e-9f);
      (void)result;
    }
  });
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return (double)iterations * CHAINS * threads * (bf16 ? 64 : 32) / seconds / 1e9;
}
}
#else
extern "C" double catneuron_peak_gflops(int, int64_t, int) { return 0.0; }
#endif
