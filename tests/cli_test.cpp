// The `myelin` program as a user runs it: train, resume without repeating the flags, test,
// classify, time, and clear errors with a non-zero exit for bad input.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>

#include "data/dataset.h"
#include "support/data_files.h"
#include "support/runs.h"

namespace {

using nlohmann::json;
namespace tf = myelin::testing;

using tf::last_event;
using tf::Outcome;

Outcome myelin(const std::string& args) {
  return tf::run_command(std::string(MYELIN_BINARY) + " " + args);
}

// One short LeNet run shared by the tests below (a few seconds on two cores).
class Cli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new tf::TempDir;
    Outcome r = myelin(
        "train --model lenet --data fashion-mnist --iterations 120 --batch 64 "
        "--train-limit 6000 --test-limit 1000 --threads 2 --quiet --out " +
        run_dir());
    ASSERT_EQ(r.status, 0) << r.output;
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string run_dir() { return *dir_ / "run"; }
  static tf::TempDir* dir_;
};
tf::TempDir* Cli::dir_ = nullptr;

TEST_F(Cli, TrainWritesMetricsEndingWithTestAccuracy) {
  json end = last_event(run_dir() + "/metrics.jsonl");
  EXPECT_EQ(end["event"], "end");
  EXPECT_EQ(end["iterations"], 120);
  EXPECT_GT(end["test_accuracy"].get<double>(), 0.6);  // chance is 0.1
}

TEST_F(Cli, ResumeNeedsOnlyTheRunDirectory) {
  tf::TempDir copy;
  std::filesystem::copy(run_dir(), copy / "run", std::filesystem::copy_options::recursive);
  Outcome r = myelin("train --resume " + (copy / "run") + " --iterations 150 --quiet");
  ASSERT_EQ(r.status, 0) << r.output;
  json end = last_event(copy / "run/metrics.jsonl");
  EXPECT_EQ(end["iterations"], 150);
  std::ifstream in(copy / "run/metrics.jsonl");
  EXPECT_NE(std::string(std::istreambuf_iterator<char>(in), {}).find("\"event\":\"resume\""),
            std::string::npos);
}

// A job killed outright (no chance to checkpoint) resumes from its last periodic snapshot.
TEST(CliKill, KilledRunResumesFromItsLastSnapshot) {
  tf::TempDir d;
  const std::string out = d / "run";
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    execl(MYELIN_BINARY, MYELIN_BINARY, "train", "--model", "lenet", "--iterations", "100000",
          "--snapshot-every", "10", "--train-limit", "3200", "--test-limit", "200", "--threads",
          "2", "--quiet", "--out", out.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!std::filesystem::exists(out + "/checkpoints/latest") &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // likely mid-write of the next
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the run ended before it was killed";
  Outcome r = myelin("train --resume " + out + " --iterations 200 --quiet");
  ASSERT_EQ(r.status, 0) << r.output;
  json end = last_event(out + "/metrics.jsonl");
  EXPECT_EQ(end["event"], "end");
  EXPECT_EQ(end["iterations"], 200);
}

TEST_F(Cli, TestPrintsConfusionMatrixRowsThatAddUpToTheExamples) {
  Outcome r = myelin("test --weights " + run_dir() + " --limit 300 --json --threads 2");
  ASSERT_EQ(r.status, 0) << r.output;
  json j = json::parse(r.output.substr(r.output.find('{')));
  ASSERT_EQ(j["confusion"].size(), 10u);
  int64_t total = 0, diagonal = 0;
  for (size_t t = 0; t < 10; ++t) {
    ASSERT_EQ(j["confusion"][t].size(), 10u);
    for (size_t p = 0; p < 10; ++p) total += j["confusion"][t][p].get<int64_t>();
    diagonal += j["confusion"][t][t].get<int64_t>();
  }
  EXPECT_EQ(total, 300);
  EXPECT_NEAR(j["top1"].get<double>(), double(diagonal) / 300, 1e-9);
}

TEST_F(Cli, ClassifyNamesTheClassesOfATestImage) {
  myelin::DatasetSplits ds = myelin::open_dataset("fashion-mnist");
  std::vector<uint8_t> px(28 * 28);
  int32_t label = -1;
  ds.test->read(0, px.data(), &label);
  const std::string truth = ds.test->class_names()[static_cast<size_t>(label)];
  tf::TempDir d;
  tf::write_png(d / "item.png", px, 28, 28, 1);
  Outcome r = myelin("classify --weights " + run_dir() + " --top 5 --json " + (d / "item.png"));
  ASSERT_EQ(r.status, 0) << r.output;
  json j = json::parse(r.output.substr(r.output.find_first_of("[{")));
  json top = j[0]["top"];
  ASSERT_EQ(top.size(), 5u) << r.output;
  double sum = 0;
  bool has_truth = false;
  for (const json& c : top) {
    sum += c["probability"].get<double>();
    has_truth |= c["name"] == truth;
  }
  EXPECT_LE(sum, 1.0 + 1e-6);
  EXPECT_TRUE(has_truth) << "true class " << truth << " not in " << top.dump();
}

// Every command's --help, as a terminal of 100 columns shows it: each line fits (the flags' help
// wraps under its column).
TEST(CliHelp, EveryCommandsHelpFitsInOneHundredColumns) {
  Outcome top = myelin("--help");
  ASSERT_EQ(top.status, 0) << top.output;
  std::istringstream lines(top.output.substr(top.output.find("commands:")));
  std::string line;
  int commands = 0;
  std::getline(lines, line);
  while (std::getline(lines, line) && line.starts_with("  ")) {
    const std::string command = line.substr(2, line.find(' ', 2) - 2);
    Outcome help = myelin(command + " --help");
    EXPECT_EQ(help.status, 0) << command;
    std::istringstream help_lines(help.output);
    for (std::string l; std::getline(help_lines, l);)
      EXPECT_LE(l.size(), 100u) << "myelin " << command << " --help: " << l;
    ++commands;
  }
  EXPECT_GE(commands, 10);
}

TEST(CliTime, JsonHasTheStepAndEveryLayer) {
  Outcome r = myelin("time --model lenet --batch 8 --iterations 3 --warmup 1 --threads 2 --json");
  ASSERT_EQ(r.status, 0) << r.output;
  json j = json::parse(r.output.substr(r.output.find('{')));
  for (const char* k : {"images_per_second", "step_ms", "forward_ms", "backward_ms"})
    EXPECT_GT(j[k].get<double>(), 0) << k;
  std::set<std::string> names;
  for (const json& l : j["layers"]) names.insert(l["name"].get<std::string>());
  for (const char* n : {"conv1", "pool1", "conv2", "pool2", "ip1", "ip2"})
    EXPECT_TRUE(names.count(n)) << n << " missing from " << j["layers"].dump();
}

TEST(CliErrors, BadInputExitsNonZeroWithAMessageNamingIt) {
  tf::TempDir d;
  tf::write_bytes(d / "junk.safetensors", {1, 2, 3, 4, 5, 6, 7, 8, 9});
  tf::write_idx(d / "idx/train-images-idx3-ubyte", {10, 28, 28}, std::vector<uint8_t>(100, 7),
                false);  // truncated: 10 images announced, 100 bytes given
  tf::write_idx(d / "idx/train-labels-idx1-ubyte", {10}, std::vector<uint8_t>(10, 1), false);
  struct Case {
    std::string args, must_say;
  } cases[] = {
      {"train --model nosuch --out " + (d / "o"), "nosuch"},
      {"train --model lenet --data " + (d / "idx") + " --out " + (d / "o"),
       "train-images-idx3-ubyte"},
      {"train --model lenet --data /no/such/dir --out " + (d / "o"), "/no/such/dir"},
      {"test --model lenet --weights " + (d / "junk.safetensors"), "junk.safetensors"},
      {"train --model lenet --lr abc --out " + (d / "o"), "--lr"},
      {"time --model lenet --conv-search fastest", "--conv-search must be auto, heuristic"},
      {"trian", "train"},
  };
  for (const Case& c : cases) {
    Outcome r = myelin(c.args);
    EXPECT_NE(r.status, 0) << c.args;
    EXPECT_NE(r.output.find(c.must_say), std::string::npos) << c.args << "\n" << r.output;
    EXPECT_EQ(r.output.find("terminate called"), std::string::npos) << r.output;
  }
}

}  // namespace
