#include "train/schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/error.h"

namespace myelin {

const std::vector<std::string>& lr_policies() {
  static const std::vector<std::string> p{"fixed", "step", "multistep", "exp",
                                          "inv",   "poly", "cosine"};
  return p;
}

void check_schedule(const Recipe& r, int64_t max_iter) {
  const auto& p = lr_policies();
  if (std::find(p.begin(), p.end(), r.lr_policy) == p.end())
    throw UsageError("unknown lr_policy '" + r.lr_policy +
                     "' (expected fixed, step, multistep, exp, inv, poly or cosine)");
  if (!(r.lr > 0) || !std::isfinite(r.lr))
    throw UsageError("lr must be a positive number, got " + std::to_string(r.lr));
  if (r.warmup_iters < 0) throw UsageError("warmup_iters must be >= 0");
  if (r.lr_policy == "step" && r.step_size <= 0)
    throw UsageError("lr_policy 'step' needs step_size > 0 (iterations between rate drops)");
  if (r.lr_policy == "multistep") {
    if (r.milestones.empty())
      throw UsageError("lr_policy 'multistep' needs milestones (iterations where the rate drops)");
    if (!std::is_sorted(r.milestones.begin(), r.milestones.end()))
      throw UsageError("multistep milestones must be in increasing order");
  }
  if ((r.lr_policy == "poly" || r.lr_policy == "cosine") && max_iter <= 0)
    throw UsageError("lr_policy '" + r.lr_policy + "' needs the run's length (max_iter > 0)");
}

namespace {

double policy_rate(const Recipe& r, int64_t iter, int64_t max_iter) {
  const std::string& p = r.lr_policy;
  double it = static_cast<double>(iter);
  if (p == "fixed") return r.lr;
  if (p == "step")
    return r.lr * std::pow(r.gamma, std::floor(it / static_cast<double>(r.step_size)));
  if (p == "multistep") {
    auto passed =
        std::upper_bound(r.milestones.begin(), r.milestones.end(), iter) - r.milestones.begin();
    return r.lr * std::pow(r.gamma, static_cast<double>(passed));
  }
  if (p == "exp") return r.lr * std::pow(r.gamma, it);
  if (p == "inv") return r.lr * std::pow(1.0 + r.gamma * it, -r.power);
  double frac = std::min(1.0, it / static_cast<double>(max_iter));
  if (p == "poly") return r.lr * std::pow(1.0 - frac, r.power);
  return r.lr * 0.5 * (1.0 + std::cos(std::numbers::pi * frac));  // cosine
}

}  // namespace

double lr_at(const Recipe& r, int64_t iter, int64_t max_iter) {
  check_schedule(r, max_iter);
  double rate = policy_rate(r, std::max<int64_t>(0, iter), max_iter);
  if (iter < r.warmup_iters)
    rate *= static_cast<double>(iter + 1) / static_cast<double>(r.warmup_iters);
  return rate;
}

}  // namespace myelin
