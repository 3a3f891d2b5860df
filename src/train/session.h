// A Session is a network compiled for one device: parameters and states in device memory,
// initialised from their Init with a seed; a training Program (forward, backward, optimizer
// update) and an evaluation Program (inference mode) that share them. The trainer, `myelin
// time`, `test` and `classify` all drive networks through it.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/executor.h"
#include "data/loader.h"
#include "model/network.h"

namespace myelin {

namespace dist {
class Communicator;
}

struct SessionOptions {
  Device device;
  BackendOptions backend;
  int64_t batch = 64;
  int64_t eval_batch = 0;  // 0: same as batch
  uint64_t seed = 1;
  bool train = true;  // build the training program
  bool eval = true;   // build the evaluation program
  bool graph = true;  // step(): capture the whole step as a device graph where supported
  Recipe recipe;      // solver, clipping, accumulation, label smoothing
  // Dynamic loss scaling's initial scale (0: off). By default 65536 under --precision fp16, where
  // 16-bit gradients would underflow, and off otherwise. The scale is the state "loss_scale",
  // saved with checkpoints; a step whose gradients overflow is skipped and halves it.
  double loss_scale = -1;
};

struct StepStats {
  float loss = 0, top1 = 0, top5 = 0;
};

// The eight numbers the optimizer_update op reads each step (see ops/optimizer.cpp).
struct Hyper {
  float lr = 0.01f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 0;
  float t = 1, grad_scale = 1;
  static Hyper from(const Recipe& r, double lr, int64_t step);
};

// The loss scale a run starts from when SessionOptions::loss_scale is left at -1: 65536 under
// fp16, where 16-bit gradients would underflow, and 0 (off) otherwise.
double default_loss_scale(const std::string& precision);

// The graph a Session's training program compiles: forward, backward (seeded with the loss scale
// when initial_scale > 0), gradient accumulation when recipe.accumulate > 1, clipping and the
// optimizer update. The memory estimate (train/memory.h) plans the same graph.
struct TrainingGraph {
  BuiltNetwork net;
  std::vector<ValueId> grads;         // the parameters' gradients, as differentiate returned them
  std::vector<ValueId> update_grads;  // what the update reads: `grads`, or their accumulators
  int backward_end = 0;  // nodes of the forward and backward passes (accumulation included)
};
TrainingGraph build_training_graph(const NetworkSpec& spec, const Recipe& recipe, int64_t batch,
                                   double initial_scale);

class Session {
 public:
  Session(const NetworkSpec& spec, const SessionOptions& opts);
  ~Session();

  Backend& backend() { return *backend_; }
  const NetworkSpec& spec() const { return spec_; }
  const SessionOptions& options() const { return opts_; }
  Program& train_program();
  Program& eval_program();
  // Builds the evaluation program for batches of `batch` (for a session made with eval = false,
  // once the batch is known: the trainer builds the training program while its data loads).
  void add_eval(int64_t batch);
  const BuiltNetwork& train_net() const { return train_net_; }
  const BuiltNetwork& eval_net() const { return eval_net_; }

  // Training program node ranges: [0, forward_end) forward, [forward_end, backward_end)
  // backward (and gradient accumulation), [backward_end, nodes) the optimizer update.
  int forward_end() const { return forward_end_; }
  int backward_end() const { return backward_end_; }

  // Data parallelism: from now on the gradients are summed over the communicator's ranks before
  // each update (and averaged through the update's grad_scale), and every parameter, state and
  // solver slot is made rank 0's. Null: this process alone.
  void set_communicator(dist::Communicator* comm);
  dist::Communicator* communicator() const { return comm_; }
  // The tensors all-reduced each step, and their total size in bytes.
  const std::vector<Tensor>& reduced_grads() const { return reduced_; }

  // Copies a host batch into the training program's inputs.
  void feed(const Batch& b);
  // Zeroes the states recurrent layers carry from batch to batch (layers with carry_state): at
  // the start of each epoch, and of each pass over the test set.
  void reset_carried_states();
  // A state carried from batch to batch (named LAYER.carry.*): saved in checkpoints, so a resumed
  // run goes on exactly, but not a trained weight: loading weights leaves it zero.
  static bool is_carried_state(const std::string& name) {
    return name.find(".carry.") != std::string::npos;
  }
  // Forward and backward on the fed batch (gradients accumulate when recipe.accumulate > 1).
  void forward_backward(uint64_t step);
  // Applies the optimizer update with these hyper-parameters.
  void update(const Hyper& h, uint64_t step);
  // The loss and accuracies of the last forward pass (copies three scalars to the host).
  StepStats last_stats();
  // One whole training step on the fed batch: forward, backward and the optimizer update (needs
  // recipe.accumulate == 1). Where the backend has graphs (CUDA) the first step runs eagerly, the
  // second is captured as one graph, and every later step replays it; the fed batch travels
  // through page-locked memory on a copy stream while the previous step runs. Does not wait for
  // the device: read the step's loss and accuracies with step_stats().
  void step(const Hyper& h, uint64_t step);
  // The loss and accuracies of the step `back` step() calls before the last (0: the last one,
  // which waits for it to finish; 1: the one before, which leaves the last one queued).
  StepStats step_stats(int back = 0);
  int64_t steps() const { return steps_; }            // step() calls so far
  bool pipelined() const { return io_ != nullptr; }   // step() returns before the device is done
  bool graph_replay() const { return graph_ready_; }  // step() replays a captured graph

  // Evaluates one batch in inference mode; optionally copies out the logits [B, classes].
  StepStats evaluate(const Batch& b, Tensor* logits_host = nullptr);

  // Persistent tensors by name: parameters ("conv1.weight"), states ("bn1.running_mean") and
  // solver slots ("conv1.weight.opt0"). Host copies, for checkpoints.
  std::vector<std::string> param_names() const;
  std::vector<std::string> state_names() const;             // batch-norm statistics
  std::vector<std::string> slot_names() const;              // optimizer states
  Tensor read(const std::string& name);                     // host copy
  void write(const std::string& name, const Tensor& host);  // checks shape
  bool has(const std::string& name) const { return persistent_.count(name) != 0; }

 private:
  struct Persistent {
    Tensor device;  // a slice of one of the buffers below
  };
  void build_train(int64_t batch);
  void build_eval(int64_t batch);
  void allocate_persistent(const Graph& g);
  void init_persistent(const Graph& g);
  void bind_persistent(Program& p);
  Tensor device_tensor(Shape s, DType t, std::vector<Buffer>& owner);

  NetworkSpec spec_;
  SessionOptions opts_;
  std::unique_ptr<Backend> backend_;
  BuiltNetwork train_net_, eval_net_;
  std::unique_ptr<Program> train_, eval_;
  std::map<std::string, Persistent> persistent_;
  std::vector<std::string> params_, states_, slots_;
  std::vector<Buffer> buffers_;
  void upload_pending();
  void run_step(const StepContext& ctx);  // forward, backward, all-reduce, update
  void forward_backward_reduce(const StepContext& ctx);
  void make_buckets();
  float hp_grad_scale(const Hyper& h) const;

  Tensor hp_, train_data_, train_label_, eval_data_, eval_label_;
  int forward_end_ = 0, backward_end_ = 0;
  bool accumulating_ = false;
  // step(): images, labels and hyper-parameters form one device block (train_data_, train_label_,
  // hp_ are slices of it) that io_ fills with one copy per step.
  std::unique_ptr<StepIO> io_;
  size_t labels_offset_ = 0, hp_offset_ = 0;
  const char* last_slot_ = nullptr;  // host slot of the last upload
  bool pending_upload_ = false;      // fed into io_'s slot, not uploaded yet
  bool graph_ready_ = false;
  int64_t steps_ = 0;
  StepStats host_stats_[2];  // backends without io_: the last two steps' stats
  std::vector<ValueId> update_grads_;
  dist::Communicator* comm_ = nullptr;
  std::vector<Tensor> reduced_;  // the gradients the communicator sums, in the program's storage
  // Gradients summed in buckets of about kBucketBytes, each started as soon as the backward node
  // that finishes its last gradient is queued, so the sums overlap the rest of the backward pass.
  struct Bucket {
    int after_node = 0;
    std::vector<Tensor> grads;
  };
  std::vector<Bucket> buckets_;
  static constexpr size_t kBucketBytes = size_t{25} << 20;
};

// Fills a host tensor from an Init (xavier/msra use fan-in = numel / shape[0]); deterministic in
// (seed, name).
void init_tensor(Tensor& host, const Init& init, uint64_t seed, const std::string& name);

}  // namespace myelin
