// Recurrent layers (ops/recurrent.cpp) on cuDNN's RNN API: LSTM, GRU (cuDNN's GRU applies the
// reset gate to the hidden product plus its bias, as PyTorch's does) and tanh or ReLU RNNs, one
// layer in one direction over batch-first sequences that all have T steps (x and y are used in
// place: CUDNN_RNN_DATA_LAYOUT_BATCH_MAJOR_UNPACKED, which needs padded I/O enabled).
//
// Weights: cuDNN keeps a layer's weights in a weight space of its own layout, where
// cudnnGetRNNWeightParams finds each gate's matrix and bias. Its linear layers 0..G-1 are the
// input gates and G..2G-1 the recurrent ones, both in PyTorch's gate order (LSTM i, f, g, o; GRU
// r, z, n: PyTorch's cuDNN path views its weights in that space), with the matrices row-major
// [H, C] like PyTorch's; CUDNN_RNN_DOUBLE_BIAS keeps b_ih and b_hh apart. Each step copies w_ih,
// w_hh, b_ih and b_hh into the kernel's weight space (device to device, one copy per run of
// gates that lie contiguously in both); the backward adds the weight gradients into a zeroed
// space in its workspace and copies them out the same way.
//
// Direction: the reverse direction runs cuDNN's forward RNN on x reversed along T
// (rnn_reverse.cu) and reverses y back; its backward reverses x, y and dy, and dx afterwards.
//
// Precision: the tensors are fp32 (dataType and mathPrec CUDNN_DATA_FLOAT). fp32 restricts
// cuDNN to FMA math; tf32, bf16 and fp16 allow TF32 tensor cores (CUDNN_DEFAULT_MATH, as PyTorch
// does where TF32 is allowed). Under bf16/fp16, MYELIN_CUDA_RNN_MATH=fp16 asks for
// CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION instead (cuDNN converts the fp32 operands to fp16).
//
// Training: the forward of a training graph leaves cuDNN's reserve space in a buffer shared with
// its gradient's kernel (shared_buffer keyed by attrs.forward_node). Everything run() does is
// enqueued on the backend's stream, without allocating or waiting, so a step may be captured.
#include <algorithm>
#include <array>
#include <climits>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "cuda/device_kernels.h"
#include "cuda/kernel_util.h"
#include "ops/params.h"

namespace myelin::cuda {

namespace {

cudnnRNNMode_t cell_mode(RnnCell c) {
  switch (c) {
    case RnnCell::lstm:
      return CUDNN_LSTM;
    case RnnCell::gru:
      return CUDNN_GRU;
    case RnnCell::rnn_tanh:
      return CUDNN_RNN_TANH;
    case RnnCell::rnn_relu:
      return CUDNN_RNN_RELU;
  }
  return CUDNN_LSTM;
}

cudnnMathType_t math_type(Precision p) {
  if (p == Precision::fp32) return CUDNN_FMA_MATH;
  if (is_16bit(p)) {
    const char* e = std::getenv("MYELIN_CUDA_RNN_MATH");
    if (e && std::strcmp(e, "fp16") == 0) return CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
  }
  return CUDNN_DEFAULT_MATH;
}

class RnnDesc {
 public:
  RnnDesc() { MYELIN_CHECK(cudnnCreateRNNDescriptor(&d_), "cudnnCreateRNNDescriptor"); }
  ~RnnDesc() { cudnnDestroyRNNDescriptor(d_); }
  RnnDesc(const RnnDesc&) = delete;
  RnnDesc& operator=(const RnnDesc&) = delete;
  operator cudnnRNNDescriptor_t() const { return d_; }

 private:
  cudnnRNNDescriptor_t d_ = nullptr;
};

class RnnDataDesc {
 public:
  RnnDataDesc() { MYELIN_CHECK(cudnnCreateRNNDataDescriptor(&d_), "cudnnCreateRNNDataDescriptor"); }
  ~RnnDataDesc() { cudnnDestroyRNNDataDescriptor(d_); }
  RnnDataDesc(const RnnDataDesc&) = delete;
  RnnDataDesc& operator=(const RnnDataDesc&) = delete;
  operator cudnnRNNDataDescriptor_t() const { return d_; }

 private:
  cudnnRNNDataDescriptor_t d_ = nullptr;
};

class DropoutDesc {
 public:
  DropoutDesc() { MYELIN_CHECK(cudnnCreateDropoutDescriptor(&d_), "cudnnCreateDropoutDescriptor"); }
  ~DropoutDesc() { cudnnDestroyDropoutDescriptor(d_); }
  DropoutDesc(const DropoutDesc&) = delete;
  DropoutDesc& operator=(const DropoutDesc&) = delete;
  operator cudnnDropoutDescriptor_t() const { return d_; }

 private:
  cudnnDropoutDescriptor_t d_ = nullptr;
};

// One copy between cuDNN's weight space and one of PyTorch's weight tensors: `bytes` at byte
// offset `space` in the space and `ours` in the tensor.
struct Piece {
  size_t space, ours, bytes;
};

// One rnn node as cuDNN sees it (shared by the forward and backward kernels): the descriptors,
// the sizes of cuDNN's buffers, the weight space and where PyTorch's weights lie in it.
class RnnLayer {
 public:
  RnnLayer(const KernelSpec& s, const std::string& where, bool training)
      : p(s.node.attrs), be_(cuda_backend(s)) {
    require_f32(s);
    Shape x = s.input(0).shape;
    n = x[0], t = x[1], in = x[2], h = p.hidden, g = p.gates();
    for (int64_t v : {n, t, in, h, g * h * std::max(in, h)})
      if (v > INT_MAX) throw UnsupportedError(where + ": a size exceeds cuDNN's int range");
    cudnnHandle_t handle = be_.cudnn();
    // No dropout (one layer has none anyway), but cuDNN wants a descriptor.
    MYELIN_CHECK(cudnnSetDropoutDescriptor(dropout_, handle, 0.f, nullptr, 0, 0),
                 where + ": cudnnSetDropoutDescriptor");
    MYELIN_CHECK(cudnnSetRNNDescriptor_v8(
                     rnn, CUDNN_RNN_ALGO_STANDARD, cell_mode(p.cell), CUDNN_RNN_DOUBLE_BIAS,
                     CUDNN_UNIDIRECTIONAL, CUDNN_LINEAR_INPUT, CUDNN_DATA_FLOAT, CUDNN_DATA_FLOAT,
                     math_type(be_.precision()), static_cast<int32_t>(in), static_cast<int32_t>(h),
                     static_cast<int32_t>(h), 1, dropout_, CUDNN_RNN_PADDED_IO_ENABLED),
                 where + ": cudnnSetRNNDescriptor_v8");
    std::vector<int> lengths(static_cast<size_t>(n), static_cast<int>(t));
    MYELIN_CHECK(
        cudnnSetRNNDataDescriptor(xd, CUDNN_DATA_FLOAT, CUDNN_RNN_DATA_LAYOUT_BATCH_MAJOR_UNPACKED,
                                  static_cast<int>(t), static_cast<int>(n), static_cast<int>(in),
                                  lengths.data(), nullptr),
        where + ": cudnnSetRNNDataDescriptor(x)");
    MYELIN_CHECK(
        cudnnSetRNNDataDescriptor(yd, CUDNN_DATA_FLOAT, CUDNN_RNN_DATA_LAYOUT_BATCH_MAJOR_UNPACKED,
                                  static_cast<int>(t), static_cast<int>(n), static_cast<int>(h),
                                  lengths.data(), nullptr),
        where + ": cudnnSetRNNDataDescriptor(y)");
    int dims[3] = {1, static_cast<int>(n), static_cast<int>(h)};
    int strides[3] = {static_cast<int>(n * h), static_cast<int>(h), 1};
    MYELIN_CHECK(cudnnSetTensorNdDescriptor(hd, CUDNN_DATA_FLOAT, 3, dims, strides),
                 where + ": cudnnSetTensorNdDescriptor(h)");
    MYELIN_CHECK(cudnnGetRNNWeightSpaceSize(handle, rnn, &weight_bytes),
                 where + ": cudnnGetRNNWeightSpaceSize");
    MYELIN_CHECK(cudnnGetRNNTempSpaceSizes(
                     handle, rnn, training ? CUDNN_FWD_MODE_TRAINING : CUDNN_FWD_MODE_INFERENCE, xd,
                     &work_bytes, &reserve_bytes),
                 where + ": cudnnGetRNNTempSpaceSizes");
    if (!training) reserve_bytes = 0;
    // cuDNN 9 takes the sequence lengths from device memory too.
    seq_lengths_ = Buffer(be_, lengths.size() * sizeof(int32_t));
    be_.copy_from_host(seq_lengths_.data(), lengths.data(), lengths.size() * sizeof(int32_t));
    weights = Buffer(be_, weight_bytes);
    be_.fill_zero(weights.data(), weight_bytes);  // whatever no gate covers stays defined
    locate_weights(where);
  }

  const int32_t* seq_lengths() const { return static_cast<const int32_t*>(seq_lengths_.data()); }
  bool lstm() const { return p.cell == RnnCell::lstm; }

  // w_ih, w_hh, b_ih and b_hh (in[1..4]) into `space`.
  void copy_in(const std::vector<Tensor>& in, void* space, cudaStream_t st) const {
    for (int k = 0; k < 4; ++k) {
      const char* ours = static_cast<const char*>(in[1 + k].data());
      for (const Piece& q : pieces_[k])
        MYELIN_CHECK(cudaMemcpyAsync(static_cast<char*>(space) + q.space, ours + q.ours, q.bytes,
                                     cudaMemcpyDeviceToDevice, st),
                     "");
    }
  }
  // The gradients in `space` out into dw_ih, dw_hh, db_ih and db_hh (out[1..4]).
  void copy_out(const void* space, const std::vector<Tensor>& out, cudaStream_t st) const {
    for (int k = 0; k < 4; ++k) {
      char* ours = static_cast<char*>(out[1 + k].data());
      for (const Piece& q : pieces_[k])
        MYELIN_CHECK(cudaMemcpyAsync(ours + q.ours, static_cast<const char*>(space) + q.space,
                                     q.bytes, cudaMemcpyDeviceToDevice, st),
                     "");
    }
  }

  RnnParams p;
  int64_t n = 0, t = 0, in = 0, h = 0, g = 0;
  RnnDesc rnn;
  RnnDataDesc xd, yd;
  TensorDesc hd;  // h and c: [1, N, H]
  size_t weight_bytes = 0, work_bytes = 0, reserve_bytes = 0;
  Buffer weights;  // cuDNN's weight space, filled each step

 private:
  // Where each gate's matrix and bias lie in the weight space, as pieces per PyTorch tensor.
  void locate_weights(const std::string& where) {
    TensorDesc md, bd;
    const char* base = static_cast<const char*>(weights.data());
    for (int64_t id = 0; id < 2 * g; ++id) {
      void* m = nullptr;
      void* b = nullptr;
      MYELIN_CHECK(cudnnGetRNNWeightParams(be_.cudnn(), rnn, 0, weight_bytes, weights.data(),
                                           static_cast<int32_t>(id), md, &m, bd, &b),
                   where + ": cudnnGetRNNWeightParams(" + std::to_string(id) + ")");
      bool recurrent = id >= g;
      int64_t gate = id % g, cols = recurrent ? h : in;
      size_t mat = static_cast<size_t>(h * cols) * sizeof(float), vec = h * sizeof(float);
      if (!m || !b || elements(md, where) * sizeof(float) != mat ||
          elements(bd, where) * sizeof(float) != vec)
        throw UnsupportedError(where + ": cuDNN's weight space does not hold linear layer " +
                               std::to_string(id) + " as [" + std::to_string(h) + ", " +
                               std::to_string(cols) + "] weights and [" + std::to_string(h) +
                               "] biases");
      add(pieces_[recurrent ? 1 : 0], static_cast<const char*>(m) - base, gate * mat, mat);
      add(pieces_[recurrent ? 3 : 2], static_cast<const char*>(b) - base, gate * vec, vec);
    }
  }
  static size_t elements(const TensorDesc& d, const std::string& where) {
    cudnnDataType_t type;
    int nd = 0, dims[8], strides[8];
    MYELIN_CHECK(cudnnGetTensorNdDescriptor(d, 8, &type, &nd, dims, strides),
                 where + ": cudnnGetTensorNdDescriptor");
    size_t e = 1;
    for (int i = 0; i < nd; ++i) e *= static_cast<size_t>(dims[i]);
    return e;
  }
  // Appends a piece, merged into the last one where both sides continue it.
  static void add(std::vector<Piece>& v, ptrdiff_t space, size_t ours, size_t bytes) {
    size_t at = static_cast<size_t>(space);
    if (!v.empty() && v.back().space + v.back().bytes == at &&
        v.back().ours + v.back().bytes == ours)
      v.back().bytes += bytes;
    else
      v.push_back({at, ours, bytes});
  }

  CudaBackend& be_;
  DropoutDesc dropout_;
  Buffer seq_lengths_;
  std::array<std::vector<Piece>, 4> pieces_;  // w_ih, w_hh, b_ih, b_hh
};

// rnn: (x, w_ih, w_hh, b_ih, b_hh, h0, c0?) -> y, h_n, c_n?
class RnnForward : public CudaKernel {
 public:
  explicit RnnForward(const KernelSpec& s)
      : CudaKernel(s), l_(s, where_, RnnParams(s.node.attrs).training) {
    if (l_.p.training)
      reserve_ = shared_buffer(s, s.node.attrs.i("forward_node", -1), l_.reserve_bytes);
  }

  size_t workspace_bytes() const override {
    size_t b = align256(l_.work_bytes);
    if (l_.p.reverse) b += align256(seq_bytes(l_.in)) + align256(seq_bytes(l_.h));
    return b;
  }

 private:
  size_t seq_bytes(int64_t c) const { return static_cast<size_t>(l_.n * l_.t * c) * sizeof(float); }

  void launch(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
              const StepContext& ctx) override {
    cudaStream_t st = stream();
    WorkspaceCarver carve(ctx.workspace);
    void* work = carve.take(l_.work_bytes);
    l_.copy_in(in, l_.weights.data(), st);
    const float* x = in[0].f32();
    float* y = out[0].f32();
    if (l_.p.reverse) {
      float* xr = static_cast<float*>(carve.take(seq_bytes(l_.in)));
      y = static_cast<float*>(carve.take(seq_bytes(l_.h)));
      reverse_time(x, xr, l_.n, l_.t, l_.in, st);
      x = xr;
    }
    bool lstm = l_.lstm();
    MYELIN_CHECK(
        cudnnRNNForward(be_.cudnn(), l_.rnn,
                        reserve_ ? CUDNN_FWD_MODE_TRAINING : CUDNN_FWD_MODE_INFERENCE,
                        l_.seq_lengths(), l_.xd, x, l_.yd, y, l_.hd, in[5].data(), out[1].data(),
                        l_.hd, lstm ? in[6].data() : nullptr, lstm ? out[2].data() : nullptr,
                        l_.weight_bytes, l_.weights.data(), l_.work_bytes, work,
                        reserve_ ? l_.reserve_bytes : 0, reserve_ ? reserve_->data() : nullptr),
        "");
    if (l_.p.reverse) reverse_time(y, out[0].f32(), l_.n, l_.t, l_.h, st);
  }

  RnnLayer l_;
  std::shared_ptr<Buffer> reserve_;  // null in inference
};

// rnn_grad: (x, w_ih, w_hh, b_ih, b_hh, h0, c0?, y, h_n, c_n?, dy, dh_n, dc_n?)
//   -> dx, dw_ih, dw_hh, db_ih, db_hh, dh0, dc0?
class RnnBackward : public CudaKernel {
 public:
  explicit RnnBackward(const KernelSpec& s) : CudaKernel(s), l_(s, where_, true) {
    reserve_ = shared_buffer(s, s.node.attrs.i("forward_node", -1), l_.reserve_bytes);
  }

  size_t workspace_bytes() const override {
    size_t b = align256(l_.work_bytes) + align256(l_.weight_bytes);
    if (l_.p.reverse) b += 2 * align256(seq_bytes(l_.in)) + 2 * align256(seq_bytes(l_.h));
    return b;
  }

 private:
  size_t seq_bytes(int64_t c) const { return static_cast<size_t>(l_.n * l_.t * c) * sizeof(float); }

  void launch(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
              const StepContext& ctx) override {
    cudaStream_t st = stream();
    const int s = l_.p.states();
    const bool lstm = l_.lstm();
    WorkspaceCarver carve(ctx.workspace);
    void* work = carve.take(l_.work_bytes);
    void* dw = carve.take(l_.weight_bytes);
    l_.copy_in(in, l_.weights.data(), st);
    MYELIN_CHECK(cudaMemsetAsync(dw, 0, l_.weight_bytes, st), "");  // cuDNN adds into it
    const float* x = in[0].f32();
    const float* y = in[5 + s].f32();
    const float* dy = in[6 + 2 * s].f32();
    float* dx = out[0].f32();
    if (l_.p.reverse) {
      float* xr = static_cast<float*>(carve.take(seq_bytes(l_.in)));
      float* yr = static_cast<float*>(carve.take(seq_bytes(l_.h)));
      float* dyr = static_cast<float*>(carve.take(seq_bytes(l_.h)));
      dx = static_cast<float*>(carve.take(seq_bytes(l_.in)));
      reverse_time(x, xr, l_.n, l_.t, l_.in, st);
      reverse_time(y, yr, l_.n, l_.t, l_.h, st);
      reverse_time(dy, dyr, l_.n, l_.t, l_.h, st);
      x = xr, y = yr, dy = dyr;
    }
    const void* h0 = in[5].data();
    const void* c0 = lstm ? in[6].data() : nullptr;
    const void* dhn = in[7 + 2 * s].data();
    const void* dcn = lstm ? in[8 + 2 * s].data() : nullptr;
    void* dc0 = lstm ? out[6].data() : nullptr;
    MYELIN_CHECK(cudnnRNNBackwardData_v8(be_.cudnn(), l_.rnn, l_.seq_lengths(), l_.yd, y, dy, l_.xd,
                                         dx, l_.hd, h0, dhn, out[5].data(), l_.hd, c0, dcn, dc0,
                                         l_.weight_bytes, l_.weights.data(), l_.work_bytes, work,
                                         l_.reserve_bytes, reserve_->data()),
                 "");
    // After the data gradient, which leaves in the reserve space what this one reads.
    MYELIN_CHECK(
        cudnnRNNBackwardWeights_v8(be_.cudnn(), l_.rnn, CUDNN_WGRAD_MODE_ADD, l_.seq_lengths(),
                                   l_.xd, x, l_.hd, h0, l_.yd, y, l_.weight_bytes, dw,
                                   l_.work_bytes, work, l_.reserve_bytes, reserve_->data()),
        "");
    if (l_.p.reverse) reverse_time(dx, out[0].f32(), l_.n, l_.t, l_.in, st);
    l_.copy_out(dw, out, st);
  }

  RnnLayer l_;
  std::shared_ptr<Buffer> reserve_;
};

}  // namespace

MYELIN_REGISTER_OPS {
  register_kernel("rnn", DeviceKind::cuda, [](const KernelSpec& s) -> std::unique_ptr<Kernel> {
    return std::make_unique<RnnForward>(s);
  });
  register_kernel("rnn_grad", DeviceKind::cuda, [](const KernelSpec& s) -> std::unique_ptr<Kernel> {
    return std::make_unique<RnnBackward>(s);
  });
}

}  // namespace myelin::cuda
