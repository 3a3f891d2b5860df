// Dynamic batching for `myelin serve-model`: request threads queue their examples and wait; one
// worker thread per model instance takes the queue's oldest request, waits until it is
// `max_delay` old for more to arrive, and runs everything gathered (up to max_batch examples) as
// one batch. Requests are never split between batches unless they alone exceed max_batch, in
// which case they are queued as max_batch-sized pieces.
#pragma once
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "train/predictor.h"

namespace myelin::server {

class Batcher {
 public:
  // Called after each batch runs, with its size in examples.
  using BatchObserver = std::function<void(int instance, int64_t examples)>;

  Batcher(Predictor& predictor, std::chrono::microseconds max_delay, BatchObserver observe);
  ~Batcher();  // stop()s

  // Runs n examples [n, C, H, W] and writes their probabilities [n, classes]; blocks until
  // done. Throws what running them threw, or ApiError 503 once the batcher is stopping.
  void run(const float* input, int64_t n, float* probabilities);
  // Fails every queued request and ends the workers (the batches running finish first).
  void stop();

 private:
  struct Piece;
  void work(int instance);
  bool gather(std::vector<Piece*>& batch);
  void execute(int instance, const std::vector<Piece*>& batch, std::vector<float>& in,
               std::vector<float>& out);

  Predictor& predictor_;
  std::chrono::microseconds max_delay_;
  BatchObserver observe_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Piece*> queue_;
  bool gathering_ = false;  // one worker gathers at a time; the others wait their turn
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace myelin::server
