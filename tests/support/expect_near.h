// Compares a kernel's float result with a double reference: the sizes match, the reference is not
// all zero, and the largest difference is within `rel_tol` times the largest reference magnitude.
// A NaN in the result counts as an infinite difference. The CPU kernel tests' accuracy check.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace myelin::test {

inline void expect_near(const std::vector<double>& want, const std::vector<float>& got,
                        double rel_tol, const char* what) {
  ASSERT_EQ(want.size(), got.size()) << what;
  double scale = 0, diff = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    scale = std::max(scale, std::fabs(want[i]));
    const double d =
        std::isnan(got[i]) ? std::numeric_limits<double>::infinity() : std::fabs(want[i] - got[i]);
    diff = std::max(diff, d);
  }
  EXPECT_GT(scale, 0) << what;
  EXPECT_LE(diff, rel_tol * scale) << what;
}

}  // namespace myelin::test
