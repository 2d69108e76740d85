// Locally connected layer kernels for the CPU (float32).
//
// Layouts (all row-major, the last index is contiguous):
//   x  (H, W, C, NP)       input, batch innermost, NP = batch rounded up to a vector, zero padded
//   xt (H, N, WR)          input again, each (row, sample) holding W*C floats, WR >= W*C + VLEN
//   y  (Ho, Wo, M, NP)     output of the layer (or gradient w.r.t. it), batch innermost
//   w  (Ho, Wo, M, r, r, C)  untied weights: M filters of r x r x C per output location
//
// Every kernel is one register-blocked update  acc[a][v] += A[t, a] * B[t, v]  (fma_block):
// A values are broadcast, B rows are vectors, the A x NV accumulator tile lives in registers.
// MKL runs these shapes (8-row GEMMs, one per location) at under a third of peak; the tile
// keeps the FMA units busy instead.
//   lc_forward      y[i,j]          = sum_p  w[i,j,:,p] . x[i*s+p, j*s : j*s+r]      (vectors over n)
//   lc_transpose    x[h,w]          = sum over locations covering (h,w) of w^T y    (vectors over n)
//   lc_weight_grad  w[i,j,:,p,(q,c)] = sum_n y[i,j,:,n] x[i*s+p, n, j*s*C + (q,c)]  (vectors over q,c)
// Each output element is written by exactly one thread in a fixed order, so results do not
// depend on the number of threads and need no atomics. lc_transpose gathers over the covering
// locations instead of scattering, for the same reason.
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "layouts.h"
#include "parallel.h"

#if defined(__AVX512F__)
#define VLEN 16
#define ACC_REGS 24  // of 32 vector registers, leaving room for the B row and a broadcast
#elif defined(__AVX__)
#define VLEN 8
#define ACC_REGS 12  // of 16
#else
#define VLEN 4       // SSE, NEON (32 registers on AArch64)
#define ACC_REGS 24
#endif
#define MAX_NV 4
#include "tiles.h"

typedef float vec __attribute__((vector_size(VLEN * sizeof(float)), aligned(sizeof(float))));
static inline vec loadv(const float* p) { return *reinterpret_cast<const vec*>(p); }
static inline void storev(float* p, vec v) { *reinterpret_cast<vec*>(p) = v; }

template <int A, int NV>
static inline void zero(vec (&acc)[A][NV]) {
  for (int a = 0; a < A; ++a)
    for (int v = 0; v < NV; ++v) acc[a][v] = vec{};
}

// acc[a][v] += A[t*at + a*aa] * B[t*bt + v*VLEN ...] for t < T
template <int A, int NV>
static inline void fma_block(vec (&acc)[A][NV], int64_t T, const float* A_, int64_t at, int64_t aa,
                             const float* B, int64_t bt) {
  for (int64_t t = 0; t < T; ++t) {
    vec b[NV];
    for (int v = 0; v < NV; ++v) b[v] = loadv(B + t * bt + v * VLEN);
    for (int a = 0; a < A; ++a) {
      const float s = A_[t * at + a * aa];
      for (int v = 0; v < NV; ++v) acc[a][v] += s * b[v];
    }
  }
}

// Stores the first `valid` floats of each accumulator row (rows `row_stride` apart).
template <int A, int NV>
static inline void store_rows(const vec (&acc)[A][NV], float* out, int64_t row_stride, int64_t valid) {
  for (int a = 0; a < A; ++a) {
    if (valid >= NV * VLEN) {
      for (int v = 0; v < NV; ++v) storev(out + a * row_stride + v * VLEN, acc[a][v]);
    } else {
      float tmp[NV * VLEN];
      for (int v = 0; v < NV; ++v) storev(tmp + v * VLEN, acc[a][v]);
      std::memcpy(out + a * row_stride, tmp, valid * sizeof(float));
    }
  }
}

struct Geometry {
  int64_t H, W, C, N, NP, WR, Ho, Wo, M, r, s;
  int64_t rC() const { return r * C; }
  int64_t K() const { return r * r * C; }
};

template <int A, int NV>
static void forward_tile(const Geometry& g, const float* x, const float* w, float* y, int64_t i, int64_t j,
                         int64_t m0, int64_t n0) {
  vec acc[A][NV];
  zero(acc);
  const float* wl = w + ((i * g.Wo + j) * g.M + m0) * g.K();
  for (int64_t p = 0; p < g.r; ++p) {
    // The r*C rows of one kernel row are contiguous in x: one long run of B rows.
    const float* xb = x + (((i * g.s + p) * g.W + j * g.s) * g.C) * g.NP + n0;
    fma_block<A, NV>(acc, g.rC(), wl + p * g.rC(), 1, g.K(), xb, g.NP);
  }
  store_rows(acc, y + ((i * g.Wo + j) * g.M + m0) * g.NP + n0, g.NP, NV * VLEN);
}

template <int A, int NV>
static void transpose_tile(const Geometry& g, const float* y, const float* w, float* x, int64_t h, int64_t col,
                           int64_t c0, int64_t n0) {
  vec acc[A][NV];
  zero(acc);
  const int64_t K = g.K();
  const int64_t i_hi = std::min(g.Ho - 1, h / g.s), j_hi = std::min(g.Wo - 1, col / g.s);
  for (int64_t i = first_cover(h, g.r, g.s); i <= i_hi; ++i) {
    const int64_t p = h - i * g.s;
    for (int64_t j = first_cover(col, g.r, g.s); j <= j_hi; ++j) {
      const int64_t q = col - j * g.s;
      const float* wl = w + (i * g.Wo + j) * g.M * K + (p * g.r + q) * g.C + c0;
      fma_block<A, NV>(acc, g.M, wl, K, 1, y + (i * g.Wo + j) * g.M * g.NP + n0, g.NP);
    }
  }
  store_rows(acc, x + ((h * g.W + col) * g.C + c0) * g.NP + n0, g.NP, NV * VLEN);
}

template <int A, int NV>
static void weight_grad_tile(const Geometry& g, const float* xt, const float* y, float* dw, int64_t i, int64_t j,
                             int64_t p, int64_t m0, int64_t k0) {
  vec acc[A][NV];
  zero(acc);
  // The last tile of a kernel row may read past r*C into the neighbouring columns (or the row
  // padding); those lanes are computed and dropped by store_rows.
  fma_block<A, NV>(acc, g.N, y + ((i * g.Wo + j) * g.M + m0) * g.NP, 1, g.NP,
                   xt + ((i * g.s + p) * g.N) * g.WR + j * g.s * g.C + k0, g.WR);
  store_rows(acc, dw + ((i * g.Wo + j) * g.M + m0) * g.K() + p * g.rC() + k0, g.K(), g.rC() - k0);
}

extern "C" {

void catneuron_to_batch_last(const float* src, float* dst, int64_t N, int64_t C, int64_t HW, int64_t NP,
                             int threads) {
  to_batch_last_f32(src, dst, N, C, HW, NP, threads);
}

void catneuron_from_batch_last(const float* src, float* dst, int64_t N, int64_t C, int64_t HW, int64_t NP,
                               int threads) {
  from_batch_last(src, dst, N, C, HW, NP, threads);
}

// (N, C, H, W) -> (H, N, WR): each (row, sample) holds its W*C values with channels innermost.
void catneuron_to_rows(const float* src, float* dst, int64_t N, int64_t C, int64_t H, int64_t W, int64_t WR,
                       int threads) {
  parallel_for(H, threads, [&](int64_t begin, int64_t end) {
    for (int64_t h = begin; h < end; ++h)
      for (int64_t n = 0; n < N; ++n) {
        float* d = dst + (h * N + n) * WR;
        for (int64_t c = 0; c < C; ++c) {
          const float* sr = src + ((n * C + c) * H + h) * W;
          for (int64_t w = 0; w < W; ++w) d[w * C + c] = sr[w];
        }
        for (int64_t k = W * C; k < WR; ++k) d[k] = 0.0f;
      }
  });
}

int catneuron_lc_vector_width() { return VLEN; }

void catneuron_lc_forward(const float* x, const float* w, float* y, int64_t H, int64_t W, int64_t C, int64_t NP,
                          int64_t Ho, int64_t Wo, int64_t M, int64_t r, int64_t s, int threads) {
  const Geometry g{H, W, C, 0, NP, 0, Ho, Wo, M, r, s};
  parallel_for(Ho * Wo, threads, [&](int64_t begin, int64_t end) {
    for (int64_t l = begin; l < end; ++l)
      for (int64_t m0 = 0; m0 < M; m0 += 8) {
        const int rows = (int)std::min<int64_t>(8, M - m0);
        for (int64_t n0 = 0; n0 < NP;) {
          const int nv = tile_vectors(rows, (NP - n0) / VLEN);
          DISPATCH(forward_tile, g, x, w, y, l / Wo, l % Wo, m0, n0);
          n0 += nv * VLEN;
        }
      }
  });
}

void catneuron_lc_transpose(const float* y, const float* w, float* x, int64_t H, int64_t W, int64_t C, int64_t NP,
                            int64_t Ho, int64_t Wo, int64_t M, int64_t r, int64_t s, int threads) {
  const Geometry g{H, W, C, 0, NP, 0, Ho, Wo, M, r, s};
  parallel_for(H, threads, [&](int64_t begin, int64_t end) {
    for (int64_t h = begin; h < end; ++h)
      for (int64_t col = 0; col < W; ++col)
        for (int64_t c0 = 0; c0 < C; c0 += 8) {
          const int rows = (int)std::min<int64_t>(8, C - c0);
          for (int64_t n0 = 0; n0 < NP;) {
            const int nv = tile_vectors(rows, (NP - n0) / VLEN);
            DISPATCH(transpose_tile, g, y, w, x, h, col, c0, n0);
            n0 += nv * VLEN;
          }
        }
  });
}

void catneuron_lc_weight_grad(const float* xt, const float* y, float* dw, int64_t H, int64_t W, int64_t C,
                              int64_t N, int64_t NP, int64_t WR, int64_t Ho, int64_t Wo, int64_t M, int64_t r,
                              int64_t s, int threads) {
  const Geometry g{H, W, C, N, NP, WR, Ho, Wo, M, r, s};
  weight_grad_tiles(H, Ho, Wo, M, r, s, g.rC(), VLEN, threads,
                    [&](int64_t i, int64_t j, int64_t p, int64_t m0, int rows, int nv, int64_t k0) {
                      DISPATCH(weight_grad_tile, g, xt, y, dw, i, j, p, m0, k0);
                    });
}

}  // extern "C"
