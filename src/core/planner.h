// The memory planner: gives every activation an offset in one arena, reusing the space of
// values whose last reader has run. A step then allocates nothing.
#pragma once
#include <cstddef>
#include <vector>

#include "core/graph.h"

namespace myelin {

struct MemoryPlan {
  std::vector<int64_t> offset;  // per value; -1 for values not in the arena
  std::vector<ValueId> alias;   // per value: the value whose memory it shares (itself if none)
  size_t arena_bytes = 0;
  size_t naive_bytes = 0;  // what one buffer per value would take, for reports
};

constexpr size_t kArenaAlignment = 256;  // bytes; enough for AVX-512 and cuDNN

// The elements a value's storage holds: its shape's, except that the blocked layouts round the
// channels up to whole blocks (of 16 or 8; the padding channels hold zeros: every kernel writing
// such a value writes them).
int64_t stored_numel(const Shape& shape, Layout layout);
inline int64_t stored_numel(const Value& v) {
  return stored_numel(v.shape, v.layout);
}

MemoryPlan plan_memory(const Graph& g);

}  // namespace myelin
