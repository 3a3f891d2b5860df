// The CUDA engine beyond single ops: the backend (device query, memory, errors), the captured
// step (CUDA graph replay gives the eager result and a fresh dropout mask per step), dropout
// masks identical to the CPU engine's, the one-launch optimizer against the CPU solver, label
// errors, a whole small training step (AlexNet's layer types) against the CPU engine, and the
// graph API's tuned convolutions against the convolution in double.
// Without a GPU every test that needs one reports itself SKIPPED.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <random>

#include "core/autodiff.h"
#include "core/backend.h"
#include "core/error.h"
#include "core/executor.h"
#include "core/planner.h"
#include "cuda/conv_graph.h"
#include "cuda/cuda_backend.h"
#include "cuda/cuda_info.h"
#include "model/network.h"
#include "ops/fuse.h"
#include "ops/params.h"
#include "support/data_files.h"
#include "support/random_floats.h"
#include "support/require_gpu.h"
#include "train/memory.h"
#include "train/session.h"

using namespace myelin;
using test::random_floats;

namespace {

using Host = std::map<std::string, std::vector<float>>;

uint64_t name_seed(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

// Runs `g` on a device: every input, parameter and state gets deterministic random data (labels
// below `classes`, "hp" the given hyper-parameters), `steps` steps run (eagerly, or captured
// once and replayed when `graph_replay`), and the named values come back to the host.
struct Net {
  Graph graph;
  int classes = 10;
  std::vector<float> hp;
  float scale = 1;                 // random data in [-scale, scale]
  std::vector<std::string> watch;  // values a test compares
};

Host run_on(const Net& r, Device d, const std::vector<std::string>& read, int steps = 1,
            bool graph_replay = false, const std::string& precision = "fp32") {
  BackendOptions o;
  o.precision = precision;
  auto backend = make_backend(d, o);
  Program p(r.graph, *backend);
  std::vector<Buffer> buffers;
  for (size_t v = 0; v < r.graph.values().size(); ++v) {
    const Value& val = r.graph.values()[v];
    if (val.kind == ValueKind::activation) continue;
    size_t n = static_cast<size_t>(val.shape.numel());
    buffers.emplace_back(*backend, std::max<size_t>(n * dtype_size(val.dtype), 4));
    if (val.dtype == DType::i32) {
      std::vector<int32_t> labels(n);
      std::mt19937 rng(static_cast<uint32_t>(name_seed(val.name)));
      for (auto& l : labels) l = static_cast<int32_t>(rng() % r.classes);
      backend->copy_from_host(buffers.back().data(), labels.data(), n * 4);
    } else {
      std::vector<float> data =
          val.name == "hp" ? r.hp : random_floats(n, name_seed(val.name), -r.scale, r.scale);
      if (val.name.find(".opt") != std::string::npos) std::fill(data.begin(), data.end(), 0.f);
      backend->copy_from_host(buffers.back().data(), data.data(), n * 4);
    }
    p.bind(static_cast<ValueId>(v), Tensor(buffers.back().data(), val.shape, val.dtype, d));
  }
  if (graph_replay && backend->capture([&] { p.run(StepContext{7, 0}); })) {
    for (int s = 0; s < steps; ++s) EXPECT_TRUE(backend->replay(StepContext{7, uint64_t(s)}));
  } else {
    for (int s = 0; s < steps; ++s) p.run(StepContext{7, uint64_t(s)});
  }
  backend->synchronize();
  Host out;
  for (const std::string& name : read) {
    Tensor t = p.tensor(name);
    std::vector<float> h(static_cast<size_t>(t.numel()));
    backend->copy_to_host(h.data(), t.data(), t.nbytes());
    out[name] = h;
  }
  return out;
}

double rel_error(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INFINITY;
  double d = 0, n = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i]) || !std::isfinite(b[i])) return INFINITY;
    d += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    n += double(b[i]) * b[i];
  }
  return n > 0 ? std::sqrt(d / n) : std::sqrt(d);
}

// Names an op of `g` without a kernel on the device, or "".
std::string missing_kernel(const Graph& g, DeviceKind k) {
  for (const Node& n : g.nodes())
    if (!op_def(n.op).is_view && !find_kernel(n.op, k)) return n.op;
  return "";
}

}  // namespace

TEST(CudaDevice, QueryListsEveryDevice) {
  int count = cuda_device_count();
  EXPECT_GE(count, 0);
  std::string text = describe_cuda_devices();
  EXPECT_NE(text.find("cuda: runtime"), std::string::npos) << text;
  REQUIRE_GPU();
  std::vector<CudaDeviceInfo> devices = cuda_devices();
  ASSERT_EQ(static_cast<int>(devices.size()), count);
  for (const CudaDeviceInfo& d : devices) {
    EXPECT_FALSE(d.name.empty());
    EXPECT_GT(d.total_bytes, size_t{1} << 30);
    EXPECT_GT(d.free_bytes, 0u);
    EXPECT_GE(d.cc_major, 7);
    EXPECT_GT(d.multiprocessors, 0);
  }
  EXPECT_NE(text.find("cuda:0"), std::string::npos) << text;
  std::printf("%s", text.c_str());
}

TEST(CudaBackend, CopiesRoundTripAndReportsBadRequests) {
  REQUIRE_GPU();
  auto b = make_backend(Device::cuda(0));
  std::vector<float> h = random_floats(1000, 1), back(1000, 0.f);
  Buffer buf(*b, 4000), buf2(*b, 4000);
  b->copy_from_host(buf.data(), h.data(), 4000);
  b->copy(buf2.data(), buf.data(), 4000);
  b->copy_to_host(back.data(), buf2.data(), 4000);
  EXPECT_EQ(h, back);
  try {
    b->allocate(size_t{1} << 50);
    FAIL() << "a 1 PiB allocation succeeded";
  } catch (const DeviceError& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("cudaMalloc of 1125899906842624 bytes"), std::string::npos) << m;
    EXPECT_NE(m.find("free of"), std::string::npos) << m;
  }
  EXPECT_THROW(make_backend(Device::cuda(cuda_device_count())), DeviceError);
  BackendOptions bad;
  bad.precision = "fp8";
  EXPECT_THROW(make_backend(Device::cuda(0), bad), UsageError);
  // The backend still works after the failures.
  b->copy_to_host(back.data(), buf.data(), 4000);
  EXPECT_EQ(h, back);
}

TEST(CudaDropout, MaskIsTheCpuEnginesBitForBit) {
  REQUIRE_GPU();
  const int64_t n = 100003;
  Net r{Graph(true)};
  ValueId x = r.graph.input("x", Shape{n});
  ValueId y = r.graph.add1("dropout", "drop", {x}, Attrs{{"ratio", 0.4}});
  r.graph.keep(y);
  Host gpu = run_on(r, Device::cuda(0), {"x", r.graph.value(y).name});
  const std::vector<float>& xs = gpu["x"];
  const std::vector<float>& ys = gpu[r.graph.value(y).name];
  uint64_t key = dropout_key(7, 0, static_cast<int>(r.graph.nodes()[0].attrs.i("forward_node", 0)));
  uint32_t threshold = dropout_threshold(0.4);
  float scale = static_cast<float>(1.0 / 0.6);
  int64_t wrong = 0, kept = 0;
  for (int64_t i = 0; i < n; ++i) {
    bool keep = dropout_keep(key, static_cast<uint64_t>(i), threshold);
    kept += keep;
    wrong += ys[i] != (keep ? xs[i] * scale : 0.f);
  }
  EXPECT_EQ(wrong, 0);
  EXPECT_NEAR(double(kept) / n, 0.6, 0.01);
  if (find_kernel("dropout", DeviceKind::cpu)) {
    Host cpu = run_on(r, Device::cpu(), {r.graph.value(y).name});
    EXPECT_EQ(cpu[r.graph.value(y).name], ys) << "CPU and CUDA masks differ";
  }
}

// The captured step replays with each step's own seed and step: replay(s) equals an eager run
// of step s, and two steps draw different masks.
TEST(CudaGraph, ReplayMatchesEagerStepsWithFreshMasks) {
  REQUIRE_GPU();
  Net r{Graph(true)};
  ValueId x = r.graph.input("x", Shape{64, 256});
  ValueId w = r.graph.param("w", Shape{128, 256}, Init{});
  ValueId h = r.graph.add1("inner_product", "fc", {x, w});
  ValueId y = r.graph.add1("dropout", "drop", {r.graph.add1("relu", "relu", {h})});
  r.graph.keep(y);
  std::string name = r.graph.value(y).name;
  for (int steps : {1, 3}) {
    Host eager = run_on(r, Device::cuda(0), {name}, steps, false);
    Host replay = run_on(r, Device::cuda(0), {name}, steps, true);
    EXPECT_EQ(eager[name], replay[name]) << "after " << steps << " steps";
  }
  Host one = run_on(r, Device::cuda(0), {name}, 1, true);
  Host three = run_on(r, Device::cuda(0), {name}, 3, true);
  EXPECT_NE(one[name], three[name]) << "the replayed step kept step 0's mask";
}

// SGD with momentum, Adam and AdamW with global-norm clipping, over several parameters of odd
// sizes (chunks end mid-tensor), against the CPU solver.
TEST(CudaOptimizer, OneLaunchUpdateMatchesTheCpuSolver) {
  REQUIRE_GPU();
  if (!find_kernel("optimizer_update", DeviceKind::cpu)) GTEST_SKIP() << "no CPU solver yet";
  for (std::string solver : {"sgd", "nesterov", "adam", "adamw", "rmsprop", "adagrad"}) {
    Net r{Graph(true)};
    r.hp = {0.05f, 0.9f, 0.99f, 1e-6f, 1e-3f, 3.f, 0.5f, 0.f};
    int slots = optimizer_slots(solver);
    std::vector<Shape> shapes = {Shape{70001}, Shape{33, 17}, Shape{5}};
    std::vector<ValueId> ps, gs, ss;
    std::vector<std::string> names;
    for (size_t i = 0; i < shapes.size(); ++i) {
      std::string n = "p" + std::to_string(i);
      ps.push_back(r.graph.param(n, shapes[i], Init{}));
      gs.push_back(r.graph.input("g" + std::to_string(i), shapes[i]));
      for (int s = 0; s < slots; ++s)
        ss.push_back(r.graph.state(n + ".opt" + std::to_string(s), shapes[i], Init{}));
      names.push_back(n);
    }
    std::vector<ValueId> in{r.graph.input("hp", Shape{8})};
    in.insert(in.end(), ps.begin(), ps.end());
    in.insert(in.end(), gs.begin(), gs.end());
    in.insert(in.end(), ss.begin(), ss.end());
    in.push_back(r.graph.add1("global_norm_sq", "norm", gs));
    Attrs a{{"solver", solver},
            {"count", int64_t{3}},
            {"lr_mult", std::vector<double>{1.0, 2.0, 0.5}},
            {"decay_mult", std::vector<double>{1.0, 0.0, 1.0}},
            {"clip", 0.8}};
    r.graph.add("optimizer_update", "update", in, a);
    for (ValueId s : ss) names.push_back(r.graph.value(s).name);
    Host gpu = run_on(r, Device::cuda(0), names, 2);
    Host cpu = run_on(r, Device::cpu(), names, 2);
    for (const std::string& n : names)
      EXPECT_LT(rel_error(gpu[n], cpu[n]), 2e-6) << solver << " " << n;
  }
}

TEST(CudaLoss, BadLabelIsAnErrorNamingOpAndLabel) {
  REQUIRE_GPU();
  Net r{Graph(true)};
  r.classes = 1000;  // labels drawn below 1000 for 4 classes: some are out of range
  ValueId logits = r.graph.input("logits", Shape{16, 4});
  ValueId labels = r.graph.input("labels", Shape{16}, DType::i32);
  r.graph.keep(r.graph.add1("softmax_cross_entropy", "loss", {logits, labels}));
  try {
    run_on(r, Device::cuda(0), {});
    FAIL() << "labels up to 999 for 4 classes were accepted";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("softmax_cross_entropy 'loss': label "), std::string::npos) << m;
    EXPECT_NE(m.find("is outside [0, 4)"), std::string::npos) << m;
  }
}

namespace {

// AlexNet's layer types at a small size: grouped conv with bias, ReLU, LRN, overlapping max
// pooling, average pooling, inner products with dropout, softmax cross-entropy, top-k, SGD.
Net small_alexnet(int64_t batch) {
  Net r{Graph(true)};
  Graph& g = r.graph;
  r.hp = {0.01f, 0.9f, 0.999f, 1e-8f, 5e-4f, 1.f, 1.f, 0.f};
  r.scale = 0.5f;
  ValueId x = g.input("data", Shape{batch, 3, 23, 23});
  ValueId label = g.input("label", Shape{batch}, DType::i32);
  auto conv = [&](ValueId in, const std::string& n, int64_t o, int64_t c, int64_t k, Attrs a) {
    ValueId w = g.param(n + ".weight", Shape{o, c, k, k}, Init{});
    ValueId b = g.param(n + ".bias", Shape{o}, Init{});
    return g.add1("relu", n + ".relu", {g.add1("conv2d", n, {in, w, b}, a)});
  };
  ValueId h = conv(x, "conv1", 16, 3, 5, Attrs{{"stride", int64_t{2}}});
  h = g.add1("lrn", "norm1", {h}, Attrs{{"size", int64_t{5}}, {"alpha", 1e-2}});
  h = g.add1("max_pool2d", "pool1", {h}, Attrs{{"kernel", int64_t{3}}, {"stride", int64_t{2}}});
  h = conv(h, "conv2", 24, 8, 3, Attrs{{"pad", int64_t{1}}, {"groups", int64_t{2}}});
  h = g.add1("avg_pool2d", "pool2", {h}, Attrs{{"kernel", int64_t{2}}});
  ValueId w3 = g.param("fc3.weight", Shape{32, 24 * 2 * 2}, Init{});
  ValueId b3 = g.param("fc3.bias", Shape{32}, Init{});
  h = g.add1("dropout", "drop3",
             {g.add1("relu", "relu3", {g.add1("inner_product", "fc3", {h, w3, b3})})});
  ValueId w4 = g.param("fc4.weight", Shape{10, 32}, Init{});
  ValueId logits = g.add1("inner_product", "fc4", {h, w4});
  ValueId loss = g.add1("softmax_cross_entropy", "loss", {logits, label});
  ValueId top1 = g.add1("top_k_accuracy", "top1", {logits, label});
  g.keep(loss);
  g.keep(top1);
  r.watch = {g.value(loss).name, g.value(top1).name};
  std::vector<ValueId> params = g.params();
  auto grads = differentiate(g, loss, params);
  g.set_phase(Phase::backward);
  std::vector<ValueId> in{g.input("hp", Shape{8})}, ps, gs, vs;
  for (ValueId p : params) {
    ps.push_back(p);
    gs.push_back(grads.at(p));
    vs.push_back(g.state(g.value(p).name + ".opt0", g.value(p).shape, Init{}));
  }
  in.insert(in.end(), ps.begin(), ps.end());
  in.insert(in.end(), gs.begin(), gs.end());
  in.insert(in.end(), vs.begin(), vs.end());
  std::vector<double> ones(params.size(), 1.0);
  g.add("optimizer_update", "update", in,
        Attrs{{"solver", std::string("sgd")},
              {"count", static_cast<int64_t>(params.size())},
              {"lr_mult", ones},
              {"decay_mult", ones}});
  g.set_phase(Phase::forward);
  return r;
}

std::vector<std::string> watched(const Net& r) {
  std::vector<std::string> names = r.watch;
  for (ValueId p : r.graph.params()) names.push_back(r.graph.value(p).name);
  return names;
}

}  // namespace

TEST(CudaTraining, SmallAlexNetStepMatchesTheCpuEngine) {
  REQUIRE_GPU();
  Net r = small_alexnet(8);
  if (std::string op = missing_kernel(r.graph, DeviceKind::cpu); !op.empty())
    GTEST_SKIP() << "the CPU engine has no kernel for " << op << " yet";
  std::vector<std::string> names = watched(r);
  Host cpu = run_on(r, Device::cpu(), names, 2);
  Host gpu = run_on(r, Device::cuda(0), names, 2);
  Host replay = run_on(r, Device::cuda(0), names, 2, true);
  for (const std::string& n : names) {
    EXPECT_LT(rel_error(gpu[n], cpu[n]), 1e-5) << n;
    EXPECT_LT(rel_error(replay[n], gpu[n]), 1e-6) << n << " (graph replay vs eager)";
  }
  // Reduced precision: the loss of the first forward pass, and each parameter's change over two
  // steps (forward, backward and update in 16 bits), against fp32; bf16 and fp16 with the
  // activations stored in fp32 or 16 bits (MYELIN_CUDA_BF16_STORAGE) and NCHW or NHWC
  // (MYELIN_CUDA_LAYOUT), read by the backend; tf32 NCHW and NHWC (the convolutions' staged
  // path in fp32, with the stride folded and the groups split).
  Host start = run_on(r, Device::cuda(0), names, 0);
  struct Variant {
    std::string precision, storage, layout;
  };
  std::vector<Variant> variants{{"tf32", "0", "nchw"}, {"tf32", "0", "nhwc"}};
  for (std::string prec : {"bf16", "fp16"})
    for (std::string storage : {"0", "1"})
      for (std::string layout : {"nchw", "nhwc"}) variants.push_back({prec, storage, layout});
  for (const Variant& v : variants) {
    setenv("MYELIN_CUDA_BF16_STORAGE", v.storage.c_str(), 1);
    setenv("MYELIN_CUDA_LAYOUT", v.layout.c_str(), 1);
    const std::string& prec = v.precision;
    std::string what = prec + " storage=" + v.storage + " " + v.layout;
    Host low = run_on(r, Device::cuda(0), names, 2, true, prec);
    Host first = run_on(r, Device::cuda(0), names, 1, true, prec);
    Host ref = run_on(r, Device::cuda(0), names, 1, false);
    double tol = prec == "tf32" ? 2e-3 : prec == "bf16" ? 3e-2 : 5e-3;
    EXPECT_LT(rel_error(first[r.watch[0]], ref[r.watch[0]]), tol) << what << " loss";
    for (size_t i = 2; i < names.size(); ++i) {
      const std::string& n = names[i];
      std::vector<float> d_low(start[n].size()), d_ref(start[n].size());
      for (size_t k = 0; k < d_low.size(); ++k) {
        d_low[k] = low[n][k] - start[n][k];
        d_ref[k] = gpu[n][k] - start[n][k];
      }
      EXPECT_LT(rel_error(d_low, d_ref), 10 * tol) << what << " update of " << n;
    }
  }
  unsetenv("MYELIN_CUDA_BF16_STORAGE");
  unsetenv("MYELIN_CUDA_LAYOUT");
}

// Under bf16 the backend stores activations in 16 bits where every kernel touching them takes it;
// inputs, parameters, the loss and the gradients stay fp32. (Planning needs no device.)
TEST(CudaStorage, Bf16StorageKeepsMasterValuesInFp32) {
  Net r = small_alexnet(8);
  Graph g = r.graph;
  cuda::plan_storage(g, cuda::Precision::bf16, true, cuda::ChannelsLast::where_it_pays);
  int half = 0;
  for (size_t v = 0; v < g.values().size(); ++v) {
    const Value& val = g.values()[v];
    if (val.dtype == DType::bf16) {
      ++half;
      EXPECT_EQ(val.kind, ValueKind::activation) << val.name;
      EXPECT_FALSE(g.is_kept(static_cast<ValueId>(v))) << val.name;
    }
    if (val.kind != ValueKind::activation) {
      EXPECT_EQ(val.dtype, r.graph.values()[v].dtype) << val.name;
    }
  }
  EXPECT_GT(half, 10);
  for (const std::string& n : r.watch) EXPECT_EQ(g.value(g.find(n)).dtype, DType::f32) << n;
}

// Channels-last where the kernels take it: the convolution blocks' activations and their
// gradients; NCHW for the input, what the inner products read (through flatten or directly), and
// anything not 4-D. Nodes whose kernels index every operand alike (ReLU, LRN) see one layout.
TEST(CudaStorage, ConvolutionActivationsAreChannelsLast) {
  Net r = small_alexnet(8);
  Graph g = r.graph;
  cuda::plan_storage(g, cuda::Precision::bf16, true, cuda::ChannelsLast::where_it_pays);
  auto layout_of = [&](const std::string& layer, const std::string& op, int output) {
    for (const Node& n : g.nodes())
      if (n.name == layer && n.op == op) return g.value(n.outputs.at(output)).layout;
    ADD_FAILURE() << "no " << op << " in " << layer;
    return Layout::nchw;
  };
  for (auto [layer, op] :
       std::vector<std::pair<std::string, std::string>>{{"conv1", "conv2d"},
                                                        {"conv1.relu", "activation"},
                                                        {"norm1", "lrn"},
                                                        {"pool1", "max_pool2d"},
                                                        {"conv2", "conv2d"},
                                                        {"conv2.relu", "activation"},
                                                        {"norm1", "lrn_grad"},
                                                        {"pool1", "max_pool2d_grad"},
                                                        {"conv2", "conv2d_grad_input"}})
    EXPECT_EQ(layout_of(layer, op, 0), Layout::nhwc) << layer << " " << op;
  EXPECT_EQ(layout_of("pool2", "avg_pool2d", 0), Layout::nchw) << "read by an inner product";
  EXPECT_EQ(g.value(g.find("data")).layout, Layout::nchw);
  for (const Value& v : g.values())
    if (v.layout == Layout::nhwc) {
      EXPECT_EQ(v.shape.rank(), 4) << v.name;
      EXPECT_EQ(v.kind, ValueKind::activation) << v.name;
    }
  for (const Node& n : g.nodes())
    if (n.op == "activation" || n.op == "activation_grad" || n.op == "lrn" || n.op == "lrn_grad") {
      for (ValueId v : n.inputs)
        EXPECT_EQ(g.value(v).layout, g.value(n.outputs[0]).layout) << n.name;
    }
  // fp32 and tf32 keep a network without batch norm NCHW everywhere (cuDNN convolves fp32 NCHW
  // in place); tf32 takes channels-last where asked to, fp32 never.
  for (auto [p, layout, nhwc] : std::vector<std::tuple<cuda::Precision, cuda::ChannelsLast, bool>>{
           {cuda::Precision::tf32, cuda::ChannelsLast::where_it_pays, false},
           {cuda::Precision::tf32, cuda::ChannelsLast::always, true},
           {cuda::Precision::fp32, cuda::ChannelsLast::always, false}}) {
    Graph f = r.graph;
    cuda::plan_storage(f, p, true, layout);
    for (const Node& n : f.nodes()) {
      if (n.op != "conv2d") continue;
      EXPECT_EQ(f.value(n.outputs[0]).layout, nhwc ? Layout::nhwc : Layout::nchw)
          << n.name << " " << precision_name(p);
    }
    for (size_t v = 0; v < f.values().size(); ++v)
      EXPECT_EQ(f.values()[v].dtype, r.graph.values()[v].dtype) << "fp32 storage";
  }
}

// Each CUDA kernel states where it is registered what storage it takes (no device needed):
// convolutions NHWC and 16 bits in each operand on its own; LRN both only all alike, 16 bits for
// the window sizes its kernels have; batch norm both all alike, 16 bits where x is NHWC or [N, C];
// mul NHWC but fp32; softmax neither.
TEST(CudaStorage, KernelsRegisterTheStorageTheyTake) {
  const KernelStorage* conv = kernel_storage("conv2d", DeviceKind::cuda);
  ASSERT_TRUE(conv && conv->layout && conv->half);
  EXPECT_FALSE(conv->layout->slots.tied);
  EXPECT_EQ(conv->half->slots.in, std::vector<int>{0});
  const KernelStorage* lrn = kernel_storage("lrn", DeviceKind::cuda);
  ASSERT_TRUE(lrn && lrn->layout && lrn->half);
  EXPECT_TRUE(lrn->layout->slots.tied);
  EXPECT_TRUE(lrn->half->slots.tied);
  Graph g;
  ValueId x = g.input("x", Shape{2, 8, 5, 5});
  g.add1("lrn", "norm5", {x}, Attrs{{"size", int64_t{5}}});
  g.add1("lrn", "norm7", {x}, Attrs{{"size", int64_t{7}}});
  EXPECT_NE(lrn->half->slots_for(g.nodes()[0], g), nullptr);
  EXPECT_EQ(lrn->half->slots_for(g.nodes()[1], g), nullptr);
  EXPECT_NE(lrn->layout->slots_for(g.nodes()[1], g), nullptr);
  const KernelStorage* mul = kernel_storage("mul", DeviceKind::cuda);
  ASSERT_TRUE(mul && mul->layout);
  EXPECT_FALSE(mul->half);
  for (const char* op : {"batch_norm", "batch_norm_grad"}) {
    const KernelStorage* bn = kernel_storage(op, DeviceKind::cuda);
    ASSERT_TRUE(bn && bn->layout && bn->half) << op;
    EXPECT_TRUE(bn->layout->slots.tied && bn->half->slots.tied) << op;
  }
  const KernelStorage* bn = kernel_storage("batch_norm", DeviceKind::cuda);
  Graph b;
  ValueId xb = b.input("x", Shape{2, 8, 5, 5}), c8 = b.input("c", Shape{8});
  b.add("batch_norm", "bn_nchw", {xb, c8, c8, c8, c8});
  b.add("batch_norm", "bn_nc", {b.input("nc", Shape{4, 8}), c8, c8, c8, c8});
  EXPECT_EQ(bn->half->slots_for(b.nodes()[0], b), nullptr) << "fp32 NCHW stays on cuDNN";
  EXPECT_NE(bn->half->slots_for(b.nodes()[1], b), nullptr);
  b.value(xb).layout = Layout::nhwc;
  EXPECT_NE(bn->half->slots_for(b.nodes()[0], b), nullptr);
  const KernelStorage* s = kernel_storage("softmax", DeviceKind::cuda);
  ASSERT_NE(s, nullptr);
  EXPECT_FALSE(s->layout || s->half);
}

// The CUDA engine's fusions (no device needed): conv1's ReLU runs in conv1, and its gradient in
// norm1's gradient, since norm1 reads the ReLU's output; conv2's ReLU feeds pooling, so its
// gradient stays a node of its own.
TEST(CudaStorage, ReluGradientFoldsIntoTheLrnGradient) {
  Net r = small_alexnet(8);
  Graph g = r.graph;
  fuse_relus(g, [](const Node& p, double slope) { return p.op == "conv2d" && slope == 0; });
  fuse_relu_grads(g, [](const Node& n) { return n.op == "lrn_grad"; });
  int relu_grads = 0, masked = 0;
  for (const Node& n : g.nodes()) {
    if (n.op == "activation_grad") {
      ++relu_grads;
      EXPECT_NE(n.name, "conv1.relu");
    }
    if (n.op == "lrn_grad") {
      EXPECT_EQ(n.attrs.s("post", ""), "relu_grad");
      ++masked;
    }
  }
  EXPECT_EQ(masked, 1);
  EXPECT_EQ(relu_grads, 2);  // conv2's and fc3's
}

// A batch-norm network (conv, batch norm, ReLU, pool, conv) under bf16: the ReLU runs in the
// batch norm, and the batch norm's input and output, forward and backward, are stored 16-bit NHWC,
// so no layout copy sits between it and the convolutions (planning needs no device).
TEST(CudaStorage, BatchNormNetworksStore16BitChannelsLast) {
  Graph bn(true);
  ValueId x = bn.input("data", Shape{8, 3, 12, 12});
  ValueId w = bn.param("conv.weight", Shape{8, 3, 3, 3}, Init{});
  ValueId h = bn.add1("conv2d", "conv", {x, w});
  ValueId gamma = bn.param("bn.gamma", Shape{8}, Init{}),
          beta = bn.param("bn.beta", Shape{8}, Init{});
  ValueId mean = bn.state("bn.mean", Shape{8}, Init{}), var = bn.state("bn.var", Shape{8}, Init{});
  h = bn.add1("batch_norm", "bn", {h, gamma, beta, mean, var});
  h = bn.add1("relu", "relu", {h});
  h = bn.add1("max_pool2d", "pool", {h}, Attrs{{"kernel", int64_t{2}}});
  ValueId w2 = bn.param("conv2.weight", Shape{8, 8, 3, 3}, Init{});
  ValueId out = bn.add1("conv2d", "conv2", {h, w2});
  ValueId dout = bn.input("dout", bn.value(out).shape);
  differentiate(bn, {{out, dout}}, bn.params());
  // (16-bit operands, NHWC operands) of the batch norm and its gradient: x, y; dy, x, dx.
  auto bn_operands = [&](bool storage16, bool nhwc) {
    Graph g = bn;
    fuse_for_cuda(g, {.batch_norm = false});
    cuda::plan_storage(g, cuda::Precision::bf16, storage16,
                       nhwc ? cuda::ChannelsLast::where_it_pays : cuda::ChannelsLast::never);
    int half = 0, last = 0, operands = 0;
    for (const Node& n : g.nodes()) {
      if (n.op != "batch_norm" && n.op != "batch_norm_grad") continue;
      if (n.op == "batch_norm") {
        EXPECT_EQ(n.attrs.s("post", ""), "relu") << "fused";
      }
      std::vector<ValueId> v{n.outputs[0], n.inputs[0]};
      if (n.op == "batch_norm_grad") v.push_back(n.inputs[1]);
      for (ValueId id : v) {
        half += g.value(id).dtype == DType::bf16;
        last += g.value(id).layout == Layout::nhwc;
        ++operands;
      }
    }
    EXPECT_EQ(operands, 5);
    return std::pair{half, last};
  };
  EXPECT_EQ(bn_operands(true, true), std::pair(5, 5));
  EXPECT_EQ(bn_operands(false, true), std::pair(0, 5));
  EXPECT_EQ(bn_operands(true, false), std::pair(0, 0)) << "16 bits only where channels are last";
  // tf32: channels-last too (the convolutions stage fp32 NHWC operands), in fp32.
  Graph t = bn;
  cuda::plan_storage(t, cuda::Precision::tf32, true, cuda::ChannelsLast::where_it_pays);
  for (const Node& n : t.nodes())
    if (n.op == "batch_norm" || (n.op == "conv2d" && n.name == "conv")) {  // conv2: the output
      EXPECT_EQ(t.value(n.outputs[0]).layout, Layout::nhwc) << n.name;
      EXPECT_EQ(t.value(n.outputs[0]).dtype, DType::f32) << n.name;
    }
}

// Each of `values` is stored 16-bit (bf16) channels-last in g.
void expect_bf16_nhwc(const Graph& g, std::initializer_list<ValueId> values) {
  for (ValueId v : values) {
    EXPECT_EQ(g.value(v).dtype, DType::bf16) << g.value(v).name;
    EXPECT_EQ(g.value(v).layout, Layout::nhwc) << g.value(v).name;
  }
}

// Every node of g comes after the producers of what it reads (a rewrite kept the order).
void expect_producers_first(const Graph& g) {
  for (size_t i = 0; i < g.nodes().size(); ++i)
    for (ValueId v : g.nodes()[i].inputs)
      EXPECT_LT(g.value(v).producer, static_cast<int>(i)) << g.nodes()[i].name;
}

// A residual block (conv, bn1, ReLU, conv, bn2, + shortcut, ReLU) under bf16: the add and its
// ReLU run inside bn2's forward (its sixth input the shortcut), bn1's ReLU gradient inside bn1's
// gradient (post relu_grad, beta its sixth input), and every operand the fusions touch stays
// 16-bit NHWC. bn2's gradient keeps its input: the ReLU's gradient also feeds the shortcut.
TEST(CudaStorage, ResidualBlockFusesAddAndReluGradientIntoBatchNorm) {
  Graph block(true);
  ValueId data = block.input("data", Shape{4, 8, 6, 6});
  ValueId x =
      block.add1("conv2d", "stem", {data, block.param("stem.weight", Shape{8, 8, 1, 1}, Init{})});
  auto conv_bn = [&](const std::string& name, ValueId in) {
    ValueId w = block.param(name + ".weight", Shape{8, 8, 3, 3}, Init{});
    ValueId h = block.add1("conv2d", name, {in, w}, Attrs{{"pad", int64_t{1}}});
    ValueId gamma = block.param(name + ".gamma", Shape{8}, Init{}),
            beta = block.param(name + ".beta", Shape{8}, Init{});
    ValueId mean = block.state(name + ".mean", Shape{8}, Init{}),
            var = block.state(name + ".var", Shape{8}, Init{});
    return block.add1("batch_norm", name + "_bn", {h, gamma, beta, mean, var});
  };
  ValueId h = block.add1("relu", "relu1", {conv_bn("conv1", x)});
  h = block.add1("add", "sum", {conv_bn("conv2", h), x});
  const ValueId block_out = block.add1("relu", "relu2", {h});
  ValueId out = block.add1("conv2d", "head",
                           {block_out, block.param("head.weight", Shape{8, 8, 1, 1}, Init{})});
  ValueId dout = block.input("dout", block.value(out).shape);
  differentiate(block, {{out, dout}}, block.params());

  auto count = [](const Graph& g, const std::string& op) {  // forward and backward
    int k = 0;
    for (const Node& n : g.nodes()) k += n.op == op;
    return k;
  };
  auto node = [](const Graph& g, const std::string& op, const std::string& name) {
    for (const Node& n : g.nodes())
      if (n.op == op && n.name == name) return n;
    ADD_FAILURE() << "no " << op << " node of " << name;
    return Node{};
  };
  Graph unfused = block;
  fuse_for_cuda(unfused, {.batch_norm = false});
  EXPECT_EQ(count(unfused, "add"), 2) << "the block's, and the shortcut's gradient sum";
  EXPECT_EQ(count(unfused, "activation_grad"), 2);

  Graph g = block;
  fuse_for_cuda(g, {});
  cuda::plan_storage(g, cuda::Precision::bf16, true, cuda::ChannelsLast::where_it_pays);
  EXPECT_EQ(count(g, "add"), 1) << g.dump();
  EXPECT_EQ(count(g, "activation_grad"), 1) << "relu2's gradient stays: it feeds the shortcut";
  const Node bn2 = node(g, "batch_norm", "conv2_bn");
  ASSERT_EQ(bn2.inputs.size(), 6u);
  EXPECT_EQ(bn2.inputs[5], x);
  EXPECT_EQ(bn2.outputs[0], block_out);
  EXPECT_EQ(bn2.attrs.s("post", ""), "relu");
  const Node bn1 = node(g, "batch_norm", "conv1_bn");
  const Node grad1 = node(g, "batch_norm_grad", "conv1_bn");
  ASSERT_EQ(grad1.inputs.size(), 6u);
  EXPECT_EQ(grad1.attrs.s("post", ""), "relu_grad");
  EXPECT_EQ(grad1.inputs[5], bn1.inputs[2]) << "beta";
  EXPECT_EQ(grad1.inputs[1], bn1.inputs[0]) << "x";
  const Node grad2 = node(g, "batch_norm_grad", "conv2_bn");
  EXPECT_EQ(grad2.inputs.size(), 5u);
  EXPECT_FALSE(grad2.attrs.has("post"));
  expect_bf16_nhwc(g, {bn2.inputs[0], bn2.inputs[5], bn2.outputs[0], grad1.inputs[0],
                       grad1.inputs[1], grad1.outputs[0]});
}

// ResNet-50's bf16 training graph at `batch`, fused with `f` and its storage planned, as the
// CUDA engine would (no device needed).
Graph planned_resnet50(const CudaFusions& f, int64_t batch = 4) {
  NetworkSpec spec = load_network("resnet50");
  Graph g = build_training_graph(spec, spec.recipe, batch, default_loss_scale("bf16")).net.graph;
  fuse_for_cuda(g, f);
  cuda::plan_storage(g, cuda::Precision::bf16, true, cuda::ChannelsLast::where_it_pays);
  return g;
}

// ResNet-50 under bf16: each block output's gradient is the sum of two (the next block's first
// convolution and its shortcut), and the ReLU's gradient at the block's end runs inside that sum
// (add(a, b, y), post relu_grad), one pass instead of an add and a mask; only the last block's,
// whose output has one reader (the pooling), stays. Every operand of the fused adds stays 16-bit
// NHWC. MYELIN_CUDA_ADD_RELU_GRAD=0's graph keeps the ReLU gradients as nodes of their own.
TEST(CudaStorage, ResNet50MasksGradientSumsInTheirAdds) {
  auto fused = [](bool on) { return planned_resnet50({.add_relu_grads = on}); };
  auto masked_adds = [](const Graph& g) {
    std::vector<Node> adds;
    for (const Node& n : g.nodes())
      if (n.op == "add" && n.attrs.s("post", "") == "relu_grad") adds.push_back(n);
    return adds;
  };
  auto relu_grads = [](const Graph& g) {
    int k = 0;
    for (const Node& n : g.nodes()) k += n.op == "activation_grad";
    return k;
  };
  const Graph off = fused(false), on = fused(true);
  EXPECT_EQ(masked_adds(off).size(), 0u);
  EXPECT_EQ(relu_grads(off), 16) << "one per block end";
  const std::vector<Node> adds = masked_adds(on);
  EXPECT_EQ(adds.size(), 15u);
  EXPECT_EQ(relu_grads(on), 1);
  EXPECT_EQ(on.nodes().size() + 15, off.nodes().size());
  for (const Node& n : adds) {
    ASSERT_EQ(n.inputs.size(), 3u);
    EXPECT_EQ(on.value(n.inputs[2]).producer >= 0 &&
                  on.nodes()[on.value(n.inputs[2]).producer].op == "batch_norm",
              true)
        << "the mask is a block's output: " << on.value(n.inputs[2]).name;
    expect_bf16_nhwc(on, {n.inputs[0], n.inputs[1], n.inputs[2], n.outputs[0]});
  }
}

// ResNet-50 under bf16: each of those 15 sums is the dy of its block's last batch norm, whose
// gradient takes the add over (batch_norm_sum_grad, where the add was): its reduction pass
// computes the sum and writes it for the shortcut's gradient. Every operand stays 16-bit NHWC, and
// every node still comes after the producers of what it reads.
TEST(CudaStorage, ResNet50BlockEndsSumTheirGradientInBatchNorm) {
  const Graph off = planned_resnet50({}), on = planned_resnet50({.bn_sum_grads = true});
  expect_producers_first(on);
  int sums = 0;
  for (const Node& n : on.nodes()) {
    if (n.op == "add") {
      EXPECT_NE(n.attrs.s("post", ""), "relu_grad") << n.name;
    }
    if (n.op != "batch_norm_sum_grad") continue;
    ++sums;
    ASSERT_EQ(n.inputs.size(), 7u);
    ASSERT_EQ(n.outputs.size(), 4u);
    expect_bf16_nhwc(
        on, {n.inputs[0], n.inputs[1], n.inputs[5], n.inputs[6], n.outputs[0], n.outputs[3]});
  }
  EXPECT_EQ(sums, 15);
  EXPECT_EQ(on.nodes().size() + 15, off.nodes().size());
}

// ResNet-50 under bf16: the four projection blocks' ends take their shortcut's batch norm in
// (fuse_shortcut_batch_norms), whose statistics the shortcut's gradient then reads from them; x,
// the shortcut's input and y stay 16-bit NHWC, and every node still comes after what it reads.
TEST(CudaStorage, ResNet50ProjectionShortcutsNormalizeInTheBlocksBatchNorm) {
  const Graph off = planned_resnet50({}), on = planned_resnet50({.bn_shortcuts = true});
  expect_producers_first(on);
  int merged = 0;
  for (const Node& n : on.nodes()) {
    if (n.op != "batch_norm" || n.inputs.size() != 10) continue;
    ++merged;
    ASSERT_EQ(n.outputs.size(), 5u);
    EXPECT_EQ(n.attrs.s("post", ""), "relu");
    expect_bf16_nhwc(on, {n.inputs[0], n.inputs[5], n.outputs[0]});
    int shortcut_grads = 0;  // the shortcut's gradient reads its statistics from this node
    for (const Node& r : on.nodes())
      shortcut_grads += r.op == "batch_norm_grad" && r.inputs[1] == n.inputs[5] &&
                        r.inputs[3] == n.outputs[3] && r.inputs[4] == n.outputs[4];
    EXPECT_EQ(shortcut_grads, 1) << n.name;
  }
  EXPECT_EQ(merged, 4);
  EXPECT_EQ(on.nodes().size() + 4, off.nodes().size());
  EXPECT_LE(plan_memory(on).arena_bytes, plan_memory(off).arena_bytes);
}

// ResNet-50 under bf16: pool1's forward records each window's pick (a byte per element of its
// output) and its gradient reads (dy, picks), so the stem's batch-norm output is read by pool1's
// forward only and leaves the arena after the forward pass: the training arena shrinks by about
// that output (16 bits) less the picks (8). The engine's default (without
// MYELIN_CUDA_POOL_PICKS=1) keeps (dy, x, y).
TEST(CudaStorage, ResNet50PoolPicksFreeTheStemOutput) {
  const int64_t batch = 16;
  const Graph off = planned_resnet50({}, batch), on = planned_resnet50({.pool_picks = true}, batch);
  int pools = 0;
  for (const Node& n : on.nodes()) {
    if (n.op != "max_pool2d_grad") continue;
    ++pools;
    ASSERT_EQ(n.inputs.size(), 2u) << "(dy, picks)";
    const Value& picks = on.value(n.inputs[1]);
    ASSERT_GE(picks.producer, 0);
    const Node& pool = on.nodes()[picks.producer];
    EXPECT_EQ(pool.op, "max_pool2d");
    ASSERT_EQ(pool.outputs.size(), 2u);
    EXPECT_EQ(pool.outputs[1], n.inputs[1]);
    EXPECT_EQ(picks.dtype, DType::u8);
    EXPECT_EQ(picks.shape.numel(), on.value(pool.outputs[0]).shape.numel());
    const ValueId x = pool.inputs[0];
    for (const Node& r : on.nodes())
      for (ValueId v : r.inputs)
        if (v == x) {
          EXPECT_EQ(r.op, "max_pool2d") << "pool1's input read by " << r.name;
        }
  }
  EXPECT_EQ(pools, 1);
  const int64_t stem_out = batch * 64 * 112 * 112 * 2, picks = batch * 64 * 56 * 56;
  const int64_t saved = static_cast<int64_t>(plan_memory(off).arena_bytes) -
                        static_cast<int64_t>(plan_memory(on).arena_bytes);
  EXPECT_GE(saved, stem_out - picks - stem_out / 8) << "saved " << saved << " bytes";
  EXPECT_LE(saved, stem_out);
}

// The memory estimate (train/memory.h) restates the CUDA engine's fusion and storage rules for
// builds without it: its training arena must be what the engine's own planning gives. (Not for
// the small `resnet`: its flatten right after a residual block keeps that block NCHW, and batch
// norm's tie spreads it through the network, which keeps it fp32; the estimate does not model
// layouts and counts it in 16 bits.)
TEST(CudaStorage, MemoryEstimateFollowsTheEnginesPlanning) {
  for (const char* model : {"resnet50", "resnet9-fast", "alexnet", "lenet"})
    for (const char* precision : {"bf16", "fp32"})
      for (bool bn_fusion : {false, true}) {
        SCOPED_TRACE(std::string(model) + " " + precision + (bn_fusion ? " fused" : ""));
        NetworkSpec spec = load_network(model);
        const int64_t batch = 16;
        TrainingGraph t =
            build_training_graph(spec, spec.recipe, batch, default_loss_scale(precision));
        Graph g = t.net.graph;
        fuse_for_cuda(g, {.batch_norm = bn_fusion});
        cuda::plan_storage(g, cuda::parse_precision(precision), true,
                           cuda::ChannelsLast::where_it_pays);
        setenv("MYELIN_CUDA_BN_FUSE", bn_fusion ? "1" : "0", 1);
        MemoryEstimate m = estimate_training_memory(spec, batch, "cuda", precision, 0);
        unsetenv("MYELIN_CUDA_BN_FUSE");
        EXPECT_EQ(m.train_arena, static_cast<int64_t>(plan_memory(g).arena_bytes));
      }
}

// ---- cuDNN's graph API (cuda/conv_graph.h) ------------------------------------------------------
namespace {

uint16_t to_bf16(float f) {  // exact for the values below (multiples of 1/8 in [-1, 1])
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return static_cast<uint16_t>(u >> 16);
}

float from_bf16(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// NHWC activations and KRSC filters; x [N, C, H, W], w [K, C, R, S], y [N, K, P, Q] logically.
struct ConvCase {
  int64_t n = 2, c = 16, h = 9, w = 9, k = 32, r = 3, s = 3, stride = 2, pad = 1;
  int64_t p() const { return (h + 2 * pad - r) / stride + 1; }
  int64_t q() const { return (w + 2 * pad - s) / stride + 1; }
  size_t xi(int64_t b, int64_t ch, int64_t i, int64_t j) const {
    return ((b * h + i) * w + j) * c + ch;
  }
  size_t wi(int64_t o, int64_t ch, int64_t i, int64_t j) const {
    return ((o * r + i) * s + j) * c + ch;
  }
  size_t yi(int64_t b, int64_t o, int64_t i, int64_t j) const {
    return ((b * p() + i) * q() + j) * k + o;
  }
  // Calls f(x index, w index, y index) for every product the convolution sums.
  template <class F>
  void each_product(F f) const {
    for (int64_t b = 0; b < n; ++b)
      for (int64_t o = 0; o < k; ++o)
        for (int64_t i = 0; i < p(); ++i)
          for (int64_t j = 0; j < q(); ++j)
            for (int64_t ki = 0; ki < r; ++ki)
              for (int64_t kj = 0; kj < s; ++kj) {
                int64_t hi = i * stride - pad + ki, wj = j * stride - pad + kj;
                if (hi < 0 || hi >= h || wj < 0 || wj >= w) continue;
                for (int64_t ch = 0; ch < c; ++ch)
                  f(xi(b, ch, hi, wj), wi(o, ch, ki, kj), yi(b, o, i, j));
              }
  }
};

std::vector<uint16_t> eighths(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint16_t> v(n);
  for (uint16_t& e : v) e = to_bf16(static_cast<float>(static_cast<int>(rng() % 17) - 8) / 8);
  return v;
}

struct DeviceBuffer {
  void* p = nullptr;
  explicit DeviceBuffer(size_t bytes) { EXPECT_EQ(cudaMalloc(&p, bytes), cudaSuccess); }
  ~DeviceBuffer() { cudaFree(p); }
};

}  // namespace

// Each direction's tuned plan on bf16 NHWC operands computes what the convolution in double does
// (the output rounded to bf16 once: relative error under 2^-8 of the largest value).
TEST(CudaConvGraph, TunedPlansMatchTheConvolutionInDouble) {
  REQUIRE_GPU();
  const ConvCase g;
  const size_t nx = g.n * g.h * g.w * g.c, nw = g.k * g.r * g.s * g.c,
               ny = g.n * g.p() * g.q() * g.k;
  std::vector<uint16_t> x = eighths(nx, 1), w = eighths(nw, 2), y = eighths(ny, 3);
  cudnnHandle_t h;
  ASSERT_EQ(cudnnCreate(&h), CUDNN_STATUS_SUCCESS);
  const size_t ws_bytes = size_t{64} << 20;
  DeviceBuffer dx(nx * 2), dw(nw * 2), dy(ny * 2), ws(ws_bytes);
  for (cuda::ConvDir dir :
       {cuda::ConvDir::forward, cuda::ConvDir::backward_data, cuda::ConvDir::backward_filter}) {
    cuda::ConvGeometry geo;
    geo.dir = dir;
    geo.x = {g.n, g.c, g.h, g.w};
    geo.w = {g.k, g.c, g.r, g.s};
    geo.y = {g.n, g.k, g.p(), g.q()};
    geo.stride = {g.stride, g.stride};
    geo.pad = {g.pad, g.pad};
    cuda::ConvGraph graph(h, geo, "test convolution");
    ASSERT_GT(graph.candidates(), 0);
    float ms = 0;
    ASSERT_GE(graph.tune(nullptr, dx.p, dw.p, dy.p, ws.p, ws_bytes, &ms), 0);
    EXPECT_GT(ms, 0.f);
    // The operands this direction reads, then the one it writes, checked against double.
    std::vector<double> want(dir == cuda::ConvDir::forward         ? ny
                             : dir == cuda::ConvDir::backward_data ? nx
                                                                   : nw);
    auto f = [&](uint16_t v) { return static_cast<double>(from_bf16(v)); };
    g.each_product([&](size_t a, size_t b, size_t c) {
      if (dir == cuda::ConvDir::forward) want[c] += f(x[a]) * f(w[b]);
      if (dir == cuda::ConvDir::backward_data) want[a] += f(y[c]) * f(w[b]);
      if (dir == cuda::ConvDir::backward_filter) want[b] += f(y[c]) * f(x[a]);
    });
    ASSERT_EQ(cudaMemcpy(dx.p, x.data(), nx * 2, cudaMemcpyHostToDevice), cudaSuccess);
    ASSERT_EQ(cudaMemcpy(dw.p, w.data(), nw * 2, cudaMemcpyHostToDevice), cudaSuccess);
    ASSERT_EQ(cudaMemcpy(dy.p, y.data(), ny * 2, cudaMemcpyHostToDevice), cudaSuccess);
    graph.execute(dx.p, dw.p, dy.p, ws.p);
    void* out = dir == cuda::ConvDir::forward         ? dy.p
                : dir == cuda::ConvDir::backward_data ? dx.p
                                                      : dw.p;
    std::vector<uint16_t> got(want.size());
    ASSERT_EQ(cudaMemcpy(got.data(), out, got.size() * 2, cudaMemcpyDeviceToHost), cudaSuccess);
    double largest = 0, worst = 0;
    for (size_t i = 0; i < want.size(); ++i) {
      largest = std::max(largest, std::abs(want[i]));
      worst = std::max(worst, std::abs(f(got[i]) - want[i]));
    }
    EXPECT_GT(largest, 1.0);
    EXPECT_LT(worst, largest / 256) << "direction " << static_cast<int>(dir) << ", candidate "
                                    << graph.selected() << " of " << graph.candidates();
    std::printf("graph API direction %d: candidate %d of %d, %.4f ms, worst error %.3g of %.3g\n",
                static_cast<int>(dir), graph.selected(), graph.candidates(), ms, worst, largest);
  }
  cudnnDestroy(h);
}

// --conv-search: a tune program times the graph API's engines and caches its choices (",graph"
// keys in the algorithm cache's file); an auto program of the same network then takes those
// choices and adds no heuristic choice of its own, while a heuristic program adds one per problem.
TEST(CudaConvSearch, AutoTakesTheChoicesATuneRunCached) {
  REQUIRE_GPU();
  myelin::testing::TempDir dir;
  const std::string cache = dir / "algos.tsv";
  setenv("MYELIN_CUDA_ALGO_CACHE", cache.c_str(), 1);
  auto count = [&](const std::string& tag) {
    std::ifstream f(cache);
    int n = 0;
    for (std::string line; std::getline(f, line);) n += line.find(tag) != std::string::npos;
    return n;
  };
  Net r = small_alexnet(8);
  auto compile = [&](const std::string& mode) {
    BackendOptions o;
    o.precision = "bf16";
    o.conv_search = mode;
    auto backend = make_backend(Device::cuda(0), o);
    Program p(r.graph, *backend);  // each convolution chooses its algorithm here
  };
  compile("tune");
  const int tuned = count(",graph"), ranked = count(",heuristic");
  compile("auto");
  const int ranked_after_auto = count(",heuristic");
  compile("heuristic");
  unsetenv("MYELIN_CUDA_ALGO_CACHE");
  EXPECT_GT(tuned, 0);
  EXPECT_EQ(count(",graph"), tuned);
  EXPECT_EQ(ranked_after_auto, ranked) << "auto ranked problems the tune run had timed";
  EXPECT_EQ(count(",heuristic"), ranked + tuned) << "the heuristic run took tuned choices";
}

// Batch norm's statistics from the convolution that feeds it (cuDNN's GenStats node after a
// forward convolution, ConvGeometry::gen_stats), on a ResNet-50 layer1 3x3 convolution at batch
// 32: the per-channel sums match the output's, and the fused plan's time is printed beside the
// plain convolution's (what fusing batch norm's statistics pass would cost or save). Skipped where
// cuDNN offers no engine for the pair.
TEST(CudaConvGraph, StatisticsFromTheForwardConvolution) {
  REQUIRE_GPU();
  ConvCase g;
  g.n = 32, g.c = 64, g.h = 56, g.w = 56, g.k = 64, g.stride = 1;
  const size_t nx = g.n * g.h * g.w * g.c, nw = g.k * g.r * g.s * g.c,
               ny = g.n * g.p() * g.q() * g.k;
  std::vector<uint16_t> x = eighths(nx, 1), w = eighths(nw, 2);
  cudnnHandle_t h;
  ASSERT_EQ(cudnnCreate(&h), CUDNN_STATUS_SUCCESS);
  const size_t ws_bytes = size_t{256} << 20;
  DeviceBuffer dx(nx * 2), dw(nw * 2), dy(ny * 2), ws(ws_bytes), sums(2 * g.k * sizeof(float));
  ASSERT_EQ(cudaMemcpy(dx.p, x.data(), nx * 2, cudaMemcpyHostToDevice), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(dw.p, w.data(), nw * 2, cudaMemcpyHostToDevice), cudaSuccess);
  cuda::ConvGeometry geo;
  geo.x = {g.n, g.c, g.h, g.w};
  geo.w = {g.k, g.c, g.r, g.s};
  geo.y = {g.n, g.k, g.p(), g.q()};
  geo.pad = {g.pad, g.pad};
  cuda::ConvGraph plain(h, geo, "plain convolution");
  float plain_ms = 0;
  ASSERT_GE(plain.tune(nullptr, dx.p, dw.p, dy.p, ws.p, ws_bytes, &plain_ms), 0);

  geo.gen_stats = true;
  std::unique_ptr<cuda::ConvGraph> fused;
  try {
    fused = std::make_unique<cuda::ConvGraph>(h, geo, "convolution with statistics");
  } catch (const DeviceError& e) {
    cudnnDestroy(h);
    GTEST_SKIP() << "cuDNN takes no convolution with GenStats here: " << e.what();
  }
  int compiled = 0;
  for (int i = 0; i < fused->candidates(); ++i) compiled += fused->runtime_compiled(i);
  float* sum = static_cast<float*>(sums.p);
  float fused_ms = 0;
  const int best = fused->tune(nullptr, dx.p, dw.p, dy.p, ws.p, ws_bytes, &fused_ms, sum, sum + g.k,
                               /*runtime_compiled=*/true);
  std::printf(
      "genstats: %d candidates (%d compiled at run time), chosen %d (%s), %.4f ms; "
      "plain convolution %.4f ms (candidate %d of %d)\n",
      fused->candidates(), compiled, best,
      best >= 0 && fused->runtime_compiled(best) ? "compiled at run time" : "precompiled", fused_ms,
      plain_ms, plain.selected(), plain.candidates());
  if (best < 0) {
    cudnnDestroy(h);
    GTEST_SKIP() << "none of cuDNN's " << fused->candidates()
                 << " configurations for a convolution with GenStats runs here";
  }
  ASSERT_EQ(cudaMemset(sums.p, 0xff, 2 * g.k * sizeof(float)), cudaSuccess);  // NaNs
  fused->execute(dx.p, dw.p, dy.p, ws.p, sum, sum + g.k);
  std::vector<uint16_t> y(ny);
  std::vector<float> got(2 * g.k);
  ASSERT_EQ(cudaMemcpy(y.data(), dy.p, ny * 2, cudaMemcpyDeviceToHost), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(got.data(), sums.p, got.size() * 4, cudaMemcpyDeviceToHost), cudaSuccess);
  std::vector<double> want(2 * g.k), scale(2 * g.k);
  for (size_t i = 0; i < ny; ++i) {
    const size_t ch = i % g.k;
    const double v = from_bf16(y[i]);
    want[ch] += v, want[g.k + ch] += v * v;
    scale[ch] += std::abs(v), scale[g.k + ch] += v * v;
  }
  // The node may sum the fp32 accumulators before the output is rounded to bf16 (2^-9 relative).
  for (int64_t ch = 0; ch < 2 * g.k; ++ch)
    EXPECT_NEAR(got[ch], want[ch], scale[ch] / 256 + 1e-3)
        << (ch < g.k ? "sum" : "sum of squares") << " of channel " << ch % g.k;
  cudnnDestroy(h);
}
