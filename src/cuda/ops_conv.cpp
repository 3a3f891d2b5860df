// Convolution forward, data gradient and filter gradient on cuDNN (the legacy convolution API,
// which cuDNN 9 keeps). Each kernel searches its algorithm once, when the program is compiled
// (cudnnFind*Ex on scratch buffers, under BackendOptions::workspace_limit), and the backend
// caches the choice per shape and precision, so the forward and backward programs of a session
// and repeated builds search once.
//
// Precision: fp32 uses FMA math only (no TF32); tf32 allows tensor-op math on fp32 tensors;
// bf16/fp16 cast the operands to 16 bits in the kernel's workspace, convolve with fp32
// accumulation and cast the result back (adding the bias in the same pass), so activations and
// master weights stay fp32 in the graph. The 16-bit copies are NHWC (filters KRSC): the casts
// transpose as they convert, and cuDNN runs its tensor-core kernels without layout conversions
// of its own (AlexNet bf16 b256 on an H100: 16,300 img/s NHWC vs 15,278 NCHW).
// MYELIN_CUDA_CONV_LAYOUT=nchw keeps them NCHW, for comparison.
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"  // cuDNN 9 marks the legacy API

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "cuda/device_kernels.h"
#include "cuda/kernel_util.h"

namespace myelin::cuda {

namespace {

enum class ConvDir { forward, backward_data, backward_filter };

const char* dir_name(ConvDir d) {
  switch (d) {
    case ConvDir::forward:
      return "fwd";
    case ConvDir::backward_data:
      return "bwd_data";
    case ConvDir::backward_filter:
      return "bwd_filter";
  }
  return "?";
}

std::string key_of(ConvDir d, const Shape& x, const Shape& w, const ConvParams& p, Precision prec,
                   bool nhwc, int64_t cpad, size_t limit) {
  std::string k = std::string(dir_name(d)) + x.str() + w.str();
  for (int64_t v : {p.stride_h, p.stride_w, p.pad_h, p.pad_w, p.dil_h, p.dil_w, p.groups}) {
    k.push_back(',');
    k.append(std::to_string(v));
  }
  k.append(precision_name(prec));
  k.append(nhwc ? "nhwc" : "nchw");
  k.push_back(',');
  k.append(std::to_string(cpad));
  k.push_back(',');
  k.append(std::to_string(limit));
  return k;
}

// Device scratch for the algorithm search, freed when the search is done.
struct Scratch {
  CudaBackend& b;
  void* p;
  Scratch(CudaBackend& be, size_t bytes) : b(be), p(be.allocate(std::max<size_t>(bytes, 256))) {
    // Small nonzero values (0x3c3c...: about 0.01 as fp32 or bf16): zeros can time faster.
    MYELIN_CHECK(cudaMemsetAsync(p, 0x3c, std::max<size_t>(bytes, 256), be.stream()),
                 "filling the algorithm search's scratch");
  }
  ~Scratch() { b.deallocate(p); }
};

class ConvKernel : public CudaKernel {
 public:
  ConvKernel(const KernelSpec& s, ConvDir dir) : CudaKernel(s), dir_(dir), p_(s.node.attrs) {
    require_float(s);
    if (dir == ConvDir::forward) {
      x_ = s.input(0).shape, w_ = s.input(1).shape, y_ = s.output(0).shape;
      has_bias_ = s.node.inputs.size() == 3;
    } else if (dir == ConvDir::backward_data) {
      y_ = s.input(0).shape, w_ = s.input(1).shape, x_ = s.output(0).shape;
    } else {
      y_ = s.input(0).shape, x_ = s.input(1).shape, w_ = s.output(0).shape;
    }
    Precision prec = be_.precision();
    half_ = prec == Precision::bf16 || prec == Precision::fp16;
    half_type_ = prec == Precision::fp16 ? DType::f16 : DType::bf16;
    dt_ = !half_ ? CUDNN_DATA_FLOAT
                 : (prec == Precision::fp16 ? CUDNN_DATA_HALF : CUDNN_DATA_BFLOAT16);
    const char* layout = std::getenv("MYELIN_CUDA_CONV_LAYOUT");
    nhwc_ = half_ && !(layout && std::strcmp(layout, "nchw") == 0);
    // MYELIN_CUDA_CONV_PAD=1 pads an ungrouped convolution's input channels with zeros to a
    // multiple of 8 (what tensor cores take). Off by default: on an H100 it made AlexNet's bf16
    // batch-256 step slower (14,777 img/s padded vs 16,300 unpadded; conv1 has 3 channels).
    const char* pad = std::getenv("MYELIN_CUDA_CONV_PAD");
    cpad_ = x_[1];
    if (nhwc_ && p_.groups == 1 && x_[1] % 8 != 0 && pad && std::strcmp(pad, "1") == 0)
      cpad_ = (x_[1] + 7) / 8 * 8;
    check_storage(s);
    describe_tensors(prec == Precision::fp32 ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH);
    choose_algorithm(prec);
  }

  size_t workspace_bytes() const override {
    size_t total = align256(algo_.workspace);
    if (half_) total += align256(io_bytes(x_)) + align256(io_bytes(w_)) + align256(io_bytes(y_));
    return total;
  }

 private:
  // Bytes of x, w or y as cuDNN sees them (with padded channels for x and w).
  size_t io_bytes(const Shape& s) const {
    size_t padded = static_cast<size_t>(s.numel() / s[1] * (&s == &y_ ? s[1] : channels(s)));
    return padded * (half_ ? 2 : 4);
  }
  int64_t channels(const Shape& s) const { return cpad_ != x_[1] ? cpad_ : s[1]; }

  void describe_tensors(cudnnMathType_t math) {
    cudnnTensorFormat_t format = nhwc_ ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
    xd_.set(dt_, x_[0], cpad_, x_[2], x_[3], where_, format);
    yd_.set(dt_, y_[0], y_[1], y_[2], y_[3], where_, format);
    int wc = static_cast<int>(p_.groups == 1 ? cpad_ : w_[1]);
    MYELIN_CHECK(cudnnSetFilter4dDescriptor(wd_, dt_, format, static_cast<int>(w_[0]), wc,
                                            static_cast<int>(w_[2]), static_cast<int>(w_[3])),
                 where_);
    MYELIN_CHECK(cudnnSetConvolution2dDescriptor(
                     cd_, static_cast<int>(p_.pad_h), static_cast<int>(p_.pad_w),
                     static_cast<int>(p_.stride_h), static_cast<int>(p_.stride_w),
                     static_cast<int>(p_.dil_h), static_cast<int>(p_.dil_w),
                     CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT),
                 where_);
    MYELIN_CHECK(cudnnSetConvolutionGroupCount(cd_, static_cast<int>(p_.groups)), where_);
    MYELIN_CHECK(cudnnSetConvolutionMathType(cd_, math), where_);
    int n, c, h, w;
    MYELIN_CHECK(cudnnGetConvolution2dForwardOutputDim(cd_, xd_, wd_, &n, &c, &h, &w), where_);
    if (Shape{n, c, h, w} != y_)
      throw ShapeError(where_ + ": cuDNN computes an output of " + Shape{n, c, h, w}.str());
  }

  void choose_algorithm(Precision prec) {
    std::string key = key_of(dir_, x_, w_, p_, prec, nhwc_, cpad_, be_.options().workspace_limit);
    if (const ConvAlgo* a = be_.cached_conv_algo(key)) {
      algo_ = *a;
    } else {
      algo_ = search(prec);
      be_.cache_conv_algo(key, algo_);
    }
    MYELIN_CHECK(cudnnSetConvolutionMathType(cd_, algo_.math), where_);
  }

  template <class Perf>
  ConvAlgo pick(const Perf* perf, int count, Precision prec, size_t limit) const {
    for (int i = 0; i < count; ++i) {
      const Perf& r = perf[i];
      if (r.status != CUDNN_STATUS_SUCCESS || r.memory > limit) continue;
      // DEFAULT_MATH permits TF32 on Ampere and later: exact fp32 takes FMA algorithms only.
      if (prec == Precision::fp32 && r.mathType != CUDNN_FMA_MATH) continue;
      return ConvAlgo{static_cast<int>(r.algo), r.mathType, r.memory, r.time};
    }
    throw UnsupportedError(where_ + ": cuDNN has no " + dir_name(dir_) + " algorithm for " +
                           precision_name(prec) + " within a workspace of " +
                           std::to_string(limit >> 20) + " MiB");
  }

  ConvAlgo search(Precision prec) {
    size_t limit = std::min(be_.options().workspace_limit, be_.free_memory() / 2);
    Scratch x(be_, io_bytes(x_)), w(be_, io_bytes(w_)), y(be_, io_bytes(y_)), ws(be_, limit);
    cudnnHandle_t h = be_.cudnn();
    int count = 0;
    if (dir_ == ConvDir::forward) {
      cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
      MYELIN_CHECK(cudnnFindConvolutionForwardAlgorithmEx(h, xd_, x.p, wd_, w.p, cd_, yd_, y.p,
                                                          CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &count,
                                                          perf, ws.p, limit),
                   where_);
      return pick(perf, count, prec, limit);
    }
    if (dir_ == ConvDir::backward_data) {
      cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
      MYELIN_CHECK(cudnnFindConvolutionBackwardDataAlgorithmEx(
                       h, wd_, w.p, yd_, y.p, cd_, xd_, x.p, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT,
                       &count, perf, ws.p, limit),
                   where_);
      return pick(perf, count, prec, limit);
    }
    cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    MYELIN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithmEx(
                     h, xd_, x.p, yd_, y.p, cd_, wd_, w.p, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT,
                     &count, perf, ws.p, limit),
                 where_);
    return pick(perf, count, prec, limit);
  }

  // The weights, bias and weight gradient are fp32 (master weights, fp32 accumulation); x and y
  // (or their gradients) may be stored in the precision's 16-bit type (CudaBackend::
  // choose_storage), and then need no cast in the NCHW layout and half the traffic in NHWC.
  void check_storage(const KernelSpec& s) const {
    auto want = [&](TensorType t, bool may_be_16, const char* what) {
      if (t.dtype == DType::f32 || (may_be_16 && half_ && t.dtype == half_type_)) return;
      throw UnsupportedError(where_ + ": " + what + " is " + dtype_name(t.dtype) +
                             " under --precision " + precision_name(be_.precision()));
    };
    if (dir_ == ConvDir::forward) {
      want(s.input(0), true, "the input");
      want(s.input(1), false, "the filter");
      if (has_bias_) want(s.input(2), false, "the bias");
      want(s.output(0), true, "the output");
    } else if (dir_ == ConvDir::backward_data) {
      want(s.input(0), true, "the output gradient");
      want(s.input(1), false, "the filter");
      want(s.output(0), true, "the input gradient");
    } else {
      want(s.input(0), true, "the output gradient");
      want(s.input(1), true, "the input");
      want(s.output(0), false, "the filter gradient");
    }
  }

  // x, w and y (or their gradients) in this direction's inputs and outputs.
  struct Operands {
    FPtr x, w, y;
  };
  Operands operands(const std::vector<Tensor>& in, const std::vector<Tensor>& out) const {
    if (dir_ == ConvDir::forward) return {fptr(in[0]), fptr(in[1]), fptr(out[0])};
    if (dir_ == ConvDir::backward_data) return {fptr(out[0]), fptr(in[1]), fptr(in[0])};
    return {fptr(in[1]), fptr(out[0]), fptr(in[0])};
  }

  void launch(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
              const StepContext& ctx) override {
    Operands o = operands(in, out);
    const float* bias = has_bias_ ? in[2].f32() : nullptr;
    WorkspaceCarver carve(ctx.workspace);
    void* ws = carve.take(algo_.workspace);
    if (!half_) {
      convolve(o.x.p, o.w.p, o.y.p, ws);
      if (bias) bias_add(o.y, bias, o.y, y_[0], y_[1], y_[2] * y_[3], stream());
      return;
    }
    void *x16 = carve.take(io_bytes(x_)), *w16 = carve.take(io_bytes(w_)),
         *y16 = carve.take(io_bytes(y_));
    // In NCHW an operand already stored in 16 bits is used in place.
    if (!nhwc_ && o.x.type != 0) x16 = o.x.p;
    if (!nhwc_ && o.y.type != 0) y16 = o.y.p;
    // Cast the operands this direction reads, convolve in 16 bits, cast the result back.
    if (dir_ != ConvDir::backward_data) to_half(o.x, x16, x_);
    if (dir_ != ConvDir::backward_filter) to_half(o.w, w16, w_);
    if (dir_ != ConvDir::forward) to_half(o.y, y16, y_);
    convolve(x16, w16, y16, ws);
    if (dir_ == ConvDir::forward)
      from_half(y16, o.y, bias, y_);
    else if (dir_ == ConvDir::backward_data)
      from_half(x16, o.x, nullptr, x_);
    else
      from_half(w16, o.w, nullptr, w_);
  }

  void to_half(FPtr t, void* t16, const Shape& s) {
    if (t.p == t16) return;  // used in place
    int64_t c_pad = &s == &y_ ? s[1] : channels(s);
    if (nhwc_)
      cast_to_half_nhwc(t, t16, half_type_, s[0], s[1], c_pad, s[2] * s[3], stream());
    else
      cast_to_half(static_cast<const float*>(t.p), t16, half_type_, s.numel(), stream());
  }

  void from_half(const void* t16, FPtr t, const float* bias, const Shape& s) {
    int64_t c_pad = &s == &y_ ? s[1] : channels(s);
    if (nhwc_)
      cast_from_half_nhwc(t16, half_type_, t, bias, s[0], s[1], c_pad, s[2] * s[3], stream());
    else if (t.p != t16)
      cast_from_half(t16, half_type_, static_cast<float*>(t.p), bias, s[0], s[1], s[2] * s[3],
                     stream());
    else if (bias)  // written in place: add the bias there
      bias_add(t, bias, t, s[0], s[1], s[2] * s[3], stream());
  }

  void convolve(void* x, void* w, void* y, void* ws) {
    const float one = 1.f, zero = 0.f;
    cudnnHandle_t h = be_.cudnn();
    if (dir_ == ConvDir::forward)
      MYELIN_CHECK(cudnnConvolutionForward(h, &one, xd_, x, wd_, w, cd_,
                                           static_cast<cudnnConvolutionFwdAlgo_t>(algo_.algo), ws,
                                           algo_.workspace, &zero, yd_, y),
                   "");
    else if (dir_ == ConvDir::backward_data)
      MYELIN_CHECK(
          cudnnConvolutionBackwardData(h, &one, wd_, w, yd_, y, cd_,
                                       static_cast<cudnnConvolutionBwdDataAlgo_t>(algo_.algo), ws,
                                       algo_.workspace, &zero, xd_, x),
          "");
    else
      MYELIN_CHECK(
          cudnnConvolutionBackwardFilter(h, &one, xd_, x, yd_, y, cd_,
                                         static_cast<cudnnConvolutionBwdFilterAlgo_t>(algo_.algo),
                                         ws, algo_.workspace, &zero, wd_, w),
          "");
  }

  ConvDir dir_;
  ConvParams p_;
  Shape x_, w_, y_;
  bool has_bias_ = false;
  bool half_ = false, nhwc_ = false;
  int64_t cpad_ = 0;  // input channels as cuDNN sees them (x_[1], or padded to a multiple of 8)
  DType half_type_ = DType::bf16;
  cudnnDataType_t dt_ = CUDNN_DATA_FLOAT;
  TensorDesc xd_, yd_;
  FilterDesc wd_;
  ConvDesc cd_;
  ConvAlgo algo_;
};

KernelFactory conv(ConvDir d) {
  return [d](const KernelSpec& s) -> std::unique_ptr<Kernel> {
    return std::make_unique<ConvKernel>(s, d);
  };
}

}  // namespace

MYELIN_REGISTER_OPS {
  register_kernel("conv2d", DeviceKind::cuda, conv(ConvDir::forward));
  register_kernel("conv2d_grad_input", DeviceKind::cuda, conv(ConvDir::backward_data));
  register_kernel("conv2d_grad_weight", DeviceKind::cuda, conv(ConvDir::backward_filter));
}

}  // namespace myelin::cuda
