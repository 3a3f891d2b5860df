// Reverse-mode automatic differentiation over the graph IR: appends the backward nodes that
// compute d(loss)/d(param) from each op's gradient rule.
#pragma once
#include <map>
#include <vector>

#include "core/graph.h"

namespace myelin {

// Returns, for each of `wrt` that the loss depends on, the value holding its gradient. The
// gradients are kept (they survive the step for the optimizer).
std::map<ValueId, ValueId> differentiate(Graph& g, ValueId loss, const std::vector<ValueId>& wrt);

// The general form: `seeds` pairs a value with the value holding its incoming gradient (same
// shape), e.g. an input fed with random data to test an op's vector-Jacobian product.
std::map<ValueId, ValueId> differentiate(Graph& g,
                                         const std::vector<std::pair<ValueId, ValueId>>& seeds,
                                         const std::vector<ValueId>& wrt);

}  // namespace myelin
