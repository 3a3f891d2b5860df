#include "train/bundle.h"

#include <archive.h>
#include <archive_entry.h>

#include <cstdlib>
#include <ctime>
#include <exception>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>

#include "core/error.h"
#include "data/io.h"
#include "train/checkpoint.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace myelin {

namespace {

// What a run directory says about itself.
struct RunRecord {
  fs::path dir;
  std::optional<TrainerState> state;  // the latest checkpoint's trainer.json
  fs::path snapshot;                  // that checkpoint's directory
  json start, end, last_test;         // metrics.jsonl events (null when absent)
  json options() const {
    if (state && state->options.is_object()) return state->options;
    return start.is_object() ? start.value("options", json::object()) : json::object();
  }
};

std::string read_text(const fs::path& p) {
  std::vector<uint8_t> bytes = data::read_file(p.string());
  return {bytes.begin(), bytes.end()};
}

// The events a bundle reports. A line cut short by a crash is skipped, not an error: the
// weights and checkpoints are what matter.
void read_events(RunRecord& r) {
  std::ifstream in(r.dir / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    json e = json::parse(line, nullptr, false);
    if (!e.is_object() || !e.contains("event") || !e["event"].is_string()) continue;
    std::string kind = e["event"];
    if (kind == "start") r.start = e;
    if (kind == "end") r.end = e;
    if (kind == "test") r.last_test = e;
    if (kind == "start" || kind == "resume") r.end = nullptr;  // an end before a resume is stale
  }
}

RunRecord read_run(const std::string& run_dir) {
  RunRecord r;
  r.dir = run_dir;
  std::error_code ec;
  if (!fs::is_directory(r.dir, ec)) throw Error("no run directory " + run_dir);
  read_events(r);
  if (fs::is_directory(r.dir / "checkpoints", ec) && !list_checkpoints(run_dir).empty()) {
    r.snapshot = find_checkpoint(run_dir);
    fs::path file = r.snapshot / "trainer.json";
    json j = json::parse(read_text(file), nullptr, false);
    if (j.is_discarded()) throw DataError(file.string(), -1, "not valid JSON");
    r.state = state_from_json(j, file.string());
  }
  return r;
}

struct Weights {
  std::string from;  // "weights.safetensors" or "checkpoints/iter-000016/weights.safetensors"
  std::vector<uint8_t> bytes;
  TensorFile file;  // parsed: a corrupt file never goes into a bundle
  int64_t iteration = -1;
};

Weights read_weights(const fs::path& path, const fs::path& run_dir) {
  Weights w;
  w.from = fs::relative(path, run_dir).string();
  w.bytes = data::read_file(path.string());
  w.file = decode_safetensors(w.bytes.data(), w.bytes.size(), path.string());
  auto it = w.file.metadata.find("iteration");
  if (it != w.file.metadata.end()) w.iteration = std::atoll(it->second.c_str());
  return w;
}

// The final weights of a finished run; the latest checkpoint's when the run stopped early, or
// went on (resumed) past the weights.safetensors it once wrote.
Weights choose_weights(const RunRecord& r) {
  fs::path final_file = r.dir / "weights.safetensors";
  std::error_code ec;
  bool has_final = fs::is_regular_file(final_file, ec);
  if (!has_final && !r.state)
    throw Error("run " + r.dir.string() +
                " has no weights: neither weights.safetensors (written when a run finishes) nor a "
                "checkpoint under checkpoints/");
  if (has_final) {
    Weights w = read_weights(final_file, r.dir);
    if (!r.state || w.iteration >= r.state->iteration) return w;
  }
  return read_weights(r.snapshot / "weights.safetensors", r.dir);
}

// RUN_DIR/network.yaml, else the model the run was started with.
NetworkSpec find_network(const RunRecord& r, const Weights& w) {
  fs::path file = r.dir / "network.yaml";
  std::error_code ec;
  if (fs::is_regular_file(file, ec)) return parse_network(read_text(file), file.string());
  std::string model = r.options().value("model", "");
  auto meta = w.file.metadata.find("model");
  if (model.empty() && meta != w.file.metadata.end()) model = meta->second;
  if (model.empty())
    throw Error("run " + r.dir.string() + " does not say which network it trained: write it to " +
                file.string());
  try {
    return load_network(model);
  } catch (const Error& e) {
    throw Error("cannot find the network of run " + r.dir.string() + " (model '" + model +
                "'): " + e.what() + "; write the network to " + file.string());
  }
}

std::vector<std::string> class_names(const RunRecord& r, const Weights& w, int64_t classes) {
  std::vector<std::string> names;
  if (r.state) names = r.state->class_names;
  auto meta = w.file.metadata.find("class_names");
  if (names.empty() && meta != w.file.metadata.end()) {
    json j = json::parse(meta->second, nullptr, false);
    if (j.is_array())
      for (const json& n : j) names.push_back(n.is_string() ? n.get<std::string>() : "");
  }
  names.resize(static_cast<size_t>(classes));
  // One name a line: an unnamed output (a network with more outputs than the dataset has
  // classes) is called by its number, and a line break inside a name becomes a space.
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i].empty()) names[i] = std::to_string(i);
    for (char& c : names[i])
      if (c == '\n' || c == '\r') c = ' ';
  }
  return names;
}

std::string utc_now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// Fields of an event without the bookkeeping ones.
json figures(json event) {
  if (!event.is_object()) return nullptr;
  for (const char* k : {"event", "weights"}) event.erase(k);
  return event;
}

json make_info(const RunRecord& r, const Weights& w, const NetworkSpec& spec, size_t classes) {
  json opts = r.options();
  bool finished = !r.end.is_null() && w.from == "weights.safetensors";
  json dataset = {{"spec", opts.value("data", "")}, {"classes", classes}};
  if (r.start.is_object())
    for (const char* k : {"dataset", "train_examples", "test_examples"})
      if (r.start.contains(k))
        dataset[k == std::string("dataset") ? "description" : k] = r.start[k];
  json info = {
      {"format", "myelin-bundle"},
      {"version", 1},
      {"network", spec.name},
      {"model", opts.value("model", spec.name)},
      {"recipe", recipe_to_json(spec.recipe)},
      {"dataset", dataset},
      {"device", opts.value("device", r.start.is_object() ? r.start.value("device", "") : "")},
      {"precision", opts.value("precision", "fp32")},
      {"seed", opts.value("seed", json(nullptr))},
      {"iterations", w.iteration},
      {"max_iter", r.state ? json(r.state->max_iter) : json(nullptr)},
      {"finished", finished},
      {"weights_from", w.from},
      {"created", utc_now()},
      {"files", {"info.json", "network.yaml", "labels.txt", "weights.safetensors"}}};
  if (finished) {
    info["metrics"] = figures(r.end);
  } else {
    info["metrics"] = {{"last_test", figures(r.last_test)}};
    if (r.state) info["metrics"]["best_accuracy"] = r.state->best_top1;
    if (r.state) info["metrics"]["seconds"] = r.state->seconds;
  }
  return info;
}

// A .tar.gz written through libarchive into an AtomicFile: nothing appears at the destination
// until the whole archive is on disk.
class TarGzWriter {
 public:
  explicit TarGzWriter(const std::string& path) : file_(path), a_(archive_write_new()) {
    if (!a_) throw Error("libarchive: out of memory writing " + path);
    archive_write_set_format_pax_restricted(a_);
    archive_write_add_filter_gzip(a_);
    if (archive_write_open2(a_, this, nullptr, &TarGzWriter::on_write, nullptr, nullptr) !=
        ARCHIVE_OK)
      fail("cannot start the archive");
  }
  ~TarGzWriter() { archive_write_free(a_); }
  TarGzWriter(const TarGzWriter&) = delete;
  TarGzWriter& operator=(const TarGzWriter&) = delete;

  void add(const std::string& name, const void* data, size_t size) {
    std::unique_ptr<archive_entry, decltype(&archive_entry_free)> e(archive_entry_new(),
                                                                    archive_entry_free);
    archive_entry_set_pathname(e.get(), name.c_str());
    archive_entry_set_filetype(e.get(), AE_IFREG);
    archive_entry_set_perm(e.get(), 0644);
    archive_entry_set_size(e.get(), static_cast<la_int64_t>(size));
    archive_entry_set_mtime(e.get(), std::time(nullptr), 0);
    if (archive_write_header(a_, e.get()) != ARCHIVE_OK) fail("cannot add " + name);
    if (size > 0 && archive_write_data(a_, data, size) != static_cast<la_ssize_t>(size))
      fail("cannot add " + name);
  }
  void add(const std::string& name, const std::string& text) {
    add(name, text.data(), text.size());
  }

  void commit() {
    if (archive_write_close(a_) != ARCHIVE_OK) fail("cannot finish the archive");
    file_.commit();
  }

 private:
  // Called by libarchive with compressed blocks; exceptions must not cross its C frames.
  static la_ssize_t on_write(archive*, void* self, const void* buf, size_t n) {
    auto* w = static_cast<TarGzWriter*>(self);
    try {
      w->file_.write(buf, n);
      return static_cast<la_ssize_t>(n);
    } catch (...) {
      w->error_ = std::current_exception();
      return -1;
    }
  }
  [[noreturn]] void fail(const std::string& what) {
    if (error_) std::rethrow_exception(error_);
    const char* msg = archive_error_string(a_);
    throw Error(file_.path() + ": " + what + ": " + (msg ? msg : "libarchive error"));
  }

  data::AtomicFile file_;
  archive* a_;
  std::exception_ptr error_;
};

}  // namespace

json write_bundle(const std::string& run_dir, const std::string& out_path) {
  RunRecord run = read_run(run_dir);
  Weights weights = choose_weights(run);
  NetworkSpec spec = find_network(run, weights);
  if (run.state) {
    if (spec.name != run.state->network)
      throw Error("run " + run_dir + " trained network '" + run.state->network + "' but " +
                  "its network file now names '" + spec.name + "'");
    spec.recipe = run.state->recipe;  // the settings in force, flags included
  }
  std::vector<std::string> labels = class_names(run, weights, spec.classes);
  json info = make_info(run, weights, spec, labels.size());
  std::string label_text;
  for (const std::string& l : labels) label_text += l + "\n";

  TarGzWriter out(out_path);
  out.add("info.json", info.dump(2) + "\n");
  out.add("network.yaml", write_network(spec));
  out.add("labels.txt", label_text);
  out.add("weights.safetensors", weights.bytes.data(), weights.bytes.size());
  out.commit();
  return info;
}

}  // namespace myelin
