// Every op case of tests/support/cases_*.cpp on the CPU engine: forward against the float64
// reference, gradients against finite differences. MYELIN_OP_PERF=1 also prints a timing table.
#include <gtest/gtest.h>

#include <iostream>
#include <set>

#include "core/backend.h"
#include "core/error.h"
#include "core/executor.h"
#include "ops/params.h"
#include "support/op_harness.h"

using namespace myelin;
using myelin::test::OpCase;

namespace {

class PerfTable : public ::testing::Environment {
 public:
  void TearDown() override {
    std::string table = test::perf_report();
    if (!table.empty()) std::cout << "\nOp timings (median):\n" << table << std::flush;
  }
};
[[maybe_unused]] auto* const perf_table = ::testing::AddGlobalTestEnvironment(new PerfTable);

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const std::string& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

}  // namespace

class OpCaseCpu : public ::testing::TestWithParam<OpCase> {};

TEST_P(OpCaseCpu, MatchesReferenceAndFiniteDifferences) {
  const OpCase& c = GetParam();
  test::CaseResult r = test::run_case(c, Device::cpu());
  EXPECT_LT(r.fwd_error, c.fwd_tol) << c.name << " forward: " << r.detail;
  ASSERT_EQ(r.grad_errors.size(), c.grad_inputs.size()) << c.name << ": " << r.detail;
  for (size_t i = 0; i < r.grad_errors.size(); ++i)
    EXPECT_LT(r.grad_errors[i], c.grad_tol)
        << c.name << " gradient of input " << c.grad_inputs[i] << ": " << r.detail;
}

INSTANTIATE_TEST_SUITE_P(Ops, OpCaseCpu, ::testing::ValuesIn(test::all_cases()),
                         [](const ::testing::TestParamInfo<OpCase>& info) {
                           return test::case_test_name(info.param);
                         });

// An op nobody wrote a case or a CPU kernel for fails here by name. An op counts as exercised when
// a case's forward or gradient graph contains it (backward ops are checked through the gradients).
TEST(OpCoverage, EveryPrimitiveOpHasACaseAndACpuKernel) {
  // In-place ops: train_solvers_test and train_loss_scale_test check the solver's, and
  // train_sequence_test assign (state carried across steps).
  const std::set<std::string> optimizer_ops = {"optimizer_update", "global_norm_sq",
                                               "accumulate_grad", "loss_scale_update", "assign"};
  std::set<std::string> exercised;
  for (const OpCase& c : test::all_cases()) {
    exercised.insert(c.op);
    try {
      for (const std::string& op : test::case_ops(c)) exercised.insert(op);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "case " << c.name << " does not build: " << e.what();
    }
  }
  std::vector<std::string> no_case, no_kernel;
  for (const std::string& name : op_names()) {
    const OpDef& def = op_def(name);
    if (!def.infer || def.is_view || optimizer_ops.count(name)) continue;  // composite, view
    if (!exercised.count(name)) no_case.push_back(name);
    if (!find_kernel(name, DeviceKind::cpu)) no_kernel.push_back(name);
  }
  EXPECT_TRUE(no_case.empty()) << "ops no case exercises (add one to tests/support/cases_*.cpp): "
                               << join(no_case);
  EXPECT_TRUE(no_kernel.empty()) << "ops with no CPU kernel: " << join(no_kernel);
}

TEST(OpHarness, CaseNamesAreUniqueAsTestNames) {
  std::set<std::string> names;
  for (const OpCase& c : test::all_cases())
    EXPECT_TRUE(names.insert(test::case_test_name(c)).second) << "duplicate case name " << c.name;
  EXPECT_GE(names.size(), 20u);
}

// --- Bad labels are reported, not a crash -----------------------------------------------------

namespace {

// Runs `op` on logits [3, 4] and the given labels on the CPU; returns the error message.
std::string run_with_labels(const std::string& op, const std::vector<int32_t>& labels) {
  Graph g;
  ValueId logits = g.input("logits", Shape{3, 4});
  ValueId lab = g.input("labels", Shape{3}, DType::i32);
  ValueId dloss = g.input("dloss", Shape{});
  std::vector<ValueId> in = {logits, lab};
  if (op == "softmax_cross_entropy_grad") in = {dloss, logits, lab};
  g.keep(g.add1(op, "loss", in));
  auto backend = make_backend(Device::cpu());
  Program p(std::move(g), *backend);
  Tensor x = Tensor::empty(Shape{3, 4}), l = Tensor::empty(Shape{3}, DType::i32),
         d = Tensor::empty(Shape{});
  for (int i = 0; i < 12; ++i) x.f32()[i] = 0.1f * static_cast<float>(i + 1);
  for (int i = 0; i < 3; ++i) l.data_as<int32_t>()[i] = labels[i];
  d.f32()[0] = 1;
  p.bind("logits", x);
  p.bind("labels", l);
  p.bind("dloss", d);
  try {
    p.run(test::case_context());
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(LabelChecks, OutOfRangeLabelsThrowNamingOpAndLabel) {
  for (std::string op : {"softmax_cross_entropy", "softmax_cross_entropy_grad", "top_k_accuracy"})
    for (int32_t bad : {4, -1, 1000}) {
      std::string msg = run_with_labels(op, {0, bad, 2});
      EXPECT_NE(msg.find(op), std::string::npos) << op << " label " << bad << ": '" << msg << "'";
      EXPECT_NE(msg.find(std::to_string(bad)), std::string::npos)
          << op << " label " << bad << ": '" << msg << "'";
    }
  EXPECT_EQ(run_with_labels("softmax_cross_entropy", {0, 3, 2}), "");
}

// --- Dropout's mask: the right fraction, and a new one every step ------------------------------

TEST(Dropout, KeepsOneMinusRatioAndChangesWithTheStep) {
  const int64_t n = 200000;
  const double ratio = 0.3;
  Graph g;
  ValueId x = g.input("x", Shape{n});
  ValueId y = g.add1("dropout", "drop", {x}, Attrs{{"ratio", ratio}});
  g.keep(y);
  auto backend = make_backend(Device::cpu());
  Program p(std::move(g), *backend);
  Tensor xt = Tensor::empty(Shape{n});
  for (int64_t i = 0; i < n; ++i) xt.f32()[i] = 1.0f;
  p.bind("x", xt);
  auto kept_mask = [&](uint64_t step) {
    StepContext ctx = test::case_context();
    ctx.step = step;
    p.run(ctx);
    std::vector<bool> kept(n);
    const float* out = p.tensor(y).f32();
    int64_t wrong_scale = 0;
    for (int64_t i = 0; i < n; ++i) {
      kept[i] = out[i] != 0;
      wrong_scale += kept[i] && out[i] != static_cast<float>(1 / (1 - ratio));
    }
    EXPECT_EQ(wrong_scale, 0) << "kept elements must be scaled by 1 / (1 - ratio)";
    return kept;
  };
  std::vector<bool> a = kept_mask(1), b = kept_mask(2), a2 = kept_mask(1);
  int64_t kept = 0, same = 0;
  for (int64_t i = 0; i < n; ++i) kept += a[i], same += a[i] == b[i];
  EXPECT_NEAR(static_cast<double>(kept) / n, 1 - ratio, 0.01);
  // Independent masks agree on 0.7^2 + 0.3^2 = 58% of elements.
  EXPECT_NEAR(static_cast<double>(same) / n, 0.58, 0.01);
  EXPECT_EQ(a, a2) << "the mask must be a pure function of (seed, step, node, element)";
}
