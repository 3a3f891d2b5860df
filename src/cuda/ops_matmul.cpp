// matmul and inner_product on cuBLASLt. Row-major C[m, n] = op(A) op(B) is computed as the
// column-major product C^T = op(B)^T op(A)^T, so no transposes are materialised. The algorithm
// comes from cuBLASLt's heuristic once, when the program is compiled; inner_product adds its
// bias in the matmul epilogue. Precision: fp32 exact (no TF32); tf32 through cuBLAS's fast-TF32
// compute type; bf16/fp16 cast both operands to 16 bits in the kernel's workspace and multiply
// with fp32 accumulation into the fp32 output. (cuBLAS's FAST_16BF compute type on fp32 operands
// measured the same speed and error as TF32 on an H100, so it is not used.)
#include "cuda/device_kernels.h"
#include "cuda/kernel_util.h"

namespace myelin::cuda {

namespace {

cublasComputeType_t compute_type(Precision p) {
  return p == Precision::tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
}

constexpr size_t kLtWorkspace = 32u << 20;  // what cuBLAS recommends on Hopper

class MatmulKernel : public CudaKernel {
 public:
  // a: [ar, ac] (trans_a), b: [br, bc] (trans_b); bias along n when `bias`.
  MatmulKernel(const KernelSpec& s, int64_t ar, int64_t ac, bool ta, int64_t br, int64_t bc,
               bool tb, bool bias)
      : CudaKernel(s), bias_(bias) {
    require_f32(s);
    int64_t m = ta ? ac : ar, n = tb ? br : bc;
    ws_limit_ = std::min(kLtWorkspace, be_.options().workspace_limit);
    Precision prec = be_.precision();
    if (prec == Precision::bf16 || prec == Precision::fp16) {
      half_type_ = prec == Precision::bf16 ? DType::bf16 : DType::f16;
      a_elems_ = ar * ac, b_elems_ = br * bc;
    }
    cudaDataType_t io = half_type_ == DType::bf16  ? CUDA_R_16BF
                        : half_type_ == DType::f16 ? CUDA_R_16F
                                                   : CUDA_R_32F;
    auto check = [&](cublasStatus_t st, const char* call) { cuda::check(st, call, where_); };
    check(cublasLtMatmulDescCreate(&desc_, compute_type(be_.precision()), CUDA_R_32F),
          "cublasLtMatmulDescCreate");
    cublasOperation_t opa = tb ? CUBLAS_OP_T : CUBLAS_OP_N, opb = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    check(cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa),
          "cublasLtMatmulDescSetAttribute(TRANSA)");
    check(cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb),
          "cublasLtMatmulDescSetAttribute(TRANSB)");
    // Column-major views: the first operand is B (bc x br), the second A (ac x ar).
    check(cublasLtMatrixLayoutCreate(&la_, io, bc, br, bc), "cublasLtMatrixLayoutCreate");
    check(cublasLtMatrixLayoutCreate(&lb_, io, ac, ar, ac), "cublasLtMatrixLayoutCreate");
    check(cublasLtMatrixLayoutCreate(&ld_, CUDA_R_32F, n, m, n), "cublasLtMatrixLayoutCreate");
    if (bias_ && !choose(CUBLASLT_EPILOGUE_BIAS))
      bias_in_epilogue_ = false;
    else if (bias_)
      bias_in_epilogue_ = true;
    if (!bias_in_epilogue_ && !choose(CUBLASLT_EPILOGUE_DEFAULT))
      throw UnsupportedError(where_ + ": cuBLASLt has no algorithm for this product in " +
                             precision_name(be_.precision()));
    m_ = m, n_ = n;
  }

  ~MatmulKernel() override {
    if (pref_) cublasLtMatmulPreferenceDestroy(pref_);
    if (ld_) cublasLtMatrixLayoutDestroy(ld_);
    if (lb_) cublasLtMatrixLayoutDestroy(lb_);
    if (la_) cublasLtMatrixLayoutDestroy(la_);
    if (desc_) cublasLtMatmulDescDestroy(desc_);
  }

  size_t workspace_bytes() const override {
    return align256(ws_limit_) + align256(a_elems_ * 2) + align256(b_elems_ * 2);
  }

 private:
  // Sets the epilogue and asks the heuristic for the best algorithm; false if there is none.
  bool choose(cublasLtEpilogue_t epilogue) {
    cuda::check(cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue,
                                               sizeof epilogue),
                "cublasLtMatmulDescSetAttribute(EPILOGUE)", where_);
    if (!pref_) {
      cuda::check(cublasLtMatmulPreferenceCreate(&pref_), "cublasLtMatmulPreferenceCreate", where_);
      cuda::check(
          cublasLtMatmulPreferenceSetAttribute(pref_, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                               &ws_limit_, sizeof ws_limit_),
          "cublasLtMatmulPreferenceSetAttribute", where_);
    }
    int found = 0;
    cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(be_.cublaslt(), desc_, la_, lb_, ld_, ld_,
                                                       pref_, 1, &heuristic_, &found);
    if (st == CUBLAS_STATUS_NOT_SUPPORTED) return false;
    cuda::check(st, "cublasLtMatmulAlgoGetHeuristic", where_);
    return found > 0;
  }

  void launch(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
              const StepContext& ctx) override {
    const float one = 1.f, zero = 0.f;
    float* d = out[0].f32();
    WorkspaceCarver carve(ctx.workspace);
    void* ws = carve.take(ws_limit_);
    const void* a = in[0].data();
    const void* b16 = in[1].data();
    if (a_elems_) {
      void* a16 = carve.take(a_elems_ * 2);
      void* bb = carve.take(b_elems_ * 2);
      cast_to_half(in[0].f32(), a16, half_type_, a_elems_, stream());
      cast_to_half(in[1].f32(), bb, half_type_, b_elems_, stream());
      a = a16, b16 = bb;
    }
    if (bias_in_epilogue_) {
      const float* b = in[2].f32();
      MYELIN_CHECK(
          cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &b, sizeof b),
          "");
    }
    MYELIN_CHECK(cublasLtMatmul(be_.cublaslt(), desc_, &one, b16, la_, a, lb_, &zero, d, ld_, d,
                                ld_, &heuristic_.algo, ws, ws_limit_, stream()),
                 "");
    if (bias_ && !bias_in_epilogue_) bias_add_f32(d, in[2].f32(), d, m_, n_, 1, stream());
  }

  bool bias_ = false, bias_in_epilogue_ = false;
  int64_t m_ = 0, n_ = 0;
  DType half_type_ = DType::f32;      // bf16/f16: the operands are cast to it
  size_t a_elems_ = 0, b_elems_ = 0;  // elements of the 16-bit copies (0: none)
  size_t ws_limit_ = 0;
  cublasLtMatmulDesc_t desc_ = nullptr;
  cublasLtMatrixLayout_t la_ = nullptr, lb_ = nullptr, ld_ = nullptr;
  cublasLtMatmulPreference_t pref_ = nullptr;
  cublasLtMatmulHeuristicResult_t heuristic_{};
};

std::unique_ptr<Kernel> make_matmul(const KernelSpec& s) {
  Shape a = s.input(0).shape, b = s.input(1).shape;
  bool ta = s.node.attrs.i("trans_a", 0) != 0, tb = s.node.attrs.i("trans_b", 0) != 0;
  return std::make_unique<MatmulKernel>(s, a[0], a[1], ta, b[0], b[1], tb, false);
}

// y[N, O] = x[N, K] w[O, K]^T + b[O]
std::unique_ptr<Kernel> make_inner_product(const KernelSpec& s) {
  Shape x = s.input(0).shape, w = s.input(1).shape;
  return std::make_unique<MatmulKernel>(s, x[0], x.numel() / x[0], false, w[0], w[1], true,
                                        s.node.inputs.size() == 3);
}

}  // namespace

MYELIN_REGISTER_OPS {
  register_kernel("matmul", DeviceKind::cuda, make_matmul);
  register_kernel("inner_product", DeviceKind::cuda, make_inner_product);
}

}  // namespace myelin::cuda
