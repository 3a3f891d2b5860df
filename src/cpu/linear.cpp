// Matrix products on row-major SGEMM: matmul (trans_a, trans_b) and inner_product
// (x[N, ...] as [N, K], w[O, K], b[O]? -> x w^T + b, then a fused ReLU if CpuBackend::fuse set
// one).
//
// The SGEMM is oneDNN's (dnnl_sgemm), not OpenBLAS's: as fast on these shapes, and it runs on
// the same OpenMP threads as every other kernel. OpenBLAS's own pthreads busy-wait after each
// call, so on a 2-core machine the OpenMP kernel that follows (a convolution, a pooling
// gradient) shares a core with a spinning thread and stalls for scheduler ticks.
// MYELIN_CPU_GEMM=openblas switches back, for measuring exactly that.
#include <cblas.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "cpu/dnnl_util.h"
#include "cpu/fuse.h"

namespace myelin::cpu {

namespace {

struct Gemm {
  bool ta = false, tb = false;
  int64_t m = 0, n = 0, k = 0;  // C[m, n] = op(A)[m, k] op(B)[k, n]
  int64_t lda() const { return ta ? m : k; }
  int64_t ldb() const { return tb ? k : n; }
};

bool use_openblas() {
  static const bool on = [] {
    const char* v = std::getenv("MYELIN_CPU_GEMM");
    return v && std::strcmp(v, "openblas") == 0;
  }();
  return on;
}

void sgemm(const Gemm& g, const float* a, const float* b, float beta, float* c) {
  if (!use_openblas()) {
    dnnl_status_t st = dnnl_sgemm(g.ta ? 'T' : 'N', g.tb ? 'T' : 'N', g.m, g.n, g.k, 1.0f, a,
                                  g.lda(), b, g.ldb(), beta, c, g.n);
    if (st != dnnl_success)
      throw DeviceError("oneDNN sgemm (" + std::to_string(g.m) + "x" + std::to_string(g.n) + "x" +
                        std::to_string(g.k) + ") failed with status " + std::to_string(st));
    return;
  }
  cblas_sgemm(CblasRowMajor, g.ta ? CblasTrans : CblasNoTrans, g.tb ? CblasTrans : CblasNoTrans,
              static_cast<int>(g.m), static_cast<int>(g.n), static_cast<int>(g.k), 1.0f, a,
              static_cast<int>(g.lda()), b, static_cast<int>(g.ldb()), beta, c,
              static_cast<int>(g.n));
}

class MatmulKernel : public Kernel {
 public:
  explicit MatmulKernel(const KernelSpec& s) {
    g_.ta = s.node.attrs.i("trans_a", 0) != 0;
    g_.tb = s.node.attrs.i("trans_b", 0) != 0;
    const Shape &a = s.input(0).shape, &b = s.input(1).shape;
    g_.m = a[g_.ta ? 1 : 0], g_.k = a[g_.ta ? 0 : 1], g_.n = b[g_.tb ? 0 : 1];
  }
  void run(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
           const StepContext&) override {
    sgemm(g_, in[0].f32(), in[1].f32(), 0.0f, out[0].f32());
  }

 private:
  Gemm g_;
};

class InnerProductKernel : public Kernel {
 public:
  explicit InnerProductKernel(const KernelSpec& s)
      : has_bias_(s.node.inputs.size() == 3), post_(s.node.attrs) {
    const Shape& x = s.input(0).shape;
    g_.tb = true;
    g_.m = x[0], g_.k = x.numel() / x[0], g_.n = s.input(1).shape[0];
  }
  void run(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
           const StepContext&) override {
    float* y = out[0].f32();
    if (has_bias_) {  // y starts as the bias in every row; the product accumulates onto it
      const float* b = in[2].f32();
      for (int64_t r = 0; r < g_.m; ++r) std::copy_n(b, g_.n, y + r * g_.n);
    }
    sgemm(g_, in[0].f32(), in[1].f32(), has_bias_ ? 1.0f : 0.0f, y);
    if (post_.on) {  // a fused ReLU, over the output the product has just written (in cache)
      const PostRelu post = post_;
      const int64_t len = g_.m * g_.n;
#pragma omp simd
      for (int64_t i = 0; i < len; ++i) y[i] = post(y[i]);
    }
  }

 private:
  Gemm g_;
  bool has_bias_;
  PostRelu post_;
};

}  // namespace

MYELIN_REGISTER_OPS {
  register_kernel("matmul", DeviceKind::cpu, [](const KernelSpec& s) -> std::unique_ptr<Kernel> {
    return std::make_unique<MatmulKernel>(s);
  });
  register_kernel("inner_product", DeviceKind::cpu,
                  [](const KernelSpec& s) -> std::unique_ptr<Kernel> {
                    return std::make_unique<InnerProductKernel>(s);
                  });
}

}  // namespace myelin::cpu
