// Parameters and forward FLOPs per layer, from the inference graph at batch 1: each layer's nodes'
// op_flops (their ops' rules, core/op_registry.h).
#include <cmath>
#include <cstdio>
#include <map>

#include "core/op_registry.h"
#include "model/layers.h"

namespace myelin {

namespace {

int64_t numel(const Graph& g, ValueId v) {
  return g.value(v).shape.numel();
}

std::string human(double x) {
  const char* units[] = {"", "K", "M", "G", "T"};
  int u = 0;
  while (x >= 1000 && u < 4) x /= 1000, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, u ? "%.2f%s" : "%.0f%s", x, units[u]);
  return buf;
}

}  // namespace

NetworkCost network_cost(const NetworkSpec& spec) {
  BuiltNetwork net = build_network(spec, 1, false);
  const Graph& g = net.graph;
  NetworkCost cost;
  std::map<std::string, size_t> index;
  NetworkSpec s = spec;
  canonicalize_network(s);  // valid: build_network accepted it
  for (const LayerSpec& l : s.layers) {
    index[l.name] = cost.layers.size();
    cost.layers.push_back({l.name, l.type, Shape{}, 0, 0});
  }
  for (const Node& n : g.nodes()) {
    auto it = index.find(n.name);
    if (it == index.end()) continue;  // the loss and accuracy
    LayerCost& c = cost.layers[it->second];
    c.flops += std::llround(op_flops(g, n));
    for (ValueId v : n.inputs)
      if (g.value(v).kind == ValueKind::param) c.params += numel(g, v);
  }
  for (size_t i = 0; i < s.layers.size(); ++i) {
    ValueId out = g.find(s.layers[i].name);
    cost.layers[i].output = out != kNoValue ? g.value(out).shape : Shape{};
    cost.params += cost.layers[i].params;
    cost.flops += cost.layers[i].flops;
  }
  // Layers that are the identity at inference (dropout) keep their input's shape.
  for (size_t i = 0; i < s.layers.size(); ++i)
    if (cost.layers[i].output.rank() == 0 && i > 0)
      cost.layers[i].output = cost.layers[i - 1].output;
  return cost;
}

std::string describe_network(const NetworkSpec& spec) {
  NetworkCost c = network_cost(spec);
  std::string s;
  char line[256];
  auto row = [&](const std::string& a, const std::string& b, const std::string& out,
                 const std::string& p, const std::string& f) {
    std::snprintf(line, sizeof line, "%-16s %-11s %-20s %12s %10s\n", a.c_str(), b.c_str(),
                  out.c_str(), p.c_str(), f.c_str());
    s += line;
  };
  row("layer", "type", "output", "params", "FLOPs");
  for (const LayerCost& l : c.layers) {
    Shape per_example(Dims(l.output.dims.begin() + (l.output.rank() ? 1 : 0), l.output.dims.end()));
    row(l.name, l.type, per_example.str(), std::to_string(l.params), human(double(l.flops)));
  }
  row("total", "", "", std::to_string(c.params), human(double(c.flops)));
  return s;
}

}  // namespace myelin
