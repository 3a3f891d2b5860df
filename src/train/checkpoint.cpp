#include "train/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "core/error.h"

namespace myelin {

namespace fs = std::filesystem;
using json = nlohmann::json;

static_assert(std::endian::native == std::endian::little,
              "safetensors stores little-endian data; this code copies it as it is");

namespace {

constexpr uint64_t kMaxHeader = 100u << 20;  // as the safetensors library limits it

const char* safetensors_dtype(DType t) {
  switch (t) {
    case DType::f32:
      return "F32";
    case DType::bf16:
      return "BF16";
    case DType::f16:
      return "F16";
    case DType::i32:
      return "I32";
    case DType::i64:
      return "I64";
    case DType::u8:
      return "U8";
  }
  throw Error("dtype has no safetensors name");
}

bool dtype_from_safetensors(const std::string& s, DType& out) {
  for (DType t : {DType::f32, DType::bf16, DType::f16, DType::i32, DType::i64, DType::u8})
    if (s == safetensors_dtype(t)) return out = t, true;
  return false;
}

[[noreturn]] void sys_error(const std::string& what, const std::string& path) {
  throw Error(what + " " + path + ": " + std::strerror(errno));
}

void fsync_path(const std::string& path, bool directory) {
  int fd = ::open(path.c_str(), (directory ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) sys_error("cannot open", path);
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) sys_error("cannot fsync", path);
}

std::string parent_dir(const std::string& path) {
  fs::path p = fs::path(path).parent_path();
  return p.empty() ? "." : p.string();
}

// A file written under a temporary name and renamed over `path` on commit; removed if never
// committed (an exception on the way leaves the old file untouched).
class AtomicFile {
 public:
  explicit AtomicFile(std::string path)
      : path_(std::move(path)), tmp_(path_ + ".tmp." + std::to_string(::getpid())) {
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) sys_error("cannot create", tmp_);
  }
  ~AtomicFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(tmp_.c_str());
  }
  void write(const void* data, size_t n) {
    auto* p = static_cast<const char*>(data);
    while (n > 0) {
      ssize_t w = ::write(fd_, p, std::min<size_t>(n, 1u << 30));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) sys_error("cannot write", tmp_);
      p += w, n -= static_cast<size_t>(w);
    }
  }
  void commit() {
    if (::fsync(fd_) != 0) sys_error("cannot fsync", tmp_);
    if (::close(fd_) != 0) sys_error("cannot close", tmp_);
    fd_ = -1;
    if (::rename(tmp_.c_str(), path_.c_str()) != 0) sys_error("cannot rename onto", path_);
    committed_ = true;
    fsync_path(parent_dir(path_), true);
  }

 private:
  std::string path_, tmp_;
  int fd_ = -1;
  bool committed_ = false;
};

// The length prefix and JSON header, padded with spaces so the data starts 8-byte aligned.
std::string header_bytes(const std::vector<NamedTensor>& tensors,
                         const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json h = nlohmann::ordered_json::object();
  if (!metadata.empty()) h["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const NamedTensor& t : tensors) {
    if (t.name.empty() || t.name == "__metadata__")
      throw Error("cannot store a tensor named '" + t.name + "' in safetensors");
    if (h.contains(t.name)) throw Error("tensor '" + t.name + "' given twice");
    uint64_t bytes = t.tensor.nbytes();
    h[t.name] = {{"dtype", safetensors_dtype(t.tensor.dtype())},
                 {"shape", t.tensor.shape().dims},
                 {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = h.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  uint64_t n = text.size();
  std::string out(8, '\0');
  std::memcpy(out.data(), &n, 8);
  return out + text;
}

std::string read_whole_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(path, -1, std::string("cannot open: ") + std::strerror(errno));
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw DataError(path, -1, "read failed");
  return bytes;
}

// One tensor entry of a header, checked against the data section's size.
struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin, end;
};

Entry parse_entry(const std::string& name, const json& v, uint64_t data_size,
                  const std::string& path) {
  auto bad = [&](const std::string& what) -> DataError {
    return DataError(path, 8, "tensor '" + name + "': " + what);
  };
  if (name.empty()) throw DataError(path, 8, "a tensor has an empty name");
  if (!v.is_object()) throw bad("expected an object with dtype, shape and data_offsets");
  auto dt = v.find("dtype");
  auto sh = v.find("shape");
  auto off = v.find("data_offsets");
  if (dt == v.end() || !dt->is_string()) throw bad("'dtype' missing or not a string");
  Entry e{name, DType::f32, {}, 0, 0};
  if (!dtype_from_safetensors(dt->get<std::string>(), e.dtype))
    throw bad("unsupported dtype '" + dt->get<std::string>() +
              "' (myelin reads F32, F16, BF16, I32, I64 and U8)");
  if (sh == v.end() || !sh->is_array()) throw bad("'shape' missing or not an array");
  uint64_t numel = 1;
  for (const json& d : *sh) {
    if (!d.is_number_unsigned()) throw bad("shape entries must be non-negative integers");
    uint64_t dim = d.get<uint64_t>();
    if (dim > (uint64_t{1} << 62) || __builtin_mul_overflow(numel, dim, &numel))
      throw bad("shape " + sh->dump() + " is too large");
    e.shape.dims.push_back(static_cast<int64_t>(dim));
  }
  if (off == v.end() || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
      !(*off)[1].is_number_unsigned())
    throw bad("'data_offsets' must be two non-negative integers [begin, end]");
  e.begin = (*off)[0].get<uint64_t>();
  e.end = (*off)[1].get<uint64_t>();
  if (e.begin > e.end) throw bad("data_offsets begin after their end");
  if (e.end > data_size)
    throw bad("data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
              "] run past the data section of " + std::to_string(data_size) + " bytes");
  uint64_t want;
  if (__builtin_mul_overflow(numel, uint64_t{dtype_size(e.dtype)}, &want) ||
      want != e.end - e.begin)
    throw bad("shape " + sh->dump() + " of " + dt->get<std::string>() + " needs " +
              std::to_string(numel) + " elements but data_offsets hold " +
              std::to_string(e.end - e.begin) + " bytes");
  return e;
}

std::map<std::string, std::string> parse_metadata(const json& v, const std::string& path) {
  if (!v.is_object()) throw DataError(path, 8, "__metadata__ must be an object of strings");
  std::map<std::string, std::string> m;
  for (const auto& [k, s] : v.items()) {
    if (!s.is_string()) throw DataError(path, 8, "__metadata__ value '" + k + "' is not a string");
    m[k] = s.get<std::string>();
  }
  return m;
}

}  // namespace

const Tensor* TensorFile::find(const std::string& name) const {
  for (const NamedTensor& t : tensors)
    if (t.name == name) return &t.tensor;
  return nullptr;
}

std::string encode_safetensors(const std::vector<NamedTensor>& tensors,
                               const std::map<std::string, std::string>& metadata) {
  std::string out = header_bytes(tensors, metadata);
  for (const NamedTensor& t : tensors)
    out.append(static_cast<const char*>(t.tensor.data()), t.tensor.nbytes());
  return out;
}

void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::string header = header_bytes(tensors, metadata);
  AtomicFile f(path);
  f.write(header.data(), header.size());
  for (const NamedTensor& t : tensors) f.write(t.tensor.data(), t.tensor.nbytes());
  f.commit();
}

TensorFile decode_safetensors(const void* data, size_t size, const std::string& path) {
  const auto* bytes = static_cast<const char*>(data);
  if (size < 8)
    throw DataError(path, 0,
                    "not a safetensors file: " + std::to_string(size) +
                        " bytes, too short for the 8-byte header length");
  uint64_t n;
  std::memcpy(&n, bytes, 8);
  if (n < 2 || n > size - 8 || n > kMaxHeader)
    throw DataError(path, 0,
                    "not a safetensors file: header length " + std::to_string(n) +
                        " does not fit the file of " + std::to_string(size) + " bytes");
  if (bytes[8] != '{')
    throw DataError(path, 8, "not a safetensors file: the header does not start with '{'");
  json h;
  try {
    h = json::parse(bytes + 8, bytes + 8 + n);
  } catch (const json::parse_error& e) {
    throw DataError(path, 8 + static_cast<int64_t>(e.byte > 0 ? e.byte - 1 : 0),
                    std::string("header is not valid JSON: ") + e.what());
  } catch (const json::exception& e) {  // a number out of range
    throw DataError(path, 8, std::string("header is not valid JSON: ") + e.what());
  }
  if (!h.is_object()) throw DataError(path, 8, "the header is not a JSON object");
  uint64_t data_size = size - 8 - n;
  TensorFile file;
  std::vector<Entry> entries;
  for (const auto& [name, v] : h.items()) {
    if (name == "__metadata__")
      file.metadata = parse_metadata(v, path);
    else
      entries.push_back(parse_entry(name, v, data_size, path));
  }
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  for (size_t i = 1; i < entries.size(); ++i)
    if (entries[i].begin < entries[i - 1].end)
      throw DataError(
          path, static_cast<int64_t>(8 + n + entries[i].begin),
          "tensors '" + entries[i - 1].name + "' and '" + entries[i].name + "' overlap");
  for (const Entry& e : entries) {
    Tensor t = Tensor::empty(e.shape, e.dtype);
    if (e.end > e.begin) std::memcpy(t.data(), bytes + 8 + n + e.begin, e.end - e.begin);
    file.tensors.push_back({e.name, std::move(t)});
  }
  return file;
}

TensorFile read_safetensors(const std::string& path) {
  std::string bytes = read_whole_file(path);
  return decode_safetensors(bytes.data(), bytes.size(), path);
}

void write_file_atomic(const std::string& path, std::string_view bytes) {
  AtomicFile f(path);
  f.write(bytes.data(), bytes.size());
  f.commit();
}

// --- trainer state ---------------------------------------------------------------------------

json recipe_to_json(const Recipe& r) {
  return {{"solver", r.solver},
          {"lr", r.lr},
          {"momentum", r.momentum},
          {"weight_decay", r.weight_decay},
          {"beta1", r.beta1},
          {"beta2", r.beta2},
          {"rms_decay", r.rms_decay},
          {"eps", r.eps},
          {"lr_policy", r.lr_policy},
          {"gamma", r.gamma},
          {"power", r.power},
          {"step_size", r.step_size},
          {"milestones", r.milestones},
          {"warmup_iters", r.warmup_iters},
          {"clip_grad_norm", r.clip_grad_norm},
          {"accumulate", r.accumulate},
          {"batch", r.batch},
          {"epochs", r.epochs},
          {"max_iter", r.max_iter},
          {"label_smoothing", r.label_smoothing},
          {"scale", r.scale},
          {"mean", r.mean},
          {"crop", r.crop},
          {"pad", r.pad},
          {"mirror", r.mirror},
          {"cutout", r.cutout},
          {"test_mirror", r.test_mirror}};
}

namespace {

template <class T>
void get_field(const json& j, const char* key, T& out) {
  auto it = j.find(key);
  if (it == j.end()) return;
  try {
    out = it->get<T>();
  } catch (const json::exception&) {
    throw Error(std::string("recipe field '") + key + "' has the wrong type: " + it->dump());
  }
}

}  // namespace

Recipe recipe_from_json(const json& j) {
  if (!j.is_object()) throw Error("a recipe must be a JSON object");
  Recipe r;
  get_field(j, "solver", r.solver);
  get_field(j, "lr", r.lr);
  get_field(j, "momentum", r.momentum);
  get_field(j, "weight_decay", r.weight_decay);
  get_field(j, "beta1", r.beta1);
  get_field(j, "beta2", r.beta2);
  get_field(j, "rms_decay", r.rms_decay);
  get_field(j, "eps", r.eps);
  get_field(j, "lr_policy", r.lr_policy);
  get_field(j, "gamma", r.gamma);
  get_field(j, "power", r.power);
  get_field(j, "step_size", r.step_size);
  get_field(j, "milestones", r.milestones);
  get_field(j, "warmup_iters", r.warmup_iters);
  get_field(j, "clip_grad_norm", r.clip_grad_norm);
  get_field(j, "accumulate", r.accumulate);
  get_field(j, "batch", r.batch);
  get_field(j, "epochs", r.epochs);
  get_field(j, "max_iter", r.max_iter);
  get_field(j, "label_smoothing", r.label_smoothing);
  get_field(j, "scale", r.scale);
  get_field(j, "mean", r.mean);
  get_field(j, "crop", r.crop);
  get_field(j, "pad", r.pad);
  get_field(j, "mirror", r.mirror);
  get_field(j, "cutout", r.cutout);
  get_field(j, "test_mirror", r.test_mirror);
  return r;
}

json state_to_json(const TrainerState& s) {
  return {{"format", "myelin-trainer-state"},
          {"version", 1},
          {"iteration", s.iteration},
          {"micro_batches", s.micro_batches},
          {"epoch", s.epoch},
          {"batch_in_epoch", s.batch_in_epoch},
          {"max_iter", s.max_iter},
          {"world_size", s.world_size},
          {"seed", s.seed},
          // Nothing random is carried from step to step: data order is a function of (seed,
          // epoch), dropout masks of (seed, step), initial weights of (seed, name).
          {"rng", "stateless: data order from (seed, epoch), dropout from (seed, micro_batches)"},
          {"best_top1", s.best_top1},
          {"best_iter", s.best_iter},
          {"seconds", s.seconds},
          {"network", s.network},
          {"class_names", s.class_names},
          {"recipe", recipe_to_json(s.recipe)},
          {"options", s.options}};
}

TrainerState state_from_json(const json& j, const std::string& path) {
  auto format = j.is_object() ? j.find("format") : j.end();
  if (!j.is_object() || format == j.end() || *format != "myelin-trainer-state")
    throw DataError(path, -1,
                    "not a myelin trainer state (expected \"format\": "
                    "\"myelin-trainer-state\")");
  TrainerState s;
  auto need = [&](const char* key, auto& out) {
    auto it = j.find(key);
    if (it == j.end()) throw DataError(path, -1, std::string("field '") + key + "' is missing");
    try {
      out = it->get<std::remove_reference_t<decltype(out)>>();
    } catch (const json::exception&) {
      throw DataError(path, -1, std::string("field '") + key + "' has the wrong type");
    }
  };
  need("iteration", s.iteration);
  need("micro_batches", s.micro_batches);
  need("epoch", s.epoch);
  need("batch_in_epoch", s.batch_in_epoch);
  need("max_iter", s.max_iter);
  need("seed", s.seed);
  if (j.contains("world_size")) need("world_size", s.world_size);
  need("best_top1", s.best_top1);
  need("best_iter", s.best_iter);
  need("seconds", s.seconds);
  need("network", s.network);
  need("class_names", s.class_names);
  if (s.world_size < 1) throw DataError(path, -1, "world_size must be at least 1");
  if (s.iteration < 0 || s.micro_batches < 0 || s.epoch < 0 || s.batch_in_epoch < 0)
    throw DataError(path, -1, "negative iteration, epoch or batch counters");
  try {
    s.recipe = recipe_from_json(j.at("recipe"));
  } catch (const json::exception&) {
    throw DataError(path, -1, "field 'recipe' is missing");
  } catch (const Error& e) {
    throw DataError(path, -1, e.what());
  }
  auto options = j.find("options");
  if (options != j.end()) s.options = *options;
  return s;
}

// --- snapshot directories ----------------------------------------------------------------------

namespace {

constexpr const char* kWeightsFile = "weights.safetensors";
constexpr const char* kSolverFile = "solver.safetensors";
constexpr const char* kStateFile = "trainer.json";

std::string snapshot_name(int64_t iteration) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "iter-%06lld", static_cast<long long>(iteration));
  return buf;
}

void point_latest(const fs::path& dir, const std::string& name) {
  fs::path tmp = dir / (".latest.tmp." + std::to_string(::getpid()));
  std::error_code ec;
  fs::remove(tmp, ec);
  fs::create_directory_symlink(name, tmp);
  // A run directory copied without keeping links (cp -rL, some uploads) has 'latest' as a real
  // directory: a stale copy of a snapshot, which the link replaces.
  fs::path latest = dir / "latest";
  if (fs::is_directory(fs::symlink_status(latest, ec))) fs::remove_all(latest);
  fs::rename(tmp, latest);
  fsync_path(dir.string(), true);
}

void prune(const fs::path& dir, int keep, const std::string& newest) {
  std::vector<std::pair<int64_t, std::string>> snaps;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::string name = e.path().filename().string();
    if (name.rfind(".iter-", 0) == 0) fs::remove_all(e.path());  // left by an interrupted save
    int64_t it = snapshot_iteration(name);
    if (it >= 0 && e.is_directory()) snaps.push_back({it, name});
  }
  std::sort(snaps.begin(), snaps.end());
  if (keep <= 0) return;
  for (size_t i = 0; i + keep < snaps.size(); ++i)
    if (snaps[i].second != newest) fs::remove_all(dir / snaps[i].second);
}

}  // namespace

int64_t snapshot_iteration(const std::string& name) {
  if (name.size() < 6 || name.compare(0, 5, "iter-") != 0) return -1;
  int64_t it = 0;
  for (size_t i = 5; i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9' || it > (int64_t{1} << 55)) return -1;
    it = it * 10 + (name[i] - '0');
  }
  return it;
}

std::map<std::string, std::string> weights_metadata(const TrainerState& s) {
  std::map<std::string, std::string> m{
      {"format", "myelin"}, {"network", s.network}, {"iteration", std::to_string(s.iteration)}};
  if (!s.class_names.empty()) m["class_names"] = json(s.class_names).dump();
  auto model = s.options.is_object() ? s.options.find("model") : s.options.end();
  if (model != s.options.end() && model->is_string()) m["model"] = model->get<std::string>();
  return m;
}

std::string save_checkpoint(const std::string& run_dir, const Checkpoint& c, int keep) {
  fs::path dir = fs::path(run_dir) / "checkpoints";
  fs::create_directories(dir);
  std::string name = snapshot_name(c.state.iteration);
  fs::path tmp = dir / ("." + name + ".tmp." + std::to_string(::getpid()));
  fs::remove_all(tmp);
  fs::create_directory(tmp);
  auto meta = weights_metadata(c.state);
  write_safetensors((tmp / kWeightsFile).string(), c.weights.tensors, meta);
  write_safetensors((tmp / kSolverFile).string(), c.solver.tensors, meta);
  write_file_atomic((tmp / kStateFile).string(), state_to_json(c.state).dump(2) + "\n");
  fsync_path(tmp.string(), true);
  fs::path final_dir = dir / name;
  if (fs::exists(final_dir)) {  // a snapshot of the same iteration (a resumed run re-saving)
    fs::path old = dir / ("." + name + ".old." + std::to_string(::getpid()));
    fs::rename(final_dir, old);
    fs::rename(tmp, final_dir);
    fs::remove_all(old);
  } else {
    fs::rename(tmp, final_dir);
  }
  fsync_path(dir.string(), true);
  point_latest(dir, name);
  prune(dir, keep, name);
  return final_dir.string();
}

std::vector<std::string> list_checkpoints(const std::string& run_dir) {
  fs::path dir = fs::path(run_dir) / "checkpoints";
  std::vector<std::pair<int64_t, std::string>> snaps;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    int64_t it = snapshot_iteration(e.path().filename().string());
    if (it >= 0 && e.is_directory()) snaps.push_back({it, e.path().string()});
  }
  std::sort(snaps.begin(), snaps.end());
  std::vector<std::string> out;
  for (auto& s : snaps) out.push_back(s.second);
  return out;
}

std::string find_checkpoint(const std::string& dir) {
  fs::path d(dir);
  for (fs::path candidate : {d, d / "latest", d / "checkpoints" / "latest"}) {
    std::error_code ec;
    if (fs::is_regular_file(candidate / kStateFile, ec))
      return fs::canonical(candidate, ec).string();
  }
  throw UsageError("no checkpoint at '" + dir + "': expected a snapshot directory (with " +
                   kStateFile + "), or a run or checkpoints directory with a 'latest' link");
}

Checkpoint load_checkpoint(const std::string& snapshot_dir) {
  fs::path d(snapshot_dir);
  Checkpoint c;
  std::string state_path = (d / kStateFile).string();
  std::string text = read_whole_file(state_path);
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    throw DataError(state_path, static_cast<int64_t>(e.byte > 0 ? e.byte - 1 : 0),
                    std::string("not valid JSON: ") + e.what());
  } catch (const json::exception& e) {
    throw DataError(state_path, 0, std::string("not valid JSON: ") + e.what());
  }
  c.state = state_from_json(j, state_path);
  c.weights = read_safetensors((d / kWeightsFile).string());
  c.solver = read_safetensors((d / kSolverFile).string());
  return c;
}

}  // namespace myelin
