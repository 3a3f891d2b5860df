// CPU kernels of the optimizer ops (see ops/optimizer.cpp for the formulas): one OpenMP region per
// update over every parameter's elements, elementwise math in fp32 with the per-step scalars
// (bias corrections, clip factor) computed once in double.
#include <omp.h>

#include <cmath>
#include <cstring>

#include "core/backend.h"
#include "core/error.h"
#include "ops/params.h"

namespace myelin {

namespace {

enum class Solver { sgd, nesterov, adam, adamw, rmsprop, adagrad };

Solver solver_from_name(const std::string& s) {
  if (s == "sgd") return Solver::sgd;
  if (s == "nesterov") return Solver::nesterov;
  if (s == "adam") return Solver::adam;
  if (s == "adamw") return Solver::adamw;
  if (s == "rmsprop") return Solver::rmsprop;
  if (s == "adagrad") return Solver::adagrad;
  optimizer_slots(s);  // throws the error naming the valid solvers
  return Solver::sgd;
}

// Scalars shared by every element of one step.
struct StepScalars {
  float lr, b1, b2, eps, wd, grad_scale;
  float bc1 = 1, inv_sqrt_bc2 = 1;  // adam bias corrections: 1 - b1^t, 1 / sqrt(1 - b2^t)
};

// One parameter's slice of the update: lr and weight decay already multiplied by its mults.
struct ParamJob {
  float* p;
  float* g;
  float* s0;
  float* s1;
  int64_t n;
  float lr, wd;
};

template <Solver S>
void update_elements(const ParamJob& j, const StepScalars& k, float scale) {
  float* __restrict p = j.p;
  float* __restrict g = j.g;
  float* __restrict s0 = j.s0;
  float* __restrict s1 = j.s1;
#pragma omp for schedule(static) nowait
  for (int64_t e = 0; e < j.n; ++e) {
    float gi = g[e] * scale;
    if constexpr (S == Solver::adamw) {
      p[e] -= j.lr * j.wd * p[e];
    } else {
      gi += j.wd * p[e];
    }
    if constexpr (S == Solver::sgd) {
      s0[e] = k.b1 * s0[e] + gi;
      p[e] -= j.lr * s0[e];
    } else if constexpr (S == Solver::nesterov) {
      s0[e] = k.b1 * s0[e] + gi;
      p[e] -= j.lr * (gi + k.b1 * s0[e]);
    } else if constexpr (S == Solver::adam || S == Solver::adamw) {
      s0[e] = k.b1 * s0[e] + (1 - k.b1) * gi;
      s1[e] = k.b2 * s1[e] + (1 - k.b2) * gi * gi;
      p[e] -= j.lr * (s0[e] / k.bc1) / (std::sqrt(s1[e]) * k.inv_sqrt_bc2 + k.eps);
    } else if constexpr (S == Solver::rmsprop) {
      s0[e] = k.b2 * s0[e] + (1 - k.b2) * gi * gi;
      p[e] -= j.lr * gi / (std::sqrt(s0[e]) + k.eps);
    } else {  // adagrad
      s0[e] += gi * gi;
      p[e] -= j.lr * gi / (std::sqrt(s0[e]) + k.eps);
    }
  }
}

void zero_elements(float* g, int64_t n) {
#pragma omp for schedule(static) nowait
  for (int64_t e = 0; e < n; ++e) g[e] = 0;
}

class OptimizerUpdateKernel : public Kernel {
 public:
  explicit OptimizerUpdateKernel(const KernelSpec& spec) {
    const Attrs& a = spec.node.attrs;
    solver_ = solver_from_name(a.s("solver", "sgd"));
    slots_ = optimizer_slots(a.s("solver", "sgd"));
    count_ = a.i("count", 0);
    lr_mult_ = a.floats("lr_mult", {});
    decay_mult_ = a.floats("decay_mult", {});
    clip_ = a.f("clip", 0.0);
    zero_grads_ = a.i("zero_grads", 0) != 0;
    loss_scaled_ = a.i("loss_scaled", 0) != 0;
    for (size_t i = 0; i < spec.node.inputs.size(); ++i)
      if (spec.input(static_cast<int>(i)).dtype != DType::f32)
        throw UnsupportedError("optimizer_update '" + spec.node.name + "' on cpu: input " +
                               std::to_string(i) + " is " +
                               dtype_name(spec.input(static_cast<int>(i)).dtype) +
                               ", the CPU solver keeps f32 parameters, gradients and states");
  }

  void run(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
           const StepContext&) override {
    StepScalars k = scalars(in);
    // Loss scaling: the gradients are of the loss times loss_scale; an overflowed step is skipped.
    const float* norm_sq = clip_ > 0 || loss_scaled_ ? norm_input(in).data_as<float>() : nullptr;
    const bool skip = loss_scaled_ && !std::isfinite(norm_sq[0]);
    const float grad_scale = k.grad_scale / (loss_scaled_ ? in.back().data_as<float>()[0] : 1.0f);
    float scale = grad_scale * clip_factor(norm_sq, grad_scale);
    std::vector<ParamJob> jobs(static_cast<size_t>(count_));
    for (int64_t i = 0; i < count_; ++i) {
      const Tensor& p = in[1 + i];
      float* s0 = in[1 + 2 * count_ + i * slots_].data_as<float>();
      float* s1 = slots_ > 1 ? in[2 + 2 * count_ + i * slots_].data_as<float>() : nullptr;
      jobs[i] = {p.data_as<float>(),
                 in[1 + count_ + i].data_as<float>(),
                 s0,
                 s1,
                 p.numel(),
                 static_cast<float>(k.lr * lr_mult_[i]),
                 static_cast<float>(k.wd * decay_mult_[i])};
    }
#pragma omp parallel
    {
      if (!skip)
        for (const ParamJob& j : jobs) dispatch(j, k, scale);
#pragma omp barrier
      if (zero_grads_)
        for (const ParamJob& j : jobs) zero_elements(j.g, j.n);
    }
  }

 private:
  StepScalars scalars(const std::vector<Tensor>& in) const {
    const float* hp = in[0].data_as<float>();
    StepScalars k{hp[0], hp[1], hp[2], hp[3], hp[4], hp[6]};
    double t = hp[5];
    if (solver_ == Solver::adam || solver_ == Solver::adamw) {
      k.bc1 = static_cast<float>(1.0 - std::pow(static_cast<double>(k.b1), t));
      k.inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(1.0 - std::pow(double{k.b2}, t)));
    }
    return k;
  }

  // norm_sq: the last input, or the one before loss_scale.
  const Tensor& norm_input(const std::vector<Tensor>& in) const {
    return in[in.size() - (loss_scaled_ ? 2 : 1)];
  }

  // Global-norm clipping as torch.nn.utils.clip_grad_norm_: the norm of the scaled gradients.
  double clip_factor(const float* norm_sq, float grad_scale) const {
    if (clip_ <= 0) return 1.0;
    double norm = std::sqrt(static_cast<double>(norm_sq[0])) * grad_scale;
    return std::min(1.0, clip_ / (norm + 1e-6));
  }

  void dispatch(const ParamJob& j, const StepScalars& k, float scale) const {
    switch (solver_) {
      case Solver::sgd:
        return update_elements<Solver::sgd>(j, k, scale);
      case Solver::nesterov:
        return update_elements<Solver::nesterov>(j, k, scale);
      case Solver::adam:
        return update_elements<Solver::adam>(j, k, scale);
      case Solver::adamw:
        return update_elements<Solver::adamw>(j, k, scale);
      case Solver::rmsprop:
        return update_elements<Solver::rmsprop>(j, k, scale);
      case Solver::adagrad:
        return update_elements<Solver::adagrad>(j, k, scale);
    }
  }

  Solver solver_;
  int slots_;
  int64_t count_;
  std::vector<double> lr_mult_, decay_mult_;
  double clip_;
  bool zero_grads_, loss_scaled_;
};

// loss_scale_update(scale, good_steps, norm_sq), in place.
class LossScaleUpdateKernel : public Kernel {
 public:
  explicit LossScaleUpdateKernel(const KernelSpec& spec)
      : interval_(spec.node.attrs.i("growth_interval", 2000)) {}
  void run(const std::vector<Tensor>& in, const std::vector<Tensor>&, const StepContext&) override {
    next_loss_scale(in[0].data_as<float>()[0], in[1].data_as<float>()[0], in[2].data_as<float>()[0],
                    interval_);
  }

 private:
  int64_t interval_;
};

// Sum of squares in double: the norm of millions of fp32 gradients needs the extra digits.
void global_norm_sq(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
                    const StepContext&, const Node&) {
  double total = 0;
  for (const Tensor& t : in) {
    const float* g = t.f32();
    int64_t n = t.numel();
    double sum = 0;
#pragma omp parallel for reduction(+ : sum) schedule(static) if (n > 16384)
    for (int64_t e = 0; e < n; ++e) sum += static_cast<double>(g[e]) * g[e];
    total += sum;
  }
  out[0].f32()[0] = static_cast<float>(total);
}

void accumulate_grad(const std::vector<Tensor>& in, const std::vector<Tensor>&, const StepContext&,
                     const Node&) {
  float* __restrict acc = in[0].f32();
  const float* __restrict g = in[1].f32();
  int64_t n = in[0].numel();
#pragma omp parallel for schedule(static) if (n > 16384)
  for (int64_t e = 0; e < n; ++e) acc[e] += g[e];
}

}  // namespace

MYELIN_REGISTER_OPS {
  register_kernel("optimizer_update", DeviceKind::cpu,
                  [](const KernelSpec& s) -> std::unique_ptr<Kernel> {
                    return std::make_unique<OptimizerUpdateKernel>(s);
                  });
  register_kernel("loss_scale_update", DeviceKind::cpu,
                  [](const KernelSpec& s) -> std::unique_ptr<Kernel> {
                    return std::make_unique<LossScaleUpdateKernel>(s);
                  });
  register_kernel_fn("global_norm_sq", DeviceKind::cpu, global_norm_sq);
  // A flat loop: nchw16c where acc and g both have it.
  register_kernel_fn("accumulate_grad", DeviceKind::cpu, accumulate_grad,
                     {.layout = takes_alike({0, 1}, {})});
}

}  // namespace myelin
