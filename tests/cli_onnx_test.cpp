// ONNX models in the `myelin` program: `myelin import` writes files that test and classify take,
// `--model FILE.onnx` works wherever a model is taken, and fine-tuning starts from the model's
// weights. The model is a LeNet PyTorch trains briefly on Fashion-MNIST (tests/onnx).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "data/dataset.h"
#include "support/data_files.h"
#include "support/runs.h"

namespace {

using nlohmann::json;
namespace tf = myelin::testing;

const std::string kFashion = "/usr/share/datasets/fashion-mnist";

tf::Outcome myelin(const std::string& args) {
  return tf::run_command(std::string(MYELIN_BINARY) + " " + args);
}

// The JSON a command printed, after the import summary it wrote to stderr (a line "{" or "[").
json json_of(const tf::Outcome& r) {
  const std::string& s = r.output;
  for (size_t at = 0; at < s.size(); at = s.find('\n', at) + 1) {
    if ((s[at] == '{' || s[at] == '[') && s.compare(at + 1, 1, "\n") == 0)
      return json::parse(s.substr(at));
    if (s.find('\n', at) == std::string::npos) break;
  }
  ADD_FAILURE() << "no JSON in: " << s;
  return json::object();
}

// The train loss of a run's first logged iteration.
double first_loss(const std::string& metrics) {
  std::ifstream in(metrics);
  for (std::string line; std::getline(in, line);) {
    json e = json::parse(line);
    if (e["event"] == "train") return e["loss"].get<double>();
  }
  return -1;
}

class CliOnnx : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (tf::run_command("/usr/bin/python3 -c 'import torch, onnx'").status != 0 ||
        !std::filesystem::exists(kFashion))
      return;
    dir_ = new tf::TempDir;
    tf::Outcome r = tf::run_command("/usr/bin/python3 " + std::string(MYELIN_SOURCE_DIR) +
                                    "/tests/onnx/torch_models.py " + dir_->str() +
                                    " --fashion-mnist " + kFashion);
    ASSERT_EQ(r.status, 0) << r.output;
    import_ = myelin("import " + path("lenet.onnx") + " --out " + path("net.yaml") + " --weights " +
                     path("w.safetensors"));
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override {
    if (!dir_)
      GTEST_SKIP() << "needs torch and onnx in /usr/bin/python3 and Fashion-MNIST in " << kFashion;
    ASSERT_EQ(import_.status, 0) << import_.output;
  }
  static std::string path(const std::string& name) { return *dir_ / name; }
  static tf::TempDir* dir_;
  static tf::Outcome import_;
};
tf::TempDir* CliOnnx::dir_ = nullptr;
tf::Outcome CliOnnx::import_;

TEST_F(CliOnnx, ImportPrintsTheLayersAndWhatWasDropped) {
  EXPECT_NE(import_.output.find("conv1"), std::string::npos) << import_.output;
  EXPECT_NE(import_.output.find("dropped the final Softmax"), std::string::npos) << import_.output;
  // The model's metadata says it was trained on pixels / 255.
  EXPECT_NE(import_.output.find("* 0.00392156862745098"), std::string::npos) << import_.output;
}

TEST_F(CliOnnx, TestTakesTheImportedFilesAndTheOnnxModelAlike) {
  tf::Outcome files = myelin("test --model " + path("net.yaml") + " --weights " +
                             path("w.safetensors") + " --limit 500 --threads 2 --json");
  ASSERT_EQ(files.status, 0) << files.output;
  tf::Outcome onnx =
      myelin("test --model " + path("lenet.onnx") + " --limit 500 --threads 2 --json");
  ASSERT_EQ(onnx.status, 0) << onnx.output;
  const double top1 = json_of(files)["top1"].get<double>();
  EXPECT_GT(top1, 0.5);  // PyTorch trained it for 60 steps; chance is 0.1
  EXPECT_DOUBLE_EQ(json_of(onnx)["top1"].get<double>(), top1);
}

// The weights file alone names its network (the import records it); both ways agree.
TEST_F(CliOnnx, ClassifyTakesTheImportedWeightsAndTheOnnxModel) {
  myelin::DatasetSplits ds = myelin::open_dataset("fashion-mnist");
  std::vector<uint8_t> px(28 * 28);
  int32_t label = -1;
  ds.test->read(0, px.data(), &label);
  tf::write_png(path("item.png"), px, 28, 28, 1);
  std::vector<json> tops;
  for (const std::string& model :
       {"--weights " + path("w.safetensors"), "--model " + path("lenet.onnx")}) {
    tf::Outcome r = myelin("classify " + model + " --top 3 --json " + path("item.png"));
    ASSERT_EQ(r.status, 0) << r.output;
    tops.push_back(json_of(r)[0]["top"]);
    ASSERT_EQ(tops.back().size(), 3u) << r.output;
  }
  EXPECT_EQ(tops[0][0]["label"], tops[1][0]["label"]);
  EXPECT_NEAR(tops[0][0]["probability"].get<double>(), tops[1][0]["probability"].get<double>(),
              1e-6);
}

TEST_F(CliOnnx, FineTuningStartsFromTheModelsWeights) {
  const std::string common =
      " --data fashion-mnist --iterations 3 --log-every 1 --train-limit 640 --test-limit 100 "
      "--threads 2 --quiet --out ";
  tf::Outcome tuned = myelin("train --model " + path("lenet.onnx") + common + path("tuned"));
  ASSERT_EQ(tuned.status, 0) << tuned.output;
  tf::Outcome fresh = myelin("train --model " + path("net.yaml") + common + path("fresh"));
  ASSERT_EQ(fresh.status, 0) << fresh.output;
  const double from_onnx = first_loss(path("tuned/metrics.jsonl")),
               from_scratch = first_loss(path("fresh/metrics.jsonl"));
  EXPECT_GT(from_scratch, 2.0);  // ln(10) = 2.3 for a fresh network
  EXPECT_LT(from_onnx, 0.5 * from_scratch);
}

TEST_F(CliOnnx, TimeTakesAnOnnxModel) {
  tf::Outcome r = myelin("time --model " + path("resnet.onnx") +
                         " --batch 4 --iterations 2 --threads 2 --json");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(json_of(r).contains("layers")) << r.output;
}

TEST_F(CliOnnx, BadModelsExitNonZeroNamingTheProblem) {
  tf::write_bytes(path("corrupt.onnx"), std::vector<uint8_t>(100, 0xff));
  tf::Outcome corrupt =
      myelin("import " + path("corrupt.onnx") + " --out x.yaml --weights x.safetensors");
  EXPECT_NE(corrupt.status, 0);
  EXPECT_NE(corrupt.output.find("corrupt.onnx"), std::string::npos) << corrupt.output;
  EXPECT_NE(corrupt.output.find("not a valid ONNX model"), std::string::npos) << corrupt.output;
  tf::Outcome unsupported = myelin("test --model " + path("unsupported.onnx") + " --limit 10");
  EXPECT_NE(unsupported.status, 0);
  EXPECT_NE(unsupported.output.find("node '/Erf' (Erf)"), std::string::npos) << unsupported.output;
}

}  // namespace
