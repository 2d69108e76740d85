// Shared by the native kernels: layout changes between PyTorch's (N, C, H*W) and the kernels'
// batch-innermost (H*W, C, NP), NP the batch rounded up to a vector with the padding zero. With
// AVX-512 they transpose 16 x 16 blocks in registers; elsewhere 32 x 32 tiles in cache (a plain
// strided copy touches a new cache line for every value).
#pragma once
#include <algorithm>
#include <cstdint>

#include "parallel.h"

#if defined(__AVX512F__)
#include <immintrin.h>

// r[i][j] <- r[j][i] for a 16 x 16 block of floats held as 16 rows.
static inline void transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
    r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
    r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
    r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
  }
  for (int h = 0; h < 16; h += 8)
    for (int i = 0; i < 4; ++i) {
      t[h + i] = _mm512_shuffle_f32x4(r[h + i], r[h + 4 + i], 0x88);
      t[h + 4 + i] = _mm512_shuffle_f32x4(r[h + i], r[h + 4 + i], 0xdd);
    }
  for (int i = 0; i < 8; ++i) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0x88);
    r[8 + i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0xdd);
  }
}

static inline __mmask16 first_lanes(int64_t n) { return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1); }

// One 16 x 16 block of to_batch_last in registers: r[j] holds samples n0..n0+15 (zero past N) of
// position hw0 + j (j < min(16, HW - hw0)) of channel c of src (N, C, plane).
static inline void batch_last_block(__m512 r[16], const float* src, int64_t N, int64_t C, int64_t plane,
                                    int64_t HW, int64_t c, int64_t hw0, int64_t n0) {
  const __mmask16 valid = first_lanes(HW - hw0);
  for (int i = 0; i < 16; ++i)
    r[i] = n0 + i < N ? _mm512_maskz_loadu_ps(valid, src + ((n0 + i) * C + c) * plane + hw0) : _mm512_setzero_ps();
  transpose16(r);
}

// (N, C, HW) -> (HW, C, NP) float32, NP a multiple of 16, samples N..NP-1 zero.
static void to_batch_last_f32(const float* src, float* dst, int64_t N, int64_t C, int64_t HW, int64_t NP,
                              int threads) {
  const int64_t blocks = (HW + 15) / 16;
  parallel_for(C * blocks, threads, [&](int64_t begin, int64_t end) {
    __m512 r[16];
    for (int64_t cb = begin; cb < end; ++cb) {
      const int64_t c = cb / blocks, hw0 = (cb % blocks) * 16, rows = std::min<int64_t>(16, HW - hw0);
      for (int64_t n0 = 0; n0 < NP; n0 += 16) {
        batch_last_block(r, src, N, C, HW, HW, c, hw0, n0);
        for (int64_t j = 0; j < rows; ++j) _mm512_storeu_ps(dst + ((hw0 + j) * C + c) * NP + n0, r[j]);
      }
    }
  });
}

// (HW, C, NP) -> (N, C, HW) float32, NP a multiple of 16.
static void from_batch_last(const float* src, float* dst, int64_t N, int64_t C, int64_t HW, int64_t NP,
                            int threads) {
  const int64_t blocks = (HW + 15) / 16;
  parallel_for(C * blocks, threads, [&](int64_t begin, int64_t end) {
    __m512 r[16];
    for (int64_t cb = begin; cb < end; ++cb) {
      const int64_t c = cb / blocks, hw0 = (cb % blocks) * 16, rows = std::min<int64_t>(16, HW - hw0);
      const __mmask16 valid = first_lanes(rows);
      for (int64_t n0 = 0; n0 < N; n0 += 16) {
        for (int j = 0; j < 16; ++j)
          r[j] = j < rows ? _mm512_loadu_ps(src + ((hw0 + j) * C + c) * NP + n0) : _mm512_setzero_ps();
        transpose16(r);
        for (int64_t i = 0; i < 16 && n0 + i < N; ++i)
          _mm512_mask_storeu_ps(dst + ((n0 + i) * C + c) * HW + hw0, valid, r[i]);
      }
    }
  });
}
#else
static const int64_t LAYOUT_TILE = 32;

// (N, C, HW) -> (HW, C, NP) float32, samples N..NP-1 zero.
static void to_batch_last_f32(const float* src, float* dst, int64_t N, int64_t C, int64_t HW, int64_t NP,
                              int threads) {
  const int64_t blocks = (HW + LAYOUT_TILE - 1) / LAYOUT_TILE;
  parallel_for(C * blocks, threads, [&](int64_t begin, int64_t end) {
    for (int64_t cb = begin; cb < end; ++cb) {
      const int64_t c = cb / blocks, h0 = (cb % blocks) * LAYOUT_TILE, he = std::min(HW, h0 + LAYOUT_TILE);
      for (int64_t n0 = 0; n0 < N; n0 += LAYOUT_TILE) {
        const int64_t ne = std::min(N, n0 + LAYOUT_TILE);
        for (int64_t hw = h0; hw < he; ++hw)
          for (int64_t n = n0; n < ne; ++n) dst[(hw * C + c) * NP + n] = src[(n * C + c) * HW + hw];
      }
      for (int64_t hw = h0; hw < he; ++hw)
        for (int64_t n = N; n < NP; ++n) dst[(hw * C + c) * NP + n] = 0.0f;
    }
  });
}

// (H*W, C, NP) -> (N, C, H*W), float32.
static void from_batch_last(const float* src, float* dst, int64_t N, int64_t C, int64_t HW, int64_t NP,
                            int threads) {
  const int64_t blocks = (HW + LAYOUT_TILE - 1) / LAYOUT_TILE;
  parallel_for(C * blocks, threads, [&](int64_t begin, int64_t end) {
    for (int64_t cb = begin; cb < end; ++cb) {
      const int64_t c = cb / blocks, h0 = (cb % blocks) * LAYOUT_TILE, he = std::min(HW, h0 + LAYOUT_TILE);
      for (int64_t n0 = 0; n0 < N; n0 += LAYOUT_TILE) {
        const int64_t ne = std::min(N, n0 + LAYOUT_TILE);
        for (int64_t n = n0; n < ne; ++n) {
          float* d = dst + (n * C + c) * HW;
          for (int64_t hw = h0; hw < he; ++hw) d[hw] = src[(hw * C + c) * NP + n];
        }
      }
    }
  });
}
#endif
