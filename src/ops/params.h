// Typed views of op attributes, shared by shape inference and by every engine's kernels, so the
// CPU and CUDA engines read attributes the same way.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "core/graph.h"

namespace myelin {

inline int64_t window_out(int64_t in, int64_t k, int64_t stride, int64_t pad, int64_t dil,
                          bool ceil_mode = false) {
  int64_t span = dil * (k - 1) + 1;
  int64_t num = in + 2 * pad - span;
  if (num < 0) return 0;
  int64_t out = (ceil_mode ? (num + stride - 1) / stride : num / stride) + 1;
  // A window may not start entirely inside the right padding (Caffe's rule).
  if (ceil_mode && pad > 0 && (out - 1) * stride >= in + pad) --out;
  return out;
}

struct ConvParams {
  int64_t stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups;
  explicit ConvParams(const Attrs& a) {
    auto s = a.pair("stride", 1), p = a.pair("pad", 0), d = a.pair("dilation", 1);
    stride_h = s[0], stride_w = s[1], pad_h = p[0], pad_w = p[1], dil_h = d[0], dil_w = d[1];
    groups = a.i("groups", 1);
  }
};

struct PoolParams {
  int64_t kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w;
  bool ceil_mode, count_include_pad;
  explicit PoolParams(const Attrs& a) {
    auto k = a.pair("kernel", 2), s = a.has("stride") ? a.pair("stride", 1) : k,
         p = a.pair("pad", 0);
    kernel_h = k[0], kernel_w = k[1], stride_h = s[0], stride_w = s[1], pad_h = p[0], pad_w = p[1];
    ceil_mode = a.i("ceil_mode", 0) != 0;
    count_include_pad = a.i("count_include_pad", 1) != 0;
  }
  int64_t out_h(int64_t h) const { return window_out(h, kernel_h, stride_h, pad_h, 1, ceil_mode); }
  int64_t out_w(int64_t w) const { return window_out(w, kernel_w, stride_w, pad_w, 1, ceil_mode); }
};

struct LrnParams {  // across channels: y = x / (k + alpha/size * sum_{window} x^2)^beta
  int64_t size;
  double alpha, beta, k;
  explicit LrnParams(const Attrs& a)
      : size(a.i("size", 5)),
        alpha(a.f("alpha", 1e-4)),
        beta(a.f("beta", 0.75)),
        k(a.f("k", 1.0)) {}
};

enum class ActKind { relu, leaky_relu, sigmoid, tanh, elu, gelu };

struct ActParams {
  ActKind kind;
  double alpha;  // leaky_relu slope, elu scale
  explicit ActParams(const Attrs& a);
};

struct BatchNormParams {
  double eps, momentum;  // running = momentum * running + (1 - momentum) * batch
  bool training;
  explicit BatchNormParams(const Attrs& a)
      : eps(a.f("eps", 1e-5)), momentum(a.f("momentum", 0.9)), training(a.i("training", 1) != 0) {}
};

// Dropout keeps an element with probability 1 - ratio. The mask is a pure function of
// (seed, step, node, element), so backward recomputes it and every engine draws the same one.
struct DropoutParams {
  double ratio;
  explicit DropoutParams(const Attrs& a) : ratio(a.f("ratio", 0.5)) {}
};

#if defined(__CUDACC__)
#define MYELIN_HD __host__ __device__
#else
#define MYELIN_HD
#endif

MYELIN_HD inline uint32_t dropout_hash(uint64_t key, uint64_t index) {
  uint64_t z = key ^ (index * 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return static_cast<uint32_t>((z ^ (z >> 31)) >> 32);
}

MYELIN_HD inline uint64_t dropout_key(uint64_t seed, uint64_t step, int node) {
  return dropout_hash(seed * 0x100000001B3ull + static_cast<uint64_t>(node), step) |
         (static_cast<uint64_t>(dropout_hash(seed, step ^ 0xD1B54A32D192ED03ull)) << 32);
}

// True when element `index` is kept.
MYELIN_HD inline bool dropout_keep(uint64_t key, uint64_t index, uint32_t threshold) {
  return dropout_hash(key, index) >= threshold;
}

inline uint32_t dropout_threshold(double ratio) {
  return static_cast<uint32_t>(std::ldexp(ratio, 32) >= 4294967295.0 ? 4294967295.0
                                                                     : std::ldexp(ratio, 32));
}

// Dynamic loss scaling (loss_scale_update, ops/optimizer.cpp): the scale's bounds and steps, and
// the next {scale, good_steps} after a step whose squared gradient norm is norm_sq. Both engines'
// kernels call it.
constexpr float kMinLossScale = 1.0f / 16777216, kMaxLossScale = 16777216.0f;
constexpr float kLossScaleBackoff = 0.5f, kLossScaleGrowth = 2.0f;
MYELIN_HD inline void next_loss_scale(float& scale, float& good_steps, float norm_sq,
                                      int64_t interval) {
  if (!std::isfinite(norm_sq)) {
    scale = std::fmax(scale * kLossScaleBackoff, kMinLossScale);
    good_steps = 0;
  } else if (++good_steps >= static_cast<float>(interval)) {
    scale = std::fmin(scale * kLossScaleGrowth, kMaxLossScale);
    good_steps = 0;
  }
}

}  // namespace myelin

namespace myelin {
// State tensors per parameter for a solver (velocity; or first and second moments).
int optimizer_slots(const std::string& solver);
// A recurrent layer over a sequence, one layer and one direction (ops/recurrent.cpp): the cell
// (PyTorch's equations and gate order: LSTM i, f, g, o; GRU r, z, n with the reset gate applied
// after the hidden product; RNN tanh or ReLU), the hidden size and the direction.
enum class RnnCell { lstm, gru, rnn_tanh, rnn_relu };

struct RnnParams {
  RnnCell cell;
  int64_t hidden;
  bool reverse;   // runs from the last step to the first
  bool training;  // the forward keeps what its gradient needs
  explicit RnnParams(const Attrs& a)
      : cell(cell_of(a.s("mode", "lstm"))),
        hidden(a.i("hidden", 1)),
        reverse(a.i("reverse", 0) != 0),
        training(a.i("training", 0) != 0) {}
  int64_t gates() const { return cell == RnnCell::lstm ? 4 : cell == RnnCell::gru ? 3 : 1; }
  int states() const { return cell == RnnCell::lstm ? 2 : 1; }  // h, and c for LSTM
  static RnnCell cell_of(const std::string& mode) {
    if (mode == "lstm") return RnnCell::lstm;
    if (mode == "gru") return RnnCell::gru;
    if (mode == "rnn_tanh") return RnnCell::rnn_tanh;
    if (mode == "rnn_relu") return RnnCell::rnn_relu;
    throw Error("rnn mode '" + mode + "' is unknown: lstm, gru, rnn_tanh or rnn_relu");
  }
};

}  // namespace myelin
