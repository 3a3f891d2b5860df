// Floating-point operations of a node (multiply-adds count two), for FLOP/s reports.
#pragma once
#include "core/graph.h"

namespace myelin {

double node_flops(const Graph& g, const Node& n);

}  // namespace myelin
