// ONNX export checked by the real tools: every standard network (and two networks holding the
// other layer types) with random weights is exported, passes onnx.checker, and onnxruntime gives
// Myelin's CPU outputs for a batch of random inputs. Skipped, with the reason, only where node
// and onnxruntime-node (tests/onnx) or python3-onnx are missing.
//
// MYELIN_ONNX_KEEP=DIR keeps each network's model.onnx, input (data.bin, input.json) and Myelin's
// logits (myelin_logits.bin) in DIR/NAME for bench/onnx_check.py (onnxruntime's Python package,
// e.g. its CUDA provider on a GPU machine).
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <random>

#include "model/network.h"
#include "support/data_files.h"
#include "support/expect_error.h"
#include "support/onnx_check.h"
#include "train/session.h"
#ifdef MYELIN_WITH_ONNX
#include "onnx/export.h"
#include "onnx/export_graph.h"
#include "onnx/onnx_io.h"
#endif

namespace tf = myelin::testing;

namespace myelin {

namespace {

#ifdef MYELIN_WITH_ONNX

constexpr int64_t kBatch = 2;  // the model is exported for any N (built at batch 1)

// Every layer type the standard networks do not use, with the options that differ most between
// runtimes (padding with ceil_mode, count_include_pad, groups with dilation, several inputs).
const char* kConvZoo = R"(name: zoo-conv
input: [3, 12, 12]
classes: 7
train: {mean: [100, 120, 140], scale: 0.02}
layers:
  - conv: {name: c1, filters: 8, kernel: 3, pad: 1}
  - batch_norm: {name: bn1}
  - leaky_relu: {name: lrelu, alpha: 0.1}
  - deconv: {name: up, filters: 4, kernel: 3, stride: 2, pad: 1, output_padding: 1}  # 4x24x24
  - elu: {name: elu}
  - pool: {name: avg, mode: avg, kernel: 3, stride: 2, pad: 1, ceil_mode: true, count_include_pad: false}
  - pool: {name: avg2, avg: 3, stride: 2, pad: 1, ceil_mode: true, input: elu}  # overhangs
  - add: {name: pools, input: [avg, avg2]}        # 4x13x13
  - conv: {name: c2, filters: 6, kernel: 3, groups: 2, dilation: 2, bias: false}  # 6x9x9
  - gelu: {name: gelu}
  - sigmoid: {name: gate, input: gelu}
  - tanh: {name: th, input: gelu}
  - mul: {name: gated, input: [gate, th]}
  - concat: {name: cat, input: [gated, gelu]}      # 12x9x9
  - softmax: {name: sm}
  - lrn: {name: norm, size: 3, alpha: 0.5, beta: 0.75, k: 2}
  - pool: {name: mp, max: 2, pad: 1, ceil_mode: true}   # 12x5x5
  - flatten: {name: flat, axis: 2}                 # 12x25
  - reshape: {name: back, shape: [12, 5, 5]}
  - add: {name: sum, input: [back, mp]}
  - dropout: {name: drop, ratio: 0.3}
  - fc: {name: fc1, outputs: 7}
  - pool: {name: gap, global: avg, input: sum}
  - fc: {name: fc2, outputs: 7}
  - add: {name: out, input: [fc1, fc2]}
)";

// The recurrent cells in their other forms: stacked bidirectional GRU, ReLU RNN, bidirectional
// LSTM giving its last state.
const char* kRecurrentZoo = R"(name: zoo-recurrent
input: [1, 10, 6]
classes: 4
layers:
  - reshape: {name: rows, shape: [10, 6]}
  - gru: {name: gru, hidden: 5, layers: 2, bidirectional: true, dropout: 0.2}
  - rnn: {name: rnn, hidden: 4, nonlinearity: relu}
  - lstm: {name: lstm, hidden: 3, bidirectional: true, output: last}
  - batch_norm: {name: bn}
  - fc: {name: fc, outputs: 4}
)";

NetworkSpec spec_named(const std::string& name) {
  if (name == "zoo-conv") return parse_network(kConvZoo, "zoo-conv.yaml");
  if (name == "zoo-recurrent") return parse_network(kRecurrentZoo, "zoo-recurrent.yaml");
  return load_network(name);
}

std::vector<std::string> networks() {
  std::vector<std::string> n = standard_networks();
  n.push_back("zoo-conv");
  n.push_back("zoo-recurrent");
  return n;
}

std::vector<std::string> weight_names(Session& s) {
  std::vector<std::string> names = s.param_names();
  for (const std::string& n : s.state_names())
    if (!Session::is_carried_state(n)) names.push_back(n);
  return names;
}

// Biases, batch-norm scales, shifts and statistics moved off their initial constants, so that
// each is checked (a zero bias wired to the wrong place would go unnoticed).
void perturb_vectors(Session& s, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> shift(-0.2f, 0.2f), variance(0.5f, 1.5f);
  for (const std::string& name : weight_names(s)) {
    Tensor t = s.read(name);
    if (t.shape().rank() != 1) continue;
    const bool var = name.ends_with(".running_var");
    for (int64_t i = 0; i < t.numel(); ++i)
      t.f32()[i] = var ? variance(rng) : t.f32()[i] + shift(rng);
    s.write(name, t);
  }
}

TensorFile weights_of(Session& s) {
  TensorFile f;
  for (const std::string& name : weight_names(s)) f.tensors.push_back({name, s.read(name)});
  return f;
}

// Pixels uniform in [-1, 1], or symbol ids below the classes.
Batch random_batch(const NetworkSpec& spec, uint32_t seed) {
  Dims dims{kBatch};
  dims.insert(dims.end(), spec.input.begin(), spec.input.end());
  const bool tokens = spec.input_type == "tokens";
  Batch b;
  b.images = Tensor::empty(Shape(dims), tokens ? DType::i32 : DType::f32);
  b.labels = Tensor::empty(Shape(tokens ? dims : Dims{kBatch}), DType::i32);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1, 1);
  for (int64_t i = 0; i < b.images.numel(); ++i)
    if (tokens)
      b.images.data_as<int32_t>()[i] = static_cast<int32_t>(rng() % spec.classes);
    else
      b.images.f32()[i] = u(rng);
  std::fill_n(b.labels.data_as<int32_t>(), b.labels.numel(), 0);
  b.count = kBatch;
  return b;
}

std::vector<float> softmax_rows(const std::vector<float>& logits, int64_t classes) {
  std::vector<float> p(logits.size());
  for (size_t r = 0; r < logits.size(); r += static_cast<size_t>(classes)) {
    double top = *std::max_element(logits.begin() + r, logits.begin() + r + classes), sum = 0;
    for (int64_t j = 0; j < classes; ++j) sum += std::exp(double(logits[r + j]) - top);
    for (int64_t j = 0; j < classes; ++j)
      p[r + j] = static_cast<float>(std::exp(double(logits[r + j]) - top) / sum);
  }
  return p;
}

// One network exported with random weights, its input and Myelin's logits on it, as files.
struct Exported {
  NetworkSpec spec;
  std::string dir, model;
  tf::OrtInput input;
  std::vector<float> logits;  // Myelin's
};

std::string keep_dir(const std::string& name, std::unique_ptr<tf::TempDir>& temp) {
  if (const char* keep = std::getenv("MYELIN_ONNX_KEEP")) {
    std::filesystem::create_directories(std::string(keep) + "/" + name);
    return std::string(keep) + "/" + name;
  }
  temp = std::make_unique<tf::TempDir>();
  return temp->str();
}

Exported export_network(const std::string& name, std::unique_ptr<tf::TempDir>& temp) {
  Exported e{spec_named(name)};
  e.dir = keep_dir(name, temp);
  SessionOptions so;
  so.device = Device::cpu();
  so.batch = so.eval_batch = kBatch;
  so.train = false;
  Session s(e.spec, so);
  perturb_vectors(s, 7);
  Batch b = random_batch(e.spec, 11);
  Tensor logits;
  s.evaluate(b, &logits);
  e.logits.assign(logits.f32(), logits.f32() + logits.numel());
  e.model = e.dir + "/model.onnx";
  onnx_io::write_model(export_onnx(e.spec, weights_of(s)), e.model);
  e.input = {"data", "float32", e.dir + "/data.bin", b.images.shape().dims};
  if (e.spec.input_type == "tokens") {
    std::vector<int64_t> ids(b.images.data_as<int32_t>(),
                             b.images.data_as<int32_t>() + b.images.numel());
    tf::write_raw(e.input.file, ids.data(), ids.size());
    e.input.type = "int64";
  } else {
    tf::write_raw(e.input.file, b.images.f32(), static_cast<size_t>(b.images.numel()));
  }
  tf::write_raw(e.dir + "/myelin_logits.bin", e.logits.data(), e.logits.size());
  std::ofstream(e.dir + "/input.json")
      << nlohmann::json{{"name", "data"}, {"type", e.input.type}, {"dims", e.input.dims}}.dump();
  return e;
}

// Why the export cannot be checked here, or "" (both tools are installed by install-deps).
std::string checkers_missing() {
  std::string why = tf::onnxruntime_missing(), checker = tf::onnx_checker_missing();
  return why.empty() ? checker : checker.empty() ? why : why + "; " + checker;
}

class OnnxExport : public ::testing::TestWithParam<std::string> {};

// One test per network, so that each (AlexNet's model is 244 MB) is exported once.
TEST_P(OnnxExport, PassesTheCheckerAndOnnxruntimeGivesMyelinsOutputs) {
  if (std::string why = checkers_missing(); !why.empty()) GTEST_SKIP() << why;
  std::unique_ptr<tf::TempDir> temp;
  const Exported e = export_network(GetParam(), temp);
  EXPECT_EQ(tf::onnx_checker_errors(e.model), "");
  tf::Outcome r = tf::run_onnxruntime(e.model, e.dir + "/ort", {e.input});
  ASSERT_EQ(r.status, 0) << r.output;
  std::vector<float> logits = tf::read_floats(e.dir + "/ort/logits.bin");
  std::vector<float> probabilities = tf::read_floats(e.dir + "/ort/probabilities.bin");
  ASSERT_EQ(logits.size(), e.logits.size());
  ASSERT_EQ(probabilities.size(), e.logits.size());
  tf::Difference dl = tf::difference(logits, e.logits);
  tf::Difference dp = tf::difference(probabilities, softmax_rows(e.logits, e.spec.classes));
  std::printf("%s vs onnxruntime: logits max abs %.3g, rel %.3g; probabilities max abs %.3g\n",
              GetParam().c_str(), dl.abs, dl.rel, dp.abs);
  EXPECT_LT(dl.rel, 1e-4) << "largest logit difference " << dl.abs;
  EXPECT_LT(dp.abs, 1e-5);
}

std::string test_name(const ::testing::TestParamInfo<std::string>& info) {
  std::string n = info.param;
  std::replace(n.begin(), n.end(), '-', '_');
  return n;
}

INSTANTIATE_TEST_SUITE_P(Networks, OnnxExport, ::testing::ValuesIn(networks()), test_name);

TEST(OnnxExportModel, TakesAnyBatchAndRecordsThePreprocessing) {
  NetworkSpec spec = load_network("alexnet");
  spec.layers.resize(1);  // conv1 and a global pooling: the metadata is what is checked here
  spec.layers.push_back({"gap", "pool", {}, Attrs{{"global", std::string("avg")}}});
  spec.classes = 96;
  SessionOptions so;
  so.train = false;
  so.batch = 1;
  Session s(spec, so);
  onnx::ModelProto m = export_onnx(spec, weights_of(s), {.class_names = {}});
  const auto& dims = m.graph().input(0).type().tensor_type().shape().dim();
  ASSERT_EQ(dims.size(), 4);
  EXPECT_EQ(dims[0].dim_param(), "N");
  EXPECT_EQ(dims[1].dim_value(), 3);
  EXPECT_EQ(m.opset_import(0).version(), kOnnxOpset);
  std::map<std::string, std::string> meta;
  for (const auto& p : m.metadata_props()) meta[p.key()] = p.value();
  EXPECT_EQ(meta[kMetaScale], "1");
  EXPECT_EQ(meta[kMetaMean], "[123.68,116.78,103.94]");
  EXPECT_EQ(meta[kMetaInputLayout], "NCHW");
  EXPECT_EQ(nlohmann::json::parse(meta[kMetaClassNames]).size(), 96u);
  NetworkSpec back = parse_network(meta[kMetaNetworkYaml], "metadata");
  EXPECT_TRUE(equivalent(back, spec));
}

TEST(OnnxExportModel, WeightsThatDoNotFitAreNamed) {
  NetworkSpec spec = load_network("lenet");
  SessionOptions so;
  so.train = false;
  so.batch = 1;
  Session s(spec, so);
  TensorFile w = weights_of(s);
  std::erase_if(w.tensors, [](const NamedTensor& t) { return t.name == "conv2.bias"; });
  for (NamedTensor& t : w.tensors)
    if (t.name == "ip1.weight") t.tensor = Tensor::empty(Shape{500, 799});
  tf::expect_error(
      [&] { export_onnx(spec, w, {.class_names = {}, .weights_origin = "w.safetensors"}); },
      {"w.safetensors", "'conv2.bias' is missing", "'ip1.weight' is [500, 799]"});
}

// A layer type the exporter does not know (one added to Myelin later) is named with its layer.
TEST(OnnxExportModel, ALayerWithoutAnOnnxCounterpartIsNamed) {
  onnx::GraphProto g;
  TensorFile none;
  onnx_export::GraphWriter w(g, none, "w.safetensors");
  LayerSpec warp{"warp1", "warp", {}, {}};
  tf::expect_error(
      [&] {
        onnx_export::emit_layer(w, warp, {"data"}, {Shape{1, 3, 8, 8}}, "y");
      },
      {"layer 'warp1' of type 'warp' has no ONNX counterpart"});
}

#else

TEST(OnnxExport, NotBuilt) {
  GTEST_SKIP() << "built without ONNX (libonnx-dev, libprotobuf-dev)";
}

#endif

}  // namespace

}  // namespace myelin
