// Uniform random test data, the same for a seed on every machine.
#pragma once
#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

namespace myelin::test {

inline std::vector<float> random_floats(size_t n, uint64_t seed, float lo = -1, float hi = 1) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

}  // namespace myelin::test
