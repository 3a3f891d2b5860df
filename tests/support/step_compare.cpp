#include "support/step_compare.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <random>

#include "core/autodiff.h"
#include "core/backend.h"
#include "core/executor.h"
#include "core/planner.h"

namespace myelin::test {

ValueId StepBuilder::conv(ValueId x, const std::string& name, int64_t o, int64_t k, Attrs a) {
  const Shape& xs = g.value(x).shape;
  ValueId w = g.param(name + ".weight", Shape{o, xs[1], k, k}, Init{});
  ValueId b = g.param(name + ".bias", Shape{o}, Init{});
  return g.add1("conv2d", name, {x, w, b}, a);
}

ValueId StepBuilder::conv_no_bias(ValueId x, const std::string& name, int64_t o, int64_t k,
                                  Attrs a) {
  ValueId w = g.param(name + ".weight", Shape{o, g.value(x).shape[1], k, k}, Init{});
  return g.add1("conv2d", name, {x, w}, a);
}

ValueId StepBuilder::conv_relu(ValueId x, const std::string& name, int64_t o, int64_t k, Attrs a) {
  return relu(conv(x, name, o, k, a), name + "_relu");
}

ValueId StepBuilder::fc(ValueId x, const std::string& name, int64_t o, bool bias) {
  const Shape& xs = g.value(x).shape;
  ValueId w = g.param(name + ".weight", Shape{o, xs.numel() / xs[0]}, Init{});
  if (!bias) return g.add1("inner_product", name, {x, w});
  return g.add1("inner_product", name, {x, w, g.param(name + ".bias", Shape{o}, Init{})});
}

ValueId StepBuilder::bn(ValueId x, const std::string& name) {
  Shape c{g.value(x).shape[1]};
  return g.add1("batch_norm", name,
                {x, g.param(name + ".gamma", c, Init{}), g.param(name + ".beta", c, Init{}),
                 g.state(name + ".mean", c, Init{}), g.state(name + ".var", c, Init{})});
}

ValueId StepBuilder::relu(ValueId x, const std::string& name) {
  return g.add1("relu", name, {x});
}

StepNet stride2_block_net() {
  Graph g(true);
  StepBuilder b{g};
  const Attrs pad1{{"pad", int64_t{1}}}, pad1s2{{"pad", int64_t{1}}, {"stride", int64_t{2}}};
  ValueId x = g.param("data", Shape{4, 24, 14, 14}, Init{});
  ValueId h = b.relu(b.bn(b.conv_no_bias(x, "conv0", 24, 3, pad1), "bn0"), "relu0");
  ValueId r = b.relu(b.bn(b.conv_no_bias(h, "conv1", 48, 3, pad1s2), "bn1"), "relu1");
  r = b.bn(b.conv_no_bias(r, "conv2", 48, 3, pad1), "bn2");
  ValueId s = b.bn(b.conv_no_bias(h, "proj", 48, 1, {{"stride", int64_t{2}}}), "proj_bn");
  h = b.relu(g.add1("add", "res", {r, s}), "res_relu");
  return finish_step_net(std::move(g), b.fc(h, "fc", 6));
}

StepNet resnet14_net(bool training) {
  Graph g(training);
  StepBuilder b{g};
  const Attrs pad1{{"pad", int64_t{1}}}, pool2{{"kernel", int64_t{2}}, {"stride", int64_t{2}}};
  ValueId x = g.param("data", Shape{4, 1, 28, 28}, Init{});
  ValueId h = b.relu(b.bn(b.conv_no_bias(x, "conv1", 24, 3, pad1), "bn1"), "relu1");
  h = g.add1("max_pool2d", "pool1", {h}, pool2);
  ValueId r = b.relu(b.bn(b.conv_no_bias(h, "res1_conv1", 24, 3, pad1), "res1_bn1"), "res1_relu1");
  r = b.bn(b.conv_no_bias(r, "res1_conv2", 24, 3, pad1), "res1_bn2");
  h = b.relu(g.add1("add", "res1", {r, h}), "res1_relu");
  h = b.conv_relu(h, "conv_b", 24, 3, pad1);
  h = g.add1("max_pool2d", "pool2", {h}, pool2);
  return finish_step_net(std::move(g), b.fc(h, "fc", 6));
}

StepNet finish_step_net(Graph g, ValueId logits) {
  StepNet n{std::move(g), {}};
  Graph& gr = n.graph;
  ValueId label = gr.input("label", Shape{gr.value(logits).shape[0]}, DType::i32);
  ValueId loss = gr.add1("softmax_cross_entropy", "loss", {logits, label});
  gr.keep(loss);
  gr.keep(logits);
  n.compared = {loss, logits};
  if (!gr.training()) return n;
  std::vector<ValueId> wrt = gr.params();
  for (auto [p, dp] : differentiate(gr, loss, wrt)) n.compared.push_back(dp);
  return n;
}

namespace {

// Fills the storage of every activation (the padding of blocked values included) with NaN, so a
// kernel reading what no kernel wrote this step spoils the results.
void poison_activations(const Program& p) {
  const Graph& g = p.graph();
  for (size_t v = 0; v < g.values().size(); ++v) {
    const Value& val = g.values()[v];
    if (val.kind != ValueKind::activation || val.dtype != DType::f32 || p.plan().offset[v] < 0 ||
        p.plan().alias[v] != static_cast<ValueId>(v))
      continue;
    std::fill_n(p.tensor(static_cast<ValueId>(v)).f32(), stored_numel(val),
                std::numeric_limits<float>::quiet_NaN());
  }
}

}  // namespace

StepResult run_step(const StepNet& net, bool switch_on, const StepOptions& options) {
  setenv(options.switch_env, switch_on ? "1" : "0", 1);
  auto backend = make_backend(Device::cpu(), BackendOptions{.threads = 2});
  Program p(net.graph, *backend);
  unsetenv(options.switch_env);
  poison_activations(p);
  std::mt19937 rng(options.bind_seed);
  std::vector<Tensor> bound;
  for (size_t v = 0; v < net.graph.values().size(); ++v) {
    const Value& val = net.graph.values()[v];
    if (val.kind == ValueKind::activation) continue;
    Tensor t = Tensor::empty(val.shape, val.dtype);
    bool positive = val.name.ends_with(".var") || val.name.ends_with(".gamma");
    std::uniform_real_distribution<float> d(positive ? 0.5f : -1.0f, positive ? 1.5f : 1.0f);
    for (int64_t i = 0; i < t.numel(); ++i) {
      if (val.dtype == DType::i32)
        t.data_as<int32_t>()[i] = static_cast<int32_t>(rng() % options.label_classes);
      else
        t.f32()[i] = d(rng);
    }
    p.bind(static_cast<ValueId>(v), t);
    bound.push_back(std::move(t));
  }
  p.run(StepContext{.seed = options.step_seed});
  StepResult r;
  for (ValueId v : net.compared) {
    Tensor t = p.tensor(v);
    r.values[net.graph.value(v).name].assign(t.f32(), t.f32() + t.numel());
  }
  r.nodes = p.graph().nodes().size();
  r.arena = p.plan().arena_bytes;
  r.graph = p.graph();
  return r;
}

void expect_steps_match(const StepResult& want, const StepResult& got, double rel_tol,
                        const std::string& what) {
  for (const auto& [name, w] : want.values) {
    auto it = got.values.find(name);
    ASSERT_NE(it, got.values.end()) << name;
    const std::vector<float>& g = it->second;
    ASSERT_EQ(g.size(), w.size()) << name;
    double diff = 0, norm = 0;
    size_t not_finite = 0;
    for (size_t i = 0; i < w.size(); ++i) {
      diff = std::max(diff, std::abs(double(g[i]) - w[i]));
      norm = std::max(norm, std::abs(double(w[i])));
      not_finite += !std::isfinite(g[i]) || !std::isfinite(w[i]);
    }
    EXPECT_EQ(not_finite, 0u) << name << ": " << what;
    EXPECT_GT(norm, 0) << name;
    EXPECT_LE(diff, rel_tol * norm) << name << ": " << what;
  }
}

}  // namespace myelin::test
