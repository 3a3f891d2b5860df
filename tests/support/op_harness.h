// The op-test harness: every op is an OpCase (a tiny graph of one op) checked on a device
// against a float64 reference on random, never-zero inputs, and its gradients (through autodiff,
// i.e. the op's gradient rule and the backward kernels) against central finite differences of
// the float64 reference. The same cases drive a performance mode (MYELIN_OP_PERF=1 prints each
// case's forward and backward time).
#pragma once
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/op_registry.h"

namespace myelin::test {

using Doubles = std::vector<double>;

struct OpCase {
  std::string name;  // "conv2d/stride2_groups2", unique
  std::string op;    // any registered op (composites too)
  Attrs attrs;
  std::vector<TensorType> inputs;  // float inputs are uniform in [-1, 1] away from 0;
  int64_t int_max = 10;            // i32 inputs are uniform integers in [0, int_max)
  bool training = true;            // graph mode (dropout, batch norm)
  // float64 reference: inputs (as doubles, row-major) -> outputs (as doubles).
  std::function<std::vector<Doubles>(const std::vector<Doubles>& in, const Attrs& attrs,
                                     const std::vector<TensorType>& in_types)>
      reference;
  std::vector<int> grad_inputs;      // inputs whose gradients are checked (empty: none)
  std::vector<int> checked_outputs;  // outputs compared and seeded (empty: all)
  double fwd_tol = 1e-5;             // relative error ||out - ref|| / ||ref|| on fp32
  double grad_tol = 1e-4;
  double fd_step = 1e-4;  // finite-difference step on the float64 reference
  // Values where the reference is not differentiable (ReLU at 0, max-pool ties) are avoided by
  // drawing inputs away from them; a case may also transform its random inputs:
  std::function<void(std::vector<Doubles>& in)> prepare;
  // Perf mode times the op at these input shapes when set (the checks keep `inputs`); attrs must
  // suit both. prepare is not applied to them: timing needs no particular values.
  std::vector<TensorType> perf_inputs;
};

// Registers a case at static-initialisation time (from tests/support/cases_*.cpp).
bool register_case(OpCase c);
const std::vector<OpCase>& all_cases();

struct CaseResult {
  double fwd_error = 0;             // worst relative error over checked outputs
  std::vector<double> grad_errors;  // per grad_inputs entry
  double fwd_ms = 0, bwd_ms = 0;    // perf mode only
  std::string detail;               // what went wrong, for the failure message
};

// Runs one case on a device ("cpu" or "cuda:0"); precision as in BackendOptions.
CaseResult run_case(const OpCase& c, Device device, const std::string& precision = "fp32");

// Tolerance scale for a precision: fp32 1, tf32 ~30, bf16 ~1000 (relative to fwd_tol).
double precision_factor(const std::string& precision);

// --- Additions (the harness's fixed facts, for references and for test programs) ---

// Every run uses this StepContext, so a reference can reproduce seeded ops: dropout's mask is
// dropout_key(kCaseSeed, kCaseStep, node) with node = kCaseNode, the index of the op's first
// primitive node (the harness adds nothing before the op).
constexpr uint64_t kCaseSeed = 0x5EED2015;
constexpr uint64_t kCaseStep = 7;
constexpr int kCaseNode = 0;
StepContext case_context();

// The primitive ops in a case's graphs: the forward graph and, when grad_inputs is set, the
// backward graph the harness differentiates. Used to check that every op is exercised.
std::vector<std::string> case_ops(const OpCase& c);

// Batch norm in float64, the reference of the batch_norm cases: inputs (x, gamma, beta,
// running_mean, running_var) -> y, and in training the batch's mean and invstd.
std::vector<Doubles> reference_batch_norm(const std::vector<Doubles>& in, const Attrs& a,
                                          const std::vector<TensorType>& t, bool training);

// Max pooling in float64 (attrs as max_pool2d's), the reference of the max_pool2d cases: x -> y.
std::vector<Doubles> reference_max_pool(const std::vector<Doubles>& in, const Attrs& a,
                                        const std::vector<TensorType>& t);

// "conv2d/stride2_groups2" -> "conv2d_stride2_groups2" (GoogleTest parameter names).
std::string case_test_name(const OpCase& c);
// Lets GoogleTest print a case by name in failure messages.
void PrintTo(const OpCase& c, std::ostream* os);

// MYELIN_OP_PERF=1: run_case also times forward and forward+backward (fwd_ms, and bwd_ms holds
// forward+backward; 0 without grad_inputs), the median of several runs after a warm-up, at
// perf_inputs when set, and records a row; perf_report() formats the rows recorded so far as a
// table (empty when none).
bool perf_mode();
std::string perf_report();

}  // namespace myelin::test
