// Locally connected layer kernels for the CPU in bfloat16 (AVX-512 BF16, `vdpbf16ps`).
//
// The register tiles of the float32 kernels (lc_cpu.cpp: the same three maps, the same loops and
// thread split), with every multiply-add a pair: one vdpbf16ps adds a[2t] b[2t] + a[2t+1] b[2t+1]
// to each of 16 float32 lanes, twice the work of an FMA for the same register traffic. Inputs and
// weights are rounded to bfloat16 (to nearest even) on the way in; every sum is float32 and the
// outputs are float32 in the float32 kernels' layouts.
//
// The inner index t of each kernel runs in pairs, so each operand holds the pair innermost, next
// to the vector index (bfloat16 values are uint16_t: GCC 12 has no bfloat16 arithmetic type):
//   forward      t = (q, c)   xq (2, H, WC2, NP, 2): copy `par` pairs the row's W*C values from
//                             offset par, so a run that starts at an odd column is pair-aligned in
//                             one of the two copies;  weights per location (M, r, 2*RC2)
//   transpose    t = m        yq (Ho*Wo, M2, NP, 2);  weights per output row (Wo, r, C, 2*M2)
//   weight grad  t = n        xn (H, NP/2, WR, 2);    yb (Ho, Wo, M, NP)
// NP is the batch rounded up to 16; padded samples, columns and maps hold zeros. The float32
// weights are packed inside the kernels, a location's (or an output row's kernel row) at a time into
// a per-thread buffer that its tiles then reuse from cache: every weight is read once from memory,
// as in the float32 kernels, and no packed copy is written back.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "layouts.h"
#include "parallel.h"

typedef uint16_t bf16;

extern "C" int catneuron_bf16_supported() {
#if defined(__AVX512BF16__) && defined(__AVX512F__)
  return 1;  // built with -march=native: the instructions are this machine's
#else
  return 0;
#endif
}

#if defined(__AVX512BF16__) && defined(__AVX512F__)
#include <immintrin.h>

#define VLEN 16
#define ACC_REGS 24  // of 32 vector registers, leaving room for the B row and a broadcast
#define MAX_NV 4
#include "tiles.h"

static inline bf16 to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (bf16)((u >> 16) | 0x40);  // NaN stays a (quiet) NaN
  u += 0x7fffu + ((u >> 16) & 1u);                                         // round to nearest even
  return (bf16)(u >> 16);
}

// The 16 pairs (a[i], b[i]) rounded to bfloat16, a first: 16 x 32 bits.
static inline __m512i pairs(__m512 a, __m512 b) {
  const __m512i weave = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                         23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  return _mm512_permutexvar_epi16(weave, (__m512i)_mm512_cvtne2ps_pbh(b, a));
}

static inline void store_pairs(bf16* dst, __m512 a, __m512 b) { _mm512_storeu_si512(dst, pairs(a, b)); }

template <int A, int NV>
static inline void zero(__m512 (&acc)[A][NV]) {
  for (int a = 0; a < A; ++a)
    for (int v = 0; v < NV; ++v) acc[a][v] = _mm512_setzero_ps();
}

// acc[a][v] += A[t*at + a*aa + e] * B[t*bt + (v*VLEN + lane)*2 + e], summed over pairs t < T2 and e < 2.
template <int A, int NV>
static inline void dp_block(__m512 (&acc)[A][NV], int64_t T2, const bf16* A_, int64_t at, int64_t aa,
                            const bf16* B, int64_t bt) {
  for (int64_t t = 0; t < T2; ++t) {
    __m512bh b[NV];
    for (int v = 0; v < NV; ++v) b[v] = (__m512bh)_mm512_loadu_si512(B + t * bt + v * 2 * VLEN);
    for (int a = 0; a < A; ++a) {
      int32_t pair;
      std::memcpy(&pair, A_ + t * at + a * aa, sizeof pair);
      const __m512bh s = (__m512bh)_mm512_set1_epi32(pair);
      for (int v = 0; v < NV; ++v) acc[a][v] = _mm512_dpbf16_ps(acc[a][v], s, b[v]);
    }
  }
}

// Stores the first `valid` floats of each accumulator row (rows `row_stride` apart).
template <int A, int NV>
static inline void store_rows(const __m512 (&acc)[A][NV], float* out, int64_t row_stride, int64_t valid) {
  for (int a = 0; a < A; ++a) {
    if (valid >= NV * VLEN) {
      for (int v = 0; v < NV; ++v) _mm512_storeu_ps(out + a * row_stride + v * VLEN, acc[a][v]);
    } else {
      float tmp[NV * VLEN];
      for (int v = 0; v < NV; ++v) _mm512_storeu_ps(tmp + v * VLEN, acc[a][v]);
      std::memcpy(out + a * row_stride, tmp, valid * sizeof(float));
    }
  }
}

struct Geometry {
  int64_t H, W, C, NP, Ho, Wo, M, r, s, N;
  int64_t rC() const { return r * C; }
  int64_t K() const { return r * r * C; }
  int64_t RC2() const { return (rC() + 1) / 2; }        // pairs per packed kernel row
  int64_t WC2() const { return (W * C + 2) / 2; }       // pairs per row of xq (the odd copy's last included)
  int64_t WR() const { return W * C + VLEN; }           // values per (row, sample pair) of xn
  int64_t M2() const { return (M + 1) / 2; }
};

// wl: the location's weights packed by pack_location, from map m0. Before each kernel row the
// tile asks for `ahead` floats from `next` on (the next location's weights) to be fetched into
// the cache: spread over the tiles, the fetches keep memory busy while the vector units compute.
template <int A, int NV>
static void forward_tile(const Geometry& g, const bf16* xq, const bf16* wl, float* y, int64_t i, int64_t j,
                         int64_t m0, int64_t n0, const float* next, int64_t ahead) {
  __m512 acc[A][NV];
  zero(acc);
  const int64_t start = j * g.s * g.C, par = start & 1, k2 = start >> 1, row = 2 * g.RC2();
  for (int64_t p = 0; p < g.r; ++p) {
    const bf16* xb = xq + (((par * g.H + i * g.s + p) * g.WC2() + k2) * g.NP + n0) * 2;
    for (int64_t k = 0; k < ahead; k += 16) _mm_prefetch((const char*)(next + p * ahead + k), _MM_HINT_T1);
    dp_block<A, NV>(acc, g.RC2(), wl + p * row, 2, g.r * row, xb, 2 * g.NP);
  }
  store_rows(acc, y + ((i * g.Wo + j) * g.M + m0) * g.NP + n0, g.NP, NV * VLEN);
}

// slabs: for each output row i covering input row h (from the first, i_lo), its kernel row
// p = h - i*s packed by pack_slab.
template <int A, int NV>
static void transpose_tile(const Geometry& g, const bf16* yq, const bf16* slabs, float* x, int64_t h, int64_t col,
                           int64_t c0, int64_t n0) {
  __m512 acc[A][NV];
  zero(acc);
  const int64_t M2 = g.M2();
  const int64_t i_lo = first_cover(h, g.r, g.s), i_hi = std::min(g.Ho - 1, h / g.s);
  const int64_t j_hi = std::min(g.Wo - 1, col / g.s);
  for (int64_t i = i_lo; i <= i_hi; ++i) {
    const int64_t p = h - i * g.s;
    const bf16* slab = slabs + (i - i_lo) * g.Wo * g.r * g.C * 2 * M2;  // kernel row p of output row i
    for (int64_t j = first_cover(col, g.r, g.s); j <= j_hi; ++j) {
      const int64_t q = col - j * g.s, l = i * g.Wo + j;
      const bf16* wl = slab + ((j * g.r + q) * g.C + c0) * 2 * M2;
      dp_block<A, NV>(acc, M2, wl, 2, 2 * M2, yq + (l * M2 * g.NP + n0) * 2, 2 * g.NP);
    }
  }
  store_rows(acc, x + ((h * g.W + col) * g.C + c0) * g.NP + n0, g.NP, NV * VLEN);
}

template <int A, int NV>
static void weight_grad_tile(const Geometry& g, const bf16* xn, const bf16* yb, float* dw, int64_t i, int64_t j,
                             int64_t p, int64_t m0, int64_t k0) {
  __m512 acc[A][NV];
  zero(acc);
  // Sums over the pairs that hold samples (the padding to NP is zeros). As in lc_cpu.cpp, the
  // last tile of a kernel row reads past r*C into the neighbouring columns
  // (or the row padding); store_rows drops those lanes.
  dp_block<A, NV>(acc, (g.N + 1) / 2, yb + ((i * g.Wo + j) * g.M + m0) * g.NP, 2, g.NP,
                  xn + (((i * g.s + p) * (g.NP / 2)) * g.WR() + j * g.s * g.C + k0) * 2, 2 * g.WR());
  store_rows(acc, dw + ((i * g.Wo + j) * g.M + m0) * g.K() + p * g.rC() + k0, g.K(), g.rC() - k0);
}

extern "C" {

// x (N, C, H, W) float32 -> xq (2, H, WC2, NP, 2), pairs over each row's W*C values. Only copy 0
// is written when `both` is 0 (a stride times channels that is even never starts a run at an odd
// column). Each row goes through an L2-sized scratch in (W*C, NP) order, then pairs are woven.
void catneuron_bf16_pairs_over_k(const float* x, bf16* xq, int64_t N, int64_t C, int64_t H, int64_t W,
                                 int64_t NP, int both, int threads) {
  const int64_t WC = W * C, WC2 = (WC + 2) / 2, blocks = (W + 15) / 16;
  parallel_for(H, threads, [&](int64_t begin, int64_t end) {
    std::vector<float> scratch(WC * NP);
    const auto row = [&](int64_t k, int64_t n0) {  // past the row's end: zeros
      return k < WC ? _mm512_loadu_ps(scratch.data() + k * NP + n0) : _mm512_setzero_ps();
    };
    __m512 r[16];
    for (int64_t h = begin; h < end; ++h) {
      for (int64_t c = 0; c < C; ++c)
        for (int64_t b = 0; b < blocks; ++b)
          for (int64_t n0 = 0; n0 < NP; n0 += 16) {
            batch_last_block(r, x + h * W, N, C, H * W, W, c, b * 16, n0);
            for (int64_t j = 0; j < std::min<int64_t>(16, W - b * 16); ++j)
              _mm512_storeu_ps(scratch.data() + ((b * 16 + j) * C + c) * NP + n0, r[j]);
          }
      for (int64_t par = 0; par <= (both ? 1 : 0); ++par)
        for (int64_t k2 = 0; k2 < WC2; ++k2) {
          const int64_t k = par + 2 * k2;
          bf16* d = xq + ((par * H + h) * WC2 + k2) * NP * 2;
          for (int64_t n0 = 0; n0 < NP; n0 += 16)
            store_pairs(d + n0 * 2, row(k, n0), row(k + 1, n0));
        }
    }
  });
}

// x (N, C, H, W) float32 -> xn (H, NP/2, WR, 2), pairs of samples; each row's W*C values, then zeros.
void catneuron_bf16_pairs_over_n(const float* x, bf16* xn, int64_t N, int64_t C, int64_t H, int64_t W,
                                 int64_t NP, int threads) {
  const int64_t WR = W * C + VLEN;
  parallel_for(H, threads, [&](int64_t begin, int64_t end) {
    for (int64_t h = begin; h < end; ++h) {
      bf16* d = xn + h * (NP / 2) * WR * 2;
      std::memset(d, 0, (NP / 2) * WR * 2 * sizeof(bf16));
      for (int64_t n = 0; n < N; ++n)
        for (int64_t c = 0; c < C; ++c) {
          const float* src = x + ((n * C + c) * H + h) * W;
          for (int64_t w = 0; w < W; ++w) d[((n >> 1) * WR + w * C + c) * 2 + (n & 1)] = to_bf16(src[w]);
        }
    }
  });
}

// y (N, M, HW) float32 -> yb (HW, M, NP).
void catneuron_bf16_batch_last(const float* y, bf16* yb, int64_t N, int64_t M, int64_t HW, int64_t NP,
                               int threads) {
  const int64_t blocks = (HW + 15) / 16;
  parallel_for(M * blocks, threads, [&](int64_t begin, int64_t end) {
    __m512 r[16];
    for (int64_t mb = begin; mb < end; ++mb) {
      const int64_t m = mb / blocks, hw0 = (mb % blocks) * 16;
      for (int64_t n0 = 0; n0 < NP; n0 += 16) {
        batch_last_block(r, y, N, M, HW, HW, m, hw0, n0);
        for (int64_t j = 0; j < std::min<int64_t>(16, HW - hw0); ++j)
          _mm256_storeu_si256((__m256i*)(yb + ((hw0 + j) * M + m) * NP + n0), (__m256i)_mm512_cvtneps_pbh(r[j]));
      }
    }
  });
}

// y (N, M, HW) float32 -> yq (HW, M2, NP, 2), pairs over maps (an odd M's last partner zero).
void catneuron_bf16_pairs_over_m(const float* y, bf16* yq, int64_t N, int64_t M, int64_t HW, int64_t NP,
                                 int threads) {
  const int64_t M2 = (M + 1) / 2, blocks = (HW + 15) / 16;
  parallel_for(M2 * blocks, threads, [&](int64_t begin, int64_t end) {
    __m512 a[16], b[16];
    for (int64_t mb = begin; mb < end; ++mb) {
      const int64_t m2 = mb / blocks, hw0 = (mb % blocks) * 16;
      for (int64_t n0 = 0; n0 < NP; n0 += 16) {
        batch_last_block(a, y, N, M, HW, HW, 2 * m2, hw0, n0);
        if (2 * m2 + 1 < M)
          batch_last_block(b, y, N, M, HW, HW, 2 * m2 + 1, hw0, n0);
        else
          for (int j = 0; j < 16; ++j) b[j] = _mm512_setzero_ps();
        for (int64_t j = 0; j < std::min<int64_t>(16, HW - hw0); ++j)
          store_pairs(yq + ((hw0 + j) * M2 + m2) * NP * 2 + n0 * 2, a[j], b[j]);
      }
    }
  });
}

// Location l's weights (M, r, r*C) float32 -> wl (M, r, 2*RC2), each kernel row zero-padded to whole pairs.
static void pack_location(const Geometry& g, const float* w, int64_t l, bf16* wl) {
  const int64_t rC = g.rC(), padded = 2 * g.RC2();
  for (int64_t row = 0; row < g.M * g.r; ++row) {
    const float* src = w + (l * g.M * g.r + row) * rC;
    bf16* d = wl + row * padded;
    int64_t k = 0;
    for (; k + 32 <= rC; k += 32)
      _mm512_storeu_si512(d + k, (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + k + 16), _mm512_loadu_ps(src + k)));
    for (; k < rC; ++k) d[k] = to_bf16(src[k]);
    if (padded > rC) d[rC] = 0;
  }
}

// Eight maps' values at 16 consecutive k, rows[m] (m < 8), stored as (k, m) bfloat16: 256 bytes.
static inline void store_eight_maps(bf16* dst, const __m512 rows[8]) {
  __m512i v[4];  // v[p] holds, per k, the pair (maps 2p, 2p+1) as 32 bits
  for (int p = 0; p < 4; ++p) v[p] = pairs(rows[2 * p], rows[2 * p + 1]);
  // A 4 x 16 transpose of 32-bit values, so that each k's four pairs are adjacent.
  const __m512i t0 = _mm512_unpacklo_epi32(v[0], v[1]), t1 = _mm512_unpackhi_epi32(v[0], v[1]);
  const __m512i t2 = _mm512_unpacklo_epi32(v[2], v[3]), t3 = _mm512_unpackhi_epi32(v[2], v[3]);
  const __m512i u0 = _mm512_unpacklo_epi64(t0, t2), u1 = _mm512_unpackhi_epi64(t0, t2);
  const __m512i u2 = _mm512_unpacklo_epi64(t1, t3), u3 = _mm512_unpackhi_epi64(t1, t3);
  const __m512i a = _mm512_shuffle_i32x4(u0, u1, 0x44), b = _mm512_shuffle_i32x4(u2, u3, 0x44);
  const __m512i c = _mm512_shuffle_i32x4(u0, u1, 0xee), d = _mm512_shuffle_i32x4(u2, u3, 0xee);
  _mm512_storeu_si512(dst, _mm512_shuffle_i32x4(a, b, 0x88));
  _mm512_storeu_si512(dst + 32, _mm512_shuffle_i32x4(a, b, 0xdd));
  _mm512_storeu_si512(dst + 64, _mm512_shuffle_i32x4(c, d, 0x88));
  _mm512_storeu_si512(dst + 96, _mm512_shuffle_i32x4(c, d, 0xdd));
}

// Kernel row p of output row i, w[i, :, :, p] float32 -> slab (Wo, r*C, 2*M2): maps innermost, in pairs.
static void pack_slab(const Geometry& g, const float* w, int64_t i, int64_t p, bf16* slab) {
  const int64_t rC = g.rC(), MP = 2 * g.M2();
  for (int64_t j = 0; j < g.Wo; ++j) {
    const float* src = w + (((i * g.Wo + j) * g.M) * g.r + p) * rC;   // map m's row at src + m * r * rC
    bf16* d = slab + j * rC * MP;
    int64_t k0 = 0;
    if (g.M == 8) {  // the presets' maps: 16 values at a time in registers
      __m512 rows[8];
      for (; k0 + 16 <= rC; k0 += 16) {
        for (int m = 0; m < 8; ++m) rows[m] = _mm512_loadu_ps(src + m * g.r * rC + k0);
        store_eight_maps(d + k0 * 8, rows);
      }
    }
    for (int64_t m = 0; m < g.M; ++m)
      for (int64_t k = k0; k < rC; ++k) d[k * MP + m] = to_bf16(src[m * g.r * rC + k]);
    if (MP > g.M)
      for (int64_t k = k0; k < rC; ++k) d[k * MP + g.M] = 0;
  }
}

void catneuron_lc_forward_bf16(const bf16* xq, const float* w, float* y, int64_t H, int64_t W, int64_t C,
                               int64_t NP, int64_t Ho, int64_t Wo, int64_t M, int64_t r, int64_t s, int threads) {
  const Geometry g{H, W, C, NP, Ho, Wo, M, r, s};
  const int64_t location = M * r * g.rC();  // floats of one location's weights
  int64_t tiles = 0;                          // per location
  for (int64_t m0 = 0; m0 < M; m0 += 8)
    for (int64_t n0 = 0; n0 < NP; ++tiles) n0 += tile_vectors((int)std::min<int64_t>(8, M - m0), (NP - n0) / VLEN) * VLEN;
  const int64_t ahead = (location + tiles * r * 16 - 1) / (tiles * r * 16) * 16;  // per kernel row of a tile
  parallel_for(Ho * Wo, threads, [&](int64_t begin, int64_t end) {
    std::vector<bf16> packed(M * r * 2 * g.RC2());
    for (int64_t l = begin; l < end; ++l) {
      pack_location(g, w, l, packed.data());
      int64_t tile = 0;
      for (int64_t m0 = 0; m0 < M; m0 += 8) {
        const int rows = (int)std::min<int64_t>(8, M - m0);
        const bf16* wl = packed.data() + m0 * r * 2 * g.RC2();
        for (int64_t n0 = 0; n0 < NP; ++tile) {
          const int nv = tile_vectors(rows, (NP - n0) / VLEN);
          // The fetches run past the last location by at most one location: prefetches never fault.
          DISPATCH(forward_tile, g, xq, wl, y, l / Wo, l % Wo, m0, n0, w + (l + 1) * location + tile * r * ahead,
                   l + 1 < end ? ahead : 0);
          n0 += nv * VLEN;
        }
      }
    }
  });
}

void catneuron_lc_transpose_bf16(const bf16* yq, const float* w, float* x, int64_t H, int64_t W, int64_t C,
                                 int64_t NP, int64_t Ho, int64_t Wo, int64_t M, int64_t r, int64_t s, int threads) {
  const Geometry g{H, W, C, NP, Ho, Wo, M, r, s};
  const int64_t slab = Wo * r * C * 2 * g.M2();
  parallel_for(H, threads, [&](int64_t begin, int64_t end) {
    std::vector<bf16> slabs(((r + s - 1) / s) * slab);   // at most ceil(r/s) output rows cover an input row
    for (int64_t h = begin; h < end; ++h) {
      const int64_t i_lo = first_cover(h, r, s), i_hi = std::min(Ho - 1, h / s);
      for (int64_t i = i_lo; i <= i_hi; ++i) pack_slab(g, w, i, h - i * s, slabs.data() + (i - i_lo) * slab);
      for (int64_t col = 0; col < W; ++col)
        for (int64_t c0 = 0; c0 < C; c0 += 8) {
          const int rows = (int)std::min<int64_t>(8, C - c0);
          for (int64_t n0 = 0; n0 < NP;) {
            const int nv = tile_vectors(rows, (NP - n0) / VLEN);
            DISPATCH(transpose_tile, g, yq, slabs.data(), x, h, col, c0, n0);
            n0 += nv * VLEN;
          }
        }
    }
  });
}

void catneuron_lc_weight_grad_bf16(const bf16* xn, const bf16* yb, float* dw, int64_t H, int64_t W, int64_t C,
                                   int64_t NP, int64_t Ho, int64_t Wo, int64_t M, int64_t r, int64_t s, int64_t N,
                                   int threads) {
  const Geometry g{H, W, C, NP, Ho, Wo, M, r, s, N};
  weight_grad_tiles(H, Ho, Wo, M, r, s, g.rC(), VLEN, threads,
                    [&](int64_t i, int64_t j, int64_t p, int64_t m0, int rows, int nv, int64_t k0) {
                      DISPATCH(weight_grad_tile, g, xn, yb, dw, i, j, p, m0, k0);
                    });
}

}  // extern "C"
#endif
