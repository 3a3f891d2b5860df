#include "cpu/conv_direct.h"

#include "cpu/blocked.h"

namespace myelin::cpu {

int64_t conv_x_block(const KernelSpec& s, ConvPass pass) {
  if (pass == ConvPass::grad_input) return block_of(s.output_layout(0));
  return block_of(s.input_layout(pass == ConvPass::grad_weight ? 1 : 0));
}

int64_t conv_y_block(const KernelSpec& s, ConvPass pass) {
  return block_of(pass == ConvPass::forward ? s.output_layout(0) : s.input_layout(0));
}

__attribute__((target("avx512f,avx512vl,avx512dq,avx2,fma"))) void add_tap_partials(
    const float* scratch, float* dw, int64_t chunks, int64_t c, int64_t k, int threads) {
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

}  // namespace myelin::cpu
