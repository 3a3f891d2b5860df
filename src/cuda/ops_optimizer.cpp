// optimizer_update and global_norm_sq over every parameter in one launch each (optimizer.cu), and
// the dynamic loss scale's update.
// The chunk table (which slice of which parameter each block takes) is built and uploaded once,
// in the constructor; the table of tensor pointers is uploaded on the first run and again only if
// a binding changes, so a captured step replays without any host work. accumulate_grad is in
// ops_pointwise.cpp.
#include <algorithm>

#include "cuda/device_kernels.h"
#include "cuda/kernel_util.h"

namespace myelin::cuda {

namespace {

SolverKind solver_kind(const std::string& s) {
  static const std::pair<const char*, SolverKind> kinds[] = {
      {"sgd", SolverKind::sgd},         {"nesterov", SolverKind::nesterov},
      {"adam", SolverKind::adam},       {"adamw", SolverKind::adamw},
      {"rmsprop", SolverKind::rmsprop}, {"adagrad", SolverKind::adagrad}};
  for (auto& [name, k] : kinds)
    if (s == name) return k;
  optimizer_slots(s);  // throws the error naming the solvers
  return SolverKind::sgd;
}

// Device tables of a multi-tensor launch: tensors (re-uploaded when pointers change) and chunks.
class MultiTensorTables {
 public:
  MultiTensorTables(CudaBackend& be, const std::vector<int64_t>& sizes) : be_(be) {
    for (size_t t = 0; t < sizes.size(); ++t)
      for (int64_t b = 0; b < sizes[t]; b += kMtChunk)
        chunks_.push_back({static_cast<int>(t), b, std::min<int64_t>(sizes[t], b + kMtChunk)});
    staged_.resize(sizes.size());
    device_tensors_ = Buffer(be, std::max<size_t>(1, sizes.size()) * sizeof(MtTensor));
    device_chunks_ = Buffer(be, std::max<size_t>(1, chunks_.size()) * sizeof(MtChunk));
    be.copy_from_host(device_chunks_.data(), chunks_.data(), chunks_.size() * sizeof(MtChunk));
    MYELIN_CHECK(
        cudaHostAlloc(reinterpret_cast<void**>(&pinned_),
                      std::max<size_t>(1, sizes.size()) * sizeof(MtTensor), cudaHostAllocDefault),
        "allocating the optimizer's pointer table");
  }
  ~MultiTensorTables() {
    if (pinned_) cudaFreeHost(pinned_);
  }
  MultiTensorTables(const MultiTensorTables&) = delete;
  MultiTensorTables& operator=(const MultiTensorTables&) = delete;

  // Uploads `now` if it differs from what the device holds (stream-ordered; capturable).
  void update(const std::vector<MtTensor>& now) {
    bool same =
        uploaded_ && std::equal(now.begin(), now.end(), staged_.begin(),
                                [](const MtTensor& a, const MtTensor& b) {
                                  return a.p == b.p && a.g == b.g && a.s0 == b.s0 && a.s1 == b.s1;
                                });
    if (same || now.empty()) return;
    // The pinned buffer may still feed an earlier copy: wait for it unless capturing.
    if (uploaded_ && !be_.capturing()) MYELIN_CHECK(cudaStreamSynchronize(be_.stream()), "");
    staged_ = now;
    std::copy(now.begin(), now.end(), pinned_);
    MYELIN_CHECK(cudaMemcpyAsync(device_tensors_.data(), pinned_, now.size() * sizeof(MtTensor),
                                 cudaMemcpyHostToDevice, be_.stream()),
                 "uploading the optimizer's pointer table");
    uploaded_ = true;
  }

  const MtTensor* tensors() const { return static_cast<const MtTensor*>(device_tensors_.data()); }
  const MtChunk* chunks() const { return static_cast<const MtChunk*>(device_chunks_.data()); }
  int chunk_count() const { return static_cast<int>(chunks_.size()); }

 private:
  CudaBackend& be_;
  std::vector<MtChunk> chunks_;
  std::vector<MtTensor> staged_;
  Buffer device_tensors_, device_chunks_;
  MtTensor* pinned_ = nullptr;
  bool uploaded_ = false;
};

std::vector<int64_t> sizes_of(const KernelSpec& s, int first, int count) {
  std::vector<int64_t> sizes;
  for (int i = 0; i < count; ++i) sizes.push_back(s.input(first + i).shape.numel());
  return sizes;
}

// optimizer_update(hp, p_0..p_{n-1}, g_0..g_{n-1}, s_0..s_{n*slots-1} [, norm_sq])
class OptimizerKernel : public CudaKernel {
 public:
  explicit OptimizerKernel(const KernelSpec& s)
      : CudaKernel(s),
        solver_(solver_kind(s.node.attrs.s("solver", "sgd"))),
        slots_(optimizer_slots(s.node.attrs.s("solver", "sgd"))),
        count_(static_cast<int>(s.node.attrs.i("count", 0))),
        clip_(static_cast<float>(s.node.attrs.f("clip", 0.0))),
        zero_grads_(s.node.attrs.i("zero_grads", 0) != 0),
        loss_scaled_(s.node.attrs.i("loss_scaled", 0) != 0),
        lr_mult_(s.node.attrs.floats("lr_mult", {})),
        decay_mult_(s.node.attrs.floats("decay_mult", {})),
        tables_(be_, sizes_of(s, 1, count_)) {
    for (size_t i = 0; i < s.node.inputs.size(); ++i)
      if (s.input(static_cast<int>(i)).dtype != DType::f32)
        throw UnsupportedError(where_ + ": input " + std::to_string(i) +
                               " is not f32; the CUDA solver keeps f32 parameters, gradients and "
                               "states");
  }

 private:
  void launch(const std::vector<Tensor>& in, const std::vector<Tensor>&,
              const StepContext&) override {
    std::vector<MtTensor>& t = scratch_;
    t.resize(static_cast<size_t>(count_));
    for (int i = 0; i < count_; ++i) {
      float* s0 = in[1 + 2 * count_ + i * slots_].f32();
      float* s1 = slots_ > 1 ? in[2 + 2 * count_ + i * slots_].f32() : nullptr;
      t[i] = MtTensor{in[1 + i].f32(),
                      in[1 + count_ + i].f32(),
                      s0,
                      s1,
                      in[1 + i].numel(),
                      static_cast<float>(lr_mult_[i]),
                      static_cast<float>(decay_mult_[i])};
    }
    tables_.update(t);
    // The last inputs: norm_sq (clipping or loss scaling), then loss_scale (loss scaling).
    const size_t norm_at = in.size() - (loss_scaled_ ? 2 : 1);
    const UpdateArgs args{in[0].f32(), clip_ > 0 || loss_scaled_ ? in[norm_at].f32() : nullptr,
                          loss_scaled_ ? in.back().f32() : nullptr, clip_, zero_grads_ ? 1 : 0};
    optimizer_update(tables_.tensors(), tables_.chunks(), tables_.chunk_count(), args, solver_,
                     stream());
  }

  SolverKind solver_;
  int slots_, count_;
  float clip_;
  bool zero_grads_, loss_scaled_;
  std::vector<double> lr_mult_, decay_mult_;
  MultiTensorTables tables_;
  std::vector<MtTensor> scratch_;
};

class GlobalNormKernel : public CudaKernel {
 public:
  explicit GlobalNormKernel(const KernelSpec& s)
      : CudaKernel(s), tables_(be_, sizes_of(s, 0, static_cast<int>(s.node.inputs.size()))) {
    require_f32(s);
  }
  size_t workspace_bytes() const override {
    return sizeof(float) * std::max(1, tables_.chunk_count());
  }

 private:
  void launch(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
              const StepContext& ctx) override {
    std::vector<MtTensor>& t = scratch_;
    t.resize(in.size());
    for (size_t i = 0; i < in.size(); ++i)
      t[i] = MtTensor{nullptr, in[i].f32(), nullptr, nullptr, in[i].numel(), 1.f, 1.f};
    tables_.update(t);
    sum_squares(tables_.tensors(), tables_.chunks(), tables_.chunk_count(),
                static_cast<float*>(ctx.workspace), out[0].f32(), stream());
  }

  MultiTensorTables tables_;
  std::vector<MtTensor> scratch_;
};

// loss_scale_update(scale, good_steps, norm_sq), in place: one thread.
class LossScaleKernel : public CudaKernel {
 public:
  explicit LossScaleKernel(const KernelSpec& s)
      : CudaKernel(s), interval_(s.node.attrs.i("growth_interval", 2000)) {
    require_f32(s);
  }

 private:
  void launch(const std::vector<Tensor>& in, const std::vector<Tensor>&,
              const StepContext&) override {
    loss_scale_update(in[0].f32(), in[1].f32(), in[2].f32(), interval_, stream());
  }

  int64_t interval_;
};

template <class K>
std::unique_ptr<Kernel> make(const KernelSpec& s) {
  return std::make_unique<K>(s);
}

}  // namespace

MYELIN_REGISTER_OPS {
  register_kernel("optimizer_update", DeviceKind::cuda, make<OptimizerKernel>);
  register_kernel("global_norm_sq", DeviceKind::cuda, make<GlobalNormKernel>);
  register_kernel("loss_scale_update", DeviceKind::cuda, make<LossScaleKernel>);
}

}  // namespace myelin::cuda
