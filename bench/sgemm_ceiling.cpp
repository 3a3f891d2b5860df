// This machine's single-precision matrix-product ceiling: the GFLOP/s of OpenBLAS's and
// oneDNN's sgemm on large square matrices, the yardstick for the FLOP/s a network reaches.
// usage: sgemm_ceiling [threads=2] [n=2048] [reps=5]
// Prints one JSON object: {"threads", "n", "openblas_gflops", "onednn_gflops", "ceiling_gflops"}
// with the best of `reps` timed products each (after one warm-up), ceiling the larger of the two.
#include <cblas.h>
#include <omp.h>
#include <dnnl.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

extern "C" void openblas_set_num_threads(int);

namespace {

template <class F>
double best_gflops(int64_t n, int reps, F product) {
  product();  // warm-up: page faults, thread start, packing buffers
  double best = 0;
  for (int r = 0; r < reps; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    product();
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, 2.0 * static_cast<double>(n * n * n) / s / 1e9);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 2;
  const int64_t n = argc > 2 ? std::atoll(argv[2]) : 2048;
  const int reps = argc > 3 ? std::atoi(argv[3]) : 5;
  if (threads < 1 || n < 16 || reps < 1) {
    std::fprintf(stderr, "usage: sgemm_ceiling [threads>=1] [n>=16] [reps>=1]\n");
    return 2;
  }
  omp_set_num_threads(threads);
  openblas_set_num_threads(threads);
  std::vector<float> a(n * n), b(n * n), c(n * n);
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> d(-1, 1);
  for (auto* v : {&a, &b}) std::generate(v->begin(), v->end(), [&] { return d(rng); });
  const int ni = static_cast<int>(n);

  double openblas = best_gflops(n, reps, [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, ni, ni, ni, 1.0f, a.data(), ni, b.data(),
                ni, 0.0f, c.data(), ni);
  });
  // OpenBLAS's pthreads spin for a while after a call; let them sleep before oneDNN's OpenMP
  // threads run, or the two pools share the cores.
  openblas_set_num_threads(1);
  double onednn = best_gflops(n, reps, [&] {
    if (dnnl_sgemm('N', 'N', n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n) !=
        dnnl_success) {
      std::fprintf(stderr, "dnnl_sgemm failed\n");
      std::exit(1);
    }
  });
  std::printf(
      "{\"threads\": %d, \"n\": %lld, \"openblas_gflops\": %.1f, \"onednn_gflops\": %.1f, "
      "\"ceiling_gflops\": %.1f}\n",
      threads, static_cast<long long>(n), openblas, onednn, std::max(openblas, onednn));
  return 0;
}
