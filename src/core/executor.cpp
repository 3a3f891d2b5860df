#include "core/executor.h"

#include <chrono>

#include "core/error.h"
#include "core/op_registry.h"

namespace myelin {

namespace {

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

void Program::run_range(const StepContext& ctx, int begin, int end,
                        const std::function<void(int)>& after_node) {
  if (views_dirty_) {
    check_bound();
    views_dirty_ = false;
  }
  StepContext c = ctx;
  c.workspace = workspace_.data();
  std::vector<Tensor> in, out;
  for (int i = begin; i < end; ++i) {
    if (kernels_[i]) {
      gather(graph_.nodes()[i], in, out);
      kernels_[i]->run(in, out, c);
    }
    if (after_node) after_node(i);
  }
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
