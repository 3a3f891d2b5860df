// Loader threads: read examples, apply transforms, assemble float batches, prefetch ahead of the
// trainer. Deterministic: the same seed gives the same batches in the same order.
#pragma once
#include <memory>
#include <vector>

#include "data/dataset.h"

namespace myelin {

struct Transforms {
  double scale = 1.0 / 255;                        // pixel * scale after mean subtraction
  std::vector<float> mean;                         // per channel (pixel units), or empty
  std::shared_ptr<std::vector<float>> mean_image;  // C*H*W (pixel units), or null
  int crop = 0;         // random crop to crop x crop in training, center crop in test
  int pad = 0;          // zero-pad each side before a random crop
  bool mirror = false;  // random horizontal flip (training only)
  int cutout = 0;       // zero a random cutout x cutout square (training only)
};

struct LoaderOptions {
  int64_t batch = 64;
  bool shuffle = true;
  bool training = true;   // random crop/mirror only when training
  bool drop_last = true;  // a partial last batch is dropped (graph shapes are static)
  uint64_t seed = 1;
  int threads = 2;
  int prefetch = 4;  // batches ready ahead
  // Data parallelism: `world` ranks read one epoch order together. Global batch b holds examples
  // [b * batch * world, (b + 1) * batch * world) of it, and this rank gets the rank-th `batch`
  // of them, so the ranks together see what one process with batch * world would.
  int rank = 0, world = 1;
  Transforms transforms;
};

// One batch. Images: `images` [B, C, H', W'] f32 and `labels` [B] i32. Text: `images` holds the
// tokens, i32 [B, T], and `labels` their next tokens, i32 [B, T].
struct Batch {
  Tensor images;                 // [B, C, H', W'] f32, or text tokens [B, T] i32
  Tensor labels;                 // [B] i32, or text next tokens [B, T] i32
  int64_t count = 0;             // real examples (== B unless drop_last is false)
  int64_t epoch = 0, index = 0;  // which batch of which epoch
};

// Where the trainer's batches come from: images (Loader) or text (TextLoader).
class BatchSource {
 public:
  virtual ~BatchSource() = default;
  virtual void start_epoch(int64_t epoch, int64_t skip_batches = 0) = 0;
  virtual bool next(Batch& out) = 0;
  virtual int64_t batches_per_epoch() const = 0;
  virtual Shape batch_shape() const = 0;
};

class Loader : public BatchSource {
 public:
  Loader(std::shared_ptr<Dataset> data, LoaderOptions opts);
  ~Loader() override;
  // Starts the epoch `epoch` (the shuffle order depends on seed and epoch), skipping the first
  // `skip_batches` (for resuming mid-epoch).
  void start_epoch(int64_t epoch, int64_t skip_batches = 0) override;
  // The next batch of the epoch; false at its end. Batches are copied into `out`'s tensors,
  // which are allocated only when they are missing or of another shape: pass the same Batch
  // each step and no memory is allocated per batch. A Tensor copy shares memory, so copy the
  // data of a batch you keep across calls. The first call without start_epoch() starts epoch
  // 0. Rethrows the DataError of an example that failed to read (the epoch then goes on).
  // Rows past `count` in a short last batch are zeros with label 0.
  bool next(Batch& out) override;
  // Global batches (each rank gets its share of every one).
  int64_t batches_per_epoch() const override;
  Shape batch_shape() const override;  // [B, C, H', W'] after crop

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace myelin
