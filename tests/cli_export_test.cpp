// `myelin export` as a user runs it: a short LeNet run exported to ONNX passes onnx.checker, and
// onnxruntime, fed an image preprocessed as the model's metadata says, gives the probabilities
// `myelin classify` gives; missing or corrupt weights are clear errors with a non-zero exit.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "support/data_files.h"
#include "support/onnx_check.h"
#ifdef MYELIN_WITH_ONNX
#include "onnx/export.h"
#include "onnx/onnx_io.h"
#endif

namespace {

namespace tf = myelin::testing;
using nlohmann::json;

tf::Outcome myelin_cli(const std::string& args) {
  return tf::run_command(std::string(MYELIN_BINARY) + " " + args);
}

#ifdef MYELIN_WITH_ONNX

class CliExport : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new tf::TempDir;
    tf::Outcome r = myelin_cli(
        "train --model lenet --data fashion-mnist --iterations 30 --batch 32 --train-limit 960 "
        "--test-limit 100 --threads 2 --quiet --out " +
        run());
    ASSERT_EQ(r.status, 0) << r.output;
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string run() { return *dir_ / "run"; }
  static tf::TempDir* dir_;
};
tf::TempDir* CliExport::dir_ = nullptr;

std::map<std::string, std::string> metadata(const std::string& model) {
  std::map<std::string, std::string> meta;
  const onnx::ModelProto m = myelin::onnx_io::read_model(model);
  for (const auto& p : m.metadata_props()) meta[p.key()] = p.value();
  return meta;
}

TEST_F(CliExport, WritesAModelThatPassesTheChecker) {
  const std::string out = *dir_ / "lenet.onnx";
  tf::Outcome r = myelin_cli("export --weights " + run() + " --format onnx --out " + out);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("opset 17"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("431080 parameters"), std::string::npos) << r.output;  // LeNet's
  auto meta = metadata(out);
  EXPECT_EQ(meta["myelin.network"], "lenet");
  EXPECT_EQ(json::parse(meta["myelin.class_names"])[9], "Ankle boot");  // the dataset's names
  if (std::string why = tf::onnx_checker_missing(); !why.empty()) GTEST_SKIP() << why;
  EXPECT_EQ(tf::onnx_checker_errors(out), "");
}

// The preprocessing in the metadata, applied by hand, reproduces what classify does to a PNG.
TEST_F(CliExport, OnnxruntimeWithTheMetadataPreprocessingAgreesWithClassify) {
  if (std::string why = tf::onnxruntime_missing(); !why.empty()) GTEST_SKIP() << why;
  const std::string model = *dir_ / "classify.onnx", image = *dir_ / "image.png";
  ASSERT_EQ(myelin_cli("export --weights " + run() + " --out " + model).status, 0);
  std::vector<uint8_t> pixels = tf::random_pixels(28, 28, 1, 5);
  tf::write_png(image, pixels, 28, 28, 1);
  tf::Outcome c = myelin_cli("classify --json --top 10 --weights " + run() + " " + image);
  ASSERT_EQ(c.status, 0) << c.output;
  std::vector<float> want(10);
  const json classified = json::parse(c.output);
  for (const json& p : classified[0]["top"])
    want[p["label"].get<size_t>()] = p["probability"].get<float>();

  auto meta = metadata(model);
  const double scale = std::stod(meta["myelin.input_scale"]);
  const json mean = json::parse(meta["myelin.input_mean"]);
  std::vector<float> data;
  for (uint8_t p : pixels)
    data.push_back(static_cast<float>((p - (mean.empty() ? 0.0 : mean[0].get<double>())) * scale));
  tf::write_raw(*dir_ / "data.bin", data.data(), data.size());
  tf::Outcome r = tf::run_onnxruntime(model, *dir_ / "ort",
                                      {{"data", "float32", *dir_ / "data.bin", {1, 1, 28, 28}}});
  ASSERT_EQ(r.status, 0) << r.output;
  std::vector<float> got = tf::read_floats(*dir_ / "ort/probabilities.bin");
  EXPECT_LT(tf::difference(got, want).abs, 1e-5)
      << "onnxruntime " << json(got).dump() << ", classify " << json(want).dump();
}

TEST_F(CliExport, MissingOrCorruptWeightsAreClearErrors) {
  const std::string out = *dir_ / "bad.onnx";
  tf::Outcome missing = myelin_cli("export --model lenet --weights " +
                                   (*dir_ / "nope.safetensors") + " --out " + out);
  EXPECT_NE(missing.status, 0);
  EXPECT_NE(missing.output.find("nope.safetensors"), std::string::npos) << missing.output;

  const std::string corrupt = *dir_ / "corrupt.safetensors";
  std::vector<uint8_t> bytes = tf::read_bytes(run() + "/weights.safetensors");
  bytes.resize(bytes.size() / 2);
  tf::write_bytes(corrupt, bytes);
  tf::Outcome r = myelin_cli("export --model lenet --weights " + corrupt + " --out " + out);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("corrupt.safetensors"), std::string::npos) << r.output;

  tf::Outcome other = myelin_cli("export --model mlp --weights " + run() + " --out " + out);
  EXPECT_NE(other.status, 0);
  EXPECT_NE(other.output.find("'fc1.weight' is missing"), std::string::npos) << other.output;
  EXPECT_FALSE(std::filesystem::exists(out));
}

TEST(CliExportFlags, HelpTeachesAndBadFlagsAreRefused) {
  tf::Outcome help = myelin_cli("export --help");
  EXPECT_EQ(help.status, 0);
  for (const char* part : {"--format", "probabilities", "myelin.input_mean", "scale"})
    EXPECT_NE(help.output.find(part), std::string::npos) << part;
  tf::Outcome format = myelin_cli("export --weights x --format tflite --out y");
  EXPECT_EQ(format.status, 2);
  EXPECT_NE(format.output.find("--format must be onnx"), std::string::npos) << format.output;
}

#else

TEST(CliExportFlags, WithoutOnnxSaysHowToGetIt) {
  tf::Outcome r = myelin_cli("export --weights x --out y.onnx");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("libonnx-dev"), std::string::npos) << r.output;
}

#endif

}  // namespace
