// myelin time: forward, backward and whole-step time of a network, per layer (our `caffe time`).
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <map>

#include "cli/command.h"
#include "cli/common.h"
#include "cli/cuda_query.h"
#include "cli/onnx_model.h"
#include "core/op_registry.h"

namespace myelin::cli {

namespace {

const std::vector<Flag>& time_flags() {
  static const std::vector<Flag> f = [] {
    std::vector<Flag> v = {
        {"model", "NAME|FILE", "standard network name, network file or .onnx model", ""},
        {"batch", "N", "batch size", "64"},
        {"iterations", "K", "timed iterations", "50"},
        {"warmup", "W", "untimed iterations first", "5"},
        {"seed", "S", "seed for weights and inputs", "1"},
        {"json", "", "print one JSON object instead of a table", ""}};
    for (const Flag& d : device_flags()) v.push_back(d);
    v.push_back(conv_search_flag());
    return v;
  }();
  return f;
}

struct LayerTime {
  double forward_ms = 0, backward_ms = 0, flops = 0;
};

struct Timing {
  double forward_ms = 0, backward_ms = 0, update_ms = 0, step_ms = 0, step_flops = 0;
  // The device memory the session took on a GPU (weights, activations, workspaces, cuDNN's and
  // the CUDA graphs' own): the device's free memory before it minus after the timed steps.
  double device_mib = 0;
  std::vector<std::string> order;
  std::map<std::string, LayerTime> layers;
};

double elapsed_ms(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// Average milliseconds of `body` over k runs, synchronising the device at the end.
template <class F>
double average_ms(Session& s, int64_t k, F body) {
  s.backend().synchronize();
  auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < k; ++i) body(i);
  s.backend().synchronize();
  return elapsed_ms(t0) / static_cast<double>(k);
}

Timing measure(Session& s, int64_t iterations, int64_t warmup) {
  Program& p = s.train_program();
  const Graph& g = p.graph();
  Hyper h = Hyper::from(s.options().recipe, 1e-4, 0);
  auto step = [&](int64_t i) {
    s.forward_backward(static_cast<uint64_t>(i));
    s.update(h, static_cast<uint64_t>(i));
  };
  for (int64_t i = 0; i < warmup; ++i) step(i);
  Timing t;
  int fwd = s.forward_end(), bwd = s.backward_end(), all = static_cast<int>(g.nodes().size());
  t.step_ms = average_ms(s, iterations, step);
  t.forward_ms = average_ms(s, iterations, [&](int64_t i) {
    p.run_range({1, uint64_t(i)}, 0, fwd);
  });
  // Each backward pass right after a forward one, as in a step: the memory plan lets gradients
  // take the memory of activations the backward pass has read, so a backward pass run again on its
  // own computes on values no step sees (on the CPU it took 1.6x to 2.6x as long).
  for (int64_t i = 0; i < iterations; ++i) {
    p.run_range({1, uint64_t(i)}, 0, fwd);
    t.backward_ms += average_ms(s, 1, [&](int64_t) { p.run_range({1, uint64_t(i)}, fwd, bwd); });
  }
  t.backward_ms /= static_cast<double>(iterations);
  t.update_ms = average_ms(s, iterations, [&](int64_t i) {
    p.run_range({1, uint64_t(i)}, bwd, all);
  });
  for (int64_t i = 0; i < iterations; ++i)
    p.run_profiled({1, uint64_t(i)}, [&](int node, double ms) {
      const Node& n = g.nodes()[node];
      if (!t.layers.count(n.name)) t.order.push_back(n.name);
      LayerTime& l = t.layers[n.name];
      (n.phase == Phase::forward ? l.forward_ms : l.backward_ms) +=
          ms / static_cast<double>(iterations);
      if (i == 0) l.flops += op_flops(g, n);
    });
  for (auto& [name, l] : t.layers) t.step_flops += l.flops;
  return t;
}

void print_table(const Timing& t, const Session& s, int64_t batch) {
  std::printf("%-16s %12s %12s %10s\n", "layer", "forward ms", "backward ms", "GFLOP/s");
  for (const std::string& name : t.order) {
    const LayerTime& l = t.layers.at(name);
    double ms = l.forward_ms + l.backward_ms;
    std::printf("%-16s %12.3f %12.3f %10.1f\n", name.c_str(), l.forward_ms, l.backward_ms,
                ms > 0 ? l.flops / ms / 1e6 : 0.0);
  }
  std::printf("\nforward %.3f ms, backward %.3f ms, update %.3f ms\n", t.forward_ms, t.backward_ms,
              t.update_ms);
  std::printf("training step %.3f ms: %.0f images/s, %.1f GFLOP/s (%.1f MFLOP per image)\n",
              t.step_ms, 1000.0 * static_cast<double>(batch) / t.step_ms,
              t.step_flops / t.step_ms / 1e6, t.step_flops / static_cast<double>(batch) / 1e6);
  std::printf("inference %.0f images/s (forward in training mode)\n",
              1000.0 * static_cast<double>(batch) / t.forward_ms);
  if (t.device_mib > 0) std::printf("device memory %.0f MiB\n", t.device_mib);
}

nlohmann::json to_json(const Timing& t, const std::string& model, const std::string& device,
                       int64_t batch, int64_t iterations) {
  nlohmann::json layers = nlohmann::json::array();
  for (const std::string& name : t.order) {
    const LayerTime& l = t.layers.at(name);
    layers.push_back({{"name", name},
                      {"forward_ms", l.forward_ms},
                      {"backward_ms", l.backward_ms},
                      {"gflop", l.flops / 1e9}});
  }
  return {{"model", model},
          {"device", device},
          {"batch", batch},
          {"iterations", iterations},
          {"images_per_second", 1000.0 * static_cast<double>(batch) / t.step_ms},
          {"inference_images_per_second", 1000.0 * static_cast<double>(batch) / t.forward_ms},
          {"step_ms", t.step_ms},
          {"forward_ms", t.forward_ms},
          {"backward_ms", t.backward_ms},
          {"update_ms", t.update_ms},
          {"gflop_per_step", t.step_flops / 1e9},
          {"gflops", t.step_flops / t.step_ms / 1e6},
          {"device_memory_mib", t.device_mib},
          {"layers", layers}};
}

int run_time(const std::vector<std::string>& argv) {
  const std::string help = help_text(
      "myelin time --model NAME|FILE [--batch N] [--iterations K] [--device DEV] [--json]",
      "Times a network's training step like `caffe time`: after warm-up, the average forward,\n"
      "backward, optimizer update and whole step (forward + backward + update), and each layer's\n"
      "forward and backward time (measured in a separate, synchronised pass). Inputs are random.",
      time_flags(),
      "  myelin time --model lenet --batch 64 --iterations 50 --device cpu --threads 2\n"
      "  myelin time --model alexnet --batch 256 --device cuda --precision bf16 --json\n");
  if (wants_help(argv, help)) return 0;
  Args a("time", argv, time_flags());
  if (!a.has("model")) throw UsageError("--model is required (e.g. --model lenet)");
  int64_t batch = a.integer("batch", 64), iterations = a.integer("iterations", 50);
  if (batch < 1 || iterations < 1) throw UsageError("--batch and --iterations must be at least 1");
  NetworkSpec spec = load_network(resolve_model(a.str("model"), "").model);
  SessionOptions o;
  o.device = device_from(a);
  o.backend = backend_from(a);
  o.backend.conv_search = conv_search_from(a);
  o.batch = batch;
  o.seed = static_cast<uint64_t>(a.integer("seed", 1));
  o.eval = false;
  o.recipe = spec.recipe;
  const bool gpu = o.device.kind == DeviceKind::cuda;
  const size_t free_before = gpu ? cuda_free_bytes(o.device.index) : 0;
  Session s(spec, o);
  s.feed(synthetic_batch(s.train_net(), spec.classes, o.seed));
  Timing t = measure(s, iterations, a.integer("warmup", 5));
  if (gpu)
    t.device_mib =
        (static_cast<double>(free_before) - static_cast<double>(cuda_free_bytes(o.device.index))) /
        (1 << 20);
  if (a.has("json"))
    std::printf("%s\n", to_json(t, spec.name, o.device.str(), batch, iterations).dump(2).c_str());
  else
    print_table(t, s, batch);
  return 0;
}

const bool registered =
    register_command({"time", "time forward, backward and the training step per layer", run_time});

}  // namespace

}  // namespace myelin::cli
