// The op-test harness (see op_harness.h). One case runs as: random inputs (rounded to the dtype
// the device sees) -> float64 reference; forward graph on the device -> compare; then a second
// graph with a random seed dy per checked output, differentiated w.r.t. the grad inputs, whose
// gradients are compared with central differences of sum_k ref_out_k . dy_k.
#include "support/op_harness.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <ostream>
#include <random>
#include <set>
#include <sstream>

#include "core/autodiff.h"
#include "core/error.h"
#include "core/executor.h"

namespace myelin::test {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kMinMagnitude = 0.05;  // random floats stay this far from 0

std::vector<OpCase>& registry() {
  static std::vector<OpCase> cases;
  return cases;
}

// ---- random data -------------------------------------------------------------------------

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char ch : s) h = (h ^ ch) * 0x100000001b3ull;
  return h;
}

// Fixed per case (so a failure reproduces); MYELIN_OP_SEED=n draws other data for every case.
uint64_t case_seed(const OpCase& c) {
  const char* env = std::getenv("MYELIN_OP_SEED");
  return fnv1a(c.name) ^ (env ? std::strtoull(env, nullptr, 10) * 0x9E3779B97F4A7C15ull : 0);
}

class Random {
 public:
  explicit Random(uint64_t seed) : rng_(seed) {}
  double unit() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }  // [0, 1)
  // Uniform in [-1, -kMinMagnitude] U [kMinMagnitude, 1].
  double away_from_zero() {
    double m = kMinMagnitude + (1.0 - kMinMagnitude) * unit();
    return (rng_() & 1) ? m : -m;
  }
  int64_t below(int64_t n) { return n > 0 ? static_cast<int64_t>(rng_() % uint64_t(n)) : 0; }

 private:
  std::mt19937_64 rng_;
};

bool is_float_dtype(DType t) {
  return t == DType::f32 || t == DType::bf16 || t == DType::f16;
}

Doubles random_values(Random& r, const TensorType& t, int64_t int_max) {
  Doubles v(static_cast<size_t>(t.shape.numel()));
  for (double& x : v)
    x = is_float_dtype(t.dtype) ? r.away_from_zero() : static_cast<double>(r.below(int_max));
  return v;
}

// ---- host images of tensors ---------------------------------------------------------------

using Bytes = std::vector<std::byte>;

template <class T>
Bytes pack_as(const Doubles& v) {
  Bytes b(v.size() * sizeof(T));
  for (size_t i = 0; i < v.size(); ++i) {
    T x = static_cast<T>(v[i]);
    std::memcpy(b.data() + i * sizeof(T), &x, sizeof(T));
  }
  return b;
}

template <class T>
Doubles unpack_as(const Bytes& b) {
  Doubles v(b.size() / sizeof(T));
  for (size_t i = 0; i < v.size(); ++i) {
    T x;
    std::memcpy(&x, b.data() + i * sizeof(T), sizeof(T));
    v[i] = static_cast<double>(x);
  }
  return v;
}

Bytes pack(const Doubles& v, DType t) {
  switch (t) {
    case DType::f32:
      return pack_as<float>(v);
    case DType::i32:
      return pack_as<int32_t>(v);
    case DType::i64:
      return pack_as<int64_t>(v);
    case DType::u8:
      return pack_as<uint8_t>(v);
    default:
      throw UnsupportedError(std::string("op harness: no host conversion for dtype ") +
                             dtype_name(t));
  }
}

Doubles unpack(const Bytes& b, DType t) {
  switch (t) {
    case DType::f32:
      return unpack_as<float>(b);
    case DType::i32:
      return unpack_as<int32_t>(b);
    case DType::i64:
      return unpack_as<int64_t>(b);
    case DType::u8:
      return unpack_as<uint8_t>(b);
    default:
      throw UnsupportedError(std::string("op harness: no host conversion for dtype ") +
                             dtype_name(t));
  }
}

// The values the device will see: floats rounded to f32, integers truncated.
void round_to_dtype(Doubles& v, DType t) {
  v = unpack(pack(v, t), t);
}

// A device tensor with its host image, so it can be (re)filled before each run: ops that update
// inputs in place (batch-norm running statistics) then start every run from the same data.
struct DeviceTensor {
  Buffer buffer;
  Tensor tensor;
  Bytes host;

  DeviceTensor(Backend& b, const TensorType& t, const Doubles& values)
      : buffer(b, static_cast<size_t>(t.shape.numel()) * dtype_size(t.dtype)),
        tensor(buffer.data(), t.shape, t.dtype, b.device()),
        host(pack(values, t.dtype)) {}
  void upload(Backend& b) {
    if (!host.empty()) b.copy_from_host(buffer.data(), host.data(), host.size());
  }
};

Doubles download(Backend& b, const Tensor& t) {
  Bytes host(t.nbytes());
  if (!host.empty()) b.copy_to_host(host.data(), t.data(), host.size());
  b.synchronize();  // in case the engine's copy is asynchronous
  return unpack(host, t.dtype());
}

// ---- comparison ----------------------------------------------------------------------------

// ||out - ref|| / ||ref|| (||out - ref|| when ref is all zeros); +inf for a size mismatch or any
// non-finite value, so NaN never passes and survives std::max.
double relative_error(const Doubles& out, const Doubles& ref) {
  if (out.size() != ref.size()) return kInf;
  double diff = 0, norm = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    if (!std::isfinite(out[i]) || !std::isfinite(ref[i])) return kInf;
    diff += (out[i] - ref[i]) * (out[i] - ref[i]);
    norm += ref[i] * ref[i];
  }
  return norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}

std::string first_mismatch(const Doubles& out, const Doubles& ref) {
  if (out.size() != ref.size())
    return "size " + std::to_string(out.size()) + " vs reference " + std::to_string(ref.size());
  size_t worst = 0;
  double worst_diff = -1;
  for (size_t i = 0; i < out.size(); ++i) {
    double d = std::isfinite(out[i]) ? std::abs(out[i] - ref[i]) : kInf;
    if (d > worst_diff) worst = i, worst_diff = d;
  }
  std::ostringstream os;
  os << "worst at element " << worst << ": got " << (out.empty() ? 0 : out[worst]) << ", reference "
     << (ref.empty() ? 0 : ref[worst]);
  return os.str();
}

// ---- graphs ----------------------------------------------------------------------------------

struct CaseGraph {
  Graph graph;
  std::vector<ValueId> inputs;   // per case input
  std::vector<ValueId> outputs;  // what g.add returned
  std::vector<int> checked;      // indices into outputs
};

bool is_grad_input(const OpCase& c, int i) {
  return std::find(c.grad_inputs.begin(), c.grad_inputs.end(), i) != c.grad_inputs.end();
}

CaseGraph build_forward(const OpCase& c) {
  CaseGraph cg{Graph(c.training), {}, {}, {}};
  Graph& g = cg.graph;
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    const TensorType& t = c.inputs[i];
    std::string name = "x" + std::to_string(i);
    bool param = is_grad_input(c, static_cast<int>(i)) && is_float_dtype(t.dtype);
    cg.inputs.push_back(param ? g.param(name, t.shape, Init{}, t.dtype)
                              : g.input(name, t.shape, t.dtype));
  }
  cg.outputs = g.add(c.op, "op", cg.inputs, c.attrs);
  for (ValueId v : cg.outputs) g.keep(v);
  if (c.checked_outputs.empty())
    for (size_t k = 0; k < cg.outputs.size(); ++k) cg.checked.push_back(static_cast<int>(k));
  else
    cg.checked = c.checked_outputs;
  for (int k : cg.checked)
    if (k < 0 || k >= static_cast<int>(cg.outputs.size()))
      throw Error("case " + c.name + ": checked output " + std::to_string(k) + " but " + c.op +
                  " has " + std::to_string(cg.outputs.size()) + " outputs");
  for (int gi : c.grad_inputs)
    if (gi < 0 || gi >= static_cast<int>(c.inputs.size()) || !is_float_dtype(c.inputs[gi].dtype))
      throw Error("case " + c.name + ": grad input " + std::to_string(gi) +
                  " is not a float input of the case");
  return cg;
}

// The checked outputs that take a seed dy (float ones).
std::vector<int> seeded_outputs(const CaseGraph& cg) {
  std::vector<int> s;
  for (int k : cg.checked)
    if (is_float_dtype(cg.graph.value(cg.outputs[k]).dtype)) s.push_back(k);
  return s;
}

struct GradGraph {
  Graph graph;
  std::vector<ValueId> seeds;  // per seeded output: the dy input
  std::vector<ValueId> grads;  // per grad input: its gradient (kNoValue if autodiff gave none)
};

GradGraph build_backward(const OpCase& c, const CaseGraph& fwd, const std::vector<int>& seeded) {
  GradGraph gg{fwd.graph, {}, {}};
  std::vector<std::pair<ValueId, ValueId>> seeds;
  for (int k : seeded) {
    ValueId y = fwd.outputs[k];
    ValueId dy = gg.graph.input("dy" + std::to_string(k), gg.graph.value(y).shape);
    gg.seeds.push_back(dy);
    seeds.push_back({y, dy});
  }
  std::vector<ValueId> wrt;
  for (int gi : c.grad_inputs) wrt.push_back(fwd.inputs[gi]);
  std::map<ValueId, ValueId> grads = differentiate(gg.graph, seeds, wrt);
  for (ValueId w : wrt) gg.grads.push_back(grads.count(w) ? grads[w] : kNoValue);
  return gg;
}

// ---- reference -------------------------------------------------------------------------------

std::vector<Doubles> reference(const OpCase& c, const std::vector<Doubles>& in) {
  if (!c.reference) throw Error("case " + c.name + " has no reference");
  return c.reference(in, c.attrs, c.inputs);
}

// sum_k ref_out_k . dy_k over the seeded outputs.
double objective(const OpCase& c, const std::vector<Doubles>& in, const std::vector<int>& seeded,
                 const std::vector<Doubles>& dys) {
  std::vector<Doubles> out = reference(c, in);
  double sum = 0;
  for (size_t s = 0; s < seeded.size(); ++s) {
    const Doubles& y = out.at(seeded[s]);
    if (y.size() != dys[s].size()) throw Error("case " + c.name + ": reference output size");
    for (size_t i = 0; i < y.size(); ++i) sum += y[i] * dys[s][i];
  }
  return sum;
}

Doubles finite_difference(const OpCase& c, std::vector<Doubles> in, int input,
                          const std::vector<int>& seeded, const std::vector<Doubles>& dys) {
  Doubles grad(in[input].size());
  for (size_t j = 0; j < grad.size(); ++j) {
    double x = in[input][j];
    in[input][j] = x + c.fd_step;
    double plus = objective(c, in, seeded, dys);
    in[input][j] = x - c.fd_step;
    double minus = objective(c, in, seeded, dys);
    in[input][j] = x;
    grad[j] = (plus - minus) / (2 * c.fd_step);
  }
  return grad;
}

// ---- timing --------------------------------------------------------------------------------

double median_run_ms(Program& p, const StepContext& ctx) {
  using clock = std::chrono::steady_clock;
  for (int i = 0; i < 3; ++i) p.run(ctx);
  p.backend().synchronize();
  std::vector<double> ms;
  double total = 0;
  while (ms.size() < 5 || (ms.size() < 51 && total < 200)) {
    auto t0 = clock::now();
    p.run(ctx);
    p.backend().synchronize();
    ms.push_back(std::chrono::duration<double, std::milli>(clock::now() - t0).count());
    total += ms.back();
  }
  std::nth_element(ms.begin(), ms.begin() + ms.size() / 2, ms.end());
  return ms[ms.size() / 2];
}

struct PerfRow {
  std::string name, shape, device, precision;
  double fwd_ms, bwd_ms;
  bool has_grad;
};

std::vector<PerfRow>& perf_rows() {
  static std::vector<PerfRow> rows;
  return rows;
}

// One backend per device and precision for the whole test program: creating a CUDA backend
// (context, handles, streams) per case would dominate the run time. Never destroyed: a CUDA
// backend torn down by static destructors could outlive the CUDA runtime.
Backend& shared_backend(Device device, const std::string& precision) {
  static auto* backends = new std::map<std::string, std::unique_ptr<Backend>>;
  std::string key = device.str() + "/" + precision;
  auto& b = (*backends)[key];
  if (!b) {
    BackendOptions opts;
    opts.precision = precision;
    b = make_backend(device, opts);
  }
  return *b;
}

// ---- the two checks --------------------------------------------------------------------------

struct Inputs {
  std::vector<Doubles> values;                        // as the device sees them
  std::vector<std::unique_ptr<DeviceTensor>> device;  // per case input
  void upload(Backend& b) {
    for (auto& d : device) d->upload(b);
  }
};

Inputs make_inputs(const OpCase& c, Backend& backend, Random& rng, bool apply_prepare) {
  Inputs in;
  for (const TensorType& t : c.inputs) in.values.push_back(random_values(rng, t, c.int_max));
  if (c.prepare && apply_prepare) c.prepare(in.values);
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    if (in.values[i].size() != static_cast<size_t>(c.inputs[i].shape.numel()))
      throw Error("case " + c.name + ": prepare changed the size of input " + std::to_string(i));
    round_to_dtype(in.values[i], c.inputs[i].dtype);
    in.device.push_back(std::make_unique<DeviceTensor>(backend, c.inputs[i], in.values[i]));
  }
  return in;
}

void check_forward(const OpCase& c, Program& p, const CaseGraph& cg, const Inputs& in, double tol,
                   CaseResult& r) {
  std::vector<Doubles> ref = reference(c, in.values);
  for (int k : cg.checked) {
    Doubles out = download(p.backend(), p.tensor(cg.outputs[k]));
    double err = k < static_cast<int>(ref.size()) ? relative_error(out, ref[k]) : kInf;
    if (err >= tol)
      r.detail += "output " + std::to_string(k) + ": relative error " + std::to_string(err) +
                  (k < static_cast<int>(ref.size()) ? ", " + first_mismatch(out, ref[k])
                                                    : ", the reference has no such output") +
                  "; ";
    r.fwd_error = std::max(r.fwd_error, err);
  }
}

void check_gradients(const OpCase& c, Program& p, const GradGraph& gg, const Inputs& in,
                     const std::vector<int>& seeded, const std::vector<Doubles>& dys, double tol,
                     CaseResult& r) {
  for (size_t i = 0; i < c.grad_inputs.size(); ++i) {
    int gi = c.grad_inputs[i];
    Doubles fd = finite_difference(c, in.values, gi, seeded, dys);
    if (gg.grads[i] == kNoValue) {
      r.grad_errors.push_back(kInf);
      r.detail += "input " + std::to_string(gi) + ": autodiff gave no gradient; ";
      continue;
    }
    Doubles got = download(p.backend(), p.tensor(gg.grads[i]));
    double err = relative_error(got, fd);
    if (err >= tol)
      r.detail += "gradient of input " + std::to_string(gi) + ": relative error " +
                  std::to_string(err) + " vs finite differences, " + first_mismatch(got, fd) + "; ";
    r.grad_errors.push_back(err);
  }
}

void bind_inputs(Program& p, const std::vector<ValueId>& ids, const Inputs& in) {
  for (size_t i = 0; i < ids.size(); ++i) p.bind(ids[i], in.device[i]->tensor);
}

// A case compiled for a backend: both programs, with random inputs and seeds bound.
struct Compiled {
  CaseGraph fwd;
  GradGraph bwd;
  std::vector<int> seeded;  // outputs with a seed dy
  Inputs in;
  std::vector<Doubles> dys;  // per seeded output, as the device sees them
  std::vector<std::unique_ptr<DeviceTensor>> dy_tensors;
  std::unique_ptr<Program> forward, backward;  // backward: null without grad_inputs
};

std::unique_ptr<Compiled> compile_case(const OpCase& c, Backend& backend, bool apply_prepare) {
  auto k = std::make_unique<Compiled>();
  Random rng(case_seed(c));
  k->fwd = build_forward(c);
  k->seeded = seeded_outputs(k->fwd);
  k->in = make_inputs(c, backend, rng, apply_prepare);
  k->forward = std::make_unique<Program>(k->fwd.graph, backend);
  bind_inputs(*k->forward, k->fwd.inputs, k->in);
  if (c.grad_inputs.empty()) return k;
  k->bwd = build_backward(c, k->fwd, k->seeded);
  k->backward = std::make_unique<Program>(k->bwd.graph, backend);
  bind_inputs(*k->backward, k->fwd.inputs, k->in);
  for (size_t s = 0; s < k->seeded.size(); ++s) {
    TensorType t{k->bwd.graph.value(k->bwd.seeds[s]).shape, DType::f32};
    k->dys.push_back(random_values(rng, t, 0));
    round_to_dtype(k->dys.back(), DType::f32);
    k->dy_tensors.push_back(std::make_unique<DeviceTensor>(backend, t, k->dys.back()));
    k->dy_tensors.back()->upload(backend);
    k->backward->bind(k->bwd.seeds[s], k->dy_tensors.back()->tensor);
  }
  return k;
}

void time_case(const OpCase& c, Backend& backend, const std::string& precision, CaseResult& r) {
  OpCase timed = c;
  if (!c.perf_inputs.empty()) timed.inputs = c.perf_inputs;
  auto k = compile_case(timed, backend, c.perf_inputs.empty());
  k->in.upload(backend);
  r.fwd_ms = median_run_ms(*k->forward, case_context());
  if (k->backward) r.bwd_ms = median_run_ms(*k->backward, case_context());
  std::string shape = timed.inputs.empty() ? "-" : timed.inputs[0].shape.str();
  perf_rows().push_back({c.name, shape, backend.device().str(), precision, r.fwd_ms, r.bwd_ms,
                         k->backward != nullptr});
}

CaseResult run_case_or_throw(const OpCase& c, Device device, const std::string& precision) {
  CaseResult r;
  double factor = precision_factor(precision);  // detail lists what fails the scaled tolerance
  Backend& backend = shared_backend(device, precision);
  StepContext ctx = case_context();
  auto k = compile_case(c, backend, true);
  k->in.upload(backend);
  k->forward->run(ctx);
  backend.synchronize();
  check_forward(c, *k->forward, k->fwd, k->in, c.fwd_tol * factor, r);
  if (k->backward) {
    k->in.upload(backend);  // undo in-place updates of the forward run (batch-norm statistics)
    k->backward->run(ctx);
    backend.synchronize();
    check_gradients(c, *k->backward, k->bwd, k->in, k->seeded, k->dys, c.grad_tol * factor, r);
  }
  if (perf_mode()) time_case(c, backend, precision, r);
  return r;
}

}  // namespace

bool register_case(OpCase c) {
  for (const OpCase& e : registry())
    if (e.name == c.name) throw Error("op case '" + c.name + "' registered twice");
  registry().push_back(std::move(c));
  return true;
}

const std::vector<OpCase>& all_cases() {
  // Registration order depends on link order; sort for stable test names and output.
  std::stable_sort(registry().begin(), registry().end(),
                   [](const OpCase& a, const OpCase& b) { return a.name < b.name; });
  return registry();
}

StepContext case_context() {
  StepContext ctx;
  ctx.seed = kCaseSeed;
  ctx.step = kCaseStep;
  return ctx;
}

CaseResult run_case(const OpCase& c, Device device, const std::string& precision) {
  try {
    return run_case_or_throw(c, device, precision);
  } catch (const std::exception& e) {
    CaseResult r;
    r.fwd_error = kInf;
    r.grad_errors.assign(c.grad_inputs.size(), kInf);
    r.detail = std::string("case ") + c.name + " threw: " + e.what();
    return r;
  }
}

double precision_factor(const std::string& precision) {
  checked_precision(precision);
  if (precision == "fp32") return 1;
  if (precision == "tf32") return 30;
  if (precision == "fp16") return 300;
  return 1000;  // bf16
}

std::vector<std::string> case_ops(const OpCase& c) {
  CaseGraph fwd = build_forward(c);
  const Graph* g = &fwd.graph;
  GradGraph bwd;
  if (!c.grad_inputs.empty()) {
    bwd = build_backward(c, fwd, seeded_outputs(fwd));
    g = &bwd.graph;
  }
  std::set<std::string> ops;
  for (const Node& n : g->nodes()) ops.insert(n.op);
  return {ops.begin(), ops.end()};
}

std::string case_test_name(const OpCase& c) {
  std::string s = c.name;
  for (char& ch : s)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return s;
}

void PrintTo(const OpCase& c, std::ostream* os) {
  *os << c.name;
}

bool perf_mode() {
  const char* env = std::getenv("MYELIN_OP_PERF");
  return env && std::string(env) == "1";
}

std::string perf_report() {
  if (perf_rows().empty()) return "";
  std::ostringstream os;
  char line[320];
  std::snprintf(line, sizeof line, "%-40s %-20s %-7s %-5s %12s %12s\n", "case", "input 0", "device",
                "prec", "fwd ms", "fwd+bwd ms");
  os << line;
  for (const PerfRow& r : perf_rows()) {
    char bwd[32] = "-";
    if (r.has_grad) std::snprintf(bwd, sizeof bwd, "%.4g", r.bwd_ms);
    std::snprintf(line, sizeof line, "%-40s %-20s %-7s %-5s %12.4g %12s\n", r.name.c_str(),
                  r.shape.c_str(), r.device.c_str(), r.precision.c_str(), r.fwd_ms, bwd);
    os << line;
  }
  return os.str();
}

}  // namespace myelin::test
