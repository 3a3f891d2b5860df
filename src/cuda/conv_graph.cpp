#pragma GCC diagnostic ignored "-Wdeprecated-declarations"  // the plan's handle attribute

#include "cuda/conv_graph.h"

#include <algorithm>
#include <utility>

#include "core/error.h"
#include "cuda/cuda_check.h"

namespace myelin::cuda {

namespace {

enum Uid : int64_t { uid_x = 1, uid_w = 2, uid_y = 3, uid_sum = 4, uid_sqsum = 5 };

// Candidates timed per convolution: cuDNN's ranking puts the fast ones first, and each one timed
// costs a plan (milliseconds) and a few runs.
constexpr int max_tuned = 16;

void set(cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t name,
         cudnnBackendAttributeType_t type, int64_t count, const void* value,
         const std::string& where) {
  MYELIN_CHECK(cudnnBackendSetAttribute(d, name, type, count, value), where);
}

void set_desc(cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t name,
              const BackendDesc& value, const std::string& where) {
  cudnnBackendDescriptor_t v = value.get();
  set(d, name, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &v, where);
}

// Strides of a logical [N, C, H, W] tensor stored NHWC (filters: [K, C, R, S] stored KRSC) or
// NCHW (KCRS).
std::array<int64_t, 4> strides_of(const std::array<int64_t, 4>& d, bool nhwc) {
  if (!nhwc) return {d[1] * d[2] * d[3], d[2] * d[3], d[3], 1};
  return {d[1] * d[2] * d[3], 1, d[3] * d[1], d[1]};
}

std::unique_ptr<BackendDesc> tensor(const std::array<int64_t, 4>& dims, int64_t uid,
                                    cudnnDataType_t type, bool nhwc, const std::string& where) {
  auto t = std::make_unique<BackendDesc>(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
  const std::array<int64_t, 4> strides = strides_of(dims, nhwc);
  const int64_t alignment = 16;
  set(t->get(), CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type, where);
  set(t->get(), CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dims.data(), where);
  set(t->get(), CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, strides.data(), where);
  set(t->get(), CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid, where);
  set(t->get(), CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &alignment, where);
  MYELIN_CHECK(cudnnBackendFinalize(t->get()), where);
  return t;
}

std::unique_ptr<BackendDesc> convolution(const ConvGeometry& g, const std::string& where) {
  auto c = std::make_unique<BackendDesc>(CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR);
  const cudnnDataType_t accumulate = CUDNN_DATA_FLOAT;
  const cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
  const int64_t dims = 2;
  set(c->get(), CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &accumulate, where);
  set(c->get(), CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, 1, &mode, where);
  set(c->get(), CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, 1, &dims, where);
  set(c->get(), CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, 2, g.dilation.data(), where);
  set(c->get(), CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, 2, g.stride.data(), where);
  set(c->get(), CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, 2, g.pad.data(), where);
  set(c->get(), CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, 2, g.pad.data(), where);
  MYELIN_CHECK(cudnnBackendFinalize(c->get()), where);
  return c;
}

// The operation node of this direction: its descriptor type and the attributes naming x, w, y.
struct OpAttrs {
  cudnnBackendDescriptorType_t type;
  cudnnBackendAttributeName_t alpha, beta, conv, x, w, y;
};

OpAttrs op_attrs(ConvDir d) {
  switch (d) {
    case ConvDir::forward:
      return {CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR,
              CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA,
              CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA,
              CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC,
              CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X,
              CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W,
              CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y};
    case ConvDir::backward_data:
      return {CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_DATA_DESCRIPTOR,
              CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_ALPHA,
              CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_BETA,
              CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_CONV_DESC,
              CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DX,
              CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_W,
              CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DY};
    case ConvDir::backward_filter:
      break;
  }
  return {CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_FILTER_DESCRIPTOR,
          CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_ALPHA,
          CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_BETA,
          CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_CONV_DESC,
          CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_X,
          CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DW,
          CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DY};
}

// The GenStats node: per-channel sum and sum of squares of `y` into `sum` and `sqsum`.
std::unique_ptr<BackendDesc> gen_stats(const BackendDesc& y, const BackendDesc& sum,
                                       const BackendDesc& sqsum, const std::string& where) {
  auto op = std::make_unique<BackendDesc>(CUDNN_BACKEND_OPERATION_GEN_STATS_DESCRIPTOR);
  const cudnnGenStatsMode_t mode = CUDNN_GENSTATS_SUM_SQSUM;
  const cudnnDataType_t precision = CUDNN_DATA_FLOAT;
  set(op->get(), CUDNN_ATTR_OPERATION_GENSTATS_MODE, CUDNN_TYPE_GENSTATS_MODE, 1, &mode, where);
  set(op->get(), CUDNN_ATTR_OPERATION_GENSTATS_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &precision,
      where);
  set_desc(op->get(), CUDNN_ATTR_OPERATION_GENSTATS_XDESC, y, where);
  set_desc(op->get(), CUDNN_ATTR_OPERATION_GENSTATS_SUMDESC, sum, where);
  set_desc(op->get(), CUDNN_ATTR_OPERATION_GENSTATS_SQSUMDESC, sqsum, where);
  MYELIN_CHECK(cudnnBackendFinalize(op->get()), where);
  return op;
}

// What the engine behind an engine configuration says of itself.
class EngineNotes {
 public:
  EngineNotes(cudnnBackendDescriptor_t config, const std::string& where)
      : engine_(CUDNN_BACKEND_ENGINE_DESCRIPTOR) {
    cudnnBackendDescriptor_t e = engine_.get();
    int64_t n = 0;
    MYELIN_CHECK(cudnnBackendGetAttribute(config, CUDNN_ATTR_ENGINECFG_ENGINE,
                                          CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &n, &e),
                 where);
  }
  bool compiles_at_run_time() const {
    return has(CUDNN_ATTR_ENGINE_BEHAVIOR_NOTE, CUDNN_TYPE_BEHAVIOR_NOTE,
               CUDNN_BEHAVIOR_NOTE_TYPE_COUNT, CUDNN_BEHAVIOR_NOTE_RUNTIME_COMPILATION);
  }
  bool uses_tensor_cores() const {
    return has(CUDNN_ATTR_ENGINE_NUMERICAL_NOTE, CUDNN_TYPE_NUMERICAL_NOTE,
               CUDNN_NUMERICAL_NOTE_TYPE_COUNT, CUDNN_NUMERICAL_NOTE_TENSOR_CORE) ||
           has(CUDNN_ATTR_ENGINE_NUMERICAL_NOTE, CUDNN_TYPE_NUMERICAL_NOTE,
               CUDNN_NUMERICAL_NOTE_TYPE_COUNT, CUDNN_NUMERICAL_NOTE_DOWN_CONVERT_INPUTS);
  }

 private:
  // Whether the engine's list of notes `name` (enum values of `type`) holds `note`.
  bool has(cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type, int count,
           int note) const {
    std::vector<int> notes(static_cast<size_t>(count));  // the note enums are ints
    int64_t n = 0;
    if (cudnnBackendGetAttribute(engine_.get(), name, type, count, &n, notes.data()) !=
        CUDNN_STATUS_SUCCESS)
      return false;
    return std::find(notes.begin(), notes.begin() + n, note) != notes.begin() + n;
  }

  BackendDesc engine_;
};

}  // namespace

BackendDesc::BackendDesc(cudnnBackendDescriptorType_t type) {
  MYELIN_CHECK(cudnnBackendCreateDescriptor(type, &d_), "a cuDNN backend descriptor");
}

BackendDesc::~BackendDesc() {
  if (d_) cudnnBackendDestroyDescriptor(d_);
}

ConvGraph::ConvGraph(cudnnHandle_t h, const ConvGeometry& g, std::string where)
    : h_(h),
      where_(std::move(where)),
      tensor_cores_(g.tensor_cores || g.type != CUDNN_DATA_FLOAT),
      stats_(g.gen_stats) {
  if (stats_ && g.dir != ConvDir::forward)
    throw DeviceError(where_ + ": statistics come from forward convolutions only");
  tensors_.push_back(tensor(g.x, uid_x, g.type, g.nhwc, where_));
  tensors_.push_back(tensor(g.w, uid_w, g.type, g.nhwc, where_));
  tensors_.push_back(tensor(g.y, uid_y, g.type, g.nhwc, where_));
  if (stats_) {
    const std::array<int64_t, 4> per_channel{1, g.y[1], 1, 1};
    tensors_.push_back(tensor(per_channel, uid_sum, CUDNN_DATA_FLOAT, g.nhwc, where_));
    tensors_.push_back(tensor(per_channel, uid_sqsum, CUDNN_DATA_FLOAT, g.nhwc, where_));
  }
  conv_ = convolution(g, where_);

  const OpAttrs a = op_attrs(g.dir);
  op_ = std::make_unique<BackendDesc>(a.type);
  const float one = 1.f, zero = 0.f;
  set(op_->get(), a.alpha, CUDNN_TYPE_FLOAT, 1, &one, where_);
  set(op_->get(), a.beta, CUDNN_TYPE_FLOAT, 1, &zero, where_);
  set_desc(op_->get(), a.conv, *conv_, where_);
  set_desc(op_->get(), a.x, *tensors_[0], where_);
  set_desc(op_->get(), a.w, *tensors_[1], where_);
  set_desc(op_->get(), a.y, *tensors_[2], where_);
  MYELIN_CHECK(cudnnBackendFinalize(op_->get()), where_);

  std::vector<cudnnBackendDescriptor_t> ops{op_->get()};
  if (stats_) {
    stats_op_ = gen_stats(*tensors_[2], *tensors_[3], *tensors_[4], where_);
    ops.push_back(stats_op_->get());
  }
  graph_ = std::make_unique<BackendDesc>(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
  set(graph_->get(), CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
      static_cast<int64_t>(ops.size()), ops.data(), where_);
  set(graph_->get(), CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &h_, where_);
  MYELIN_CHECK(cudnnBackendFinalize(graph_->get()), where_);

  heur_ = std::make_unique<BackendDesc>(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
  const cudnnBackendHeurMode_t mode = CUDNN_HEUR_MODE_A;
  set_desc(heur_->get(), CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, *graph_, where_);
  set(heur_->get(), CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode, where_);
  MYELIN_CHECK(cudnnBackendFinalize(heur_->get()), where_);
  int64_t count = 0;
  MYELIN_CHECK(cudnnBackendGetAttribute(heur_->get(), CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                        CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count, nullptr),
               where_);
  std::vector<cudnnBackendDescriptor_t> raw;
  for (int64_t i = 0; i < count; ++i) {
    configs_.push_back(std::make_unique<BackendDesc>(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR));
    raw.push_back(configs_.back()->get());
  }
  MYELIN_CHECK(cudnnBackendGetAttribute(heur_->get(), CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                        CUDNN_TYPE_BACKEND_DESCRIPTOR, count, &count, raw.data()),
               where_);
  configs_.resize(static_cast<size_t>(count));
}

bool ConvGraph::runtime_compiled(int i) const {
  return EngineNotes(configs_[i]->get(), where_).compiles_at_run_time();
}

bool ConvGraph::select(int i, size_t workspace_limit, bool runtime_compiled) {
  if (i < 0 || i >= candidates()) return false;
  cudnnBackendDescriptor_t config = configs_[i]->get();
  const EngineNotes notes(config, where_);
  if ((!runtime_compiled && notes.compiles_at_run_time()) ||
      (!tensor_cores_ && notes.uses_tensor_cores()))
    return false;
  auto plan = std::make_unique<BackendDesc>(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
  set(plan->get(), CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &h_, where_);
  set(plan->get(), CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
      &config, where_);
  if (cudnnBackendFinalize(plan->get()) != CUDNN_STATUS_SUCCESS) return false;
  int64_t bytes = 0, n = 0;
  MYELIN_CHECK(cudnnBackendGetAttribute(plan->get(), CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE,
                                        CUDNN_TYPE_INT64, 1, &n, &bytes),
               where_);
  if (bytes < 0 || static_cast<size_t>(bytes) > workspace_limit) return false;
  plan_ = std::move(plan);
  selected_ = i;
  workspace_ = static_cast<size_t>(bytes);
  return true;
}

void ConvGraph::execute(void* x, void* w, void* y, void* ws, float* sum, float* sqsum) const {
  BackendDesc pack(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
  const int64_t uids[] = {uid_x, uid_w, uid_y, uid_sum, uid_sqsum};
  void* pointers[] = {x, w, y, sum, sqsum};
  const int64_t n = stats_ ? 5 : 3;
  set(pack.get(), CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, n, uids, where_);
  set(pack.get(), CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, n, pointers, where_);
  set(pack.get(), CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &ws, where_);
  MYELIN_CHECK(cudnnBackendFinalize(pack.get()), where_);
  MYELIN_CHECK(cudnnBackendExecute(h_, plan_->get(), pack.get()), where_);
}

namespace {

// A timing event, destroyed however the tuning loop ends.
struct TimingEvent {
  cudaEvent_t e = nullptr;
  explicit TimingEvent(const std::string& where) { MYELIN_CHECK(cudaEventCreate(&e), where); }
  ~TimingEvent() { cudaEventDestroy(e); }
  TimingEvent(const TimingEvent&) = delete;
  TimingEvent& operator=(const TimingEvent&) = delete;
};

}  // namespace

int ConvGraph::tune(cudaStream_t s, void* x, void* w, void* y, void* ws, size_t workspace_limit,
                    float* best_ms, float* sum, float* sqsum, bool runtime_compiled) {
  const TimingEvent start_event(where_), stop_event(where_);
  cudaEvent_t start = start_event.e, stop = stop_event.e;
  int best = -1;
  float best_time = 0;
  const int runs = 3;
  for (int i = 0; i < std::min(candidates(), max_tuned); ++i) {
    try {
      if (!select(i, workspace_limit, runtime_compiled)) continue;
      execute(x, w, y, ws, sum, sqsum);  // warm-up: the first run loads the kernel
      MYELIN_CHECK(cudaEventRecord(start, s), where_);
      for (int r = 0; r < runs; ++r) execute(x, w, y, ws, sum, sqsum);
      MYELIN_CHECK(cudaEventRecord(stop, s), where_);
      MYELIN_CHECK(cudaEventSynchronize(stop), where_);
    } catch (const std::exception&) {
      cudaGetLastError();  // a candidate that fails to plan or run is skipped
      continue;
    }
    float ms = 0;
    MYELIN_CHECK(cudaEventElapsedTime(&ms, start, stop), where_);
    ms /= runs;
    if (best < 0 || ms < best_time) best = i, best_time = ms;
  }
  if (best >= 0) {
    select(best, workspace_limit, runtime_compiled);
    if (best_ms) *best_ms = best_time;
  }
  return best;
}

}  // namespace myelin::cuda
