// Per-candidate histograms for the selectivity probe (catneuron/probe/selectivity.py).
//
// counts[class][u][bin] += 1 for every response acts[n][u], bin = floor((a - lo[u]) * scale[u])
// clamped to [0, bins). The generic PyTorch version scatters B*U increments across the whole
// (classes, U, bins) table; here each thread owns a block of candidates, so its part of the table
// stays in cache while it walks the batch, and no index tensor is built.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "parallel.h"

extern "C" void catneuron_histogram(const float* acts, const int64_t* classes, const float* lo, const float* scale,
                                    int32_t* counts, int64_t B, int64_t U, int64_t bins, int threads) {
  const int64_t block = 256;
  const int64_t blocks = (U + block - 1) / block;
  auto work = [&](int64_t first, int64_t last) {
    for (int64_t blk = first; blk < last; ++blk) {
      const int64_t u0 = blk * block, u1 = std::min(U, u0 + block);
      for (int64_t n = 0; n < B; ++n) {
        const float* a = acts + n * U;
        int32_t* c = counts + classes[n] * U * bins;
        for (int64_t u = u0; u < u1; ++u) {
          float v = (a[u] - lo[u]) * scale[u];
          int64_t b = std::isnan(v) ? 0 : (int64_t)std::floor(v);
          b = b < 0 ? 0 : (b >= bins ? bins - 1 : b);
          c[u * bins + b] += 1;
        }
      }
    }
  };
  parallel_for(blocks, threads, work);
}
