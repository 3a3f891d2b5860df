#include "server/model_batcher.h"

#include <algorithm>
#include <cstring>
#include <future>

#include "server/api.h"

namespace myelin::server {

using Clock = std::chrono::steady_clock;

// Up to max_batch examples of one request, queued until a worker runs them.
struct Batcher::Piece {
  const float* input = nullptr;
  int64_t n = 0;
  float* probabilities = nullptr;
  Clock::time_point arrived;
  std::promise<void> done;
};

Batcher::Batcher(Predictor& predictor, std::chrono::microseconds max_delay, BatchObserver observe)
    : predictor_(predictor), max_delay_(max_delay), observe_(std::move(observe)) {
  for (int i = 0; i < predictor_.instances(); ++i) workers_.emplace_back([this, i] { work(i); });
}

Batcher::~Batcher() {
  stop();
}

void Batcher::run(const float* input, int64_t n, float* probabilities) {
  const int64_t step = predictor_.max_batch();
  std::vector<Piece> pieces(static_cast<size_t>((n + step - 1) / step));
  std::vector<std::future<void>> waits;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) throw ApiError(503, "the server is stopping");
    Clock::time_point now = Clock::now();
    for (size_t i = 0; i < pieces.size(); ++i) {
      int64_t first = static_cast<int64_t>(i) * step;
      Piece& p = pieces[i];
      p.input = input + first * predictor_.example_size();
      p.n = std::min(step, n - first);
      p.probabilities = probabilities + first * predictor_.classes();
      p.arrived = now;
      waits.push_back(p.done.get_future());
      queue_.push_back(&p);
    }
  }
  changed_.notify_all();
  for (std::future<void>& w : waits) w.wait();  // every piece, even after one failed
  for (std::future<void>& w : waits) w.get();   // rethrows the first failure
}

void Batcher::stop() {
  std::deque<Piece*> orphans;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_ && workers_.empty()) return;
    stopping_ = true;
    orphans.swap(queue_);
  }
  changed_.notify_all();
  for (Piece* p : orphans)
    p->done.set_exception(std::make_exception_ptr(ApiError(503, "the server is stopping")));
  for (std::thread& t : workers_) t.join();
  workers_.clear();
}

void Batcher::work(int instance) {
  std::vector<Piece*> batch;
  std::vector<float> in, out;
  while (gather(batch)) execute(instance, batch, in, out);
}

// Takes the oldest piece and, until it has waited max_delay or the batch is full, every piece
// that still fits. False once stopping.
bool Batcher::gather(std::vector<Piece*>& batch) {
  batch.clear();
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [&] { return stopping_ || (!gathering_ && !queue_.empty()); });
  if (stopping_) return false;
  gathering_ = true;
  const Clock::time_point deadline = queue_.front()->arrived + max_delay_;
  const int64_t limit = predictor_.max_batch();
  int64_t examples = 0;
  for (;;) {
    while (!queue_.empty() && examples + queue_.front()->n <= limit) {
      examples += queue_.front()->n;
      batch.push_back(queue_.front());
      queue_.pop_front();
    }
    bool full = examples == limit || !queue_.empty();  // the next piece does not fit
    if (full || stopping_ || Clock::now() >= deadline) break;
    changed_.wait_until(lock, deadline);
  }
  gathering_ = false;
  lock.unlock();
  changed_.notify_all();  // the next gatherer may start
  return true;
}

void Batcher::execute(int instance, const std::vector<Piece*>& batch, std::vector<float>& in,
                      std::vector<float>& out) {
  const int64_t example = predictor_.example_size(), classes = predictor_.classes();
  int64_t n = 0;
  for (const Piece* p : batch) n += p->n;
  in.resize(static_cast<size_t>(n * example));
  out.resize(static_cast<size_t>(n * classes));
  int64_t row = 0;
  for (const Piece* p : batch) {
    std::memcpy(in.data() + row * example, p->input, sizeof(float) * p->n * example);
    row += p->n;
  }
  try {
    predictor_.run(instance, in.data(), n, out.data());
  } catch (...) {
    for (Piece* p : batch) p->done.set_exception(std::current_exception());
    return;
  }
  if (observe_) observe_(instance, n);
  row = 0;
  for (Piece* p : batch) {
    std::memcpy(p->probabilities, out.data() + row * classes, sizeof(float) * p->n * classes);
    row += p->n;
    p->done.set_value();
  }
}

}  // namespace myelin::server
