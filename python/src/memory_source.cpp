#include "memory_source.h"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <random>

namespace myelin::python {

MemoryBatchSource::MemoryBatchSource(const float* examples, const int32_t* labels, int64_t count,
                                     Dims example, int64_t batch, bool training, uint64_t seed)
    : examples_(examples),
      labels_(labels),
      count_(count),
      example_size_(Shape(example).numel()),
      batch_(batch),
      example_(std::move(example)),
      training_(training),
      seed_(seed),
      order_(static_cast<size_t>(count)) {}

void MemoryBatchSource::start_epoch(int64_t epoch, int64_t skip_batches) {
  std::iota(order_.begin(), order_.end(), 0);
  if (training_) {
    // One generator per epoch, so a resumed run draws the same order as an unbroken one.
    std::seed_seq seq{seed_, static_cast<uint64_t>(epoch), uint64_t{0x6d79656c696e}};
    std::mt19937_64 rng(seq);
    std::shuffle(order_.begin(), order_.end(), rng);
  }
  epoch_ = epoch;
  next_batch_ = skip_batches;
  started_ = true;
}

bool MemoryBatchSource::next(Batch& out) {
  if (!started_) start_epoch(0);
  if (next_batch_ >= batches_per_epoch()) return false;
  const Shape shape = batch_shape();
  if (out.images.shape() != shape || out.images.dtype() != DType::f32)
    out.images = Tensor::empty(shape);
  if (out.labels.shape() != Shape{batch_}) out.labels = Tensor::empty(Shape{batch_}, DType::i32);
  const int64_t first = next_batch_ * batch_;
  const int64_t rows = std::min(batch_, count_ - first);
  float* images = out.images.f32();
  int32_t* labels = out.labels.data_as<int32_t>();
  const auto row_bytes = sizeof(float) * static_cast<size_t>(example_size_);
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t i = order_[static_cast<size_t>(first + r)];
    std::memcpy(images + r * example_size_, examples_ + i * example_size_, row_bytes);
    labels[r] = labels_[i];
  }
  std::fill(images + rows * example_size_, images + batch_ * example_size_, 0.0f);
  std::fill(labels + rows, labels + batch_, 0);
  out.count = rows;
  out.epoch = epoch_;
  out.index = next_batch_++;
  return true;
}

int64_t MemoryBatchSource::batches_per_epoch() const {
  return training_ ? count_ / batch_ : (count_ + batch_ - 1) / batch_;
}

Shape MemoryBatchSource::batch_shape() const {
  Dims d{batch_};
  d.insert(d.end(), example_.begin(), example_.end());
  return Shape(d);
}

}  // namespace myelin::python
