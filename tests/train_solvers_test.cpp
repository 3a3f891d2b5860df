// The CPU optimizer kernels against a float64 transcription of PyTorch's torch.optim formulas
// (SGD, SGD(nesterov=True), Adam, AdamW, RMSprop, Adagrad; clip_grad_norm_) over several steps.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/backend.h"
#include "core/error.h"
#include "core/executor.h"
#include "ops/params.h"

using namespace myelin;

namespace {

using Doubles = std::vector<double>;

struct Config {
  std::string solver;
  double lr = 0.05, momentum = 0.9, beta2 = 0.999, eps = 1e-8, wd = 0.01;
  double grad_scale = 1.0, clip = 0.0;
  bool zero_grads = false;
  std::vector<double> lr_mult{1.0, 2.0, 0.5}, decay_mult{1.0, 0.0, 3.0};
};

const std::vector<Shape> kShapes = {Shape{37, 53}, Shape{11}, Shape{4, 3, 5, 5}};

// Uniform in [-1, -0.05] U [0.05, 1]: random and never zero.
Doubles random_values(std::mt19937& rng, int64_t n, double scale = 1.0) {
  std::uniform_real_distribution<double> u(0.05, 1.0);
  std::bernoulli_distribution sign(0.5);
  Doubles v(static_cast<size_t>(n));
  for (double& x : v) x = scale * (sign(rng) ? u(rng) : -u(rng));
  return v;
}

// PyTorch's update, written as torch/optim/*.py does it, in double.
struct Reference {
  Config c;
  std::vector<Doubles> p, s0, s1;

  void step(std::vector<Doubles> g, int t) {
    for (auto& gi : g)
      for (double& x : gi) x *= c.grad_scale;
    if (c.clip > 0) {  // torch.nn.utils.clip_grad_norm_
      double total = 0;
      for (auto& gi : g)
        for (double x : gi) total += x * x;
      double coef = std::min(1.0, c.clip / (std::sqrt(total) + 1e-6));
      for (auto& gi : g)
        for (double& x : gi) x *= coef;
    }
    for (size_t i = 0; i < p.size(); ++i) one(i, g[i], t);
  }

  void one(size_t i, Doubles& g, int t) {
    double lr = c.lr * c.lr_mult[i], wd = c.wd * c.decay_mult[i];
    Doubles& w = p[i];
    if (c.solver == "adamw")
      for (double& x : w) x *= 1 - lr * wd;
    else
      for (size_t e = 0; e < w.size(); ++e) g[e] += wd * w[e];
    for (size_t e = 0; e < w.size(); ++e) {
      double gi = g[e];
      if (c.solver == "sgd" || c.solver == "nesterov") {
        s0[i][e] = t == 1 ? gi : c.momentum * s0[i][e] + gi;
        w[e] -= lr * (c.solver == "sgd" ? s0[i][e] : gi + c.momentum * s0[i][e]);
      } else if (c.solver == "adam" || c.solver == "adamw") {
        s0[i][e] = c.momentum * s0[i][e] + (1 - c.momentum) * gi;
        s1[i][e] = c.beta2 * s1[i][e] + (1 - c.beta2) * gi * gi;
        double bc1 = 1 - std::pow(c.momentum, t), bc2 = 1 - std::pow(c.beta2, t);
        double denom = std::sqrt(s1[i][e]) / std::sqrt(bc2) + c.eps;
        w[e] -= lr / bc1 * s0[i][e] / denom;
      } else if (c.solver == "rmsprop") {
        s0[i][e] = c.beta2 * s0[i][e] + (1 - c.beta2) * gi * gi;
        w[e] -= lr * gi / (std::sqrt(s0[i][e]) + c.eps);
      } else {  // adagrad, lr_decay = 0, initial_accumulator_value = 0
        s0[i][e] += gi * gi;
        w[e] -= lr * gi / (std::sqrt(s0[i][e]) + c.eps);
      }
    }
  }
};

double rel_error(const float* got, const Doubles& want) {
  double num = 0, den = 0;
  for (size_t e = 0; e < want.size(); ++e) {
    num += (got[e] - want[e]) * (got[e] - want[e]);
    den += want[e] * want[e];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

void copy_in(const Tensor& t, const Doubles& v) {
  for (size_t e = 0; e < v.size(); ++e) t.f32()[e] = static_cast<float>(v[e]);
}

// One optimizer_update node over kShapes (hp and gradients fed as inputs), run for `steps`
// steps and compared with the reference after each.
void check_solver(const Config& c, int steps = 5) {
  SCOPED_TRACE(c.solver + (c.clip > 0 ? " clip" : "") + (c.zero_grads ? " zero_grads" : ""));
  int slots = optimizer_slots(c.solver);
  int n = static_cast<int>(kShapes.size());
  Graph g;
  ValueId hp = g.input("hp", Shape{8});
  std::vector<ValueId> ps, gs, ss;
  for (int i = 0; i < n; ++i) ps.push_back(g.param("p" + std::to_string(i), kShapes[i], {}));
  for (int i = 0; i < n; ++i) gs.push_back(g.input("g" + std::to_string(i), kShapes[i]));
  for (int i = 0; i < n; ++i)
    for (int s = 0; s < slots; ++s)
      ss.push_back(g.state("p" + std::to_string(i) + ".opt" + std::to_string(s), kShapes[i], {}));
  std::vector<ValueId> inputs{hp};
  inputs.insert(inputs.end(), ps.begin(), ps.end());
  inputs.insert(inputs.end(), gs.begin(), gs.end());
  inputs.insert(inputs.end(), ss.begin(), ss.end());
  if (c.clip > 0) inputs.push_back(g.add1("global_norm_sq", "norm", gs));
  Attrs a{{"solver", c.solver},   {"count", int64_t{n}},
          {"lr_mult", c.lr_mult}, {"decay_mult", c.decay_mult},
          {"clip", c.clip},       {"zero_grads", int64_t{c.zero_grads ? 1 : 0}}};
  g.add("optimizer_update", "update", inputs, a);

  auto backend = make_backend(Device::cpu(), BackendOptions{.threads = 2});
  Program prog(std::move(g), *backend);
  std::mt19937 rng(42);
  Reference ref{c, {}, {}, {}};
  std::vector<Tensor> pt, gt, st;
  for (int i = 0; i < n; ++i) {
    pt.push_back(Tensor::empty(kShapes[i]));
    gt.push_back(Tensor::empty(kShapes[i]));
    ref.p.push_back(random_values(rng, kShapes[i].numel()));
    ref.s0.push_back(Doubles(kShapes[i].numel(), 0.0));
    ref.s1.push_back(Doubles(kShapes[i].numel(), 0.0));
    copy_in(pt[i], ref.p[i]);
    prog.bind(ps[i], pt[i]);
    prog.bind(gs[i], gt[i]);
    for (int s = 0; s < slots; ++s) {
      st.push_back(Tensor::empty(kShapes[i]));  // zero, as the solver states start
      prog.bind(ss[i * slots + s], st.back());
    }
  }
  Tensor hpt = Tensor::empty(Shape{8});
  prog.bind(hp, hpt);
  for (int t = 1; t <= steps; ++t) {
    std::vector<Doubles> grads;
    for (int i = 0; i < n; ++i) {
      grads.push_back(random_values(rng, kShapes[i].numel(), 1.0 / t));
      copy_in(gt[i], grads.back());
    }
    float h[8] = {float(c.lr), float(c.momentum), float(c.beta2),      float(c.eps),
                  float(c.wd), float(t),          float(c.grad_scale), 0};
    std::copy(h, h + 8, hpt.f32());
    ref.c.lr = h[0], ref.c.momentum = h[1], ref.c.beta2 = h[2], ref.c.eps = h[3], ref.c.wd = h[4];
    ref.c.grad_scale = h[6];  // the reference sees the same fp32-rounded hyper-parameters
    ref.step(grads, t);
    prog.run(StepContext{});
    for (int i = 0; i < n; ++i) {
      EXPECT_LT(rel_error(pt[i].f32(), ref.p[i]), 2e-6) << "param " << i << " step " << t;
      EXPECT_LT(rel_error(st[i * slots].f32(), ref.s0[i]), 2e-6) << "state0 " << i << " step " << t;
      if (slots > 1) {
        EXPECT_LT(rel_error(st[i * slots + 1].f32(), ref.s1[i]), 2e-6) << "state1 " << i;
      }
      for (int64_t e = 0; e < gt[i].numel(); ++e) {
        float want = c.zero_grads ? 0.0f : static_cast<float>(grads[i][e]);
        if (gt[i].f32()[e] != want) {
          ADD_FAILURE() << "gradient " << i << "[" << e << "] = " << gt[i].f32()[e]
                        << " after the update, expected " << want;
          break;
        }
      }
    }
  }
}

const char* kSolvers[] = {"sgd", "nesterov", "adam", "adamw", "rmsprop", "adagrad"};

}  // namespace

TEST(Solvers, MatchPyTorchWithWeightDecayAndMults) {
  for (const char* s : kSolvers) {
    Config c{.solver = s};
    if (c.solver == "rmsprop") c.beta2 = 0.99;
    if (c.solver == "adam" || c.solver == "adamw") c.lr = 0.01;
    check_solver(c);
  }
}

TEST(Solvers, MatchPyTorchWithoutWeightDecay) {
  for (const char* s : kSolvers) check_solver(Config{.solver = s, .momentum = 0.8, .wd = 0});
}

TEST(Solvers, ClipByGlobalNormOfScaledGradients) {
  // Gradients of norm ~30 scaled by 0.25; a clip at 1 makes every step clip.
  for (const char* s : kSolvers) check_solver(Config{.solver = s, .grad_scale = 0.25, .clip = 1.0});
  // A threshold far above the norm leaves the gradients alone.
  check_solver(Config{.solver = "sgd", .clip = 1e6});
}

TEST(Solvers, ZeroGradsClearsAccumulatedGradientsAfterTheUpdate) {
  for (const char* s : {"sgd", "adam"})
    check_solver(Config{.solver = s, .grad_scale = 0.5, .zero_grads = true});
}

TEST(Solvers, GlobalNormSqAndAccumulateGrad) {
  Graph g;
  ValueId a = g.input("a", Shape{1000, 7});
  ValueId b = g.input("b", Shape{5});
  ValueId norm = g.add1("global_norm_sq", "norm", {a, b});
  g.keep(norm);
  ValueId acc = g.state("acc", Shape{1000, 7}, {});
  g.add("accumulate_grad", "acc", {acc, a});
  auto backend = make_backend(Device::cpu(), BackendOptions{.threads = 2});
  Program prog(std::move(g), *backend);
  std::mt19937 rng(7);
  Tensor at = Tensor::empty(Shape{1000, 7}), bt = Tensor::empty(Shape{5}),
         acct = Tensor::empty(Shape{1000, 7});
  Doubles av = random_values(rng, 7000), bv = random_values(rng, 5),
          accv = random_values(rng, 7000);
  copy_in(at, av), copy_in(bt, bv), copy_in(acct, accv);
  prog.bind("a", at), prog.bind("b", bt), prog.bind("acc", acct);
  prog.run(StepContext{});
  prog.run(StepContext{});
  double want = 0;
  for (double x : av) want += x * x;
  for (double x : bv) want += x * x;
  EXPECT_NEAR(prog.tensor(norm).f32()[0], want, want * 1e-6);
  for (size_t e = 0; e < accv.size(); ++e) accv[e] += 2 * static_cast<double>(float(av[e]));
  EXPECT_LT(rel_error(acct.f32(), accv), 1e-6);
}

TEST(Solvers, UnknownSolverIsRejectedWithTheChoices) {
  Graph g;
  ValueId hp = g.input("hp", Shape{8});
  ValueId p = g.param("p", Shape{3}, {}), gr = g.input("g", Shape{3});
  ValueId s = g.state("s", Shape{3}, {});
  try {
    g.add("optimizer_update", "update", {hp, p, gr, s},
          Attrs{{"solver", std::string("lbfgs")},
                {"count", int64_t{1}},
                {"lr_mult", std::vector<double>{1}},
                {"decay_mult", std::vector<double>{1}}});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("adamw"), std::string::npos) << e.what();
  }
}
