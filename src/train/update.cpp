#include "train/update.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <string>

#include "core/op_registry.h"
#include "ops/params.h"

namespace myelin {

namespace {

bool overlap_enabled() {
  const char* e = std::getenv("MYELIN_OVERLAP_UPDATE");
  return !(e && std::strcmp(e, "0") == 0);
}

// optimizer_update(hp, p..., g..., slots... [, norm_sq]) over ps.
void add_optimizer(Graph& g, const Recipe& r, ValueId hp, const std::vector<ValueId>& ps,
                   const std::vector<ValueId>& gs, ValueId norm_sq, bool zero_grads, bool async) {
  const int slots = optimizer_slots(r.solver);
  std::vector<ValueId> inputs{hp};
  inputs.insert(inputs.end(), ps.begin(), ps.end());
  inputs.insert(inputs.end(), gs.begin(), gs.end());
  std::vector<double> lr_mult, decay_mult;
  for (ValueId p : ps) {
    const Value& v = g.value(p);
    lr_mult.push_back(v.lr_mult);
    decay_mult.push_back(v.decay_mult);
    for (int s = 0; s < slots; ++s)
      inputs.push_back(g.state(v.name + ".opt" + std::to_string(s), v.shape, Init{}));
  }
  if (norm_sq != kNoValue) inputs.push_back(norm_sq);
  Attrs a{{"solver", r.solver},       {"count", static_cast<int64_t>(ps.size())},
          {"lr_mult", lr_mult},       {"decay_mult", decay_mult},
          {"clip", r.clip_grad_norm}, {"zero_grads", int64_t{zero_grads ? 1 : 0}}};
  if (async) a.set("async", int64_t{1});
  g.add("optimizer_update", "update", inputs, a);
}

}  // namespace

std::vector<bool> early_parameters(const Graph& g, const std::vector<ValueId>& ps,
                                   const std::vector<ValueId>& gs) {
  // ready[i]: the last node that reads parameter i or writes its gradient.
  std::vector<int> ready(ps.size(), -1);
  for (int n = 0; n < static_cast<int>(g.nodes().size()); ++n)
    for (const auto* list : {&g.nodes()[n].inputs, &g.nodes()[n].outputs})
      for (ValueId v : *list)
        for (size_t i = 0; i < ps.size(); ++i)
          if (v == ps[i] || v == gs[i]) ready[i] = n;
  std::vector<size_t> order(ps.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return ready[a] < ready[b]; });
  int64_t total = 0, sum = 0;
  for (ValueId p : ps) total += g.value(p).shape.numel();
  std::vector<bool> early(ps.size(), false);
  for (size_t k = 0; k < order.size(); ++k) {
    early[order[k]] = true;
    sum += g.value(ps[order[k]]).shape.numel();
    const bool group_ends = k + 1 == order.size() || ready[order[k + 1]] != ready[order[k]];
    if (2 * sum >= total && group_ends) {
      if (k + 1 == order.size()) break;  // everything: nothing to overlap
      return early;
    }
  }
  return std::vector<bool>(ps.size(), false);
}

std::vector<ValueId> append_accumulation(Graph& g, const std::vector<ValueId>& ps,
                                         const std::vector<ValueId>& gs) {
  std::vector<ValueId> acc;
  for (size_t i = 0; i < ps.size(); ++i) {
    acc.push_back(g.state(g.value(ps[i]).name + ".acc", g.value(ps[i]).shape, Init{}));
    g.add("accumulate_grad", "update", {acc.back(), gs[i]});
  }
  return acc;
}

void append_optimizer(Graph& g, const Recipe& r, const std::vector<ValueId>& ps,
                      const std::vector<ValueId>& gs, bool zero_grads) {
  const ValueId hp = g.input("solver.hp", Shape{8});
  if (r.clip_grad_norm > 0) {
    add_optimizer(g, r, hp, ps, gs, g.add1("global_norm_sq", "update", gs), zero_grads, false);
    return;
  }
  std::vector<bool> early(ps.size(), false);
  if (!zero_grads && overlap_enabled()) early = early_parameters(g, ps, gs);
  for (bool first : {true, false}) {
    std::vector<ValueId> p, d;
    for (size_t i = 0; i < ps.size(); ++i)
      if (early[i] == first) p.push_back(ps[i]), d.push_back(gs[i]);
    if (!p.empty()) add_optimizer(g, r, hp, p, d, kNoValue, zero_grads, first);
  }
}

}  // namespace myelin
