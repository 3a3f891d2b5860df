// The dataset builder: one thread packs queued datasets into stores, oldest first. The database
// is the queue (rows in state 'building'), so a build a killed server left behind simply runs
// again at the next start; create_store renames each file into place when it is complete.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <optional>
#include <thread>

#include "data/store.h"
#include "data/text.h"
#include "server/datasets.h"
#include "server/datasets_util.h"

namespace myelin::server {

namespace fs = std::filesystem;

namespace {

// Thrown from the progress callback to leave create_store early; not a std::exception, so that
// nothing on the way turns it into a build error.
struct Interrupted {
  bool deleted;  // the row is gone (DELETE during the build); otherwise the server is stopping
};

// The share of the examples in the training split, to turn per-split progress into one figure.
double train_share(const DatasetSpec& s) {
  if (s.kind == "builtin") return 6.0 / 7.0;  // 60000 train, 10000 test
  return 1.0 - s.open.validation_percent / 100.0;
}

nlohmann::json splits_json(const StoreInfo& info) {
  nlohmann::json out = nlohmann::json::object();
  for (const StoreSplitInfo& s : info.splits)
    out[s.name == "val" ? "test" : s.name] = {
        {"count", s.count}, {"class_counts", s.class_counts}, {"bytes", s.bytes}};
  return out;
}

nlohmann::json info_json(const StoreInfo& info, const std::string& dir) {
  return {{"shape", info.example_shape.dims}, {"classes", info.class_names},
          {"splits", splits_json(info)},      {"channel_mean", info.channel_mean},
          {"seconds", info.seconds},          {"bytes", dir_bytes(dir)}};
}

constexpr size_t kTopSymbols = 40;  // the most frequent symbols a text dataset's JSON lists

// A text dataset's facts: its level, vocabulary, token counts and most frequent symbols.
nlohmann::json text_info_json(const TextCorpus& corpus, const std::string& dir, double seconds) {
  std::vector<int64_t> counts(corpus.vocabulary.size(), 0);
  for (const std::vector<int32_t>* part : {&corpus.train, &corpus.validation})
    for (int32_t t : *part) ++counts[static_cast<size_t>(t)];
  std::vector<size_t> order(counts.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  size_t top = std::min(order.size(), kTopSymbols);
  std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(top), order.end(),
                    [&](size_t a, size_t b) { return counts[a] > counts[b]; });
  nlohmann::json symbols = nlohmann::json::array();
  for (size_t k = 0; k < top; ++k)
    symbols.push_back({{"symbol", corpus.vocabulary[order[k]]}, {"count", counts[order[k]]}});
  return {{"kind", "text"},
          {"level", corpus.level},
          {"files", corpus.files},
          {"vocabulary_size", corpus.vocabulary.size()},
          {"train_tokens", corpus.train.size()},
          {"validation_tokens", corpus.validation.size()},
          {"symbols", symbols},
          {"seconds", seconds},
          {"bytes", dir_bytes(dir)}};
}

}  // namespace

struct DatasetBuilder::Impl {
  explicit Impl(Context& c) : c(c) {}

  Context& c;
  std::mutex mutex;
  std::condition_variable cv;
  bool woken = false;
  std::atomic<bool> stop{false};
  std::thread thread;

  void loop();
  std::optional<int64_t> next() const;
  void build(int64_t id);
  void build_text(int64_t id, const DatasetSpec& spec, const std::string& dir);
  void report(int64_t id, double progress) const;
  void finish(int64_t id, const std::string& state, const std::string& error,
              const nlohmann::json& info) const;
};

DatasetBuilder::DatasetBuilder(Context& c) : impl_(std::make_unique<Impl>(c)) {
  impl_->thread = std::thread([this] { impl_->loop(); });
}

DatasetBuilder::~DatasetBuilder() {
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->stop = true;
  }
  impl_->cv.notify_all();
  impl_->thread.join();
}

void DatasetBuilder::wake() {
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->woken = true;
  }
  impl_->cv.notify_all();
}

void DatasetBuilder::Impl::loop() {
  while (!stop) {
    try {
      if (std::optional<int64_t> id = next()) {
        build(*id);
        continue;
      }
    } catch (const std::exception& e) {  // the database itself failed: try again in a while
      std::fprintf(stderr, "myelin serve: dataset builder: %s\n", e.what());
    }
    std::unique_lock<std::mutex> lock(mutex);
    cv.wait_for(lock, std::chrono::seconds(5), [&] { return stop || woken; });
    woken = false;
  }
}

std::optional<int64_t> DatasetBuilder::Impl::next() const {
  return c.db.scalar("SELECT id FROM datasets WHERE state = 'building' ORDER BY id LIMIT 1");
}

void DatasetBuilder::Impl::report(int64_t id, double progress) const {
  int64_t rows =
      c.db.run("UPDATE datasets SET progress = ?, updated = ? WHERE id = ? AND state = 'building'",
               {progress, now_seconds(), id});
  if (rows == 0) throw Interrupted{true};
  c.events.change("dataset", id, {{"id", id}, {"state", "building"}, {"progress", progress}});
}

void DatasetBuilder::Impl::finish(int64_t id, const std::string& state, const std::string& error,
                                  const nlohmann::json& info) const {
  SqlValue done = state == "ready" ? SqlValue(1.0) : SqlValue(nullptr);  // failed: keep it
  SqlValue err = error.empty() ? SqlValue(nullptr) : SqlValue(error);
  SqlValue inf = info.is_null() ? SqlValue(nullptr) : SqlValue(info.dump());
  c.db.run(
      "UPDATE datasets SET state = ?, progress = COALESCE(?, progress), error = ?, info = ?, "
      "updated = ? WHERE id = ? AND state = 'building'",
      {state, done, err, inf, now_seconds(), id});
  nlohmann::json change = {{"id", id}, {"state", state}};
  if (state == "ready") change["progress"] = 1.0;
  if (!error.empty()) change["error"] = error;
  c.events.change("dataset", id, change);
}

void DatasetBuilder::Impl::build(int64_t id) {
  std::string dir = dataset_dir(c, id);
  std::optional<DatasetSpec> spec;
  {
    Statement q = c.db.query("SELECT spec FROM datasets WHERE id = ?", {id});
    if (q.step()) spec = spec_from_json(nlohmann::json::parse(q.text(0)));
  }
  if (!spec) return;
  if (spec->is_text()) return build_text(id, *spec, dir);
  double share = train_share(*spec), best = 0;
  auto last = std::chrono::steady_clock::now();  // creation announced progress 0 already
  auto progress = [&](const CreateProgress& p) {
    if (stop) throw Interrupted{false};
    auto now = std::chrono::steady_clock::now();
    if (now - last < std::chrono::milliseconds(200) || p.total <= 0) return;  // ~5 a second
    last = now;
    double part = static_cast<double>(p.done) / static_cast<double>(p.total);
    best = std::max(best, p.split == "train" ? share * part : share + (1 - share) * part);
    report(id, std::min(best, 0.99));
  };
  try {
    CreateOptions o;
    o.open = spec->open;
    o.overwrite = true;  // a store a killed build left behind is ours to replace
    StoreInfo info = create_store(checked_source(c, *spec), store_dir(dir), o, progress);
    finish(id, "ready", "", info_json(info, dir));
  } catch (const Interrupted& i) {
    if (!i.deleted) return;  // stays 'building': the next start builds it again
  } catch (const std::exception& e) {
    finish(id, "failed", e.what(), nullptr);
  }
  // Deleted while it was being built: the route removed the folder, the build may have remade it.
  if (!c.db.scalar("SELECT 1 FROM datasets WHERE id = ?", {id})) {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
}

// Text is read and cut into tokens in one go (no progress within it), then saved: the progress
// reported is 0.5 between the two.
void DatasetBuilder::Impl::build_text(int64_t id, const DatasetSpec& spec, const std::string& dir) {
  auto started = std::chrono::steady_clock::now();
  try {
    TextCorpus corpus =
        build_text_corpus(checked_source(c, spec), spec.text, spec.open.validation_percent / 100);
    if (stop) return;  // stays 'building': the next start builds it again
    report(id, 0.5);
    save_text_dataset(corpus, store_dir(dir));
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    finish(id, "ready", "", text_info_json(corpus, dir, seconds));
  } catch (const Interrupted& i) {
    if (!i.deleted) return;
  } catch (const std::exception& e) {
    finish(id, "failed", e.what(), nullptr);
  }
  if (!c.db.scalar("SELECT 1 FROM datasets WHERE id = ?", {id})) {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
}

}  // namespace myelin::server
