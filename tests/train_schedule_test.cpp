// Learning-rate policies against Caffe's definitions, written out by hand for chosen iterations.
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "train/schedule.h"

using namespace myelin;

namespace {
Recipe policy(const std::string& name, double lr = 0.1) {
  Recipe r;
  r.lr_policy = name;
  r.lr = lr;
  return r;
}
}  // namespace

TEST(Schedule, FixedStepAndMultistep) {
  EXPECT_DOUBLE_EQ(lr_at(policy("fixed", 0.03), 12345, 0), 0.03);
  Recipe s = policy("step");
  s.gamma = 0.5, s.step_size = 100;
  EXPECT_DOUBLE_EQ(lr_at(s, 0, 0), 0.1);
  EXPECT_DOUBLE_EQ(lr_at(s, 99, 0), 0.1);
  EXPECT_DOUBLE_EQ(lr_at(s, 100, 0), 0.05);
  EXPECT_DOUBLE_EQ(lr_at(s, 250, 0), 0.025);
  Recipe m = policy("multistep");
  m.gamma = 0.1, m.milestones = {10, 20};
  EXPECT_DOUBLE_EQ(lr_at(m, 9, 0), 0.1);
  EXPECT_NEAR(lr_at(m, 10, 0), 0.01, 1e-15);
  EXPECT_NEAR(lr_at(m, 19, 0), 0.01, 1e-15);
  EXPECT_NEAR(lr_at(m, 20, 0), 0.001, 1e-16);
  EXPECT_NEAR(lr_at(m, 5000, 0), 0.001, 1e-16);
}

TEST(Schedule, ExpInvPoly) {
  Recipe e = policy("exp");
  e.gamma = 0.99;
  EXPECT_NEAR(lr_at(e, 10, 0), 0.1 * std::pow(0.99, 10), 1e-15);
  // Caffe's LeNet solver: base_lr 0.01, inv, gamma 1e-4, power 0.75; at 5000 iterations the rate
  // is 0.01 * 1.5^-0.75.
  Recipe i = policy("inv", 0.01);
  i.gamma = 1e-4, i.power = 0.75;
  EXPECT_NEAR(lr_at(i, 5000, 0), 0.00737788, 1e-8);
  Recipe p = policy("poly");
  p.power = 2;
  EXPECT_NEAR(lr_at(p, 50, 100), 0.025, 1e-15);
  EXPECT_NEAR(lr_at(p, 75, 100), 0.1 * 0.0625, 1e-15);
  EXPECT_EQ(lr_at(p, 100, 100), 0.0);
  EXPECT_EQ(lr_at(p, 150, 100), 0.0);  // past the end stays at zero, never negative
}

TEST(Schedule, CosineFromBaseToZero) {
  Recipe c = policy("cosine");
  EXPECT_DOUBLE_EQ(lr_at(c, 0, 1000), 0.1);
  EXPECT_NEAR(lr_at(c, 250, 1000), 0.1 * (1 + std::sqrt(0.5)) / 2, 1e-15);
  EXPECT_NEAR(lr_at(c, 500, 1000), 0.05, 1e-15);
  EXPECT_NEAR(lr_at(c, 1000, 1000), 0.0, 1e-15);
  for (int64_t it = 1; it <= 1000; ++it) ASSERT_LE(lr_at(c, it, 1000), lr_at(c, it - 1, 1000));
}

TEST(Schedule, LinearWarmupScalesAnyPolicy) {
  Recipe w = policy("fixed");
  w.warmup_iters = 10;
  EXPECT_NEAR(lr_at(w, 0, 0), 0.01, 1e-15);
  EXPECT_NEAR(lr_at(w, 4, 0), 0.05, 1e-15);
  EXPECT_NEAR(lr_at(w, 9, 0), 0.1, 1e-15);
  EXPECT_NEAR(lr_at(w, 10, 0), 0.1, 1e-15);
  Recipe c = policy("cosine");
  c.warmup_iters = 100;
  EXPECT_NEAR(lr_at(c, 49, 1000), 0.5 * 0.1 * (1 + std::cos(M_PI * 49 / 1000.0)) / 2, 1e-15);
  EXPECT_NEAR(lr_at(c, 100, 1000), 0.1 * (1 + std::cos(M_PI * 0.1)) / 2, 1e-15);
}

TEST(Schedule, BadRecipesNameTheField) {
  auto message = [](const Recipe& r, int64_t max_iter) -> std::string {
    try {
      lr_at(r, 0, max_iter);
    } catch (const UsageError& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(message(policy("triangle"), 10).find("cosine"), std::string::npos);
  EXPECT_NE(message(policy("step"), 10).find("step_size"), std::string::npos);
  EXPECT_NE(message(policy("multistep"), 10).find("milestones"), std::string::npos);
  Recipe m = policy("multistep");
  m.milestones = {20, 10};
  EXPECT_NE(message(m, 10).find("increasing"), std::string::npos);
  EXPECT_NE(message(policy("cosine"), 0).find("max_iter"), std::string::npos);
  EXPECT_NE(message(policy("fixed", -1), 0).find("lr"), std::string::npos);
}
