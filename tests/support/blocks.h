// NCHW <-> the CPU engine's blocked layouts (nChw8c, nChw16c: blocks of b channels, the last one
// padded) for the kernel tests. Padding lanes are NaN: a kernel that reads them fails its check.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

namespace myelin::test {

// Floats in the blocked buffer of n images of c channels and hw pixels.
inline int64_t blocked_size(int64_t n, int64_t c, int64_t hw, int64_t b) {
  return n * (c + b - 1) / b * b * hw;
}

// Calls f(NCHW index, blocked index) for every element.
template <class F>
void each_blocked_index(int64_t n, int64_t c, int64_t hw, int64_t b, F f) {
  const int64_t cp = (c + b - 1) / b * b;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t p = 0; p < hw; ++p)
        f((i * c + ch) * hw + p, ((i * cp / b + ch / b) * hw + p) * b + ch % b);
}

inline std::vector<float> to_blocks(const std::vector<float>& x, int64_t n, int64_t c, int64_t hw,
                                    int64_t b) {
  std::vector<float> y(blocked_size(n, c, hw, b), std::numeric_limits<float>::quiet_NaN());
  each_blocked_index(n, c, hw, b, [&](int64_t plain, int64_t blocked) { y[blocked] = x[plain]; });
  return y;
}

inline std::vector<float> from_blocks(const std::vector<float>& y, int64_t n, int64_t c, int64_t hw,
                                      int64_t b) {
  std::vector<float> x(n * c * hw);
  each_blocked_index(n, c, hw, b, [&](int64_t plain, int64_t blocked) { x[plain] = y[blocked]; });
  return x;
}

}  // namespace myelin::test
