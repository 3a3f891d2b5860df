// Text as a user works with it: make a dataset from a text file, train a small character model
// on it, sample from it, resume it, and get clear errors for weights of another vocabulary and
// for an empty text file.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "support/data_files.h"
#include "support/runs.h"

namespace {

namespace tf = myelin::testing;

tf::Outcome myelin(const std::string& args) {
  return tf::run_command(std::string(MYELIN_BINARY) + " " + args);
}

void write(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

// A small character model: the layers of models/char-lstm at a size that trains in seconds.
const char* kNet = R"(name: tiny-char
input: [16]
input_type: tokens
classes: 10
train: {solver: adam, lr: 0.01, batch: 4, clip_grad_norm: 5}
layers:
  - embedding: {name: embed, size: 8}
  - lstm: {name: lstm, hidden: 16, carry_state: true}
  - fc: {name: out, outputs: 10, axis: 2}
)";

class CliText : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new tf::TempDir;
    std::string text;
    for (int i = 0; i < 120; ++i) text += "the cat sat on the mat.\n";
    write(*dir_ / "corpus.txt", text);
    write(*dir_ / "tiny.yaml", kNet);
    tf::Outcome d = myelin("dataset create --source " + (*dir_ / "corpus.txt") +
                           " --text char --out " + (*dir_ / "data"));
    ASSERT_EQ(d.status, 0) << d.output;
    tf::Outcome t = myelin("train --model " + (*dir_ / "tiny.yaml") + " --data " +
                           (*dir_ / "data") + " --iterations 60 --eval-every 30 --threads 2 " +
                           "--quiet --out " + (*dir_ / "run"));
    ASSERT_EQ(t.status, 0) << t.output;
  }
  static void TearDownTestSuite() { delete dir_; }
  static tf::TempDir* dir_;
};

tf::TempDir* CliText::dir_ = nullptr;

TEST_F(CliText, TrainingReportsBitsPerCharacterAndSamples) {
  // The corpus has 12 symbols: the network's 10 classes were fitted to them.
  std::ifstream fitted(*dir_ / "run/network.yaml");
  std::string network((std::istreambuf_iterator<char>(fitted)), {});
  EXPECT_NE(network.find("classes: 12"), std::string::npos) << network;
  std::ifstream metrics(*dir_ / "run/metrics.jsonl");
  double bits = -1;
  int samples = 0;
  for (std::string line; std::getline(metrics, line);) {
    auto e = nlohmann::json::parse(line);
    if (e["event"] == "test") bits = e["bits_per_symbol"].get<double>();
    if (e["event"] != "sample") continue;
    ++samples;
    EXPECT_EQ(e["text"].get<std::string>().size(), 200u);  // one byte per symbol here
  }
  // A repeated sentence: far below log2(12) = 3.6 bits after 60 steps.
  EXPECT_GT(bits, 0);
  EXPECT_LT(bits, 2.0);
  EXPECT_EQ(samples, 2);
}

TEST_F(CliText, SampleContinuesThePrimeInTheCorpusVocabulary) {
  tf::Outcome s = myelin("sample --weights " + (*dir_ / "run") +
                         " --prime 'the ' --length 40 --temperature 0.5 --seed 3");
  ASSERT_EQ(s.status, 0) << s.output;
  EXPECT_EQ(s.output.rfind("the ", 0), 0u) << s.output;
  EXPECT_EQ(s.output.size(), 4u + 40u + 1u) << s.output;  // the prime, 40 symbols, a newline
  for (char c : s.output) EXPECT_NE(std::string("the cats onm.\n").find(c), std::string::npos);
  tf::Outcome again = myelin("sample --weights " + (*dir_ / "run") +
                             " --prime 'the ' --length 40 --temperature 0.5 --seed 3");
  EXPECT_EQ(again.output, s.output);  // the same seed, the same text

  tf::Outcome bad = myelin("sample --weights " + (*dir_ / "run") + " --prime 'the dog'");
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.output.find("'d'"), std::string::npos) << bad.output;
}

TEST_F(CliText, TestReportsTheValidationBitsTrainingReported) {
  tf::Outcome t =
      myelin("test --weights " + (*dir_ / "run") + " --data " + (*dir_ / "data") + " --json");
  ASSERT_EQ(t.status, 0) << t.output;
  auto report = nlohmann::json::parse(t.output);
  std::ifstream metrics(*dir_ / "run/metrics.jsonl");
  nlohmann::json trained;
  for (std::string line; std::getline(metrics, line);)
    if (auto e = nlohmann::json::parse(line); e["event"] == "test") trained = e;
  EXPECT_NEAR(report["bits_per_symbol"].get<double>(), trained["bits_per_symbol"].get<double>(),
              1e-4);
  EXPECT_EQ(report["examples"], trained["examples"]);
}

TEST_F(CliText, WeightsOfAnotherVocabularyAreRefused) {
  write(*dir_ / "other.txt", "0123456789 abcdefghijklmnopqrstuvwxyz\n");
  ASSERT_EQ(myelin("dataset create --source " + (*dir_ / "other.txt") + " --text char --out " +
                   (*dir_ / "other") + " --validation 0.5")
                .status,
            0);
  tf::Outcome r = myelin("train --model " + (*dir_ / "run/network.yaml") + " --weights " +
                         (*dir_ / "run") + " --data " + (*dir_ / "other") +
                         " --iterations 1 --quiet --out " + (*dir_ / "finetune"));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("symbols but the network's weights score 12"), std::string::npos)
      << r.output;
}

TEST_F(CliText, AnEmptyTextFileIsAClearError) {
  write(*dir_ / "empty.txt", "");
  tf::Outcome r = myelin("dataset create --source " + (*dir_ / "empty.txt") +
                         " --text char --out " + (*dir_ / "none"));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("empty.txt"), std::string::npos) << r.output;
}

}  // namespace
