// Pointwise activations on oneDNN's eltwise primitives (JIT, vectorized exp/tanh), over the
// tensor viewed as one flat vector. The gradient reads x or y, whichever the formula is cheaper
// from: y for sigmoid and tanh (dy*y*(1-y), dy*(1-y^2)), x for the others. nchw16c values are
// flat vectors too, their padding channels included.
#include "core/planner.h"
#include "cpu/blocked.h"
#include "cpu/dnnl_util.h"
#include "ops/params.h"

namespace myelin::cpu {

namespace {

struct EltwiseAlgo {
  dnnl::algorithm algorithm;
  float alpha;
  bool grad_uses_y;
};

EltwiseAlgo eltwise_algo(const ActParams& p) {
  using alg = dnnl::algorithm;
  float a = static_cast<float>(p.alpha);
  switch (p.kind) {
    case ActKind::relu:
      return {alg::eltwise_relu, 0.0f, false};
    case ActKind::leaky_relu:
      return {alg::eltwise_relu, a, false};
    case ActKind::sigmoid:
      return {alg::eltwise_logistic_use_dst_for_bwd, 0.0f, true};
    case ActKind::tanh:
      return {alg::eltwise_tanh_use_dst_for_bwd, 0.0f, true};
    case ActKind::elu:
      return {alg::eltwise_elu, a, false};
    case ActKind::gelu:
      return {alg::eltwise_gelu_tanh, 0.0f, false};
  }
  throw Error("activation: unhandled kind");
}

// The operand's stored elements as one vector (the padding channels of nchw16c values included).
memory::desc flat_desc(const KernelSpec& s) {
  return plain_desc(memory::dims{stored_numel(s.graph.value(s.node.inputs[0]))});
}

// f(0) = 0, so padding channels stay zero (the gradients keep them zero for every kind: dy is).
bool keeps_zero(const Node& n, const Graph& g) {
  return ActParams(n.attrs).kind != ActKind::sigmoid || whole_blocks(n, g);
}

dnnl::eltwise_forward::primitive_desc forward_pd(const EltwiseAlgo& e, const memory::desc& md,
                                                 dnnl::engine& eng,
                                                 const dnnl::primitive_attr& attr) {
  dnnl::eltwise_forward::desc d(dnnl::prop_kind::forward_training, e.algorithm, md, e.alpha, 0.0f);
  return {d, attr, eng};
}

class ActivationForward : public Kernel {
 public:
  explicit ActivationForward(const KernelSpec& s) : seq_(cpu_backend(s), s.node) {
    EltwiseAlgo e = eltwise_algo(ActParams(s.node.attrs));
    memory::desc md = flat_desc(s);
    dnnl_call(s.node, "eltwise_forward", [&] {
      auto pd = forward_pd(e, md, cpu_backend(s).engine(), user_scratchpad_attr());
      seq_.add(dnnl::eltwise_forward(pd),
               {{DNNL_ARG_SRC, seq_.input(0, md)}, {DNNL_ARG_DST, seq_.output(0, md)}},
               pd.scratchpad_desc(), "eltwise_forward");
    });
  }
  void run(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
           const StepContext& ctx) override {
    seq_.run(in, out, ctx.workspace);
  }
  size_t workspace_bytes() const override { return seq_.workspace_bytes(); }

 private:
  DnnlSequence seq_;
};

// activation_grad(dy, x, y) -> dx
class ActivationGrad : public Kernel {
 public:
  explicit ActivationGrad(const KernelSpec& s) : seq_(cpu_backend(s), s.node) {
    EltwiseAlgo e = eltwise_algo(ActParams(s.node.attrs));
    memory::desc md = flat_desc(s);
    dnnl::engine& eng = cpu_backend(s).engine();
    dnnl_call(s.node, "eltwise_backward", [&] {
      auto hint = forward_pd(e, md, eng, {});
      dnnl::eltwise_backward::desc d(e.algorithm, md, md, e.alpha, 0.0f);
      dnnl::eltwise_backward::primitive_desc pd(d, user_scratchpad_attr(), eng, hint);
      int data_arg = e.grad_uses_y ? DNNL_ARG_DST : DNNL_ARG_SRC;
      seq_.add(dnnl::eltwise_backward(pd),
               {{DNNL_ARG_DIFF_DST, seq_.input(0, md)},
                {data_arg, seq_.input(e.grad_uses_y ? 2 : 1, md)},
                {DNNL_ARG_DIFF_SRC, seq_.output(0, md)}},
               pd.scratchpad_desc(), "eltwise_backward");
    });
  }
  void run(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
           const StepContext& ctx) override {
    seq_.run(in, out, ctx.workspace);
  }
  size_t workspace_bytes() const override { return seq_.workspace_bytes(); }

 private:
  DnnlSequence seq_;
};

}  // namespace

// Elementwise, every operand indexed alike: nchw16c where all of them have it; padded channels
// only where the activation maps 0 to 0.
MYELIN_REGISTER_OPS {
  register_kernel("activation", DeviceKind::cpu,
                  [](const KernelSpec& s) -> std::unique_ptr<Kernel> {
                    return std::make_unique<ActivationForward>(s);
                  },
                  {.layout = takes_alike({0}, {0}, keeps_zero)});
  register_kernel("activation_grad", DeviceKind::cpu,
                  [](const KernelSpec& s) -> std::unique_ptr<Kernel> {
                    return std::make_unique<ActivationGrad>(s);
                  },
                  {.layout = takes_alike({0, 1, 2}, {0})});
}

}  // namespace myelin::cpu
