// The optimizer update's split (train/update.h): the parameters ready first and holding at least
// half of the bytes get their own update node, marked async, which Program runs ordered after the
// last node touching its values only; everything else keeps one update. Training with the split
// gives bit for bit the parameters of one update.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <set>

#include "core/autodiff.h"
#include "core/executor.h"
#include "cpu/cpu_backend.h"
#include "model/network.h"
#include "train/session.h"
#include "train/update.h"

using namespace myelin;

namespace {

struct TrainGraph {
  BuiltNetwork net;
  std::vector<ValueId> ps, gs;
};

TrainGraph train_graph(const std::string& model, int64_t batch) {
  TrainGraph t{build_network(load_network(model), batch, true), {}, {}};
  Graph& g = t.net.graph;
  std::map<ValueId, ValueId> grads = differentiate(g, t.net.loss, g.params());
  for (ValueId p : g.params())
    if (grads.count(p)) t.ps.push_back(p), t.gs.push_back(grads[p]);
  return t;
}

std::vector<const Node*> updates(const Graph& g) {
  std::vector<const Node*> u;
  for (const Node& n : g.nodes())
    if (n.op == "optimizer_update") u.push_back(&n);
  return u;
}

TEST(UpdateSplit, AlexNetUpdatesItsFullyConnectedLayersEarly) {
  TrainGraph t = train_graph("alexnet", 2);
  std::vector<bool> early = early_parameters(t.net.graph, t.ps, t.gs);
  std::set<std::string> got;
  int64_t early_numel = 0, total = 0;
  for (size_t i = 0; i < t.ps.size(); ++i) {
    const Value& v = t.net.graph.value(t.ps[i]);
    total += v.shape.numel();
    if (!early[i]) continue;
    got.insert(v.name);
    early_numel += v.shape.numel();
  }
  // The earliest point where half the bytes are ready is fc6's weight gradient (its bias
  // gradient comes after): 96% of the parameters.
  EXPECT_EQ(got, (std::set<std::string>{"fc6.weight", "fc7.weight", "fc7.bias", "fc8.weight",
                                        "fc8.bias"}));
  EXPECT_GT(2 * early_numel, total);
}

TEST(UpdateSplit, TwoNodesTheFirstAsyncOneWithClippingOrAccumulation) {
  Recipe r;
  r.solver = "sgd";
  TrainGraph split = train_graph("alexnet", 2);
  append_optimizer(split.net.graph, r, split.ps, split.gs, false);
  auto u = updates(split.net.graph);
  ASSERT_EQ(u.size(), 2u);
  EXPECT_EQ(u[0]->attrs.i("async", 0), 1);
  EXPECT_EQ(u[1]->attrs.i("async", 0), 0);
  EXPECT_EQ(u[0]->attrs.i("count", 0) + u[1]->attrs.i("count", 0),
            static_cast<int64_t>(split.ps.size()));

  TrainGraph accumulated = train_graph("alexnet", 2);
  append_optimizer(accumulated.net.graph, r, accumulated.ps, accumulated.gs, true);
  EXPECT_EQ(updates(accumulated.net.graph).size(), 1u);

  r.clip_grad_norm = 1.0;
  TrainGraph clipped = train_graph("alexnet", 2);
  append_optimizer(clipped.net.graph, r, clipped.ps, clipped.gs, false);
  ASSERT_EQ(updates(clipped.net.graph).size(), 1u);
  EXPECT_EQ(updates(clipped.net.graph)[0]->attrs.i("async", 0), 0);
}

// The CPU engine, recording what Program asks of the asynchronous-node hooks.
class RecordingBackend : public CpuBackend {
 public:
  using CpuBackend::CpuBackend;
  void mark_point(int node) override { marked.push_back(node); }
  void run_async(int after, const std::function<void()>& launch) override {
    waits.push_back(after);
    launch();
  }
  std::vector<int> marked, waits;
};

TEST(UpdateSplit, TheAsyncUpdateWaitsForTheLastNodeTouchingItsValues) {
  Recipe r;
  r.solver = "sgd";
  TrainGraph t = train_graph("lenet", 4);
  append_optimizer(t.net.graph, r, t.ps, t.gs, false);
  RecordingBackend be(BackendOptions{});
  Program p(t.net.graph, be);
  const auto& nodes = p.graph().nodes();
  int async = -1;
  for (int i = 0; i < static_cast<int>(nodes.size()); ++i)
    if (nodes[i].attrs.i("async", 0)) async = i;
  ASSERT_GE(async, 0);
  // The last node before it that reads or writes one of its values.
  std::set<ValueId> mine(nodes[async].inputs.begin(), nodes[async].inputs.end());
  int last = -1;
  for (int i = 0; i < async; ++i)
    for (const auto* list : {&nodes[i].inputs, &nodes[i].outputs})
      for (ValueId v : *list)
        if (mine.count(v)) last = i;
  ASSERT_GT(last, 0);
  EXPECT_LT(last, async - 1) << "nothing left to overlap";
  std::vector<Tensor> bound;  // zeros: labels 0, learning rate 0
  for (size_t v = 0; v < p.graph().values().size(); ++v) {
    const Value& val = p.graph().values()[v];
    if (val.kind == ValueKind::activation) continue;
    bound.push_back(Tensor::empty(val.shape, val.dtype));
    std::memset(bound.back().data(), 0, bound.back().nbytes());
    p.bind(static_cast<ValueId>(v), bound.back());
  }
  p.run(StepContext{1, 0});
  EXPECT_EQ(be.marked, std::vector<int>{last});
  EXPECT_EQ(be.waits, std::vector<int>{last});
  // A run starting after that node waits for everything before it.
  be.marked.clear(), be.waits.clear();
  p.run_range(StepContext{1, 1}, last + 1, static_cast<int>(nodes.size()));
  EXPECT_EQ(be.waits, std::vector<int>{-1});
}

std::vector<Tensor> trained_params(bool overlap) {
  if (overlap)
    unsetenv("MYELIN_OVERLAP_UPDATE");
  else
    setenv("MYELIN_OVERLAP_UPDATE", "0", 1);
  NetworkSpec spec = load_network("lenet");
  SessionOptions o;
  o.batch = 8;
  o.eval = false;
  o.recipe = spec.recipe;
  Session s(spec, o);
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(0, 1);
  for (int step = 0; step < 3; ++step) {
    Batch b;
    b.images = Tensor::empty(Shape{8, 1, 28, 28}, DType::f32);
    b.labels = Tensor::empty(Shape{8}, DType::i32);
    for (int64_t k = 0; k < b.images.numel(); ++k) b.images.f32()[k] = u(rng);
    for (int k = 0; k < 8; ++k)
      static_cast<int32_t*>(b.labels.data())[k] = static_cast<int32_t>(rng() % 10);
    s.feed(b);
    s.step(Hyper::from(spec.recipe, spec.recipe.lr, step), static_cast<uint64_t>(step));
  }
  std::vector<Tensor> out;
  for (const std::string& name : s.param_names()) out.push_back(s.read(name));
  unsetenv("MYELIN_OVERLAP_UPDATE");
  return out;
}

TEST(UpdateSplit, TrainsBitForBitLikeOneUpdate) {
  std::vector<Tensor> split = trained_params(true), whole = trained_params(false);
  ASSERT_EQ(split.size(), whole.size());
  for (size_t i = 0; i < split.size(); ++i) {
    ASSERT_EQ(split[i].nbytes(), whole[i].nbytes());
    EXPECT_EQ(std::memcmp(split[i].data(), whole[i].data(), split[i].nbytes()), 0)
        << "parameter " << i;
  }
}

}  // namespace
