// How much memory training a network takes, planned without allocating it: the same graph as
// Session builds (forward, autodiff, optimizer update), rewritten the way the device's engine
// rewrites it (fused ReLUs, 16-bit storage), and laid out by the same memory planner. So the
// server can say whether a job fits a device, and the largest batch that does, on a machine
// without that device.
//
// What is exact and what is not:
// - cpu: exact for the buffers Session and its Programs allocate (parameters, states, optimizer
//   slots, the step's input block, each program's arena and kernel workspace): the CPU engine's
//   own rewrites run, and its kernels are made (not run) to read their workspace, for all the
//   machine's cores (--threads 0; fewer threads need less workspace). Not counted:
//   oneDNN's and OpenBLAS's internal caches, the loader's batches, the process itself.
// - cuda: the arena follows the CUDA engine's rules: its fusions (fuse_for_cuda, ops/fuse.h, the
//   engine's own), and its 16-bit storage under bf16/fp16 (activations in 2 bytes where the
//   engine's kernels take that, batch norm's included; LRN's 16-bit size limits not modelled),
//   restated here because a build without the CUDA engine estimates too. A CUDA build's
//   cuda_engine_test checks the estimate against the engine's own planning. The workspace is an
//   allowance, not a measurement: cuDNN picks each convolution's algorithm on the GPU within
//   2 GiB; we allow, for the largest convolution of the step, its input, weights and output at 4
//   bytes each (the engine's staging copies) and as much again for the algorithm, at least 64 MiB
//   and at most 2 GiB. Not counted: the CUDA context and library
//   handles (a few hundred MiB per process), the allocator's rounding.
// Precisions fp32 and tf32 store everything in 4 bytes; the CPU engine computes in fp32 whatever
// the precision. Parameters, their gradients and optimizer state are fp32 everywhere.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "model/network.h"

namespace myelin {

// Bytes. total = parameters + optimizer_state + activations + workspace.
struct MemoryEstimate {
  int64_t parameters = 0;       // parameters and states (batch-norm statistics, loss scale)
  int64_t optimizer_state = 0;  // the solver's slots per parameter, gradient accumulators
  int64_t activations = 0;      // the arenas (activations and gradients) and step input buffers
  int64_t workspace = 0;        // kernel scratch (cpu: exact; cuda: an allowance, see above)
  int64_t total = 0;
  // Parts of the above, for reports and tests.
  int64_t train_arena = 0;  // the training program's arena (Program::plan().arena_bytes)
  int64_t eval_arena = 0;   // the evaluation program's (0 without one)
  int64_t gradients = 0;    // parameter gradients (inside train_arena)
  bool exact = false;       // true where the figure is the engine's own (cpu)
  nlohmann::json to_json() const;
};

// Training `spec` at `batch` on `device` ("cpu", "cuda", "cuda:N") in `precision` (fp32, tf32,
// bf16, fp16), with spec.recipe's solver (momentum solvers keep 1 slot a parameter, adam 2),
// accumulation, clipping and label smoothing. The trainer also builds an evaluation program, at
// its --eval-batch (100 by default); eval_batch 0 leaves it out. Throws what build_network throws
// for a network that does not build, and Error for an unknown device or solver.
MemoryEstimate estimate_training_memory(const NetworkSpec& spec, int64_t batch,
                                        const std::string& device, const std::string& precision,
                                        int64_t eval_batch = 100);

// The largest batch whose estimate fits in `available_bytes` (binary search over batch sizes up
// to the largest the graph allows), or 0 when batch 1 does not fit. The evaluation program is
// counted at eval_batch whatever the training batch.
int64_t largest_batch(const NetworkSpec& spec, const std::string& device,
                      const std::string& precision, int64_t available_bytes,
                      int64_t eval_batch = 100);

}  // namespace myelin
