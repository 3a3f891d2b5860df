// Every op case of tests/support/cases_*.cpp on the CUDA engine (cuda:0): fp32 forward and
// gradients at the case's own tolerances; tf32, bf16 and fp16 forward at the tolerance scaled by
// precision_factor(). Without a GPU every test reports itself SKIPPED, never passed.
// MYELIN_OP_PERF=1 also prints a timing table; each case prints its errors on one line
// ("[cuda fp32] conv2d/basic fwd 1.2e-07 grad 3.4e-06 ...") for gpu-check.sh's summary.
#include <gtest/gtest.h>

#include <cstdio>
#include <iostream>
#include <set>

#include "core/backend.h"
#include "cuda/cuda_info.h"
#include "support/op_harness.h"

using namespace myelin;
using myelin::test::OpCase;

namespace {

std::string no_gpu_reason() {
  if (cuda_device_count() > 0) return "";
  return "no CUDA device on this machine (cudaGetDeviceCount reports none); run "
         "scripts/gpu-check.sh on a GPU machine";
}

class PerfTable : public ::testing::Environment {
 public:
  void TearDown() override {
    std::string table = test::perf_report();
    if (!table.empty()) std::cout << "\nCUDA op timings (median):\n" << table << std::flush;
  }
};
[[maybe_unused]] auto* const perf_table = ::testing::AddGlobalTestEnvironment(new PerfTable);

void print_errors(const OpCase& c, const std::string& precision, const test::CaseResult& r) {
  std::printf("[cuda %s] %s fwd %.3g", precision.c_str(), c.name.c_str(), r.fwd_error);
  for (size_t i = 0; i < r.grad_errors.size(); ++i)
    std::printf(" grad%d %.3g", c.grad_inputs[i], r.grad_errors[i]);
  std::printf("\n");
}

}  // namespace

class OpCaseCuda : public ::testing::TestWithParam<OpCase> {};

TEST_P(OpCaseCuda, Fp32MatchesReferenceAndFiniteDifferences) {
  if (std::string why = no_gpu_reason(); !why.empty()) GTEST_SKIP() << why;
  const OpCase& c = GetParam();
  test::CaseResult r = test::run_case(c, Device::cuda(0), "fp32");
  print_errors(c, "fp32", r);
  EXPECT_LT(r.fwd_error, c.fwd_tol) << c.name << " forward: " << r.detail;
  ASSERT_EQ(r.grad_errors.size(), c.grad_inputs.size()) << c.name << ": " << r.detail;
  for (size_t i = 0; i < r.grad_errors.size(); ++i)
    EXPECT_LT(r.grad_errors[i], c.grad_tol)
        << c.name << " gradient of input " << c.grad_inputs[i] << ": " << r.detail;
}

// Reduced precision changes the matrix products and convolutions only; the forward error must
// stay within the case's tolerance times the precision's factor.
TEST_P(OpCaseCuda, ReducedPrecisionForward) {
  if (std::string why = no_gpu_reason(); !why.empty()) GTEST_SKIP() << why;
  const OpCase& c = GetParam();
  for (std::string precision : {"tf32", "bf16", "fp16"}) {
    test::CaseResult r = test::run_case(c, Device::cuda(0), precision);
    print_errors(c, precision, r);
    double tol = c.fwd_tol * test::precision_factor(precision);
    EXPECT_LT(r.fwd_error, tol) << c.name << " " << precision << " forward: " << r.detail;
  }
}

INSTANTIATE_TEST_SUITE_P(Ops, OpCaseCuda, ::testing::ValuesIn(test::all_cases()),
                         [](const ::testing::TestParamInfo<OpCase>& info) {
                           return test::case_test_name(info.param);
                         });

// Every primitive op (and so every op with a CPU kernel) has a CUDA kernel; needs no GPU, the
// registry is static.
TEST(CudaCoverage, EveryPrimitiveOpHasACudaKernel) {
  std::string missing;
  for (const std::string& name : op_names()) {
    const OpDef& def = op_def(name);
    bool primitive = def.infer && !def.is_view;
    if ((primitive || find_kernel(name, DeviceKind::cpu)) && !find_kernel(name, DeviceKind::cuda))
      missing += (missing.empty() ? "" : ", ") + name;
  }
  EXPECT_TRUE(missing.empty()) << "ops with no CUDA kernel: " << missing;
}
