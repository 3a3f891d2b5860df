// matmul and inner_product on cuBLASLt. Row-major C[m, n] = op(A) op(B) is computed as the
// column-major product C^T = op(B)^T op(A)^T, so no transposes are materialised. The algorithm
// comes from cuBLASLt's heuristic once, when the program is compiled; inner_product adds its
// bias in the matmul epilogue. Precision: fp32 exact (no TF32); tf32 through cuBLAS's fast-TF32
// compute type; bf16/fp16 multiply 16-bit operands with fp32 accumulation: an operand stored in
// fp32 (weights, or activations CudaBackend::choose_storage left in fp32) is cast in the
// kernel's workspace, one stored in 16 bits is used in place; the output is written in its own
// storage type (16-bit activations, fp32 weight gradients). (cuBLAS's FAST_16BF compute type on
// fp32 operands measured the same speed and error as TF32 on an H100, so it is not used.)
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
    require_float(s);
    int64_t m = ta ? ac : ar, n = tb ? br : bc;
    ws_limit_ = std::min(kLtWorkspace, be_.options().workspace_limit);
    Precision prec = be_.precision();
    if (is_16bit(prec)) {
      half_type_ = half_type(prec);
      if (s.input(0).dtype == DType::f32) a_elems_ = ar * ac;
      if (s.input(1).dtype == DType::f32) b_elems_ = br * bc;
    }
    for (int i = 0; i < static_cast<int>(s.node.inputs.size()); ++i) {
      DType t = s.input(i).dtype;
      if (t != DType::f32 && (i == 2 || t != half_type_))
        throw UnsupportedError(where_ + ": input " + std::to_string(i) + " is " + dtype_name(t) +
                               " under --precision " + precision_name(prec));
    }
    DType out_type = s.output(0).dtype;
    if (out_type != DType::f32 && out_type != half_type_)
      throw UnsupportedError(where_ + ": the output is " + dtype_name(out_type) +
                             " under --precision " + precision_name(prec));
    cudaDataType_t io = half_type_ == DType::bf16  ? CUDA_R_16BF
                        : half_type_ == DType::f16 ? CUDA_R_16F
                                                   : CUDA_R_32F;
    cudaDataType_t out = out_type == DType::f32 ? CUDA_R_32F : io;
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
    check(cublasLtMatrixLayoutCreate(&ld_, out, n, m, n), "cublasLtMatrixLayoutCreate");
    // With a 16-bit output the epilogue takes a 16-bit bias (cuBLASLt rejected an fp32 one:
    // CUBLAS_STATUS_INVALID_VALUE on an H200): the fp32 master bias is cast each step, n values.
    bias16_ = bias_ && out != CUDA_R_32F;
    if (bias_ && !choose(CUBLASLT_EPILOGUE_BIAS))
      bias_in_epilogue_ = false;
    else if (bias_)
      bias_in_epilogue_ = true;
    if (!bias_in_epilogue_ && !choose(CUBLASLT_EPILOGUE_DEFAULT)) {
      if (out == CUDA_R_32F)
        throw UnsupportedError(where_ + ": cuBLASLt has no algorithm for this product in " +
                               precision_name(be_.precision()));
      // No 16-bit output for this product: an fp32 one in the workspace, cast afterwards.
      cublasLtMatrixLayoutDestroy(ld_);
      ld_ = nullptr;
      check(cublasLtMatrixLayoutCreate(&ld_, CUDA_R_32F, n, m, n), "cublasLtMatrixLayoutCreate");
      d32_ = true, bias16_ = false;
      bias_in_epilogue_ = bias_ && choose(CUBLASLT_EPILOGUE_BIAS);
      if (!bias_in_epilogue_ && !choose(CUBLASLT_EPILOGUE_DEFAULT))
        throw UnsupportedError(where_ + ": cuBLASLt has no algorithm for this product in " +
                               precision_name(be_.precision()));
    }
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
    return align256(ws_limit_) + align256(a_elems_ * 2) + align256(b_elems_ * 2) +
           (bias16_ ? align256(static_cast<size_t>(n_) * 2) : 0) +
           (d32_ ? align256(static_cast<size_t>(m_ * n_) * 4) : 0);
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
    if (st == CUBLAS_STATUS_NOT_SUPPORTED ||
        (st == CUBLAS_STATUS_INVALID_VALUE && epilogue != CUBLASLT_EPILOGUE_DEFAULT))
      return false;
    cuda::check(st, "cublasLtMatmulAlgoGetHeuristic", where_);
    return found > 0;
  }

  void launch(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
              const StepContext& ctx) override {
    const float one = 1.f, zero = 0.f;
    WorkspaceCarver carve(ctx.workspace);
    void* ws = carve.take(ws_limit_);
    void* d = d32_ ? carve.take(static_cast<size_t>(m_ * n_) * 4) : out[0].data();
    const void* a = in[0].data();
    const void* b16 = in[1].data();
    if (a_elems_) {
      void* a16 = carve.take(a_elems_ * 2);
      cast_to_staged(in[0].f32(), a16, half_type_, a_elems_, stream());
      a = a16;
    }
    if (b_elems_) {
      void* bb = carve.take(b_elems_ * 2);
      cast_to_staged(in[1].f32(), bb, half_type_, b_elems_, stream());
      b16 = bb;
    }
    if (bias_in_epilogue_) {
      const void* b = in[2].data();
      if (bias16_) {
        void* b16 = carve.take(static_cast<size_t>(n_) * 2);
        cast_to_staged(in[2].f32(), b16, half_type_, n_, stream());
        b = b16;
      }
      MYELIN_CHECK(
          cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &b, sizeof b),
          "");
    }
    MYELIN_CHECK(cublasLtMatmul(be_.cublaslt(), desc_, &one, b16, la_, a, lb_, &zero, d, ld_, d,
                                ld_, &heuristic_.algo, ws, ws_limit_, stream()),
                 "");
    FPtr product = d32_ ? FPtr{d, 0} : fptr(out[0]);
    if (bias_ && !bias_in_epilogue_)
      bias_add(product, in[2].f32(), fptr(out[0]), m_, n_, 1, stream());
    else if (d32_)
      cast_to_staged(static_cast<const float*>(d), out[0].data(), half_type_, m_ * n_, stream());
  }

  bool bias_ = false, bias_in_epilogue_ = false;
  bool bias16_ = false;  // 16-bit output: the epilogue reads a 16-bit copy of the bias
  bool d32_ = false;     // 16-bit output written through an fp32 product in the workspace
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

// Activation operands in 16 bits or fp32 (see the top), in the plain layout only.
MYELIN_REGISTER_OPS {
  register_kernel("matmul", DeviceKind::cuda, make_matmul, {.half = takes_each({0, 1}, {0})});
  register_kernel("inner_product", DeviceKind::cuda, make_inner_product,
                  {.half = takes_each({0}, {0})});
}

}  // namespace myelin::cuda
