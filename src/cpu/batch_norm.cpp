// Batch normalization on x[N, C, S...] (S = 1 for [N, C]) as OpenMP loops: each thread owns a
// range of channels and streams every (n, c) row of its range, so [N, C] and [N, C, H, W] share
// one code path. Sums run in float vector lanes over blocks of kBlock elements, and the blocks
// add up in double; the variance is a second pass over x - mean (no cancellation).
// Own loops rather than oneDNN's primitive because the op's contract (invstd output, running
// statistics updated in place with the unbiased variance, gradient from invstd) would need a
// conversion pass around oneDNN's anyway, and the work is bandwidth-bound.
#include <omp.h>

#include <algorithm>
#include <cmath>

#include "cpu/cpu_backend.h"
#include "cpu/fuse.h"
#include "cpu/simd.h"
#include "ops/params.h"

namespace myelin::cpu {

namespace {

struct BnGeometry {
  int64_t n, c, s;  // batch, channels, elements per (n, c) row
  explicit BnGeometry(const Shape& x) : n(x[0]), c(x[1]), s(x.numel() / (x[0] * x[1])) {}
  int64_t per_channel() const { return n * s; }
};

// Calls f(c0, c1) on each thread's share of the channels.
template <class F>
void for_channel_ranges(int64_t channels, int threads, F f) {
#pragma omp parallel num_threads(threads)
  {
    int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    int64_t c0 = channels * t / nt, c1 = channels * (t + 1) / nt;
    if (c0 < c1) f(c0, c1);
  }
}

constexpr int64_t kBlock = 4096;  // floats summed in float lanes before going to double

MYELIN_VECTOR_CLONES double row_sum(const float* r, int64_t len) {
  double total = 0;
  for (int64_t b = 0; b < len; b += kBlock) {
    const int64_t end = std::min(len, b + kBlock);
    float acc = 0;
#pragma omp simd reduction(+ : acc)
    for (int64_t i = b; i < end; ++i) acc += r[i];
    total += acc;
  }
  return total;
}

MYELIN_VECTOR_CLONES double row_centered_sumsq(const float* r, int64_t len, double mean) {
  const float m = static_cast<float>(mean);
  double total = 0;
  for (int64_t b = 0; b < len; b += kBlock) {
    const int64_t end = std::min(len, b + kBlock);
    float acc = 0;
#pragma omp simd reduction(+ : acc)
    for (int64_t i = b; i < end; ++i) acc += (r[i] - m) * (r[i] - m);
    total += acc;
  }
  return total;
}

MYELIN_VECTOR_CLONES void row_affine(const float* x, float* y, int64_t len, float a, float b) {
#pragma omp simd
  for (int64_t i = 0; i < len; ++i) y[i] = x[i] * a + b;
}

// row_affine followed by a fused ReLU (ResNet's conv -> BN -> ReLU), in the same pass.
MYELIN_VECTOR_CLONES void row_affine_relu(const float* x, float* y, int64_t len, float a, float b,
                                          float slope) {
#pragma omp simd
  for (int64_t i = 0; i < len; ++i) y[i] = relu_with_slope(x[i] * a + b, slope);
}

// Adds sum(dy) and sum(dy * (x - mean)) of one row to the running totals.
MYELIN_VECTOR_CLONES void row_grad_sums(const float* dy, const float* x, int64_t len, float mean,
                                        double& sum_dy, double& sum_dxm) {
  for (int64_t b = 0; b < len; b += kBlock) {
    const int64_t end = std::min(len, b + kBlock);
    float sdy = 0, sdxm = 0;
#pragma omp simd reduction(+ : sdy, sdxm)
    for (int64_t i = b; i < end; ++i) {
      sdy += dy[i];
      sdxm += dy[i] * (x[i] - mean);
    }
    sum_dy += sdy;
    sum_dxm += sdxm;
  }
}

// dx = a * dy + b * x + k over one row.
MYELIN_VECTOR_CLONES void row_grad_input(const float* dy, const float* x, float* dx, int64_t len,
                                         float a, float b, float k) {
#pragma omp simd
  for (int64_t i = 0; i < len; ++i) dx[i] = a * dy[i] + b * x[i] + k;
}

// y = x * scale[c] + shift[c] over channels [c0, c1), then the fused ReLU if there is one.
void affine_rows(const BnGeometry& g, const float* x, float* y, const float* scale,
                 const float* shift, const PostRelu& post, int64_t c0, int64_t c1) {
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t o = (n * g.c + c) * g.s;
      if (post.on)
        row_affine_relu(x + o, y + o, g.s, scale[c], shift[c], post.slope);
      else
        row_affine(x + o, y + o, g.s, scale[c], shift[c]);
    }
}

// batch_norm(x, gamma, beta, running_mean, running_var) -> y [, mean, invstd]
class BatchNormForward : public Kernel {
 public:
  explicit BatchNormForward(const KernelSpec& s)
      : g_(s.input(0).shape),
        p_(s.node.attrs),
        post_(s.node.attrs),
        threads_(cpu_backend(s).threads()) {}
  // Per channel: two doubles of statistics, two floats of scale and shift.
  size_t workspace_bytes() const override {
    return g_.c * (2 * sizeof(double) + 2 * sizeof(float));
  }

  void run(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
           const StepContext& ctx) override {
    auto* mean = static_cast<double*>(ctx.workspace);
    double* var = mean + g_.c;
    auto* scale = reinterpret_cast<float*>(var + g_.c);
    float* shift = scale + g_.c;
    const float *x = in[0].f32(), *gamma = in[1].f32(), *beta = in[2].f32();
    float *run_mean = in[3].f32(), *run_var = in[4].f32();
    if (!p_.training) {
      for (int64_t c = 0; c < g_.c; ++c) {
        scale[c] = static_cast<float>(gamma[c] / std::sqrt(double(run_var[c]) + p_.eps));
        shift[c] = beta[c] - run_mean[c] * scale[c];
      }
      for_channel_ranges(g_.c, threads_, [&](int64_t c0, int64_t c1) {
        affine_rows(g_, x, out[0].f32(), scale, shift, post_, c0, c1);
      });
      return;
    }
    for_channel_ranges(g_.c, threads_, [&](int64_t c0, int64_t c1) {
      batch_statistics(x, mean, var, c0, c1);
      for (int64_t c = c0; c < c1; ++c) {
        double invstd = 1.0 / std::sqrt(var[c] + p_.eps);
        out[1].f32()[c] = static_cast<float>(mean[c]);
        out[2].f32()[c] = static_cast<float>(invstd);
        scale[c] = static_cast<float>(gamma[c] * invstd);
        shift[c] = static_cast<float>(beta[c] - mean[c] * gamma[c] * invstd);
        update_running(run_mean[c], run_var[c], mean[c], var[c]);
      }
      affine_rows(g_, x, out[0].f32(), scale, shift, post_, c0, c1);
    });
  }

 private:
  void batch_statistics(const float* x, double* mean, double* var, int64_t c0, int64_t c1) const {
    for (int64_t c = c0; c < c1; ++c) mean[c] = var[c] = 0;
    for (int64_t n = 0; n < g_.n; ++n)
      for (int64_t c = c0; c < c1; ++c) mean[c] += row_sum(x + (n * g_.c + c) * g_.s, g_.s);
    for (int64_t c = c0; c < c1; ++c) mean[c] /= static_cast<double>(g_.per_channel());
    for (int64_t n = 0; n < g_.n; ++n)
      for (int64_t c = c0; c < c1; ++c)
        var[c] += row_centered_sumsq(x + (n * g_.c + c) * g_.s, g_.s, mean[c]);
    for (int64_t c = c0; c < c1; ++c) var[c] /= static_cast<double>(g_.per_channel());
  }

  // running = momentum * running + (1 - momentum) * batch, with the unbiased batch variance.
  void update_running(float& run_mean, float& run_var, double mean, double var) const {
    double m = static_cast<double>(g_.per_channel());
    double unbiased = m > 1 ? var * m / (m - 1) : var;
    run_mean = static_cast<float>(p_.momentum * run_mean + (1 - p_.momentum) * mean);
    run_var = static_cast<float>(p_.momentum * run_var + (1 - p_.momentum) * unbiased);
  }

  BnGeometry g_;
  BatchNormParams p_;
  PostRelu post_;
  int threads_;
};

// batch_norm_grad(dy, x, gamma, mean, invstd) -> dx, dgamma, dbeta, through the batch
// statistics: dx = gamma*invstd * (dy - mean(dy) - xhat * mean(dy * xhat)).
class BatchNormGrad : public Kernel {
 public:
  explicit BatchNormGrad(const KernelSpec& s)
      : g_(s.input(0).shape), threads_(cpu_backend(s).threads()) {}
  size_t workspace_bytes() const override { return g_.c * 3 * sizeof(float); }

  void run(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
           const StepContext& ctx) override {
    const float *dy = in[0].f32(), *x = in[1].f32(), *gamma = in[2].f32(), *mean = in[3].f32(),
                *invstd = in[4].f32();
    float *dgamma = out[1].f32(), *dbeta = out[2].f32();
    auto* a = static_cast<float*>(ctx.workspace);  // dx = a*dy + b*x + k per channel
    float *b = a + g_.c, *k = b + g_.c;
    for_channel_ranges(g_.c, threads_, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) dgamma[c] = dbeta[c] = 0;
      reduce(dy, x, mean, c0, c1, dbeta, dgamma);  // dgamma holds sum(dy * (x - mean)) here
      double m = static_cast<double>(g_.per_channel());
      for (int64_t c = c0; c < c1; ++c) {
        double is = invstd[c], gi = gamma[c] * is, sdy = dbeta[c], sdxm = dgamma[c];
        a[c] = static_cast<float>(gi);
        b[c] = static_cast<float>(-gi * is * is * sdxm / m);
        k[c] = static_cast<float>(-gi * sdy / m + gi * is * is * sdxm * mean[c] / m);
        dgamma[c] = static_cast<float>(sdxm * is);
      }
      for (int64_t n = 0; n < g_.n; ++n)
        for (int64_t c = c0; c < c1; ++c) {
          int64_t o = (n * g_.c + c) * g_.s;
          row_grad_input(dy + o, x + o, out[0].f32() + o, g_.s, a[c], b[c], k[c]);
        }
    });
  }

 private:
  // sum_dy[c] = sum(dy), sum_dxm[c] = sum(dy * (x - mean)) over channels [c0, c1).
  void reduce(const float* dy, const float* x, const float* mean, int64_t c0, int64_t c1,
              float* sum_dy, float* sum_dxm) const {
    for (int64_t c = c0; c < c1; ++c) {
      double sdy = 0, sdxm = 0;
      for (int64_t n = 0; n < g_.n; ++n) {
        int64_t o = (n * g_.c + c) * g_.s;
        row_grad_sums(dy + o, x + o, g_.s, mean[c], sdy, sdxm);
      }
      sum_dy[c] = static_cast<float>(sdy);
      sum_dxm[c] = static_cast<float>(sdxm);
    }
  }

  BnGeometry g_;
  int threads_;
};

}  // namespace

// NCHW only (no KernelStorage): the loops stream per-channel rows.
MYELIN_REGISTER_OPS {
  register_kernel("batch_norm", DeviceKind::cpu,
                  [](const KernelSpec& s) -> std::unique_ptr<Kernel> {
                    return std::make_unique<BatchNormForward>(s);
                  });
  register_kernel("batch_norm_grad", DeviceKind::cpu,
                  [](const KernelSpec& s) -> std::unique_ptr<Kernel> {
                    return std::make_unique<BatchNormGrad>(s);
                  });
}

}  // namespace myelin::cpu
