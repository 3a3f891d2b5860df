// Loader: worker threads claim batch numbers in order and fill ring slots; next() hands them out
// in order. Which examples form batch b, and how each is cropped and flipped, depend only on
// (seed, epoch, example index), never on which thread got there first.
#include "data/loader.h"

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "data/batch_transform.h"
#include "data/io.h"

namespace myelin {

using namespace data;

namespace {

struct Slot {
  Tensor images, labels;
  int64_t batch = -1, count = 0;
  bool ready = false;
  std::exception_ptr error;
};

}  // namespace

struct Loader::Impl {
  std::shared_ptr<Dataset> data;
  LoaderOptions opts;
  int64_t n = 0;
  BatchTransform transform;

  std::mutex mu;
  std::condition_variable work_cv, ready_cv;
  std::vector<Slot> slots;
  std::vector<int64_t> order;
  int64_t epoch = 0, nbatches = 0, next_claim = 0, next_consume = 0;
  uint64_t generation = 0;
  int busy = 0;
  bool started = false, ever_started = false, stopping = false;
  std::vector<std::thread> workers;

  int64_t batches() const {
    const int64_t global = opts.batch * opts.world;
    return opts.drop_last ? n / global : (n + global - 1) / global;
  }
  bool can_claim() const {
    return started && next_claim < nbatches &&
           next_claim < next_consume + static_cast<int64_t>(slots.size());
  }
  std::vector<int64_t> make_order(int64_t e) const {
    std::vector<int64_t> o(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) o[static_cast<size_t>(i)] = i;
    if (opts.shuffle) {
      Rng rng(hash3(opts.seed, static_cast<uint64_t>(e), 0x5a0ff1e));
      shuffle(o, rng);
    }
    return o;
  }
  int64_t fill(Slot& s, int64_t b, int64_t e, std::vector<uint8_t>& scratch) const;
  void worker_loop();
};

int64_t Loader::Impl::fill(Slot& s, int64_t b, int64_t e, std::vector<uint8_t>& scratch) const {
  const int64_t B = opts.batch;
  const int64_t start = (b * opts.world + opts.rank) * B;
  const int64_t count = std::clamp<int64_t>(n - start, 0, B);
  const size_t out_elems = transform.out_elems();
  float* images = s.images.f32();
  auto* labels = s.labels.data_as<int32_t>();
  for (int64_t i = 0; i < count; ++i) {
    int64_t index = order[static_cast<size_t>(start + i)];
    data->read(index, scratch.data(), &labels[i]);
    transform.apply(scratch.data(), images + static_cast<size_t>(i) * out_elems, e, index);
  }
  // Rows past a short last batch are zeros with label 0: shapes stay static, Batch::count says
  // how many are real.
  std::fill(images + static_cast<size_t>(count) * out_elems,
            images + static_cast<size_t>(B) * out_elems, 0.0f);
  std::fill(labels + count, labels + B, 0);
  return count;
}

void Loader::Impl::worker_loop() {
  std::vector<uint8_t> scratch(static_cast<size_t>(data->example_shape().numel()));
  std::unique_lock lk(mu);
  for (;;) {
    work_cv.wait(lk, [&] { return stopping || can_claim(); });
    if (stopping) return;
    int64_t b = next_claim++;
    Slot& s = slots[static_cast<size_t>(b) % slots.size()];
    uint64_t gen = generation;
    int64_t e = epoch;
    ++busy;
    lk.unlock();
    std::exception_ptr err;
    int64_t count = 0;
    try {
      count = fill(s, b, e, scratch);
    } catch (...) {
      err = std::current_exception();
    }
    lk.lock();
    --busy;
    if (gen == generation) {  // not cancelled by start_epoch meanwhile
      s.batch = b;
      s.count = count;
      s.error = err;
      s.ready = true;
    }
    ready_cv.notify_all();
  }
}

Loader::Loader(std::shared_ptr<Dataset> data, LoaderOptions opts)
    : impl_(std::make_unique<Impl>()) {
  if (!data) throw Error("Loader: no dataset");
  if (opts.batch < 1)
    throw Error("Loader: batch must be at least 1, got " + std::to_string(opts.batch));
  if (opts.world < 1 || opts.rank < 0 || opts.rank >= opts.world)
    throw Error("Loader: rank " + std::to_string(opts.rank) + " is outside a world of " +
                std::to_string(opts.world));
  if (opts.threads < 0 || opts.prefetch < 0)
    throw Error("Loader: threads and prefetch must not be negative");
  Impl& m = *impl_;
  m.data = std::move(data);
  m.opts = std::move(opts);
  m.n = m.data->size();
  m.transform =
      BatchTransform(m.opts.transforms, m.data->example_shape(), m.opts.training, m.opts.seed);
  if (m.batches() == 0)
    throw Error("Loader: " + m.data->describe() + " has fewer examples than one batch of " +
                std::to_string(m.opts.batch * m.opts.world) +
                (m.opts.world > 1 ? " (" + std::to_string(m.opts.world) + " ranks)" : "") +
                " (and drop_last is set)");
  int threads = std::max(1, m.opts.threads);
  size_t nslots = static_cast<size_t>(std::max(std::max(1, m.opts.prefetch), threads));
  m.slots.resize(nslots);
  Shape shape = batch_shape();
  for (Slot& s : m.slots) {
    s.images = Tensor::empty(shape, DType::f32);
    s.labels = Tensor::empty(Shape{m.opts.batch}, DType::i32);
  }
  for (int t = 0; t < threads; ++t) m.workers.emplace_back([&m] { m.worker_loop(); });
}

Loader::~Loader() {
  {
    std::lock_guard lk(impl_->mu);
    impl_->stopping = true;
  }
  impl_->work_cv.notify_all();
  for (auto& t : impl_->workers) t.join();
}

void Loader::start_epoch(int64_t epoch, int64_t skip_batches) {
  if (epoch < 0 || skip_batches < 0)
    throw Error("Loader::start_epoch: epoch and skip_batches must not be negative");
  Impl& m = *impl_;
  std::vector<int64_t> order = m.make_order(epoch);
  std::unique_lock lk(m.mu);
  ++m.generation;  // batches being filled for the old epoch are dropped when they finish
  m.started = false;
  m.ready_cv.wait(lk, [&] { return m.busy == 0; });
  for (Slot& s : m.slots) {
    s.ready = false;
    s.batch = -1;
    s.error = nullptr;
  }
  m.order.swap(order);
  m.epoch = epoch;
  m.nbatches = m.batches();
  m.next_claim = m.next_consume = std::min(skip_batches, m.nbatches);
  m.started = m.ever_started = true;
  m.work_cv.notify_all();
}

bool Loader::next(Batch& out) {
  Impl& m = *impl_;
  bool never_started;
  {
    std::lock_guard lk(m.mu);
    never_started = !m.ever_started;
  }
  if (never_started) start_epoch(0);
  std::unique_lock lk(m.mu);
  if (!m.started || m.next_consume >= m.nbatches) return false;
  int64_t b = m.next_consume;
  Slot& s = m.slots[static_cast<size_t>(b) % m.slots.size()];
  m.ready_cv.wait(lk, [&] { return s.ready && s.batch == b; });
  lk.unlock();

  // Copied into the caller's tensors (allocated once, on the first call): the caller owns what
  // it holds, and the slot is free again at once.
  Shape shape = s.images.shape();
  if (!out.images.data() || out.images.shape() != shape || out.images.dtype() != DType::f32 ||
      !out.images.device().is_cpu())
    out.images = Tensor::empty(shape, DType::f32);
  if (!out.labels.data() || out.labels.shape() != s.labels.shape() ||
      out.labels.dtype() != DType::i32 || !out.labels.device().is_cpu())
    out.labels = Tensor::empty(s.labels.shape(), DType::i32);
  std::memcpy(out.images.data(), s.images.data(), s.images.nbytes());
  std::memcpy(out.labels.data(), s.labels.data(), s.labels.nbytes());
  out.count = s.count;
  out.epoch = m.epoch;
  out.index = b;
  std::exception_ptr err = s.error;

  lk.lock();
  s.ready = false;
  s.error = nullptr;
  ++m.next_consume;
  lk.unlock();
  m.work_cv.notify_all();
  if (err) std::rethrow_exception(err);
  return true;
}

int64_t Loader::batches_per_epoch() const {
  return impl_->batches();
}

Shape Loader::batch_shape() const {
  const BatchTransform& t = impl_->transform;
  return {impl_->opts.batch, t.channels(), t.out_height(), t.out_width()};
}

}  // namespace myelin
