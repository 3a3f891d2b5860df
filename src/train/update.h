// The optimizer update at the end of a training graph: gradient accumulation (optional), clipping
// by the global norm (optional) and optimizer_update over every parameter.
//
// Without clipping or accumulation the update is split in two launches where that lets most of it
// overlap the backward pass: the parameters that are ready first (their gradients final and no
// node left to read them, in node order) and hold at least half of the parameter bytes form an
// "early" group, updated by a node marked async (Program runs it beside the rest of the backward
// pass: on the CUDA engine, a second stream of the step's graph). In AlexNet that is fc6-fc8, 96%
// of the parameters, beside the convolutions' gradients. MYELIN_OVERLAP_UPDATE=0 keeps one launch.
#pragma once
#include <vector>

#include "core/graph.h"
#include "model/network.h"

namespace myelin {

// Gradient accumulation: each gradient is added into a ".acc" state of its parameter; returns
// those states, which stand for the gradients from then on.
std::vector<ValueId> append_accumulation(Graph& g, const std::vector<ValueId>& ps,
                                         const std::vector<ValueId>& gs);

// Clipping (when the recipe asks) and the optimizer update of parameters ps, whose gradients are
// gs (zeroed by the update when zero_grads, as accumulated ones are).
void append_optimizer(Graph& g, const Recipe& r, const std::vector<ValueId>& ps,
                      const std::vector<ValueId>& gs, bool zero_grads);

// The early group (see above) as a flag per parameter; all false where no split pays.
std::vector<bool> early_parameters(const Graph& g, const std::vector<ValueId>& ps,
                                   const std::vector<ValueId>& gs);

}  // namespace myelin
