// Moving tensors between a Session and checkpoint/weights files (declared in checkpoint.h).
#include <cmath>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "train/checkpoint.h"
#include "train/session.h"

namespace myelin {

namespace fs = std::filesystem;

namespace {

float half_to_float(uint16_t h) {
  int sign = h >> 15, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  float v = exp == 0    ? std::ldexp(static_cast<float>(mant), -24)
            : exp == 31 ? (mant ? NAN : INFINITY)
                        : std::ldexp(static_cast<float>(mant | 0x400), exp - 25);
  return sign ? -v : v;
}

float bf16_to_float(uint16_t b) {
  uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// The file's tensor as the network's dtype: f16/bf16 weights (as PyTorch often saves them) widen
// to f32; anything else must match.
bool convert_to(const Tensor& src, DType want, Tensor& out) {
  if (src.dtype() == want) return out = src, true;
  if (want != DType::f32 || (src.dtype() != DType::f16 && src.dtype() != DType::bf16)) return false;
  out = Tensor::empty(src.shape(), DType::f32);
  const auto* in = src.data_as<uint16_t>();
  float* o = out.f32();
  for (int64_t i = 0; i < src.numel(); ++i)
    o[i] = src.dtype() == DType::f16 ? half_to_float(in[i]) : bf16_to_float(in[i]);
  return true;
}

std::string join(const std::vector<std::string>& v, size_t max_items = 12) {
  std::string s;
  for (size_t i = 0; i < v.size() && i < max_items; ++i) s += (i ? ", " : "") + v[i];
  if (v.size() > max_items) s += ", ... (" + std::to_string(v.size()) + " in all)";
  return s;
}

std::string mismatch(const std::string& name, const Tensor& file, const Tensor& net) {
  return "'" + name + "' is " + file.shape().str() + " " + dtype_name(file.dtype()) +
         " in the file, " + net.shape().str() + " " + dtype_name(net.dtype()) + " in the network";
}

}  // namespace

Checkpoint capture_checkpoint(Session& s, const TrainerState& state) {
  Checkpoint c;
  c.state = state;
  for (const std::string& n : s.param_names()) c.weights.tensors.push_back({n, s.read(n)});
  for (const std::string& n : s.state_names()) c.weights.tensors.push_back({n, s.read(n)});
  for (const std::string& n : s.slot_names()) c.solver.tensors.push_back({n, s.read(n)});
  return c;
}

void restore_checkpoint(Session& s, const Checkpoint& c, const std::string& snapshot_dir) {
  std::vector<std::string> problems;
  std::vector<std::pair<std::string, const Tensor*>> writes;
  auto take = [&](const std::vector<std::string>& names, const TensorFile& file, bool optional) {
    for (const std::string& n : names) {
      const Tensor* t = file.find(n);
      // Accumulation buffers are zero between updates, where snapshots are taken; a run resumed
      // under fp16 from one without loss scaling starts its scale afresh.
      // A carried state of another batch size starts from zero.
      if (!t && (optional || n.ends_with(".acc") || n.starts_with("loss_scale") ||
                 Session::is_carried_state(n)))
        continue;
      if (!t) {
        problems.push_back("'" + n + "' is missing");
        continue;
      }
      Tensor cur = s.read(n);
      if (t->shape() != cur.shape() || t->dtype() != cur.dtype())
        problems.push_back(mismatch(n, *t, cur));
      else
        writes.push_back({n, t});
    }
  };
  take(s.param_names(), c.weights, false);
  take(s.state_names(), c.weights, false);
  take(s.slot_names(), c.solver, false);
  if (!problems.empty())
    throw DataError(snapshot_dir, -1,
                    "the checkpoint does not fit network '" + s.spec().name +
                        "' (was it written by another network or solver?): " + join(problems));
  for (auto& [n, t] : writes) s.write(n, *t);
}

std::string resolve_weights_path(const std::string& path) {
  std::error_code ec;
  if (!fs::is_directory(path, ec)) return path;
  if (fs::is_regular_file(fs::path(path) / "weights.safetensors", ec))
    return (fs::path(path) / "weights.safetensors").string();
  return (fs::path(find_checkpoint(path)) / "weights.safetensors").string();
}

std::string WeightsReport::summary() const {
  std::string s = "loaded " + std::to_string(loaded.size()) + " of " +
                  std::to_string(loaded.size() + missing.size()) + " tensors from " + path;
  if (!missing.empty()) s += "; kept their initial values: " + join(missing);
  if (!unused.empty()) s += "; not in the network: " + join(unused);
  return s;
}

WeightsReport load_weights(Session& s, const std::string& path, bool require_all) {
  WeightsReport r;
  r.path = resolve_weights_path(path);
  TensorFile file = read_safetensors(r.path);
  std::vector<std::string> targets = s.param_names();
  for (const std::string& n : s.state_names())
    if (!Session::is_carried_state(n)) targets.push_back(n);
  std::vector<std::string> mismatches;
  std::vector<std::pair<std::string, Tensor>> writes;
  for (const std::string& n : targets) {
    const Tensor* t = file.find(n);
    if (!t) {
      r.missing.push_back(n);
      continue;
    }
    Tensor cur = s.read(n), converted;
    if (t->shape() != cur.shape() || !convert_to(*t, cur.dtype(), converted))
      mismatches.push_back(mismatch(n, *t, cur));
    else
      writes.push_back({n, converted}), r.loaded.push_back(n);
  }
  for (const NamedTensor& t : file.tensors)
    if (!s.has(t.name) && !Session::is_carried_state(t.name)) r.unused.push_back(t.name);
  if (!mismatches.empty())
    throw DataError(r.path, -1,
                    "weights do not fit network '" + s.spec().name + "': " + join(mismatches) +
                        " (to train such a layer from scratch, give it another name)");
  if (r.loaded.empty())
    throw DataError(r.path, -1,
                    "none of its " + std::to_string(file.tensors.size()) +
                        " tensors is named like a parameter of network '" + s.spec().name +
                        "' (the file has: " + join(r.unused, 6) +
                        "; the network has: " + join(targets, 6) + ")");
  if (require_all && !r.missing.empty())
    throw DataError(r.path, -1,
                    "weights for network '" + s.spec().name + "' are missing: " + join(r.missing));
  for (auto& [n, t] : writes) s.write(n, t);
  return r;
}

}  // namespace myelin
