// Recurrent layers (ops/recurrent.cpp) on oneDNN's RNN primitives: LSTM, linear-before-reset GRU
// (PyTorch's GRU) and vanilla RNN, forward training or inference and backward, one layer in one
// direction, batch-first sequences (oneDNN's ntc layout: no copy of x or y).
//
// Weights arrive in PyTorch's layout, [G*H, C] with PyTorch's gate order, which is oneDNN's ldgoi
// once the gates are in oneDNN's order (GRU: u, r, o for PyTorch's z, r, n). Each step packs them
// into the layout the primitive chose and unpacks the weight gradients back. PyTorch's two biases
// become oneDNN's one (their sum), except GRU's hidden candidate bias, oneDNN's fourth gate.
// The forward of a training graph leaves the primitive's workspace (the gates) in a buffer its
// gradient's kernel shares (shared_buffer, keyed by attrs.forward_node).
#include <algorithm>
#include <cstring>
#include <optional>

#include "cpu/dnnl_util.h"
#include "ops/params.h"

namespace myelin::cpu {

namespace {

using tag = memory::format_tag;
using dnnl::prop_kind;

// oneDNN's gate k is PyTorch's gate gate_order(cell)[k].
std::vector<int> gate_order(RnnCell cell) {
  if (cell == RnnCell::lstm) return {0, 1, 2, 3};
  if (cell == RnnCell::gru) return {1, 0, 2};
  return {0};
}

// One rnn node's sizes and the memory descriptors oneDNN sees.
struct Layer {
  RnnParams p;
  int64_t n, t, in, h, g, bias_gates;
  explicit Layer(const Node& node, const Shape& x)
      : p(node.attrs), n(x[0]), t(x[1]), in(x[2]), h(p.hidden), g(p.gates()) {
    bias_gates = p.cell == RnnCell::gru ? 4 : g;  // GRU: + the hidden candidate's bias
  }
  memory::desc seq(int64_t c) const { return {{t, n, c}, memory::data_type::f32, tag::ntc}; }
  memory::desc state() const { return {{1, 1, n, h}, memory::data_type::f32, tag::ldnc}; }
  memory::dims weights(int64_t c) const { return {1, 1, c, g, h}; }
  memory::desc bias() const { return {{1, 1, bias_gates, h}, memory::data_type::f32, tag::ldgo}; }
  dnnl::rnn_direction direction() const {
    return p.reverse ? dnnl::rnn_direction::unidirectional_right2left
                     : dnnl::rnn_direction::unidirectional_left2right;
  }
  dnnl::algorithm activation() const {
    return p.cell == RnnCell::rnn_relu ? dnnl::algorithm::eltwise_relu
                                       : dnnl::algorithm::eltwise_tanh;
  }
};

struct Primitives {
  dnnl::primitive_desc forward, backward;  // backward empty unless asked for
};

memory::desc arg_md(const dnnl::primitive_desc& pd, int arg) {
  return pd.query_md(dnnl::query::exec_arg_md, arg);
}

// The primitives of one layer. Weights are `any`: the primitive picks their layout.
Primitives make_primitives(const Layer& l, prop_kind prop, bool backward, dnnl::engine& e) {
  auto x = l.seq(l.in), y = l.seq(l.h), s = l.state(), b = l.bias();
  auto wx = any_desc(l.weights(l.in)), wh = any_desc(l.weights(l.h));
  auto attr = user_scratchpad_attr();
  auto dir = l.direction();
  Primitives r;
  if (l.p.cell == RnnCell::lstm) {
    dnnl::lstm_forward::primitive_desc f(
        dnnl::lstm_forward::desc(prop, dir, x, s, s, wx, wh, b, y, s, s), attr, e);
    r.forward = f;
    if (backward)
      r.backward = dnnl::lstm_backward::primitive_desc(
          dnnl::lstm_backward::desc(prop_kind::backward, dir, x, s, s, wx, wh, b, y, s, s, x, s, s,
                                    wx, wh, b, y, s, s),
          attr, e, f);
  } else if (l.p.cell == RnnCell::gru) {
    dnnl::lbr_gru_forward::primitive_desc f(
        dnnl::lbr_gru_forward::desc(prop, dir, x, s, wx, wh, b, y, s), attr, e);
    r.forward = f;
    if (backward)
      r.backward = dnnl::lbr_gru_backward::primitive_desc(
          dnnl::lbr_gru_backward::desc(prop_kind::backward, dir, x, s, wx, wh, b, y, s, x, s, wx,
                                       wh, b, y, s),
          attr, e, f);
  } else {
    auto act = l.activation();
    dnnl::vanilla_rnn_forward::primitive_desc f(
        dnnl::vanilla_rnn_forward::desc(prop, act, dir, x, s, wx, wh, b, y, s), attr, e);
    r.forward = f;
    if (backward)
      r.backward = dnnl::vanilla_rnn_backward::primitive_desc(
          dnnl::vanilla_rnn_backward::desc(prop_kind::backward, act, dir, x, s, wx, wh, b, y, s, x,
                                           s, wx, wh, b, y, s),
          attr, e, f);
  }
  return r;
}

// One weight matrix between PyTorch's layout ([G*H, C], PyTorch's gate order) and the layout a
// primitive wants it (or its gradient) in.
class WeightPacking {
 public:
  WeightPacking(CpuBackend& b, const Layer& l, int64_t c, const memory::desc& want)
      : backend_(&b),
        order_(gate_order(l.p.cell)),
        rows_(l.h),
        cols_(c),
        user_md_(l.weights(c), memory::data_type::f32, tag::ldgoi),
        want_md_(want),
        user_(static_cast<size_t>(l.g * l.h * c)),
        want_(want.get_size() / sizeof(float)) {
    if (!same_layout()) {
      to_want_ =
          dnnl::reorder(dnnl::reorder::primitive_desc(b.engine(), user_md_, b.engine(), want));
      to_user_ =
          dnnl::reorder(dnnl::reorder::primitive_desc(b.engine(), want, b.engine(), user_md_));
    }
  }
  // `ours` in the primitive's layout; the result lives until the next call.
  void* pack(const float* ours) {
    float* user = identity() ? const_cast<float*>(ours) : permute(ours, user_.data(), false);
    if (same_layout()) return user;
    run(to_want_, user, want_.data(), user_md_, want_md_);
    return want_.data();
  }
  // Scratch for a gradient in the primitive's layout, zeroed (oneDNN accumulates into it).
  void* zeroed_gradient() {
    float* g = same_layout() ? user_.data() : want_.data();
    std::fill_n(g, same_layout() ? user_.size() : want_.size(), 0.0f);
    return g;
  }
  // The gradient zeroed_gradient() received, into `ours` in PyTorch's layout.
  void unpack(float* ours) {
    if (!same_layout()) run(to_user_, want_.data(), user_.data(), want_md_, user_md_);
    permute(user_.data(), ours, true);
  }

 private:
  bool identity() const { return std::is_sorted(order_.begin(), order_.end()); }
  bool same_layout() const { return want_md_ == user_md_; }
  // PyTorch -> oneDNN gate order (or back): blocks of rows_ rows of cols_ values.
  float* permute(const float* from, float* to, bool back) const {
    size_t block = static_cast<size_t>(rows_ * cols_);
    for (size_t k = 0; k < order_.size(); ++k) {
      size_t ours = static_cast<size_t>(order_[k]);
      std::memcpy(to + (back ? ours : k) * block, from + (back ? k : ours) * block,
                  block * sizeof(float));
    }
    return to;
  }
  void run(dnnl::reorder& r, void* from, void* to, const memory::desc& from_md,
           const memory::desc& to_md) {
    memory src(from_md, backend_->engine(), from), dst(to_md, backend_->engine(), to);
    r.execute(backend_->stream(), src, dst);
    backend_->stream().wait();
  }

  CpuBackend* backend_;
  std::vector<int> order_;
  int64_t rows_, cols_;
  memory::desc user_md_, want_md_;
  std::vector<float> user_, want_;
  dnnl::reorder to_want_, to_user_;
};

// PyTorch's b_ih and b_hh as oneDNN's bias, and oneDNN's bias gradient back.
class BiasPacking {
 public:
  explicit BiasPacking(const Layer& l)
      : cell_(l.p.cell), h_(l.h), order_(gate_order(l.p.cell)), bias_(l.bias_gates * l.h) {}
  float* pack(const float* b_ih, const float* b_hh) {
    for (size_t k = 0; k < order_.size(); ++k)
      for (int64_t j = 0; j < h_; ++j) {
        int64_t ours = order_[k] * h_ + j;
        // GRU's candidate: b_in here, b_hn in the fourth gate (inside the reset product).
        bool candidate = cell_ == RnnCell::gru && order_[k] == 2;
        bias_[k * h_ + j] = b_ih[ours] + (candidate ? 0.0f : b_hh[ours]);
      }
    if (cell_ == RnnCell::gru) std::copy_n(b_hh + 2 * h_, h_, bias_.begin() + 3 * h_);
    return bias_.data();
  }
  float* zeroed_gradient() {
    std::fill(bias_.begin(), bias_.end(), 0.0f);
    return bias_.data();
  }
  void unpack(float* db_ih, float* db_hh) const {
    for (size_t k = 0; k < order_.size(); ++k)
      for (int64_t j = 0; j < h_; ++j) {
        int64_t ours = order_[k] * h_ + j;
        bool candidate = cell_ == RnnCell::gru && order_[k] == 2;
        db_ih[ours] = bias_[k * h_ + j];
        db_hh[ours] = candidate ? bias_[3 * h_ + j] : bias_[k * h_ + j];
      }
  }

 private:
  RnnCell cell_;
  int64_t h_;
  std::vector<int> order_;
  std::vector<float> bias_;
};

memory mem(CpuBackend& b, const memory::desc& md, const void* p) {
  return memory(md, b.engine(), const_cast<void*>(p));
}

// What both passes share: the layer, its primitive, the packed weights and bias, and the gates
// the forward of a training graph leaves for the backward.
class RnnKernel : public Kernel {
 public:
  size_t workspace_bytes() const override { return md(DNNL_ARG_SCRATCHPAD).get_size(); }

 protected:
  RnnKernel(const KernelSpec& s, bool backward)
      : b_(cpu_backend(s)),
        node_(s.node),
        l_(s.node, s.input(0).shape),
        what_(backward ? "rnn_backward" : "rnn_forward") {
    dnnl_call(node_, what_, [&] {
      auto prop = l_.p.training ? prop_kind::forward_training : prop_kind::forward_inference;
      Primitives p = make_primitives(l_, prop, backward, b_.engine());
      pd_ = backward ? p.backward : p.forward;
      prim_ = dnnl::primitive(pd_);
      wx_.emplace(b_, l_, l_.in, md(DNNL_ARG_WEIGHTS_LAYER));
      wh_.emplace(b_, l_, l_.h, md(DNNL_ARG_WEIGHTS_ITER));
    });
    bias_.emplace(l_);
    if (l_.p.training)
      gates_ =
          shared_buffer(s, s.node.attrs.i("forward_node", -1), md(DNNL_ARG_WORKSPACE).get_size());
  }
  memory::desc md(int arg) const { return arg_md(pd_, arg); }
  memory arg(int a, const void* p) const { return mem(b_, md(a), p); }
  memory seq(int64_t features, const void* p) const { return mem(b_, l_.seq(features), p); }
  memory state(const void* p) const { return mem(b_, l_.state(), p); }

  // The arguments of both passes: the inputs x, weights, bias and initial states (inputs 0-6),
  // the gates and the scratchpad.
  std::unordered_map<int, memory> inputs(const std::vector<Tensor>& in, void* scratch) {
    std::unordered_map<int, memory> args{
        {DNNL_ARG_SRC_LAYER, seq(l_.in, in[0].data())},
        {DNNL_ARG_WEIGHTS_LAYER, arg(DNNL_ARG_WEIGHTS_LAYER, wx_->pack(in[1].f32()))},
        {DNNL_ARG_WEIGHTS_ITER, arg(DNNL_ARG_WEIGHTS_ITER, wh_->pack(in[2].f32()))},
        {DNNL_ARG_BIAS, mem(b_, l_.bias(), bias_->pack(in[3].f32(), in[4].f32()))},
        {DNNL_ARG_SRC_ITER, state(in[5].data())},
        {DNNL_ARG_SCRATCHPAD, arg(DNNL_ARG_SCRATCHPAD, scratch)}};
    if (l_.p.cell == RnnCell::lstm) args.emplace(DNNL_ARG_SRC_ITER_C, state(in[6].data()));
    if (gates_) args.emplace(DNNL_ARG_WORKSPACE, arg(DNNL_ARG_WORKSPACE, gates_->data()));
    return args;
  }
  // Runs `body` (which builds the arguments, packing the weights) and the primitive on them; a
  // oneDNN error names the layer.
  template <class F>
  void execute(F body) {
    dnnl_call(node_, what_, [&] {
      std::unordered_map<int, memory> args = body();
      prim_.execute(b_.stream(), args);
      b_.stream().wait();
    });
  }

  CpuBackend& b_;
  Node node_;
  Layer l_;
  const char* what_;
  dnnl::primitive_desc pd_;
  dnnl::primitive prim_;
  std::optional<WeightPacking> wx_, wh_;
  std::optional<BiasPacking> bias_;
  std::shared_ptr<Buffer> gates_;
};

class RnnForward : public RnnKernel {
 public:
  explicit RnnForward(const KernelSpec& s) : RnnKernel(s, false) {}

  // Outputs: y, h_n, c_n?.
  void run(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
           const StepContext& ctx) override {
    execute([&] {
      auto args = inputs(in, ctx.workspace);
      args.emplace(DNNL_ARG_DST_LAYER, seq(l_.h, out[0].data()));
      args.emplace(DNNL_ARG_DST_ITER, state(out[1].data()));
      if (l_.p.cell == RnnCell::lstm) args.emplace(DNNL_ARG_DST_ITER_C, state(out[2].data()));
      return args;
    });
  }
};

class RnnBackward : public RnnKernel {
 public:
  explicit RnnBackward(const KernelSpec& s) : RnnKernel(s, true) {
    dnnl_call(node_, what_, [&] {
      dwx_.emplace(b_, l_, l_.in, md(DNNL_ARG_DIFF_WEIGHTS_LAYER));
      dwh_.emplace(b_, l_, l_.h, md(DNNL_ARG_DIFF_WEIGHTS_ITER));
    });
    dbias_.emplace(l_);
  }

  // Inputs: x, w_ih, w_hh, b_ih, b_hh, h0, c0?, y, h_n, c_n?, dy, dh_n, dc_n?.
  // Outputs: dx, dw_ih, dw_hh, db_ih, db_hh, dh0, dc0?.
  void run(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
           const StepContext& ctx) override {
    const int s = l_.p.states();
    execute([&] {
      auto args = inputs(in, ctx.workspace);
      args.emplace(DNNL_ARG_DST_LAYER, seq(l_.h, in[5 + s].data()));
      args.emplace(DNNL_ARG_DST_ITER, state(in[6 + s].data()));
      args.emplace(DNNL_ARG_DIFF_DST_LAYER, seq(l_.h, in[6 + 2 * s].data()));
      args.emplace(DNNL_ARG_DIFF_DST_ITER, state(in[7 + 2 * s].data()));
      args.emplace(DNNL_ARG_DIFF_SRC_LAYER, seq(l_.in, out[0].data()));
      args.emplace(DNNL_ARG_DIFF_SRC_ITER, state(out[5].data()));
      args.emplace(DNNL_ARG_DIFF_WEIGHTS_LAYER,
                   arg(DNNL_ARG_DIFF_WEIGHTS_LAYER, dwx_->zeroed_gradient()));
      args.emplace(DNNL_ARG_DIFF_WEIGHTS_ITER,
                   arg(DNNL_ARG_DIFF_WEIGHTS_ITER, dwh_->zeroed_gradient()));
      args.emplace(DNNL_ARG_DIFF_BIAS, mem(b_, l_.bias(), dbias_->zeroed_gradient()));
      if (l_.p.cell == RnnCell::lstm) {
        args.emplace(DNNL_ARG_DST_ITER_C, state(in[9].data()));
        args.emplace(DNNL_ARG_DIFF_DST_ITER_C, state(in[12].data()));
        args.emplace(DNNL_ARG_DIFF_SRC_ITER_C, state(out[6].data()));
      }
      return args;
    });
    dnnl_call(node_, what_, [&] {
      dwx_->unpack(out[1].f32());
      dwh_->unpack(out[2].f32());
      dbias_->unpack(out[3].f32(), out[4].f32());
    });
  }

 private:
  std::optional<WeightPacking> dwx_, dwh_;
  std::optional<BiasPacking> dbias_;
};

}  // namespace

MYELIN_REGISTER_OPS {
  register_kernel("rnn", DeviceKind::cpu, [](const KernelSpec& s) -> std::unique_ptr<Kernel> {
    return std::make_unique<RnnForward>(s);
  });
  register_kernel("rnn_grad", DeviceKind::cpu, [](const KernelSpec& s) -> std::unique_ptr<Kernel> {
    return std::make_unique<RnnBackward>(s);
  });
}

}  // namespace myelin::cpu
