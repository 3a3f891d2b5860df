#include "core/planner.h"

#include <algorithm>

#include "core/op_registry.h"

namespace myelin {

namespace {

size_t aligned(size_t bytes) {
  return (bytes + kArenaAlignment - 1) / kArenaAlignment * kArenaAlignment;
}

struct Interval {
  ValueId value;
  int first, last;  // node indices: written at `first`, last read at `last`
  size_t bytes;
};

// Views share their source's memory; follow chains to the owner.
std::vector<ValueId> resolve_aliases(const Graph& g) {
  std::vector<ValueId> alias(g.values().size());
  for (size_t v = 0; v < alias.size(); ++v) alias[v] = static_cast<ValueId>(v);
  for (const Node& n : g.nodes())
    if (op_def(n.op).is_view) alias[n.outputs[0]] = alias[n.inputs[0]];
  return alias;
}

std::vector<Interval> lifetimes(const Graph& g, const std::vector<ValueId>& alias) {
  int end = static_cast<int>(g.nodes().size());
  std::vector<Interval> iv(g.values().size(), Interval{0, end, -1, 0});
  for (size_t i = 0; i < g.nodes().size(); ++i) {
    const Node& n = g.nodes()[i];
    int at = static_cast<int>(i);
    for (ValueId v : n.outputs) iv[alias[v]].first = std::min(iv[alias[v]].first, at);
    for (ValueId v : n.inputs) iv[alias[v]].last = std::max(iv[alias[v]].last, at);
    for (ValueId v : n.outputs) iv[alias[v]].last = std::max(iv[alias[v]].last, at);
  }
  for (ValueId v : g.kept()) iv[alias[v]].last = end;
  std::vector<Interval> out;
  for (size_t v = 0; v < iv.size(); ++v) {
    const Value& val = g.value(static_cast<ValueId>(v));
    if (alias[v] != static_cast<ValueId>(v) || val.kind != ValueKind::activation) continue;
    if (iv[v].first == end) continue;  // no node writes it any more (fused away: Backend::fuse)
    out.push_back({static_cast<ValueId>(v), iv[v].first, iv[v].last,
                   aligned(static_cast<size_t>(stored_numel(val)) * dtype_size(val.dtype))});
  }
  return out;
}

}  // namespace

int64_t stored_numel(const Shape& shape, Layout layout) {
  if (layout != Layout::nchw16c && layout != Layout::nchw8c) return shape.numel();
  const int64_t block = layout == Layout::nchw16c ? 16 : 8;
  const int64_t channels = shape[1], padded = (channels + block - 1) / block * block;
  return channels == 0 ? 0 : shape.numel() / channels * padded;
}

// Greedy by size: the largest buffers are placed first at the lowest offset that does not
// overlap any already-placed buffer alive at the same time.
MemoryPlan plan_memory(const Graph& g) {
  MemoryPlan plan;
  plan.alias = resolve_aliases(g);
  plan.offset.assign(g.values().size(), -1);
  std::vector<Interval> iv = lifetimes(g, plan.alias);
  std::stable_sort(iv.begin(), iv.end(),
                   [](const Interval& a, const Interval& b) { return a.bytes > b.bytes; });
  std::vector<Interval> placed;
  for (const Interval& cur : iv) {
    plan.naive_bytes += cur.bytes;
    std::vector<std::pair<size_t, size_t>> busy;  // [begin, end) of overlapping buffers
    for (const Interval& p : placed)
      if (p.first <= cur.last && cur.first <= p.last)
        busy.push_back({static_cast<size_t>(plan.offset[p.value]),
                        static_cast<size_t>(plan.offset[p.value]) + p.bytes});
    std::sort(busy.begin(), busy.end());
    size_t offset = 0;
    for (auto [b, e] : busy) {
      if (offset + cur.bytes <= b) break;
      offset = std::max(offset, e);
    }
    plan.offset[cur.value] = static_cast<int64_t>(offset);
    plan.arena_bytes = std::max(plan.arena_bytes, offset + cur.bytes);
    placed.push_back(cur);
  }
  for (size_t v = 0; v < plan.offset.size(); ++v)
    if (plan.alias[v] != static_cast<ValueId>(v)) plan.offset[v] = plan.offset[plan.alias[v]];
  return plan;
}

}  // namespace myelin
