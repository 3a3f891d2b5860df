#include "cpu/conv_direct.h"

#include "cpu/blocked.h"
#include "cpu/cpu_backend.h"
#include "cpu/fuse.h"
#include "cpu/simd.h"

namespace myelin::cpu {

int64_t conv_x_block(const KernelSpec& s, ConvPass pass) {
  if (pass == ConvPass::grad_input) return block_of(s.output_layout(0));
  return block_of(s.input_layout(pass == ConvPass::grad_weight ? 1 : 0));
}

int64_t conv_y_block(const KernelSpec& s, ConvPass pass) {
  return block_of(pass == ConvPass::forward ? s.output_layout(0) : s.input_layout(0));
}

MYELIN_AVX512 void add_tap_partials(const float* scratch, float* dw, int64_t chunks, int64_t c,
                                    int64_t k, int threads) {
  const int64_t per = c * 9 * k;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t r = 0; r < c * 9; ++r) {
    float s[48];
    for (int64_t o = 0; o < k; ++o) s[o] = scratch[r * k + o];
    for (int64_t q = 1; q < chunks; ++q)
      for (int64_t o = 0; o < k; ++o) s[o] += scratch[q * per + r * k + o];
    const int64_t i = r / 9, t = r % 9;
    for (int64_t o = 0; o < k; ++o) dw[(o * c + i) * 9 + t] = s[o];
  }
}

std::vector<float> taps_by_input(const float* w, int64_t c, int64_t k) {
  std::vector<float> wp(c * 9 * k);
  for (int64_t o = 0; o < k; ++o)
    for (int64_t i = 0; i < c; ++i)
      for (int64_t t = 0; t < 9; ++t) wp[(i * 9 + t) * k + o] = w[(o * c + i) * 9 + t];
  return wp;
}

std::vector<float> taps_flipped(const float* w, int64_t c, int64_t k) {
  std::vector<float> wp(k * 9 * c);
  for (int64_t o = 0; o < k; ++o)
    for (int64_t i = 0; i < c; ++i)
      for (int64_t t = 0; t < 9; ++t) wp[(o * 9 + t) * c + i] = w[(o * c + i) * 9 + 8 - t];
  return wp;
}

namespace {

class DirectConv : public Kernel {
 public:
  DirectConv(const KernelSpec& s, ConvPass pass, const DirectPasses& passes)
      : c_(conv_shape(s, pass)),
        pass_(pass),
        passes_(passes),
        threads_(cpu_backend(s).threads()),
        post_(pass == ConvPass::forward ? s.node.attrs : Attrs{}) {}

  size_t workspace_bytes() const override {
    if (pass_ != ConvPass::grad_weight) return 0;
    return static_cast<size_t>(passes_.scratch_floats(c_.n, c_.c, c_.o)) * sizeof(float);
  }

  void run(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
           const StepContext& ctx) override {
    if (pass_ == ConvPass::forward)
      passes_.forward(in[0].f32(), in[1].f32(), c_.has_bias ? in[2].f32() : nullptr, out[0].f32(),
                      c_.n, c_.c, c_.o, c_.h, c_.w, post_.on, post_.slope, threads_);
    if (pass_ == ConvPass::grad_input)
      passes_.grad_input(in[0].f32(), in[1].f32(), out[0].f32(), c_.n, c_.c, c_.o, c_.h, c_.w,
                         threads_);
    if (pass_ == ConvPass::grad_weight)
      passes_.grad_weight(in[0].f32(), in[1].f32(), out[0].f32(),
                          static_cast<float*>(ctx.workspace), c_.n, c_.c, c_.o, c_.h, c_.w,
                          threads_);
  }

 private:
  ConvShape c_;
  ConvPass pass_;
  DirectPasses passes_;
  int threads_;
  PostRelu post_;
};

}  // namespace

std::unique_ptr<Kernel> make_direct_conv(const KernelSpec& s, ConvPass pass,
                                         const DirectPasses& passes) {
  return std::make_unique<DirectConv>(s, pass, passes);
}

}  // namespace myelin::cpu
