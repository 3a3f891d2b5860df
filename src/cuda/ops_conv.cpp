// Convolution forward, data gradient and filter gradient on cuDNN (the legacy convolution API,
// which cuDNN 9 keeps). Each kernel chooses its algorithm once, when the program is compiled, and
// the backend caches the choice per shape and precision (on disk too), so the forward and
// backward programs of a session and repeated builds choose once. How it chooses is
// BackendOptions::conv_search (--conv-search). "auto": fp32 and tf32 time every algorithm
// (cudnnFind*Ex on scratch buffers, under BackendOptions::workspace_limit); bf16 and fp16 take
// cuDNN's heuristic ranking, which costs no time at start (Fashion-MNIST ResNet-9 from an empty
// cache 9.6 s vs 10.0 s of process, H100) but on an H200 picked 1x1 kernels five times slower
// than the best for ResNet-50 at batch 128 (step 35.0 vs 22.1 ms). "tune" runs convolutions of
// whole tensors (not split by group) on cuDNN's graph API instead, timing its engine
// configurations (conv_graph.h), as PyTorch's cudnn.benchmark times its candidates; "auto" then
// takes those tuned choices from the algorithm cache where it holds them, at no cost at start.
// MYELIN_CUDA_ALGO_SEARCH=find|heuristic and MYELIN_CUDA_CONV_API=graph (tune) override it.
//
// Precision: fp32 uses FMA math only (no TF32); tf32 allows tensor-op math on fp32 tensors;
// bf16/fp16 convolve 16-bit NHWC operands (filters KRSC) with fp32 accumulation: cuDNN runs its
// tensor-core kernels without layout conversions of its own (AlexNet bf16 b256 on an H100:
// 16,300 img/s NHWC vs 15,278 NCHW). An activation stored that way (CudaBackend::choose_storage)
// is used in place; any other (fp32, or NCHW) is cast into the kernel's workspace, transposing as
// it converts, and the result cast back (adding the bias in the same pass). The fp32 master
// weights are cast every step. tf32 convolves the same way, in fp32, where an operand is stored
// channels-last (networks with batch norm): the staged path, with fp32 NHWC copies.
//
// Thin strided inputs (under 8 channels, stride > 1, ungrouped: AlexNet's conv1 on RGB) are not
// what tensor cores take; there the forward pass and the filter gradient fold the stride into the
// channels (fold.cu: 3 channels at stride 4 become 48 at stride 1; ResNet's stem, 3 at stride 2,
// 12 padded to 16 in 16 bits) and convolve that instead. MYELIN_CUDA_FOLD=0 turns it off.
//
// Grouped convolutions (AlexNet's conv2, conv4, conv5) run one ungrouped convolution per group,
// each on a packed copy of its group's channels: cuDNN's grouped kernels ran them at a third of
// the ungrouped speed, and it takes no strided channel slices (no algorithm for them).
// MYELIN_CUDA_SPLIT_GROUPS=0 keeps them whole.
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"  // cuDNN 9 marks the legacy API

#include <algorithm>

#include "core/env.h"
#include "cuda/conv_graph.h"
#include "cuda/device_kernels.h"
#include "cuda/kernel_util.h"

namespace myelin::cuda {

namespace {

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

// The convolution cuDNN computes: the node's, its stride-folded equivalent, or one group of it.
struct Problem {
  Shape x, w;  // logical [N, C, H, W] and [K, C / groups, R, S]
  int64_t stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups;
  int64_t slices = 1;  // run per group, on packed copies of the group's channels of x and y
};

// The algorithm cache's key: the problem, its layout (tf32 convolves NCHW or, staged, NHWC: each
// has its algorithms and workspace sizes), the precision and the workspace limit.
std::string key_of(ConvDir d, const Problem& q, const Shape& y, bool nhwc, Precision prec,
                   size_t limit) {
  std::string k = std::string(dir_name(d)) + q.x.str() + q.w.str() + y.str();
  if (nhwc) k.append("nhwc");
  for (int64_t v :
       {q.stride_h, q.stride_w, q.pad_h, q.pad_w, q.dil_h, q.dil_w, q.groups, q.slices}) {
    k.push_back(',');
    k.append(std::to_string(v));
  }
  k.append(precision_name(prec));
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
      relu_ = s.node.attrs.s("post", "") == "relu";  // a fused ReLU (CudaBackend::fuse)
    } else if (dir == ConvDir::backward_data) {
      y_ = s.input(0).shape, w_ = s.input(1).shape, x_ = s.output(0).shape;
    } else {
      y_ = s.input(0).shape, x_ = s.input(1).shape, w_ = s.output(0).shape;
    }
    Precision prec = be_.precision();
    stage_type_ = half_type(prec);
    layouts(s);
    staged_ = half() || x_nhwc_ || y_nhwc_;
    dt_ = stage_type_ == DType::f32   ? CUDNN_DATA_FLOAT
          : stage_type_ == DType::f16 ? CUDNN_DATA_HALF
                                      : CUDNN_DATA_BFLOAT16;
    check_storage(s);
    q_ = Problem{x_,       w_,       p_.stride_h, p_.stride_w, p_.pad_h,
                 p_.pad_w, p_.dil_h, p_.dil_w,    p_.groups};
    if (!env_is("MYELIN_CUDA_FOLD", "0") && dir_ != ConvDir::backward_data && p_.groups == 1 &&
        x_[1] < 8 && p_.stride_h == p_.stride_w && p_.stride_h > 1 && p_.dil_h == 1 &&
        p_.dil_w == 1 && (staged_ || x_[1] * p_.stride_h * p_.stride_h % 8 == 0))
      fold();
    if (!env_is("MYELIN_CUDA_SPLIT_GROUPS", "0") && staged_ && p_.groups > 1) split();
    // An operand already stored as cuDNN takes it (NHWC of the staged type) is used in place.
    x_direct_ = !folded_ && (!staged_ || (x_nhwc_ && x_type_ == stage_type_));
    y_direct_ = !staged_ || (y_nhwc_ && y_type_ == stage_type_);
    describe_tensors(prec == Precision::fp32 ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH);
    choose_algorithm(prec);
  }

  size_t workspace_bytes() const override {
    size_t total = align256(algo_.workspace);
    if (staged_ || folded_) total += align256(bytes(staged_w()));
    if (!x_direct_) total += align256(bytes(staged_x()));
    if (!y_direct_) total += align256(bytes(y_));
    if (q_.slices > 1) total += align256(bytes(q_.x)) + align256(slice_bytes_y());
    return total;
  }

 private:
  // Where x and y (or their gradients) live in this direction's inputs and outputs, and how.
  void layouts(const KernelSpec& s) {
    auto nhwc = [&](bool output, int k) { return output ? s.output_nhwc(k) : s.input_nhwc(k); };
    if (dir_ == ConvDir::forward) {
      x_nhwc_ = nhwc(false, 0), y_nhwc_ = nhwc(true, 0);
      x_type_ = s.input(0).dtype, y_type_ = s.output(0).dtype;
    } else if (dir_ == ConvDir::backward_data) {
      y_nhwc_ = nhwc(false, 0), x_nhwc_ = nhwc(true, 0);
      y_type_ = s.input(0).dtype, x_type_ = s.output(0).dtype;
    } else {
      y_nhwc_ = nhwc(false, 0), x_nhwc_ = nhwc(false, 1);
      y_type_ = s.input(0).dtype, x_type_ = s.input(1).dtype;
    }
  }

  // The stride-s problem over C channels as a stride-1 one over C*s*s channels (fold.cu).
  void fold() {
    const int64_t s = p_.stride_h, fkh = (w_[2] + s - 1) / s, fkw = (w_[3] + s - 1) / s;
    auto i = [](int64_t v) { return static_cast<int>(v); };
    // 16-bit tensor cores take channels in multiples of 8, tf32 ones of 4: pad the folded ones
    // with zeros.
    const int64_t align = half() ? 8 : staged_ ? 4 : 1;
    const int64_t c = (x_[1] * s * s + align - 1) / align * align;
    fd_ =
        FoldDims{x_[0],  x_[1],       i(x_[2]),    i(x_[3]),           i(w_[2]),           i(w_[3]),
                 i(s),   i(p_.pad_h), i(p_.pad_w), i(y_[2] + fkh - 1), i(y_[3] + fkw - 1), i(fkh),
                 i(fkw), i(c),        staged_};
    q_ = Problem{Shape{x_[0], c, fd_.fh, fd_.fw}, Shape{w_[0], c, fkh, fkw}, 1, 1, 0, 0, 1, 1, 1};
    folded_ = true;
  }

  // One group at a time: groups of channels of x and y, and the filters of the group.
  void split() {
    const int64_t g = p_.groups;
    q_.x = Shape{x_[0], x_[1] / g, x_[2], x_[3]};
    q_.w = Shape{w_[0] / g, w_[1], w_[2], w_[3]};
    q_.groups = 1;
    q_.slices = g;
  }

  size_t slice_bytes_y() const { return bytes(y_) / q_.slices; }

  // The whole x and w as staged in the workspace for cuDNN: folded, or as they are (a per-group
  // problem still stages every group).
  const Shape& staged_x() const { return folded_ ? q_.x : x_; }
  const Shape& staged_w() const { return folded_ ? q_.w : w_; }

  // Bytes of a tensor as cuDNN sees it.
  size_t bytes(const Shape& s) const {
    return static_cast<size_t>(s.numel()) * dtype_size(stage_type_);
  }

  // --precision bf16 or fp16: cuDNN convolves 16-bit copies (or operands stored so).
  bool half() const { return stage_type_ != DType::f32; }

  void describe_tensors(cudnnMathType_t math) {
    cudnnTensorFormat_t format = staged_ ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
    xd_.set(dt_, q_.x[0], q_.x[1], q_.x[2], q_.x[3], where_, format);
    yd_.set(dt_, y_[0], y_[1] / q_.slices, y_[2], y_[3], where_, format);
    auto i = [](int64_t v) { return static_cast<int>(v); };
    MYELIN_CHECK(cudnnSetFilter4dDescriptor(wd_, dt_, format, i(q_.w[0]), i(q_.w[1]), i(q_.w[2]),
                                            i(q_.w[3])),
                 where_);
    MYELIN_CHECK(cudnnSetConvolution2dDescriptor(cd_, i(q_.pad_h), i(q_.pad_w), i(q_.stride_h),
                                                 i(q_.stride_w), i(q_.dil_h), i(q_.dil_w),
                                                 CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT),
                 where_);
    MYELIN_CHECK(cudnnSetConvolutionGroupCount(cd_, i(q_.groups)), where_);
    MYELIN_CHECK(cudnnSetConvolutionMathType(cd_, math), where_);
    int n, c, h, w;
    MYELIN_CHECK(cudnnGetConvolution2dForwardOutputDim(cd_, xd_, wd_, &n, &c, &h, &w), where_);
    if (Shape{n, c * q_.slices, h, w} != y_)
      throw ShapeError(where_ + ": cuDNN computes an output of " + Shape{n, c, h, w}.str());
  }

  void choose_algorithm(Precision prec) {
    if (graph_api() && choose_graph(prec)) return;
    if (reuses_tuned(prec) && choose_graph(prec, /*may_tune=*/false)) return;
    const bool ranked = heuristic();
    std::string key = key_of(dir_, q_, y_, staged_, prec, be_.options().workspace_limit);
    if (ranked) key.append(",heuristic");
    if (const ConvAlgo* a = be_.cached_conv_algo(key)) {
      algo_ = *a;
    } else {
      algo_ = ranked ? rank(prec) : search(prec);
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

  // The workspace an algorithm may take: the configured limit, or half the free memory if less.
  size_t search_limit() const {
    return std::min(be_.options().workspace_limit, be_.free_memory() / 2);
  }

  // How this convolution's algorithm is chosen: BackendOptions::conv_search ("auto" included),
  // or the environment's MYELIN_CUDA_CONV_API=graph (tune) and
  // MYELIN_CUDA_ALGO_SEARCH=find|heuristic.
  std::string search_mode() const {
    if (env_is("MYELIN_CUDA_CONV_API", "graph")) return "tune";
    if (env_is("MYELIN_CUDA_ALGO_SEARCH", "find")) return "find";
    if (env_is("MYELIN_CUDA_ALGO_SEARCH", "heuristic")) return "heuristic";
    return be_.options().conv_search;
  }

  // Convolutions of whole tensors, staged NHWC in any type or fp32 NCHW, run on the graph API
  // (conv_graph.h) under "tune".
  bool graph_takes() const { return q_.slices == 1 && (staged_ || !half()); }
  bool graph_api() const { return graph_takes() && search_mode() == "tune"; }

  // "auto" takes the tuned choice where the algorithm cache holds one (a --conv-search tune run
  // of this problem on this machine): tuning once speeds every later run at no cost at start.
  bool reuses_tuned(Precision prec) const {
    return graph_takes() && search_mode() == "auto" && be_.cached_conv_algo(graph_key(prec));
  }
  std::string graph_key(Precision prec) const {
    // Keyed by the configured limit, as the legacy choices are: free memory differs between runs.
    return key_of(dir_, q_, y_, staged_, prec, be_.options().workspace_limit) + ",graph";
  }

  // The fastest of the graph API's engine configurations (conv_graph.h), or false where it has
  // none for this problem (or, unless may_tune, no cached choice it can take): the legacy API
  // decides then.
  bool choose_graph(Precision prec, bool may_tune = true) {
    const size_t limit = search_limit();
    const std::string key = graph_key(prec);
    try {
      graph_ = std::make_unique<ConvGraph>(be_.cudnn(), geometry(), where_);
    } catch (const DeviceError&) {
      return false;  // cuDNN takes no part of this graph
    }
    const ConvAlgo* cached = be_.cached_conv_algo(key);
    if (cached && graph_->select(cached->algo, limit)) {
      algo_ = *cached;
      return true;
    }
    if (!may_tune) {
      graph_.reset();
      return false;
    }
    float ms = 0;
    {
      Scratch x(be_, bytes(q_.x)), w(be_, bytes(q_.w)), y(be_, bytes(y_)), ws(be_, limit);
      if (graph_->tune(stream(), x.p, w.p, y.p, ws.p, limit, &ms) < 0) {
        graph_.reset();
        return false;
      }
    }
    algo_ = ConvAlgo{graph_->selected(), CUDNN_DEFAULT_MATH, graph_->workspace(), ms};
    be_.cache_conv_algo(key, algo_);
    return true;
  }

  ConvGeometry geometry() const {
    ConvGeometry g;
    g.dir = dir_;
    g.type = dt_;
    g.tensor_cores = be_.precision() != Precision::fp32;
    g.nhwc = staged_;
    g.x = {q_.x[0], q_.x[1], q_.x[2], q_.x[3]};
    g.w = {q_.w[0], q_.w[1], q_.w[2], q_.w[3]};
    g.y = {y_[0], y_[1], y_[2], y_[3]};
    g.stride = {q_.stride_h, q_.stride_w};
    g.pad = {q_.pad_h, q_.pad_w};
    g.dilation = {q_.dil_h, q_.dil_w};
    return g;
  }

  // On the legacy API: cuDNN's heuristic ranking, or timing every algorithm (find). "auto", and
  // a convolution the graph API does not take under "tune", rank in 16 bits and time in fp32.
  bool heuristic() const {
    const std::string m = search_mode();
    return m == "tune" || m == "auto" ? half() : m == "heuristic";
  }

  // cuDNN's heuristic ranking, without running anything.
  ConvAlgo rank(Precision prec) {
    const size_t limit = search_limit();
    cudnnHandle_t h = be_.cudnn();
    int count = 0;
    if (dir_ == ConvDir::forward) {
      cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
      MYELIN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(
                       h, xd_, wd_, cd_, yd_, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &count, perf),
                   where_);
      return pick(perf, count, prec, limit);
    }
    if (dir_ == ConvDir::backward_data) {
      cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
      MYELIN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(
                       h, wd_, yd_, cd_, xd_, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &count, perf),
                   where_);
      return pick(perf, count, prec, limit);
    }
    cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    MYELIN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
                     h, xd_, yd_, cd_, wd_, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &count, perf),
                 where_);
    return pick(perf, count, prec, limit);
  }

  ConvAlgo search(Precision prec) {
    const size_t limit = search_limit();
    Scratch x(be_, bytes(q_.x)), w(be_, bytes(q_.w)), y(be_, bytes(y_) / q_.slices), ws(be_, limit);
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
  // choose_storage).
  void check_storage(const KernelSpec& s) const {
    auto want = [&](TensorType t, bool may_be_16, const char* what) {
      if (t.dtype == DType::f32 || (may_be_16 && half() && t.dtype == stage_type_)) return;
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
    if (!staged_ && folded_) return launch_folded32(o, bias, ws, carve);
    if (!staged_) {
      convolve(o.x.p, o.w.p, o.y.p, ws);
      if (bias || relu_) bias_add(o.y, bias, o.y, y_[0], y_[1], y_[2] * y_[3], stream(), relu_);
      return;
    }
    void* w16 = carve.take(bytes(staged_w()));
    void* x16 = x_direct_ ? o.x.p : carve.take(bytes(staged_x()));
    void* y16 = y_direct_ ? o.y.p : carve.take(bytes(y_));
    // Cast the operands this direction reads, convolve the staged copies, cast the result back.
    if (dir_ != ConvDir::backward_data) x_to_half(o.x, x16);
    if (dir_ != ConvDir::backward_filter) w_to_half(o.w, w16);
    if (dir_ != ConvDir::forward) to_half(o.y, y_nhwc_, y16, y_);
    if (q_.slices > 1)
      convolve_groups(x16, w16, y16, ws, carve.take(bytes(q_.x)), carve.take(slice_bytes_y()));
    else
      convolve(x16, w16, y16, ws);
    if (dir_ == ConvDir::forward)
      from_half(y16, o.y, y_nhwc_, bias, y_, relu_);
    else if (dir_ == ConvDir::backward_data)
      from_half(x16, o.x, x_nhwc_, nullptr, x_);
    else if (folded_)
      unfold_filter(w16, static_cast<float*>(o.w.p), stage_type_, fd_, w_[0], stream());
    else
      from_half(w16, o.w, false, nullptr, w_);
  }

  // fp32 and tf32: fold x and w (NCHW, KCRS) into the workspace, convolve into y (or into the
  // folded filter gradient, unfolded afterwards).
  void launch_folded32(const Operands& o, const float* bias, void* ws, WorkspaceCarver& carve) {
    void* wf = carve.take(bytes(q_.w));
    void* xf = carve.take(bytes(q_.x));
    fold_input(o.x, false, xf, DType::f32, fd_, stream());
    if (dir_ == ConvDir::backward_filter) {
      convolve(xf, wf, o.y.p, ws);
      unfold_filter(wf, static_cast<float*>(o.w.p), DType::f32, fd_, w_[0], stream());
      return;
    }
    fold_filter(static_cast<const float*>(o.w.p), wf, DType::f32, fd_, w_[0], stream());
    convolve(xf, wf, o.y.p, ws);
    if (bias || relu_) bias_add(o.y, bias, o.y, y_[0], y_[1], y_[2] * y_[3], stream(), relu_);
  }

  void x_to_half(FPtr x, void* x16) {
    if (folded_)
      fold_input(x, x_nhwc_, x16, stage_type_, fd_, stream());
    else
      to_half(x, x_nhwc_, x16, x_);
  }

  void w_to_half(FPtr w, void* w16) {
    if (folded_)
      fold_filter(static_cast<const float*>(w.p), w16, stage_type_, fd_, w_[0], stream());
    else
      to_half(w, false, w16, w_);
  }

  // t (stored NCHW in any type, or NHWC fp32) into cuDNN's NHWC copy t16 of the staged type.
  void to_half(FPtr t, bool nhwc, void* t16, const Shape& s) {
    if (t.p == t16) return;  // used in place
    if (nhwc)
      cast_to_staged(static_cast<const float*>(t.p), t16, stage_type_, s.numel(), stream());
    else
      cast_to_staged_nhwc(t, t16, stage_type_, s[0], s[1], s[1], s[2] * s[3], stream());
  }

  // The result t16 back into t, plus the bias (per channel) when given, through the ReLU when
  // relu.
  void from_half(const void* t16, FPtr t, bool nhwc, const float* bias, const Shape& s,
                 bool relu = false) {
    int64_t hw = s.numel() / (s[0] * s[1]);
    if (t.p == t16) {  // written in place: add the bias there
      if (bias || relu) bias_add(t, bias, t, s[0] * hw, s[1], 1, stream(), relu);
    } else if (nhwc) {
      cast_from_staged(t16, stage_type_, static_cast<float*>(t.p), bias, s[0] * hw, s[1], 1,
                       stream(), relu);
    } else {
      cast_from_staged_nhwc(t16, stage_type_, t, bias, s[0], s[1], s[1], hw, stream(), relu);
    }
  }

  // One convolution per group: its channels of x and y (NHWC) copied in and out of the packed
  // buffers xg and yg, its filters (KRSC, contiguous) used in place.
  void convolve_groups(void* x, void* w, void* y, void* ws, void* xg, void* yg) {
    const size_t e = dtype_size(stage_type_), pixels_x = x_.numel() / x_[1],
                 pixels_y = y_.numel() / y_[1];
    const size_t cx = q_.x[1] * e, cy = q_.w[0] * e;
    auto at = [](void* p, size_t off) { return static_cast<char*>(p) + off; };
    for (int64_t g = 0; g < q_.slices; ++g) {
      void* xs = at(x, g * cx);
      void* ys = at(y, g * cy);
      if (dir_ != ConvDir::backward_data) copy_columns(xg, cx, xs, x_[1] * e, pixels_x);
      if (dir_ != ConvDir::forward) copy_columns(yg, cy, ys, y_[1] * e, pixels_y);
      convolve(xg, at(w, g * q_.w.numel() * e), yg, ws);
      if (dir_ == ConvDir::forward) copy_columns(ys, y_[1] * e, yg, cy, pixels_y);
      if (dir_ == ConvDir::backward_data) copy_columns(xs, x_[1] * e, xg, cx, pixels_x);
    }
  }

  // rows x width bytes between pitched buffers: the row pitch is the width where packed.
  void copy_columns(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t rows) {
    const size_t width = std::min(dst_pitch, src_pitch);
    MYELIN_CHECK(cudaMemcpy2DAsync(dst, dst_pitch, src, src_pitch, width, rows,
                                   cudaMemcpyDeviceToDevice, stream()),
                 where_);
  }

  void convolve(void* x, void* w, void* y, void* ws) {
    if (graph_) return graph_->execute(x, w, y, ws);
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
  Problem q_;  // what cuDNN convolves
  bool has_bias_ = false;
  bool relu_ = false;                     // forward: a fused ReLU after the bias
  bool staged_ = false;                   // cuDNN convolves NHWC operands, KRSC filters
  DType stage_type_ = DType::f32;         // ... of this type
  bool x_nhwc_ = false, y_nhwc_ = false;  // how x and y (or their gradients) are stored
  DType x_type_ = DType::f32, y_type_ = DType::f32;
  bool x_direct_ = true, y_direct_ = true;  // ... as cuDNN takes them: used in place
  bool folded_ = false;                     // the stride folded into the channels
  FoldDims fd_{};
  cudnnDataType_t dt_ = CUDNN_DATA_FLOAT;
  TensorDesc xd_, yd_;
  FilterDesc wd_;
  ConvDesc cd_;
  ConvAlgo algo_;
  std::unique_ptr<ConvGraph> graph_;  // the graph API's plan, when it runs this convolution
};

KernelFactory conv(ConvDir d) {
  return [d](const KernelSpec& s) -> std::unique_ptr<Kernel> {
    return std::make_unique<ConvKernel>(s, d);
  };
}

}  // namespace

// Each activation operand NHWC or NCHW (what is not NHWC is transposed), 16-bit or fp32.
MYELIN_REGISTER_OPS {
  register_kernel("conv2d", DeviceKind::cuda, conv(ConvDir::forward),
                  {.layout = takes_each({0}, {0}), .half = takes_each({0}, {0})});
  register_kernel("conv2d_grad_input", DeviceKind::cuda, conv(ConvDir::backward_data),
                  {.layout = takes_each({0}, {0}), .half = takes_each({0}, {0})});
  register_kernel("conv2d_grad_weight", DeviceKind::cuda, conv(ConvDir::backward_filter),
                  {.layout = takes_each({0, 1}, {}), .half = takes_each({0, 1}, {})});
}

}  // namespace myelin::cuda
