// ONNX import: networks PyTorch exports (tests/onnx/torch_models.py) run in Myelin with
// PyTorch's outputs, and files that do not import give errors naming the node and op type.
#include <gtest/gtest.h>

#if MYELIN_WITH_ONNX
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "onnx/import.h"
#include "onnx/onnx_io.h"
#include "support/data_files.h"
#include "support/expect_error.h"
#include "support/runs.h"
#include "train/checkpoint.h"
#include "train/session.h"

namespace myelin {
namespace {

using testing::expect_error;
using testing::run_command;
using testing::TempDir;

const std::string kScript = std::string(MYELIN_SOURCE_DIR) + "/tests/onnx/torch_models.py";

bool have_torch() {
  return run_command("/usr/bin/python3 -c 'import torch, onnx'").status == 0;
}

// The models exported once for the whole suite.
class OnnxImport : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!have_torch()) return;
    dir_ = new TempDir();
    auto r = run_command("/usr/bin/python3 " + kScript + " " + dir_->str());
    ASSERT_EQ(r.status, 0) << r.output;
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override {
    if (!dir_) GTEST_SKIP() << "/usr/bin/python3 lacks torch or onnx (python3-torch, python3-onnx)";
  }
  static std::string path(const std::string& name) { return (*dir_) / name; }
  static TempDir* dir_;
};

TempDir* OnnxImport::dir_ = nullptr;

Tensor read_floats(const std::string& path, Shape shape) {
  Tensor t = Tensor::empty(std::move(shape));
  std::ifstream f(path, std::ios::binary);
  f.read(reinterpret_cast<char*>(t.f32()), static_cast<std::streamsize>(t.nbytes()));
  EXPECT_TRUE(f.good()) << path;
  return t;
}

struct Comparison {
  double max_abs = 0, scale = 0;  // largest |myelin - torch|, largest |torch|
};

// Imports NAME.onnx, loads its weights file into a CPU session and runs PyTorch's input batch.
Comparison compare_with_torch(const std::string& dir, const std::string& name) {
  nlohmann::json shapes = nlohmann::json::parse(std::ifstream(dir + "/" + name + ".json"));
  const Dims in = shapes["input"].get<Dims>(), out = shapes["logits"].get<Dims>();
  ImportedNetwork net = import_onnx_file(dir + "/" + name + ".onnx");
  write_imported(net, dir + "/" + name + ".yaml", dir + "/" + name + ".safetensors");
  NetworkSpec spec = load_network(dir + "/" + name + ".yaml");
  EXPECT_TRUE(equivalent(spec, net.spec));
  EXPECT_EQ(spec.classes, out[1]);
  SessionOptions so;
  so.device = Device::cpu();
  so.backend.threads = 2;
  so.batch = so.eval_batch = in[0];
  so.train = false;
  Session s(spec, so);
  WeightsReport loaded = load_weights(s, dir + "/" + name + ".safetensors", true);
  EXPECT_TRUE(loaded.unused.empty());
  Batch b;
  b.images = read_floats(dir + "/" + name + ".input.f32", Shape(in));
  b.labels = Tensor::empty(Shape{in[0]}, DType::i32);
  b.count = in[0];
  Tensor logits;
  s.evaluate(b, &logits);
  Tensor want = read_floats(dir + "/" + name + ".logits.f32", Shape(out));
  EXPECT_EQ(logits.shape(), want.shape());
  Comparison c;
  for (int64_t i = 0; i < want.numel(); ++i) {
    c.scale = std::max(c.scale, std::abs(double(want.f32()[i])));
    c.max_abs = std::max(c.max_abs, std::abs(double(logits.f32()[i]) - want.f32()[i]));
  }
  std::printf("%s: max |myelin - pytorch| = %.3g, largest |logit| = %.3g\n", name.c_str(),
              c.max_abs, c.scale);
  return c;
}

TEST_F(OnnxImport, LeNetEqualsPyTorchAndDropsTheFinalSoftmax) {
  Comparison c = compare_with_torch(dir_->str(), "lenet");
  EXPECT_LT(c.max_abs, 1e-4 * std::max(1.0, c.scale));
  ImportedNetwork net = import_onnx_file(path("lenet.onnx"));
  EXPECT_NE(import_summary(net).find("dropped the final Softmax"), std::string::npos)
      << import_summary(net);
  EXPECT_EQ(net.spec.recipe.scale, 1.0);  // pixels as they are: no metadata says otherwise
  EXPECT_TRUE(net.spec.recipe.mean.empty());
}

TEST_F(OnnxImport, ResNetWithBatchNormResidualAddsAndConcatEqualsPyTorch) {
  Comparison c = compare_with_torch(dir_->str(), "resnet");
  EXPECT_LT(c.max_abs, 1e-4 * std::max(1.0, c.scale));
  ImportedNetwork net = import_onnx_file(path("resnet.onnx"));
  auto count = [&](const std::string& type) {
    return std::count_if(net.spec.layers.begin(), net.spec.layers.end(),
                         [&](const LayerSpec& l) { return l.type == type; });
  };
  EXPECT_EQ(count("add"), 3);
  EXPECT_EQ(count("batch_norm"), 1);  // the exporter folds the others into their convolutions
  EXPECT_EQ(count("concat"), 1);      // the average and max pools' features
  EXPECT_EQ(count("flatten"), 1);     // x.view(x.size(0), -1), computed from Shape
  EXPECT_EQ(net.spec.input, (Dims{3, 32, 32}));
}

TEST_F(OnnxImport, AlexNetStyleWithGroupsLrnAndPoolsEqualsPyTorch) {
  Comparison c = compare_with_torch(dir_->str(), "alexnet");
  EXPECT_LT(c.max_abs, 1e-4 * std::max(1.0, c.scale));
  ImportedNetwork net = import_onnx_file(path("alexnet.onnx"));
  auto conv2 = std::find_if(net.spec.layers.begin(), net.spec.layers.end(),
                            [](const LayerSpec& l) { return l.name == "conv2"; });
  ASSERT_NE(conv2, net.spec.layers.end());
  EXPECT_EQ(conv2->attrs.i("groups", 1), 2);
}

TEST_F(OnnxImport, OptionsSetThePixelScaleAndMean) {
  OnnxImportOptions o;
  o.scale = 1.0 / 255;
  o.mean = std::vector<double>{125, 123, 114};
  o.name = "small-alexnet";
  ImportedNetwork net = import_onnx_file(path("alexnet.onnx"), o);
  EXPECT_EQ(net.spec.name, "small-alexnet");
  EXPECT_DOUBLE_EQ(net.spec.recipe.scale, 1.0 / 255);
  EXPECT_EQ(net.spec.recipe.mean, (std::vector<double>{125, 123, 114}));
}

TEST_F(OnnxImport, UnsupportedOpNamesTheNodeAndOpType) {
  expect_error([&] { import_onnx_file(path("unsupported.onnx")); },
               {"unsupported.onnx", "node '/Erf'", "op type Erf is not supported", "Conv",
                "BatchNormalization", "Gemm"});
}

TEST_F(OnnxImport, UnnamedNodeIsNamedByIndex) {
  onnx::ModelProto m = onnx_io::read_model(path("unsupported.onnx"));
  for (auto& n : *m.mutable_graph()->mutable_node()) n.clear_name();
  expect_error([&] { import_onnx(m, "memory"); }, {"memory", "node #1 (Erf)", "not supported"});
}

TEST_F(OnnxImport, CorruptAndTruncatedFilesAreClearErrors) {
  std::ifstream f(path("lenet.onnx"), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  testing::write_bytes(path("truncated.onnx"),
                       std::vector<uint8_t>(bytes.begin(), bytes.begin() + bytes.size() / 2));
  expect_error([&] { import_onnx_file(path("truncated.onnx")); },
               {"truncated.onnx", "not a valid ONNX model"});
  std::vector<uint8_t> garbage(300);
  for (size_t i = 0; i < garbage.size(); ++i) garbage[i] = static_cast<uint8_t>(i * 7919 + 13);
  testing::write_bytes(path("corrupt.onnx"), garbage);
  expect_error([&] { import_onnx_file(path("corrupt.onnx")); },
               {"corrupt.onnx", "not a valid ONNX model"});
  expect_error([&] { import_onnx_file(path("missing.onnx")); }, {"missing.onnx", "cannot open"});
}

TEST_F(OnnxImport, AsymmetricPaddingIsRefusedWithTheNode) {
  onnx::ModelProto m = onnx_io::read_model(path("alexnet.onnx"));
  for (auto& a : *m.mutable_graph()->mutable_node(0)->mutable_attribute())
    if (a.name() == "pads") a.set_ints(2, 3);
  expect_error([&] { import_onnx(m, "padded.onnx"); },
               {"padded.onnx", "node '/conv1/Conv' (Conv)", "asymmetric pads [2, 2, 3, 2]"});
}

}  // namespace
}  // namespace myelin

#else
TEST(OnnxImport, NeedsOnnx) {
  GTEST_SKIP() << "built without ONNX (libonnx-dev, libprotobuf-dev)";
}
#endif
