#include "train/session.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include "core/autodiff.h"
#include "core/error.h"
#include "dist/communicator.h"
#include "ops/params.h"

namespace myelin {

namespace {

uint64_t hash_name(const std::string& s) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

size_t aligned(size_t bytes) {
  return (bytes + 255) / 256 * 256;
}

bool is_persistent(const Value& v) {
  return v.kind == ValueKind::param || v.kind == ValueKind::state;
}

}  // namespace

void init_tensor(Tensor& host, const Init& init, uint64_t seed, const std::string& name) {
  float* p = host.f32();
  int64_t n = host.numel();
  int64_t fan_in = host.shape().rank() > 1 ? n / host.shape()[0] : n;
  std::mt19937_64 rng(seed ^ hash_name(name));
  auto fill_uniform = [&](double a) {
    std::uniform_real_distribution<double> d(-a, a);
    for (int64_t i = 0; i < n; ++i) p[i] = static_cast<float>(d(rng));
  };
  auto fill_normal = [&](double s) {
    std::normal_distribution<double> d(0.0, s);
    for (int64_t i = 0; i < n; ++i) p[i] = static_cast<float>(d(rng));
  };
  if (init.kind == "constant") {
    for (int64_t i = 0; i < n; ++i) p[i] = static_cast<float>(init.value);
  } else if (init.kind == "uniform") {
    fill_uniform(init.value);
  } else if (init.kind == "gaussian") {
    fill_normal(init.value);
  } else if (init.kind == "xavier") {
    fill_uniform(std::sqrt(3.0 / static_cast<double>(fan_in)));
  } else if (init.kind == "msra") {
    fill_normal(std::sqrt(2.0 / static_cast<double>(fan_in)));
  } else {
    throw Error("'" + name + "': unknown init '" + init.kind +
                "' (expected constant, uniform, gaussian, xavier or msra)");
  }
}

Hyper Hyper::from(const Recipe& r, double lr, int64_t step) {
  Hyper h;
  bool adam = r.solver == "adam" || r.solver == "adamw";
  h.lr = static_cast<float>(lr);
  h.beta1 = static_cast<float>(adam ? r.beta1 : r.momentum);
  h.beta2 = static_cast<float>(r.solver == "rmsprop" ? r.rms_decay : r.beta2);
  h.eps = static_cast<float>(r.eps);
  h.weight_decay = static_cast<float>(r.weight_decay);
  h.t = static_cast<float>(step + 1);
  h.grad_scale = 1.0f / static_cast<float>(std::max<int64_t>(1, r.accumulate));
  return h;
}

Session::Session(const NetworkSpec& spec, const SessionOptions& opts)
    : spec_(spec), opts_(opts), backend_(make_backend(opts.device, opts.backend)) {
  if (opts_.train) build_train(opts_.batch);
  if (opts_.eval) build_eval(opts_.eval_batch > 0 ? opts_.eval_batch : opts_.batch);
}

Session::~Session() = default;

Program& Session::train_program() {
  if (!train_) throw Error("this session was built without a training program");
  return *train_;
}

void Session::add_eval(int64_t batch) {
  if (eval_) throw Error("this session has an evaluation program already");
  build_eval(batch);
}

Program& Session::eval_program() {
  if (!eval_) throw Error("this session was built without an evaluation program");
  return *eval_;
}

Tensor Session::device_tensor(Shape s, DType t, std::vector<Buffer>& owner) {
  owner.emplace_back(*backend_, aligned(static_cast<size_t>(s.numel()) * dtype_size(t)));
  return Tensor(owner.back().data(), std::move(s), t, backend_->device());
}

double default_loss_scale(const std::string& precision) {
  return precision == "fp16" ? 65536 : 0;
}

TrainingGraph build_training_graph(const NetworkSpec& spec, const Recipe& r, int64_t batch,
                                   double initial_scale) {
  TrainingGraph t{build_network(spec, batch, true, r.label_smoothing), {}, {}, 0};
  Graph& g = t.net.graph;
  std::vector<ValueId> params = g.params();
  // Dynamic loss scaling: the backward pass starts from the scale instead of 1 (ops/optimizer.cpp).
  ValueId scale = kNoValue;
  if (initial_scale > 0)
    scale = g.state("loss_scale", g.value(t.net.loss).shape, Init{"constant", initial_scale});
  std::map<ValueId, ValueId> grads = scale == kNoValue
                                         ? differentiate(g, t.net.loss, params)
                                         : differentiate(g, {{t.net.loss, scale}}, params);
  std::vector<ValueId> ps, gs;
  for (ValueId p : params)
    if (grads.count(p)) ps.push_back(p), gs.push_back(grads[p]);
  t.grads = gs;

  g.set_phase(Phase::backward);
  const bool accumulating = r.accumulate > 1;
  if (accumulating)
    for (size_t i = 0; i < ps.size(); ++i) {
      const Value v = g.value(ps[i]);  // a copy, as below
      ValueId acc = g.state(v.name + ".acc", v.shape, Init{});
      g.add("accumulate_grad", "update", {acc, gs[i]});
      gs[i] = acc;
    }
  t.backward_end = static_cast<int>(g.nodes().size());
  t.update_grads = gs;

  int slots = optimizer_slots(r.solver);
  std::vector<ValueId> inputs{g.input("solver.hp", Shape{8})};
  inputs.insert(inputs.end(), ps.begin(), ps.end());
  inputs.insert(inputs.end(), gs.begin(), gs.end());
  std::vector<double> lr_mult, decay_mult;
  for (ValueId p : ps) {
    // A copy: g.state() adds values, which may move the one a reference would point at.
    const Value v = g.value(p);
    lr_mult.push_back(v.lr_mult);
    decay_mult.push_back(v.decay_mult);
    for (int s = 0; s < slots; ++s)
      inputs.push_back(g.state(v.name + ".opt" + std::to_string(s), v.shape, Init{}));
  }
  ValueId norm_sq = kNoValue;
  if (r.clip_grad_norm > 0 || scale != kNoValue)
    inputs.push_back(norm_sq = g.add1("global_norm_sq", "update", gs));
  if (scale != kNoValue) inputs.push_back(scale);
  Attrs a{{"solver", r.solver},
          {"count", static_cast<int64_t>(ps.size())},
          {"lr_mult", lr_mult},
          {"decay_mult", decay_mult},
          {"clip", r.clip_grad_norm},
          {"zero_grads", int64_t{accumulating ? 1 : 0}},
          {"loss_scaled", int64_t{scale != kNoValue ? 1 : 0}}};
  g.add("optimizer_update", "update", inputs, a);
  if (scale != kNoValue)
    g.add("loss_scale_update", "update",
          {scale, g.state("loss_scale.good_steps", Shape{1}, Init{}), norm_sq},
          {{"growth_interval", int64_t{2000}}});
  g.set_phase(Phase::forward);
  return t;
}

void Session::build_train(int64_t batch) {
  const Recipe& r = opts_.recipe;
  const double initial_scale =
      opts_.loss_scale >= 0 ? opts_.loss_scale : default_loss_scale(opts_.backend.precision);
  TrainingGraph t = build_training_graph(spec_, r, batch, initial_scale);
  train_net_ = std::move(t.net);
  backward_end_ = t.backward_end;
  update_grads_ = t.update_grads;
  accumulating_ = r.accumulate > 1;
  Graph& g = train_net_.graph;

  allocate_persistent(g);
  train_ = std::make_unique<Program>(g, *backend_);
  // The node ranges, counted in the program's copy of the graph: the backend may have removed
  // nodes of the forward and backward passes from it (Backend::fuse), never of the update.
  const Graph& pg = train_->graph();
  backward_end_ = static_cast<int>(pg.nodes().size() - (g.nodes().size() - backward_end_));
  forward_end_ = 0;
  while (pg.nodes()[forward_end_].phase == Phase::forward) ++forward_end_;
  bind_persistent(*train_);
  // One block for the step's inputs: images, labels, hyper-parameters.
  Shape data_shape = g.value(train_net_.data).shape, label_shape = g.value(train_net_.label).shape;
  labels_offset_ = aligned(static_cast<size_t>(data_shape.numel()) * sizeof(float));
  hp_offset_ = labels_offset_ + aligned(static_cast<size_t>(label_shape.numel()) * sizeof(int32_t));
  size_t block_bytes = hp_offset_ + 8 * sizeof(float);
  buffers_.emplace_back(*backend_, aligned(block_bytes));
  char* block = static_cast<char*>(buffers_.back().data());
  train_data_ = Tensor(block, data_shape, g.value(train_net_.data).dtype, backend_->device());
  train_label_ = Tensor(block + labels_offset_, label_shape, DType::i32, backend_->device());
  hp_ = Tensor(block + hp_offset_, Shape{8}, DType::f32, backend_->device());
  Tensor zero = device_tensor(Shape{1}, DType::f32, buffers_);
  backend_->fill_zero(zero.data(), sizeof(float));
  std::vector<const void*> outs;
  for (ValueId v : {train_net_.loss, train_net_.top1, train_net_.top5})
    outs.push_back(v == kNoValue ? zero.data() : train_->tensor(v).data());
  io_ = backend_->make_step_io(block, block_bytes, outs, sizeof(float));
  train_->bind("solver.hp", hp_);
  train_->bind(train_net_.data, train_data_);
  train_->bind(train_net_.label, train_label_);
}

void Session::build_eval(int64_t batch) {
  eval_net_ = build_network(spec_, batch, false, opts_.recipe.label_smoothing);
  Graph& g = eval_net_.graph;
  allocate_persistent(g);
  eval_ = std::make_unique<Program>(g, *backend_);
  bind_persistent(*eval_);
  eval_data_ =
      device_tensor(g.value(eval_net_.data).shape, g.value(eval_net_.data).dtype, buffers_);
  eval_label_ = device_tensor(g.value(eval_net_.label).shape, DType::i32, buffers_);
  eval_->bind(eval_net_.data, eval_data_);
  eval_->bind(eval_net_.label, eval_label_);
}

// Parameters and states shared by both programs get device memory once, initialised on the
// host from their Init and copied over.
void Session::allocate_persistent(const Graph& g) {
  for (const Value& v : g.values()) {
    if (!is_persistent(v) || persistent_.count(v.name)) continue;
    Tensor host = Tensor::empty(v.shape, v.dtype);
    if (v.dtype == DType::f32) init_tensor(host, v.init, opts_.seed, v.name);
    Tensor dev = device_tensor(v.shape, v.dtype, buffers_);
    backend_->copy_from_host(dev.data(), host.data(), host.nbytes());
    persistent_[v.name] = {dev};
    if (v.kind == ValueKind::param)
      params_.push_back(v.name);
    else if (v.name.find(".opt") != std::string::npos || v.name.ends_with(".acc"))
      slots_.push_back(v.name);
    else
      states_.push_back(v.name);
  }
}

void Session::bind_persistent(Program& p) {
  for (size_t i = 0; i < p.graph().values().size(); ++i) {
    const Value& v = p.graph().values()[i];
    if (is_persistent(v)) p.bind(static_cast<ValueId>(i), persistent_.at(v.name).device);
  }
}

void Session::reset_carried_states() {
  for (const std::string& name : states_)
    if (is_carried_state(name)) {
      const Tensor& t = persistent_.at(name).device;
      backend_->fill_zero(t.data(), t.nbytes());
    }
}

void Session::feed(const Batch& b) {
  if (b.images.shape() != train_data_.shape())
    throw ShapeError("batch images " + b.images.shape().str() + " do not match the network input " +
                     train_data_.shape().str());
  if (b.labels.shape() != train_label_.shape())
    throw ShapeError("batch labels " + b.labels.shape().str() + " do not match the network's " +
                     train_label_.shape().str());
  if (!io_) {
    backend_->copy_from_host(train_data_.data(), b.images.data(), b.images.nbytes());
    backend_->copy_from_host(train_label_.data(), b.labels.data(), b.labels.nbytes());
    return;
  }
  char* slot = static_cast<char*>(io_->input());
  std::memcpy(slot, b.images.data(), b.images.nbytes());
  std::memcpy(slot + labels_offset_, b.labels.data(), b.labels.nbytes());
  pending_upload_ = true;
}

// The eager path: the fed batch goes up now (its hyper-parameter bytes are stale; update()
// writes them before the optimizer reads them).
void Session::upload_pending() {
  if (!pending_upload_) return;
  last_slot_ = static_cast<const char*>(io_->input());
  io_->upload();
  pending_upload_ = false;
}

void Session::set_communicator(dist::Communicator* comm) {
  comm_ = comm;
  reduced_.clear();
  if (!comm_) return;
  for (ValueId v : update_grads_) reduced_.push_back(train_program().tensor(v));
  make_buckets();
  std::vector<Tensor> all;
  for (auto& [name, p] : persistent_) all.push_back(p.device);
  comm_->broadcast(all, 0);
  graph_ready_ = false;  // a step captured before holds no all-reduce
}

// Gradients in the order the backward pass finishes them, cut into buckets of kBucketBytes.
// Accumulated gradients are summed once, before the update, in one bucket.
void Session::make_buckets() {
  buckets_.clear();
  const Graph& g = train_program().graph();
  std::vector<std::pair<int, size_t>> order;  // (node that finishes it, index)
  for (size_t i = 0; i < update_grads_.size(); ++i) {
    int producer = accumulating_ ? -1 : g.value(update_grads_[i]).producer;
    order.push_back({producer < 0 ? backward_end_ - 1 : producer, i});
  }
  std::stable_sort(order.begin(), order.end());
  size_t bytes = 0;
  for (auto [node, i] : order) {
    if (buckets_.empty() || bytes >= kBucketBytes) buckets_.push_back({}), bytes = 0;
    buckets_.back().after_node = node;
    buckets_.back().grads.push_back(reduced_[i]);
    bytes += reduced_[i].nbytes();
  }
}

// Forward and backward, with each bucket's sum started as the backward pass finishes it; summed
// here, averaged by the update (hp's grad_scale carries 1 / ranks).
void Session::forward_backward_reduce(const StepContext& ctx) {
  Program& p = train_program();
  if (!comm_ || accumulating_) return p.run_range(ctx, 0, backward_end_);
  size_t next = 0;
  p.run_range(ctx, 0, backward_end_, [&](int node) {
    while (next < buckets_.size() && buckets_[next].after_node == node)
      comm_->start_all_reduce(buckets_[next++].grads);
  });
  comm_->wait_all_reduced();
}

float Session::hp_grad_scale(const Hyper& h) const {
  return comm_ ? h.grad_scale / static_cast<float>(comm_->size()) : h.grad_scale;
}

void Session::run_step(const StepContext& ctx) {
  Program& p = train_program();
  forward_backward_reduce(ctx);
  p.run_range(ctx, backward_end_, static_cast<int>(p.graph().nodes().size()));
}

void Session::forward_backward(uint64_t step) {
  if (io_) upload_pending();
  forward_backward_reduce(StepContext{opts_.seed, step});
}

void Session::update(const Hyper& h, uint64_t step) {
  float hp[8] = {h.lr, h.beta1, h.beta2, h.eps, h.weight_decay, h.t, hp_grad_scale(h), 0};
  backend_->copy_from_host(hp_.data(), hp, sizeof(hp));
  StepContext ctx{opts_.seed, step};
  if (comm_ && accumulating_) comm_->all_reduce(reduced_);
  Program& p = train_program();
  p.run_range(ctx, backward_end_, static_cast<int>(p.graph().nodes().size()));
}

void Session::step(const Hyper& h, uint64_t step) {
  if (accumulating_)
    throw Error(
        "Session::step runs whole steps; with accumulate > 1 use forward_backward and update");
  float hp[8] = {h.lr, h.beta1, h.beta2, h.eps, h.weight_decay, h.t, hp_grad_scale(h), 0};
  StepContext ctx{opts_.seed, step};
  if (!io_) {
    backend_->copy_from_host(hp_.data(), hp, sizeof(hp));
    run_step(ctx);
    host_stats_[1] = host_stats_[0];
    host_stats_[0] = last_stats();
    ++steps_;
    return;
  }
  char* slot = static_cast<char*>(io_->input());
  // No feed since the last step: the same batch again.
  if (!pending_upload_ && last_slot_ && last_slot_ != slot)
    std::memcpy(slot, last_slot_, hp_offset_);
  std::memcpy(slot + hp_offset_, hp, sizeof(hp));
  io_->upload();
  pending_upload_ = false;
  last_slot_ = slot;
  // Step 0 runs eagerly (first-use work such as library warm-up stays out of the graph); step 1
  // is captured, and it and every later step replay the graph.
  if (!graph_ready_ && opts_.graph && steps_ >= 1)
    graph_ready_ = backend_->capture([&] { run_step(ctx); });
  if (!graph_ready_ || !backend_->replay(ctx)) run_step(ctx);
  io_->download();
  ++steps_;
}

StepStats Session::step_stats(int back) {
  if (back < 0 || back > 1 || back >= steps_)
    throw Error("no statistics of the step " + std::to_string(back) + " before the last (" +
                std::to_string(steps_) + " steps run)");
  if (!io_) return host_stats_[back];
  const float* f = static_cast<const float*>(io_->downloaded(back));
  return {f[0], f[1], f[2]};
}

namespace {
float read_scalar(Backend& b, const Program& p, ValueId v) {
  if (v == kNoValue) return 0;
  float x = 0;
  b.copy_to_host(&x, p.tensor(v).data(), sizeof(float));
  return x;
}
}  // namespace

StepStats Session::last_stats() {
  Program& p = train_program();
  backend_->synchronize();
  return {read_scalar(*backend_, p, train_net_.loss), read_scalar(*backend_, p, train_net_.top1),
          read_scalar(*backend_, p, train_net_.top5)};
}

StepStats Session::evaluate(const Batch& b, Tensor* logits_host) {
  Program& p = eval_program();
  if (b.images.shape() != eval_data_.shape())
    throw ShapeError("batch images " + b.images.shape().str() + " do not match the network input " +
                     eval_data_.shape().str());
  backend_->copy_from_host(eval_data_.data(), b.images.data(), b.images.nbytes());
  backend_->copy_from_host(eval_label_.data(), b.labels.data(), b.labels.nbytes());
  p.run(StepContext{opts_.seed, 0});
  if (logits_host) {
    Tensor logits = p.tensor(eval_net_.logits);
    *logits_host = Tensor::empty(logits.shape(), logits.dtype());
    backend_->copy_to_host(logits_host->data(), logits.data(), logits.nbytes());
  }
  backend_->synchronize();
  return {read_scalar(*backend_, p, eval_net_.loss), read_scalar(*backend_, p, eval_net_.top1),
          read_scalar(*backend_, p, eval_net_.top5)};
}

std::vector<std::string> Session::param_names() const {
  return params_;
}
std::vector<std::string> Session::state_names() const {
  return states_;
}
std::vector<std::string> Session::slot_names() const {
  return slots_;
}

Tensor Session::read(const std::string& name) {
  auto it = persistent_.find(name);
  if (it == persistent_.end()) throw Error("the network has no tensor named '" + name + "'");
  const Tensor& d = it->second.device;
  Tensor host = Tensor::empty(d.shape(), d.dtype());
  backend_->copy_to_host(host.data(), d.data(), d.nbytes());
  backend_->synchronize();
  return host;
}

void Session::write(const std::string& name, const Tensor& host) {
  auto it = persistent_.find(name);
  if (it == persistent_.end()) throw Error("the network has no tensor named '" + name + "'");
  const Tensor& d = it->second.device;
  if (host.shape() != d.shape() || host.dtype() != d.dtype())
    throw ShapeError("'" + name + "': the network expects " + d.shape().str() + " " +
                     dtype_name(d.dtype()) + ", got " + host.shape().str() + " " +
                     dtype_name(host.dtype()));
  backend_->copy_from_host(d.data(), host.data(), host.nbytes());
  backend_->synchronize();
}

}  // namespace myelin
