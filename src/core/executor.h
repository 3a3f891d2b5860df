// A Program is a graph compiled for one device: memory planned into one arena, one kernel per
// node prepared up front. Running a step allocates nothing.
#pragma once
#include <functional>
#include <memory>
#include <vector>

#include "core/backend.h"
#include "core/planner.h"

namespace myelin {

class Program {
 public:
  Program(Graph graph, Backend& backend);
  ~Program();
  Program(const Program&) = delete;
  Program& operator=(const Program&) = delete;

  // Inputs, parameters and states live outside the arena; bind them before running.
  // The tensor must be on this program's device with the value's shape and dtype.
  void bind(ValueId v, const Tensor& t);
  void bind(const std::string& name, const Tensor& t);
  bool is_bound(ValueId v) const;
  Tensor tensor(ValueId v) const;  // any value: arena slice or bound tensor
  Tensor tensor(const std::string& name) const;

  void run(const StepContext& ctx);
  // Runs nodes [begin, end) only; `after_node(i)`, if given, once node i's work is queued.
  void run_range(const StepContext& ctx, int begin, int end,
                 const std::function<void(int)>& after_node = {});
  // Runs every node and reports its time; synchronizes after each node.
  using NodeTimer = std::function<void(int node, double ms)>;
  void run_profiled(const StepContext& ctx, const NodeTimer& timer);

  const Graph& graph() const { return graph_; }
  Backend& backend() const { return backend_; }
  const MemoryPlan& plan() const { return plan_; }
  size_t workspace_bytes() const { return workspace_.bytes(); }

 private:
  void check_bound() const;
  void gather(const Node& n, std::vector<Tensor>& in, std::vector<Tensor>& out) const;

  Graph graph_;
  Backend& backend_;
  MemoryPlan plan_;
  Buffer arena_;
  Buffer workspace_;
  std::vector<Tensor> tensors_;  // per value
  std::vector<bool> bound_;
  std::vector<std::unique_ptr<Kernel>> kernels_;  // per node; null for views
  mutable bool views_dirty_ = true;
};

}  // namespace myelin
