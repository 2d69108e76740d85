// Shared by the native kernels: split [0, n) into `threads` contiguous chunks, f(begin, end) each,
// the calling thread taking the first. Each index goes to exactly one thread in a fixed order.
#pragma once
#include <algorithm>
#include <cstdint>
#include <thread>
#include <vector>

template <typename F>
static void parallel_for(int64_t n, int threads, F f) {
  threads = (int)std::max<int64_t>(1, std::min<int64_t>(threads, n));
  if (threads == 1) {
    f(0, n);
    return;
  }
  std::vector<std::thread> pool;
  const int64_t chunk = (n + threads - 1) / threads;
  for (int t = 1; t < threads; ++t) {
    const int64_t b = t * chunk, e = std::min(n, b + chunk);
    if (b < e) pool.emplace_back(f, b, e);
  }
  f(0, std::min(n, chunk));
  for (auto& t : pool) t.join();
}
