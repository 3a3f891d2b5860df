// The fastest of repeated runs, in milliseconds: the kernel tests' DISABLED_Timing benchmarks,
// where other work may share the cores.
#pragma once
#include <algorithm>
#include <chrono>

namespace myelin::test {

template <class F>
double fastest_ms(F&& f, int runs = 200) {
  double best = 1e30;
  for (int r = 0; r < runs; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    const auto t1 = std::chrono::steady_clock::now();
    best = std::min(best, std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  return best;
}

}  // namespace myelin::test
