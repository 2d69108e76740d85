// Shared by the locally connected kernels (lc_cpu.cpp, lc_bf16.cpp): the tile dispatch and the
// covering arithmetic. Include after defining MAX_NV (widest tile, in vectors) and ACC_REGS (vector
// registers the accumulators may take).
#pragma once
#include <algorithm>
#include <cstdint>

#include "parallel.h"

// First output location whose receptive field (r wide, stride s) covers input position h.
static inline int64_t first_cover(int64_t h, int64_t r, int64_t s) {
  const int64_t lo = h - r + 1;
  return lo <= 0 ? 0 : (lo + s - 1) / s;
}

// Calls FN<rows, nv>(...) for the runtime `rows` (1-8 broadcast rows) and `nv` (1-4 vectors).
#define CASE_NV(FN, A, ...)                      \
  switch (nv) {                                  \
    case 1: FN<A, 1>(__VA_ARGS__); break;        \
    case 2: FN<A, 2>(__VA_ARGS__); break;        \
    case 3: FN<A, 3>(__VA_ARGS__); break;        \
    default: FN<A, 4>(__VA_ARGS__); break;       \
  }
#define DISPATCH(FN, ...)                                  \
  switch (rows) {                                          \
    case 1: CASE_NV(FN, 1, __VA_ARGS__) break;             \
    case 2: CASE_NV(FN, 2, __VA_ARGS__) break;             \
    case 3: CASE_NV(FN, 3, __VA_ARGS__) break;             \
    case 4: CASE_NV(FN, 4, __VA_ARGS__) break;             \
    case 5: CASE_NV(FN, 5, __VA_ARGS__) break;             \
    case 6: CASE_NV(FN, 6, __VA_ARGS__) break;             \
    case 7: CASE_NV(FN, 7, __VA_ARGS__) break;             \
    default: CASE_NV(FN, 8, __VA_ARGS__) break;            \
  }

// Widest tile (in vectors) that fits the accumulator budget for `rows` broadcast rows.
static inline int tile_vectors(int rows, int64_t vectors_left) {
  return (int)std::min<int64_t>(std::min(MAX_NV, ACC_REGS / rows), vectors_left);
}

// Every weight-gradient tile, input row h outermost (one thread's rows at a time): every (output
// row, kernel row) pair that reads input row h runs while that row is in L2. Calls
// tile(i, j, p, m0, rows, nv, k0) for output location (i, j), kernel row p, maps m0.. (rows of
// them) and the nv vectors of its r*C values from k0 on (`vlen` values a vector).
template <typename Tile>
static void weight_grad_tiles(int64_t H, int64_t Ho, int64_t Wo, int64_t M, int64_t r, int64_t s, int64_t rC,
                              int64_t vlen, int threads, Tile tile) {
  const int64_t row_vectors = (rC + vlen - 1) / vlen;
  parallel_for(H, threads, [&](int64_t begin, int64_t end) {
    for (int64_t h = begin; h < end; ++h) {
      const int64_t i_hi = std::min(Ho - 1, h / s);
      for (int64_t i = first_cover(h, r, s); i <= i_hi; ++i)
        for (int64_t j = 0; j < Wo; ++j)
          for (int64_t m0 = 0; m0 < M; m0 += 8) {
            const int rows = (int)std::min<int64_t>(8, M - m0);
            for (int64_t kv = 0; kv < row_vectors;) {
              const int nv = tile_vectors(rows, row_vectors - kv);
              tile(i, j, h - i * s, m0, rows, nv, kv * vlen);
              kv += nv;
            }
          }
    }
  });
}
