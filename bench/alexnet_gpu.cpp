// AlexNet training throughput on the CUDA engine: models/alexnet.yaml through a Session (SGD with
// momentum 0.9, weight decay 5e-4, as bench/torch_alexnet_bench.py), synthetic 227x227 inputs,
// the whole step (forward, backward, update) captured once as a CUDA graph and replayed.
// Prints one row per (precision, batch): images/s, step time, achieved TFLOP/s; with --gemm the
// engine's own matrix-product ceiling per precision; with --profile the step's time per op.
//
//   alexnet_gpu_bench [--batches 64,128,256] [--precisions fp32,tf32,bf16] [--iters 30]
//                     [--device cuda] [--model alexnet] [--gemm] [--profile] [--json FILE]
//                     [--workspace-mb MB]   (cuDNN workspace limit; default BackendOptions')
//                     [--threads N]         (CPU engine threads, with --device cpu)
//                     [--allreduce]         (gradients summed by NCCL in the captured step, as
//                                            `myelin train --gpus` does; one rank alone)
//                     [--gpus N|I,J]        (data-parallel: one process per GPU, each with its
//                                            --batches; rank 0 prints per-GPU and total images/s)
// On a device without graphs (the CPU) the step runs eagerly: one warm-up step, then --iters
// timed steps (the 2015 `caffe time` table: --device cpu --precisions fp32 --iters 20).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/executor.h"
#include "core/op_registry.h"
#include "dist/communicator.h"
#include "dist/launch.h"
#include "train/session.h"

using namespace myelin;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  std::vector<int64_t> batches{64, 128, 256};
  std::vector<std::string> precisions{"fp32", "tf32", "bf16"};
  int iters = 30;
  std::string device = "cuda", model = "alexnet", json;
  bool gemm = false, profile = false, allreduce = false;
  std::string gpus;  // data-parallel over these GPUs (dist::parse_gpus)
  dist::World world;
  size_t workspace_mb = 0;  // 0: BackendOptions' default
  int threads = 0;          // CPU engine threads; 0: all cores
};

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string x; std::getline(ss, x, ',');)
    if (!x.empty()) out.push_back(x);
  return out;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw UsageError(a + " needs a value");
      return argv[++i];
    };
    if (a == "--batches") {
      o.batches.clear();
      for (const std::string& b : split(value())) o.batches.push_back(std::stoll(b));
    } else if (a == "--precisions") {
      o.precisions = split(value());
    } else if (a == "--iters") {
      o.iters = std::stoi(value());
    } else if (a == "--device") {
      o.device = value();
    } else if (a == "--model") {
      o.model = value();
    } else if (a == "--json") {
      o.json = value();
    } else if (a == "--workspace-mb") {
      o.workspace_mb = static_cast<size_t>(std::stoll(value()));
    } else if (a == "--threads") {
      o.threads = std::stoi(value());
    } else if (a == "--gemm") {
      o.gemm = true;
    } else if (a == "--profile") {
      o.profile = true;
    } else if (a == "--allreduce") {
      o.allreduce = true;
    } else if (a == "--gpus") {
      o.gpus = value();
    } else {
      throw UsageError("unknown flag " + a);
    }
  }
  return o;
}

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

Batch synthetic(const Shape& images, int64_t classes) {
  Batch b;
  b.images = Tensor::empty(images, DType::f32);
  b.labels = Tensor::empty(Shape{images[0]}, DType::i32);
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (int64_t i = 0; i < b.images.numel(); ++i) b.images.f32()[i] = u(rng);
  for (int64_t i = 0; i < images[0]; ++i)
    b.labels.data_as<int32_t>()[i] = static_cast<int32_t>(rng() % classes);
  b.count = images[0];
  return b;
}

struct Row {
  std::string precision;
  int64_t batch = 0;
  double images_per_s = 0, step_ms = 0, tflops = 0, eager_images_per_s = 0, compile_s = 0;
  double loss_first = 0, loss_last = 0;
  size_t graph_nodes = 0;
  bool captured = false;
  double act_mib = 0, act16_mib = 0;  // activations (naive sum), of which stored in 16 bits
};

// Milliseconds per call of `step` over `iters` calls (after `warm` untimed ones).
template <class F>
double time_ms(Backend& b, int warm, int iters, F step) {
  for (int i = 0; i < warm; ++i) step(i);
  b.synchronize();
  auto t0 = Clock::now();
  for (int i = 0; i < iters; ++i) step(warm + i);
  b.synchronize();
  return seconds_since(t0) * 1000 / iters;
}

void describe_reduction(const Session& s, const dist::Communicator& c) {
  if (c.rank() != 0) return;
  double mib = 0;
  std::map<std::string, int> dtypes;
  for (const Tensor& t : s.reduced_grads()) {
    mib += static_cast<double>(t.nbytes()) / (1 << 20);
    ++dtypes[dtype_name(t.dtype())];
  }
  std::string kinds;
  for (auto& [name, n] : dtypes) kinds += " " + std::to_string(n) + " " + name;
  std::printf("all-reduce (%s, %d rank%s): %zu gradients, %.1f MiB (%s)\n", c.transport().c_str(),
              c.size(), c.size() == 1 ? "" : "s", s.reduced_grads().size(), mib, kinds.c_str() + 1);
}

void print_profile(Program& p, uint64_t seed) {
  std::map<std::string, double> by_op;
  double total = 0;
  for (int rep = 0; rep < 3; ++rep)
    p.run_profiled({seed, uint64_t(100 + rep)}, [&](int node, double ms) {
      if (rep == 0) return;  // first pass warms caches
      by_op[p.graph().nodes()[node].op] += ms / 2;
      total += ms / 2;
    });
  std::vector<std::pair<double, std::string>> rows;
  for (auto& [op, ms] : by_op) rows.push_back({ms, op});
  std::sort(rows.rbegin(), rows.rend());
  std::printf("  profile (synchronised per node, so slower than the graph): %.2f ms\n", total);
  for (auto& [ms, op] : rows)
    std::printf("    %-28s %8.3f ms %5.1f%%\n", op.c_str(), ms, 100 * ms / total);
}

Row measure(const NetworkSpec& spec, const Options& opt, const std::string& precision,
            int64_t batch) {
  SessionOptions so;
  so.device = Device::parse(opt.device);
  so.backend.precision = precision;
  if (opt.workspace_mb) so.backend.workspace_limit = opt.workspace_mb << 20;
  so.backend.threads = opt.threads;
  so.batch = batch;
  so.eval = false;
  so.recipe = spec.recipe;
  Row r{precision, batch};
  auto t0 = Clock::now();
  Session s(spec, so);
  std::unique_ptr<dist::Communicator> comm;
  if (opt.allreduce) {
    comm = dist::connect(opt.world, s.backend());
    s.set_communicator(comm.get());
    describe_reduction(s, *comm);
  }
  r.compile_s = seconds_since(t0);
  Program& p = s.train_program();
  for (const Value& v : p.graph().values()) {
    if (v.kind != ValueKind::activation) continue;
    double mib = static_cast<double>(v.shape.numel()) * dtype_size(v.dtype) / (1 << 20);
    r.act_mib += mib;
    if (v.dtype == DType::bf16 || v.dtype == DType::f16) r.act16_mib += mib;
  }
  s.feed(synthetic(p.graph().value(s.train_net().data).shape, spec.classes));
  Hyper h = Hyper::from(spec.recipe, spec.recipe.lr, 0);
  Backend& b = s.backend();
  auto eager_step = [&](int i) {
    s.forward_backward(static_cast<uint64_t>(i));
    s.update(h, static_cast<uint64_t>(i));
  };
  eager_step(0);
  r.loss_first = s.last_stats().loss;
  if (so.device.kind == DeviceKind::cpu) {  // no graphs: time the eager step once
    double ms = time_ms(b, 1, opt.iters, eager_step);
    r.loss_last = s.last_stats().loss;
    double flops = 0;
    for (const Node& n : p.graph().nodes()) flops += op_flops(p.graph(), n);
    r.step_ms = ms;
    r.images_per_s = r.eager_images_per_s = 1000.0 * batch / ms;
    r.tflops = flops / (ms * 1e-3) / 1e12;
    return r;
  }
  double eager_ms = time_ms(b, 1, std::max(3, opt.iters / 5), eager_step);
  r.eager_images_per_s = 1000.0 * batch / eager_ms;
  uint64_t seed = so.seed;
  const int nodes = static_cast<int>(p.graph().nodes().size());
  r.captured = b.capture([&] {
    s.forward_backward(0);  // with the all-reduce, when there is one
    p.run_range(StepContext{seed, 0}, s.backward_end(), nodes);
  });
  double ms = r.captured ? time_ms(b, 3, opt.iters,
                                   [&](int i) {
                                     b.replay(StepContext{seed, uint64_t(1000 + i)});
                                   })
                         : time_ms(b, 3, opt.iters, eager_step);
  r.loss_last = s.last_stats().loss;
  double flops = 0;
  for (const Node& n : p.graph().nodes()) flops += op_flops(p.graph(), n);
  r.step_ms = ms;
  r.images_per_s = 1000.0 * batch / ms;
  r.tflops = flops / (ms * 1e-3) / 1e12;
  if (opt.profile && batch == opt.batches.back()) print_profile(p, seed);
  return r;
}

// The engine's own matrix product at 8192^3 per precision: the ceiling the step is measured
// against (fp32 tensors; tf32/bf16/fp16 through cuBLASLt's fast compute types).
void measure_gemm(const Options& opt) {
  const int64_t n = 8192;
  for (const std::string& precision : opt.precisions) {
    BackendOptions bo;
    bo.precision = precision;
    auto b = make_backend(Device::parse(opt.device), bo);
    Graph g(false);
    ValueId a = g.input("a", Shape{n, n}), c = g.input("b", Shape{n, n});
    g.keep(g.add1("matmul", "mm", {a, c}));
    Program p(g, *b);
    Buffer ba(*b, n * n * 4), bb(*b, n * n * 4);
    std::vector<float> host(static_cast<size_t>(n * n));
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> u(-1, 1);
    for (float& x : host) x = u(rng);
    b->copy_from_host(ba.data(), host.data(), host.size() * 4);
    b->copy_from_host(bb.data(), host.data(), host.size() * 4);
    p.bind("a", Tensor(ba.data(), Shape{n, n}, DType::f32, b->device()));
    p.bind("b", Tensor(bb.data(), Shape{n, n}, DType::f32, b->device()));
    double ms = time_ms(*b, 2, 10, [&](int) { p.run({}); });
    std::printf("gemm %s 8192^3: %.3f ms, %.1f TFLOP/s\n", precision.c_str(), ms,
                2.0 * n * n * n / (ms * 1e-3) / 1e12);
  }
}

void write_json(const std::string& path, const std::vector<Row>& rows) {
  std::ofstream out(path);
  out << "[\n";
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row& r = rows[i];
    out << "  {\"precision\": \"" << r.precision << "\", \"batch\": " << r.batch
        << ", \"images_per_second\": " << r.images_per_s << ", \"step_ms\": " << r.step_ms
        << ", \"tflops\": " << r.tflops << ", \"eager_images_per_second\": " << r.eager_images_per_s
        << ", \"captured\": " << (r.captured ? "true" : "false") << "}"
        << (i + 1 < rows.size() ? ",\n" : "\n");
  }
  out << "]\n";
}

}  // namespace

int main(int argc, char** argv) {
  try {
    Options opt = parse(argc, argv);
    opt.world = dist::detect_world();
    if (!opt.gpus.empty() && !opt.world.distributed())
      return dist::launch_local(dist::parse_gpus(opt.gpus, dist::visible_gpus()));
    if (opt.world.distributed()) {
      opt.device =
          "cuda:" + std::to_string(opt.world.gpu >= 0 ? opt.world.gpu : opt.world.local_rank);
      opt.allreduce = true;
    }
    const bool root = opt.world.is_root();
    const int ranks = opt.world.size;
    if (opt.gemm && root) measure_gemm(opt);
    NetworkSpec spec = load_network(opt.model);
    std::vector<Row> rows;
    if (root)
      std::printf("%-6s %6s %10s %9s %9s %11s %8s %8s %s\n", "prec", "batch", "images/s", "step ms",
                  "TFLOP/s", "eager img/s", "build s", "loss", "");
    for (const std::string& precision : opt.precisions)
      for (int64_t batch : opt.batches) {
        Row r = measure(spec, opt, precision, batch);
        rows.push_back(r);
        if (!root) continue;
        if (ranks > 1)
          std::printf("%d ranks x batch %lld: %.0f images/s in all (the row below is one GPU's)\n",
                      ranks, static_cast<long long>(batch), r.images_per_s * ranks);
        std::printf("%-6s %6lld %10.0f %9.3f %9.1f %11.0f %8.1f %5.2f>%-6.3f %s\n",
                    precision.c_str(), static_cast<long long>(batch), r.images_per_s, r.step_ms,
                    r.tflops, r.eager_images_per_s, r.compile_s, r.loss_first, r.loss_last,
                    r.captured ? "(CUDA graph)" : "(eager)");
        if (r.act16_mib > 0)
          std::printf("       activations %.0f MiB, %.0f MiB of them in 16 bits\n", r.act_mib,
                      r.act16_mib);
        std::fflush(stdout);
      }
    if (!opt.json.empty() && root) write_json(opt.json, rows);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "alexnet_gpu_bench: %s\n", e.what());
    return 1;
  }
}
