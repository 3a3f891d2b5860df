// estimate_training_memory and largest_batch: planned figures against what a real Session
// allocates on the CPU, and the CUDA plan on a machine without a GPU.
#include <gtest/gtest.h>

#include "core/error.h"
#include "train/memory.h"
#include "train/session.h"

using namespace myelin;

namespace {

int64_t aligned(int64_t bytes) {
  return (bytes + 255) / 256 * 256;
}

// What a Session allocated for its persistent tensors, read back by name.
int64_t persistent_bytes(Session& s, const std::vector<std::string>& names) {
  int64_t total = 0;
  for (const std::string& n : names) total += aligned(static_cast<int64_t>(s.read(n).nbytes()));
  return total;
}

// The estimate against a real CPU Session built as the trainer builds it.
void expect_matches_session(const NetworkSpec& spec, int64_t batch, int64_t eval_batch,
                            const std::string& precision) {
  SCOPED_TRACE(spec.name + " batch " + std::to_string(batch) + " " + precision);
  MemoryEstimate m = estimate_training_memory(spec, batch, "cpu", precision, eval_batch);
  SessionOptions so;
  so.device = Device::cpu();
  so.backend.threads = 0;  // all cores, as the estimate plans (the CPU workspace depends on it)
  so.backend.precision = precision;
  so.batch = batch;
  so.eval_batch = eval_batch;
  so.recipe = spec.recipe;
  Session s(spec, so);
  EXPECT_TRUE(m.exact);
  EXPECT_EQ(m.train_arena, static_cast<int64_t>(s.train_program().plan().arena_bytes));
  EXPECT_EQ(m.eval_arena, static_cast<int64_t>(s.eval_program().plan().arena_bytes));
  EXPECT_EQ(m.workspace, static_cast<int64_t>(s.train_program().workspace_bytes() +
                                              s.eval_program().workspace_bytes()));
  int64_t params = persistent_bytes(s, s.param_names()) + persistent_bytes(s, s.state_names());
  EXPECT_EQ(m.parameters, params);
  EXPECT_EQ(m.optimizer_state, persistent_bytes(s, s.slot_names()));
  EXPECT_GT(m.activations, m.train_arena + m.eval_arena);  // plus the input buffers
  EXPECT_EQ(m.total, m.parameters + m.optimizer_state + m.activations + m.workspace);
}

}  // namespace

TEST(TrainingMemory, LenetOnCpuIsWhatTheSessionAllocates) {
  expect_matches_session(load_network("lenet"), 64, 100, "fp32");
}

TEST(TrainingMemory, SolversAccumulationClippingAndLossScaling) {
  NetworkSpec resnet = load_network("resnet");  // batch norm: running statistics are states
  expect_matches_session(resnet, 16, 20, "fp32");
  resnet.recipe.solver = "adam";
  resnet.recipe.accumulate = 2;
  resnet.recipe.clip_grad_norm = 1.0;
  expect_matches_session(resnet, 8, 4, "fp16");  // fp16 adds the loss-scale states
}

// One layer, two parameters: every optimizer slot is added while the parameter's own value is
// still being read (a reference to it once dangled when the graph's values grew).
TEST(TrainingMemory, EverySolverBuildsASingleLayerNetwork) {
  NetworkSpec one = parse_network(
      "name: one\ninput: [1, 28, 28]\nclasses: 10\nlayers:\n  - fc: {name: scores, outputs: "
      "10}\n",
      "one.yaml");
  for (const char* solver : {"sgd", "nesterov", "adam", "adamw", "rmsprop", "adagrad"}) {
    one.recipe.solver = solver;
    expect_matches_session(one, 4, 4, "fp32");
  }
}

TEST(TrainingMemory, OptimizerStateFollowsTheSolver) {
  NetworkSpec lenet = load_network("lenet");
  MemoryEstimate sgd = estimate_training_memory(lenet, 8, "cpu", "fp32", 0);
  lenet.recipe.solver = "adam";
  MemoryEstimate adam = estimate_training_memory(lenet, 8, "cpu", "fp32", 0);
  EXPECT_EQ(sgd.optimizer_state, sgd.parameters);  // momentum: one slot a parameter
  EXPECT_EQ(adam.optimizer_state, 2 * adam.parameters);
  EXPECT_EQ(sgd.gradients, sgd.parameters);  // lenet has no states
  EXPECT_EQ(sgd.eval_arena, 0);
  // 431,080 parameters in 8 tensors, each rounded up to 256 bytes.
  EXPECT_GE(sgd.parameters, 431080 * 4);
  EXPECT_LT(sgd.parameters, 431080 * 4 + 8 * 256);
}

TEST(TrainingMemory, GrowsWithTheBatch) {
  NetworkSpec lenet = load_network("lenet");
  int64_t last = 0;
  for (int64_t batch : {1, 16, 64, 256}) {
    MemoryEstimate m = estimate_training_memory(lenet, batch, "cpu", "fp32");
    EXPECT_GT(m.train_arena, last) << batch;
    last = m.train_arena;
  }
}

TEST(TrainingMemory, CudaIsPlannedWithoutAGpu) {
  NetworkSpec alexnet = load_network("alexnet");
  MemoryEstimate fp32 = estimate_training_memory(alexnet, 32, "cuda", "fp32");
  MemoryEstimate bf16 = estimate_training_memory(alexnet, 32, "cuda", "bf16");
  EXPECT_FALSE(fp32.exact);
  EXPECT_EQ(fp32.parameters, bf16.parameters);  // fp32 master weights either way
  // No batch norm in AlexNet: most activations are stored in 16 bits; the weight gradients
  // (61M fp32 values, most of the arena at this batch) are not.
  EXPECT_EQ(bf16.gradients, fp32.gradients);
  int64_t fp32_rest = fp32.train_arena - fp32.gradients,
          bf16_rest = bf16.train_arena - bf16.gradients;
  EXPECT_LT(bf16_rest, fp32_rest * 6 / 10);
  EXPECT_GT(bf16_rest, fp32_rest * 4 / 10);
  EXPECT_GE(fp32.workspace, 2 * (int64_t{64} << 20));  // two programs, 64 MiB each at least
  EXPECT_GT(estimate_training_memory(alexnet, 64, "cuda", "fp32").total, fp32.total);
}

TEST(TrainingMemory, BadArgumentsAreErrors) {
  NetworkSpec lenet = load_network("lenet");
  EXPECT_THROW(estimate_training_memory(lenet, 8, "cpu", "fp8"), UsageError);
  EXPECT_THROW(estimate_training_memory(lenet, 8, "tpu", "fp32"), Error);
  EXPECT_THROW(estimate_training_memory(lenet, 0, "cpu", "fp32"), UsageError);
}

TEST(LargestBatch, FitsWhileOneMoreDoesNot) {
  NetworkSpec lenet = load_network("lenet");
  const int64_t base = estimate_training_memory(lenet, 1, "cpu", "fp32").total;
  EXPECT_EQ(largest_batch(lenet, "cpu", "fp32", base - 1), 0);
  EXPECT_EQ(largest_batch(lenet, "cpu", "fp32", base), 1);
  int64_t last = 1;
  for (int64_t bytes :
       {base + (int64_t{2} << 20), base + (int64_t{20} << 20), base + (int64_t{100} << 20)}) {
    int64_t b = largest_batch(lenet, "cpu", "fp32", bytes);
    SCOPED_TRACE(std::to_string(bytes) + " bytes: batch " + std::to_string(b));
    EXPECT_GE(b, last);
    EXPECT_LE(estimate_training_memory(lenet, b, "cpu", "fp32").total, bytes);
    EXPECT_GT(estimate_training_memory(lenet, b + 1, "cpu", "fp32").total, bytes);
    last = b;
  }
  EXPECT_GT(last, 64);
}

TEST(LargestBatch, CudaAtEightyGigabytes) {
  NetworkSpec alexnet = load_network("alexnet");
  int64_t bytes = int64_t{80} << 30;
  int64_t fp32 = largest_batch(alexnet, "cuda", "fp32", bytes);
  int64_t bf16 = largest_batch(alexnet, "cuda", "bf16", bytes);
  EXPECT_GT(fp32, 256);
  EXPECT_GT(bf16, fp32);
  EXPECT_LE(estimate_training_memory(alexnet, bf16, "cuda", "bf16").total, bytes);
  EXPECT_GT(estimate_training_memory(alexnet, bf16 + 1, "cuda", "bf16").total, bytes);
}
