// CPU kernels for the elementwise ops: add, mul, bias_add, bias_grad, fill. add, mul and fill
// index their operands alike, so they work on any layout all operands share (add and mul over
// the padding of nchw16c values too); bias_grad also reads nchw16c (blocked.h), a convolution's
// output gradient kept blocked.
#include <omp.h>

#include <cstdint>
#include <functional>
#include <memory>

#include "core/backend.h"
#include "core/error.h"
#include "core/planner.h"
#include "cpu/blocked.h"
#include "cpu/simd.h"

namespace myelin {

namespace {

// Below this many elements an OpenMP team costs more than it saves.
constexpr int64_t kParallelMin = 1 << 15;

// y = a op b over n elements, in the clones (the loop inline in the kernel, compiled for the
// baseline only, ran the masked sum below at half the speed of two separate passes).
MYELIN_VECTOR_CLONES void flat(std::plus<float>, const float* a, const float* b, float* y,
                               int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] + b[i];
}
MYELIN_VECTOR_CLONES void flat(std::multiplies<float>, const float* a, const float* b, float* y,
                               int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] * b[i];
}

// y = r > 0 ? a + b : 0 over n elements: a sum of gradients masked by the gradient of the ReLU
// whose output is r.
MYELIN_VECTOR_CLONES void masked_sum(const float* a, const float* b, const float* r, float* y,
                                     int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = r[i] > 0 ? a[i] + b[i] : 0.0f;
}

// y = a op b over every stored element: the padding channels of nchw16c values too (0 + 0 and
// 0 * 0 keep them zero). An add with post = "relu_grad" (cpu/fuse.cpp: a sum of gradients that a
// ReLU's gradient reads next) has the ReLU's output r as a third input and writes
// r > 0 ? a + b : 0, one pass instead of two.
template <class Op>
class FlatBinary : public Kernel {
 public:
  explicit FlatBinary(const KernelSpec& s)
      : n_(stored_numel(s.graph.value(s.node.outputs[0]))),
        relu_grad_(s.node.attrs.s("post", "") == "relu_grad") {
    if (s.node.attrs.has("post") &&
        !(relu_grad_ && s.node.op == "add" && s.node.inputs.size() == 3))
      throw UnsupportedError("'" + s.node.op + "' node '" + s.node.name +
                             "': unknown fused post-op");
  }
  void run(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
           const StepContext&) override {
    const float* a = in[0].f32();
    const float* b = in[1].f32();
    float* y = out[0].f32();
    const float* r = relu_grad_ ? in[2].f32() : nullptr;
    const int64_t n = n_;
#pragma omp parallel if (n >= kParallelMin)
    {
      const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
      const int64_t i0 = n * t / nt, i1 = n * (t + 1) / nt;
      if (r)
        masked_sum(a + i0, b + i0, r + i0, y + i0, i1 - i0);
      else
        flat(Op{}, a + i0, b + i0, y + i0, i1 - i0);
    }
  }

 private:
  int64_t n_;
  bool relu_grad_;
};

template <class Op>
std::unique_ptr<Kernel> make_flat_binary(const KernelSpec& s) {
  return std::make_unique<FlatBinary<Op>>(s);
}

// x viewed as [outer = N, C, inner = product of the dimensions after 1].
struct ChannelLayout {
  int64_t outer, channels, inner = 1;
  explicit ChannelLayout(const Shape& s) : outer(s[0]), channels(s[1]) {
    for (int d = 2; d < s.rank(); ++d) inner *= s[d];
  }
};

void bias_add_kernel(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
                     const StepContext&, const Node&) {
  ChannelLayout l(in[0].shape());
  const float* x = in[0].f32();
  const float* b = in[1].f32();
  float* y = out[0].f32();
  int64_t rows = l.outer * l.channels;
#pragma omp parallel for if (out[0].numel() >= kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    float bias = b[r % l.channels];
    const float* xr = x + r * l.inner;
    float* yr = y + r * l.inner;
#pragma omp simd
    for (int64_t i = 0; i < l.inner; ++i) yr[i] = xr[i] + bias;
  }
}

// db[c] = sum over n and the inner positions of dy[n, c, ...]. Each row is summed in float
// (vectorised), the rows of a channel in double so large batches keep their precision.
void bias_grad_plain(const Tensor& dy_t, float* db) {
  ChannelLayout l(dy_t.shape());
  const float* dy = dy_t.f32();
#pragma omp parallel for if (dy_t.numel() >= kParallelMin)
  for (int64_t c = 0; c < l.channels; ++c) {
    double sum = 0;
    for (int64_t n = 0; n < l.outer; ++n) {
      const float* row = dy + (n * l.channels + c) * l.inner;
      float row_sum = 0;
#pragma omp simd reduction(+ : row_sum)
      for (int64_t i = 0; i < l.inner; ++i) row_sum += row[i];
      sum += row_sum;
    }
    db[c] = static_cast<float>(sum);
  }
}

// The same on blocked dy ([N, C/B, H*W, B], B = 16 or 8, C padded to whole blocks): the B
// channels of a block are summed in the lanes of one vector over each (n, block) row.
template <int64_t B>
void bias_grad_blocked(const Tensor& dy_t, float* db) {
  ChannelLayout l(dy_t.shape());
  const int64_t blocks = cpu::channel_blocks(l.channels, B);
  const float* dy = dy_t.f32();
#pragma omp parallel for if (dy_t.numel() >= kParallelMin)
  for (int64_t cb = 0; cb < blocks; ++cb) {
    double sum[B] = {};
    for (int64_t n = 0; n < l.outer; ++n) {
      const float* row = dy + (n * blocks + cb) * l.inner * B;
      float row_sum[B] = {};
      for (int64_t i = 0; i < l.inner; ++i)
#pragma omp simd
        for (int64_t k = 0; k < B; ++k) row_sum[k] += row[i * B + k];
      for (int64_t k = 0; k < B; ++k) sum[k] += row_sum[k];
    }
    for (int64_t k = 0; k < B && cb * B + k < l.channels; ++k)
      db[cb * B + k] = static_cast<float>(sum[k]);
  }
}

class BiasGradKernel : public Kernel {
 public:
  explicit BiasGradKernel(const KernelSpec& s) : block_(cpu::block_of(s.input_layout(0))) {}
  void run(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
           const StepContext&) override {
    if (block_ == 16)
      bias_grad_blocked<16>(in[0], out[0].f32());
    else if (block_ == 8)
      bias_grad_blocked<8>(in[0], out[0].f32());
    else
      bias_grad_plain(in[0], out[0].f32());
  }

 private:
  int64_t block_;  // of dy's layout; 0 where plain
};

template <class T>
void fill_with(const Tensor& t, T value) {
  T* p = t.data_as<T>();
  int64_t n = t.numel();
#pragma omp parallel for simd if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) p[i] = value;
}

// fill checks its dtype when the program is compiled, not on the first step.
class FillKernel : public Kernel {
 public:
  explicit FillKernel(const KernelSpec& s) : value_(s.node.attrs.f("value", 0.0)) {
    DType t = s.output(0).dtype;
    if (t != DType::f32 && t != DType::i32 && t != DType::i64)
      throw UnsupportedError("fill '" + s.node.name + "': no CPU kernel for dtype " +
                             dtype_name(t) + " (f32, i32, i64)");
  }
  void run(const std::vector<Tensor>&, const std::vector<Tensor>& out,
           const StepContext&) override {
    if (out[0].dtype() == DType::f32) return fill_with(out[0], static_cast<float>(value_));
    if (out[0].dtype() == DType::i32) return fill_with(out[0], static_cast<int32_t>(value_));
    fill_with(out[0], static_cast<int64_t>(value_));
  }

 private:
  double value_;
};

}  // namespace

MYELIN_REGISTER_OPS {
  // Flat loops over the elements: blocked where all the operands are (alike: same shapes).
  register_kernel("add", DeviceKind::cpu, make_flat_binary<std::plus<float>>,
                  {.layout = takes_alike({0, 1, 2}, {0})});
  register_kernel("mul", DeviceKind::cpu, make_flat_binary<std::multiplies<float>>,
                  {.layout = takes_alike({0, 1}, {0})});
  register_kernel_fn("bias_add", DeviceKind::cpu, bias_add_kernel);  // NCHW: b along axis 1
  // Reads dy (of a convolution's bias) in either layout.
  register_kernel("bias_grad", DeviceKind::cpu,
                  [](const KernelSpec& s) -> std::unique_ptr<Kernel> {
                    return std::make_unique<BiasGradKernel>(s);
                  },
                  {.layout = takes_each({0}, {})});
  // One value everywhere: either layout, with whole channel blocks (no padding to keep zero).
  register_kernel("fill", DeviceKind::cpu,
                  [](const KernelSpec& s) -> std::unique_ptr<Kernel> {
                    return std::make_unique<FillKernel>(s);
                  },
                  {.layout = takes_each({}, {0}, cpu::whole_blocks)});
}

}  // namespace myelin
