// LeNet training step on the CPU engine, timed per node: the kernels' side of `myelin time`.
// usage: lenet_kernels [batch=64] [iters=100] [threads=2]
// Prints the step time and images/s (whole step with SGD+momentum update), then per node the
// minimum and median milliseconds and, where it does arithmetic, its GFLOP/s (op_flops).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>

#include "core/autodiff.h"
#include "core/backend.h"
#include "core/executor.h"
#include "core/op_registry.h"

using namespace myelin;

namespace {

struct Lenet {
  Graph g{true};
  ValueId loss = kNoValue;
};

Lenet build(int64_t batch) {
  Lenet n;
  Graph& g = n.g;
  ValueId x = g.input("data", Shape{batch, 1, 28, 28});
  ValueId labels = g.input("label", Shape{batch}, DType::i32);
  auto param = [&](const std::string& name, Shape s) {
    return g.param(name, s, {"gaussian", 0.1});
  };
  ValueId h =
      g.add1("conv2d", "conv1", {x, param("conv1.w", {20, 1, 5, 5}), param("conv1.b", {20})});
  h = g.add1("max_pool2d", "pool1", {h}, Attrs{{"kernel", int64_t{2}}});
  h = g.add1("conv2d", "conv2", {h, param("conv2.w", {50, 20, 5, 5}), param("conv2.b", {50})});
  h = g.add1("max_pool2d", "pool2", {h}, Attrs{{"kernel", int64_t{2}}});
  h = g.add1("inner_product", "ip1", {h, param("ip1.w", {500, 800}), param("ip1.b", {500})});
  h = g.add1("relu", "relu1", {h});
  h = g.add1("inner_product", "ip2", {h, param("ip2.w", {10, 500}), param("ip2.b", {10})});
  n.loss = g.add1("softmax_cross_entropy", "loss", {h, labels});
  g.keep(n.loss);
  std::vector<ValueId> params = g.params();
  auto grads = differentiate(g, n.loss, params);
  // SGD with momentum, as the PyTorch peer (lr 0.01, momentum 0.9, weight decay 5e-4).
  std::vector<ValueId> in{g.input("hp", Shape{8})};
  std::vector<ValueId> states;
  for (ValueId p : params) in.push_back(p);
  for (ValueId p : params) in.push_back(grads.at(p));
  for (ValueId p : params)
    in.push_back(g.state(g.value(p).name + ".v", g.value(p).shape, {"constant", 0.0}));
  std::vector<double> ones(params.size(), 1.0);
  g.add("optimizer_update", "sgd", in,
        Attrs{{"solver", std::string("sgd")},
              {"count", static_cast<int64_t>(params.size())},
              {"lr_mult", ones},
              {"decay_mult", ones}});
  return n;
}

void fill(const Tensor& t, std::mt19937& rng, double scale) {
  std::normal_distribution<float> d(0, static_cast<float>(scale));
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = d(rng);
}

}  // namespace

int main(int argc, char** argv) {
  int64_t batch = argc > 1 ? std::atoll(argv[1]) : 64;
  int iters = argc > 2 ? std::atoi(argv[2]) : 100;
  int threads = argc > 3 ? std::atoi(argv[3]) : 2;
  Lenet net = build(batch);
  auto backend = make_backend(Device::cpu(), BackendOptions{.threads = threads});
  auto t0 = std::chrono::steady_clock::now();
  Program prog(net.g, *backend);
  double compile_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::mt19937 rng(1);
  std::vector<Tensor> owned;
  for (size_t v = 0; v < prog.graph().values().size(); ++v) {
    const Value& val = prog.graph().values()[v];
    if (val.kind == ValueKind::activation) continue;
    Tensor t = Tensor::empty(val.shape, val.dtype);
    if (val.dtype == DType::i32)
      for (int64_t i = 0; i < t.numel(); ++i) t.data_as<int32_t>()[i] = rng() % 10;
    else if (val.name == "hp") {
      float hp[8] = {0.01f, 0.9f, 0.999f, 1e-8f, 5e-4f, 1, 1, 0};
      std::copy_n(hp, 8, t.f32());
    } else if (val.kind != ValueKind::state)
      fill(t, rng, val.kind == ValueKind::param ? 0.1 : 1.0);
    prog.bind(static_cast<ValueId>(v), t);
    owned.push_back(t);
  }
  StepContext ctx;
  for (int i = 0; i < 10; ++i) prog.run(ctx);
  std::vector<double> step_ms;
  for (int i = 0; i < iters; ++i) {
    auto s = std::chrono::steady_clock::now();
    prog.run(ctx);
    step_ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - s).count());
  }
  std::sort(step_ms.begin(), step_ms.end());
  double med = step_ms[step_ms.size() / 2];
  std::printf(
      "LeNet batch %lld, %d threads: step median %.2f ms (min %.2f), %.0f img/s at the median; "
      "compile %.0f ms, workspace %zu KiB, arena %zu KiB\n",
      static_cast<long long>(batch), threads, med, step_ms[0], batch * 1000.0 / med, compile_ms,
      prog.workspace_bytes() / 1024, prog.plan().arena_bytes / 1024);
  size_t nodes = prog.graph().nodes().size();
  std::vector<std::vector<double>> per(nodes);
  for (int i = 0; i < iters; ++i)
    prog.run_profiled(ctx, [&](int node, double ms) { per[node].push_back(ms); });
  double total = 0;
  // Min and median: this machine is shared, the minimum is the kernel's own speed.
  double total_min = 0;
  std::printf("%-28s %-10s %9s %9s %9s\n", "node", "layer", "min ms", "med ms", "GFLOP/s");
  for (size_t i = 0; i < nodes; ++i) {
    const Node& n = prog.graph().nodes()[i];
    std::sort(per[i].begin(), per[i].end());
    double ms = per[i][per[i].size() / 2];
    total += ms;
    total_min += per[i][0];
    double f = op_flops(prog.graph(), n);
    std::printf("%-28s %-10s %9.3f %9.3f", n.op.c_str(), n.name.c_str(), per[i][0], ms);
    if (f > 0) std::printf(" %9.1f", f / per[i][0] / 1e6);
    std::printf("\n");
  }
  std::printf("sum of node minima %.2f ms, of medians %.2f ms\n", total_min, total);
}
