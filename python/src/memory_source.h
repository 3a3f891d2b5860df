// Batches from examples held in memory (the Python module's numpy arrays): float32 examples
// [N, ...] and int32 labels [N], read in place. Training sources shuffle each epoch with a
// permutation drawn from (seed, epoch), so a seed gives the same batches in the same order, and
// drop a short last batch; test sources keep the order and pad the last batch with zeros.
#pragma once
#include <cstdint>
#include <vector>

#include "data/loader.h"

namespace myelin::python {

class MemoryBatchSource : public BatchSource {
 public:
  // The memory must stay valid and unchanged while the source is used.
  MemoryBatchSource(const float* examples, const int32_t* labels, int64_t count, Dims example,
                    int64_t batch, bool training, uint64_t seed);
  void start_epoch(int64_t epoch, int64_t skip_batches = 0) override;
  bool next(Batch& out) override;
  int64_t batches_per_epoch() const override;
  Shape batch_shape() const override;

 private:
  const float* examples_;
  const int32_t* labels_;
  int64_t count_, example_size_, batch_;
  Dims example_;
  bool training_;
  uint64_t seed_;
  std::vector<int64_t> order_;
  int64_t epoch_ = 0, next_batch_ = 0;
  bool started_ = false;
};

}  // namespace myelin::python
