// Learning-rate policies, as Caffe defines them (iter counts optimizer updates from 0):
//   fixed      lr
//   step       lr * gamma ^ floor(iter / step_size)
//   multistep  lr * gamma ^ (number of milestones <= iter)
//   exp        lr * gamma ^ iter
//   inv        lr * (1 + gamma * iter) ^ -power
//   poly       lr * (1 - iter / max_iter) ^ power
//   cosine     lr * (1 + cos(pi * iter / max_iter)) / 2, from lr down to 0 at max_iter
// With warmup_iters > 0 the policy's rate is scaled by (iter + 1) / warmup_iters while
// iter < warmup_iters: a linear ramp whose first update already moves the weights.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/network.h"

namespace myelin {

const std::vector<std::string>& lr_policies();

// Throws UsageError naming the field when the recipe's policy cannot be evaluated (unknown
// policy, step without step_size, unsorted milestones, poly/cosine without max_iter, ...).
void check_schedule(const Recipe& r, int64_t max_iter);

// The learning rate of update `iter` (0-based) of a run of `max_iter` updates.
double lr_at(const Recipe& r, int64_t iter, int64_t max_iter);

}  // namespace myelin
