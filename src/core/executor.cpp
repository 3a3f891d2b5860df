#include "core/executor.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "core/op_registry.h"

namespace myelin {

namespace {

constexpr int kNotAsync = -2;  // Program::waits_for_ of a node that runs in order

// The backend's rewrites of the program's copy of the graph, before its memory is planned.
Graph rewritten_for(const Backend& b, Graph g) {
  b.fuse(g);
  b.choose_storage(g);
  return g;
}

}  // namespace

Program::Program(Graph graph, Backend& backend)
    : graph_(rewritten_for(backend, std::move(graph))),
      backend_(backend),
      plan_(plan_memory(graph_)) {
  size_t workspace = 0;
  for (size_t i = 0; i < graph_.nodes().size(); ++i) {
    const Node& n = graph_.nodes()[i];
    if (op_def(n.op).is_view) {
      kernels_.push_back(nullptr);
      continue;
    }
    kernels_.push_back(make_kernel(KernelSpec{n, graph_, static_cast<int>(i), backend_}));
    workspace = std::max(workspace, kernels_.back()->workspace_bytes());
  }
  plan_async();
  arena_ = Buffer(backend_, plan_.arena_bytes);
  workspace_ = Buffer(backend_, workspace);
  tensors_.resize(graph_.values().size());
  bound_.assign(graph_.values().size(), false);
  auto* base = static_cast<std::byte*>(arena_.data());
  for (size_t v = 0; v < tensors_.size(); ++v) {
    const Value& val = graph_.values()[v];
    if (plan_.offset[v] >= 0)
      tensors_[v] = Tensor(base + plan_.offset[v], val.shape, val.dtype, backend_.device());
  }
}

Program::~Program() = default;

// Whether a node after node i writes arena memory that node i reads: the planner frees i's
// inputs once it ran in order, but it runs asynchronously until the end of the step.
bool Program::later_writes_overlap(size_t i) const {
  auto range = [&](ValueId v) {
    const ValueId r = plan_.alias[v];
    const Value& val = graph_.value(r);
    const int64_t begin = plan_.offset[r];
    return std::pair{begin,
                     begin + val.shape.numel() * static_cast<int64_t>(dtype_size(val.dtype))};
  };
  const auto& nodes = graph_.nodes();
  for (ValueId a : nodes[i].inputs) {
    if (plan_.offset[plan_.alias[a]] < 0) continue;
    auto [a0, a1] = range(a);
    for (size_t k = i + 1; k < nodes.size(); ++k)
      for (ValueId b : nodes[k].outputs) {
        if (plan_.offset[plan_.alias[b]] < 0) continue;
        auto [b0, b1] = range(b);
        if (a0 < b1 && b0 < a1) return true;
      }
  }
  return false;
}

// For each eligible asynchronous node, the last node before it (with a kernel) that reads or
// writes any of its values, or any value sharing their memory.
void Program::plan_async() {
  const auto& nodes = graph_.nodes();
  waits_for_.assign(nodes.size(), kNotAsync);
  is_point_.assign(nodes.size(), false);
  for (size_t i = 0; i < nodes.size(); ++i) {
    const Node& n = nodes[i];
    if (!kernels_[i] || n.attrs.i("async", 0) == 0 || kernels_[i]->workspace_bytes() > 0) continue;
    bool writes_arena = false;
    for (ValueId v : n.outputs) writes_arena |= plan_.offset[plan_.alias[v]] >= 0;
    if (writes_arena || later_writes_overlap(i)) continue;
    std::vector<ValueId> mine;
    for (const auto* list : {&n.inputs, &n.outputs})
      for (ValueId v : *list) mine.push_back(plan_.alias[v]);
    auto touches = [&](const Node& m) {
      for (const auto* list : {&m.inputs, &m.outputs})
        for (ValueId v : *list)
          if (std::find(mine.begin(), mine.end(), plan_.alias[v]) != mine.end()) return true;
      return false;
    };
    int j = static_cast<int>(i) - 1;
    while (j >= 0 && !(kernels_[j] && touches(nodes[j]))) --j;
    waits_for_[i] = j;
    if (j >= 0) is_point_[j] = true;
  }
}

void Program::bind(ValueId v, const Tensor& t) {
  const Value& val = graph_.value(v);
  if (val.kind == ValueKind::activation)
    throw Error("cannot bind '" + val.name + "': it is computed by the graph");
  if (t.shape() != val.shape || t.dtype() != val.dtype)
    throw ShapeError("binding '" + val.name + "': expected " + val.shape.str() + " " +
                     dtype_name(val.dtype) + ", got " + t.shape().str() + " " +
                     dtype_name(t.dtype()));
  if (!(t.device() == backend_.device()))
    throw Error("binding '" + val.name + "': tensor is on " + t.device().str() +
                ", program runs on " + backend_.device().str());
  tensors_[v] = t;
  bound_[v] = true;
  views_dirty_ = true;
}

void Program::bind(const std::string& name, const Tensor& t) {
  ValueId v = graph_.find(name);
  if (v == kNoValue) throw Error("no value named '" + name + "' in the graph");
  bind(v, t);
}

bool Program::is_bound(ValueId v) const {
  return bound_.at(v);
}

Tensor Program::tensor(ValueId v) const {
  ValueId root = plan_.alias.at(v);
  if (root != v) {
    const Value& val = graph_.value(v);
    const Tensor& r = tensors_[root];
    return Tensor(r.data(), val.shape, val.dtype, r.device());
  }
  return tensors_.at(v);
}

Tensor Program::tensor(const std::string& name) const {
  ValueId v = graph_.find(name);
  if (v == kNoValue) throw Error("no value named '" + name + "' in the graph");
  return tensor(v);
}

void Program::check_bound() const {
  for (size_t v = 0; v < bound_.size(); ++v) {
    const Value& val = graph_.values()[v];
    if (val.kind != ValueKind::activation && !bound_[v])
      throw Error("'" + val.name + "' was not bound before running the program");
  }
}

void Program::gather(const Node& n, std::vector<Tensor>& in, std::vector<Tensor>& out) const {
  in.clear();
  out.clear();
  for (ValueId v : n.inputs) in.push_back(tensor(v));
  for (ValueId v : n.outputs) out.push_back(tensor(v));
}

void Program::run(const StepContext& ctx) {
  run_range(ctx, 0, static_cast<int>(graph_.nodes().size()));
}

void Program::run_range(const StepContext& ctx, int begin, int end) {
  if (views_dirty_) {
    check_bound();
    views_dirty_ = false;
  }
  StepContext c = ctx;
  c.workspace = workspace_.data();
  std::vector<Tensor> in, out;
  for (int i = begin; i < end; ++i)
    if (kernels_[i]) run_node(i, begin, c, in, out);
  backend_.join_async();
}

void Program::run_node(int i, int begin, const StepContext& ctx, std::vector<Tensor>& in,
                       std::vector<Tensor>& out) {
  gather(graph_.nodes()[i], in, out);
  if (waits_for_[i] != kNotAsync) {
    // A point before this run's first node was passed in an earlier run: wait for all of it.
    int after = waits_for_[i] >= begin ? waits_for_[i] : -1;
    backend_.run_async(after, [&] { kernels_[i]->run(in, out, ctx); });
  } else {
    kernels_[i]->run(in, out, ctx);
  }
  if (is_point_[i]) backend_.mark_point(i);
}

void Program::run_profiled(const StepContext& ctx, const NodeTimer& timer) {
  using clock = std::chrono::steady_clock;
  backend_.synchronize();
  for (int i = 0; i < static_cast<int>(graph_.nodes().size()); ++i) {
    auto t0 = clock::now();
    run_range(ctx, i, i + 1);
    backend_.synchronize();
    timer(i, std::chrono::duration<double, std::milli>(clock::now() - t0).count());
  }
}

}  // namespace myelin
