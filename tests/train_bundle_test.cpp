// Model bundles from real (short) training runs on a slice of Fashion-MNIST: a finished run, a
// stopped one, a run of a network given as a spec, and runs with nothing to bundle. Each bundle
// is read back with libarchive and its weights loaded into a session built from its network.
#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>

#include "core/error.h"
#include "data/dataset.h"
#include "support/data_files.h"
#include "support/expect_error.h"
#include "train/bundle.h"
#include "train/checkpoint.h"
#include "train/session.h"
#include "train/trainer.h"

using namespace myelin;
using myelin::testing::expect_error;
using myelin::testing::TempDir;
namespace fs = std::filesystem;
namespace tf = myelin::testing;
using json = nlohmann::json;

namespace {

struct Bundle {
  std::vector<std::string> names;  // in archive order
  std::map<std::string, std::string> files;
};

Bundle read_bundle(const std::string& path) {
  Bundle b;
  archive* a = archive_read_new();
  archive_read_support_filter_gzip(a);
  archive_read_support_format_tar(a);
  EXPECT_EQ(archive_read_open_filename(a, path.c_str(), 1 << 16), ARCHIVE_OK);
  archive_entry* e;
  while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
    std::string name = archive_entry_pathname(e), data;
    char buf[65536];
    for (la_ssize_t n; (n = archive_read_data(a, buf, sizeof buf)) > 0;) data.append(buf, n);
    b.names.push_back(name);
    b.files[name] = data;
  }
  archive_read_free(a);
  return b;
}

TrainOptions lenet_options(const std::string& out) {
  TrainOptions o;
  o.model = "lenet";
  o.data = "fashion-mnist";
  o.out_dir = out;
  o.threads = 2;
  o.quiet = true;
  o.handle_signals = false;
  o.train_limit = 320;
  o.test_limit = 200;
  o.overrides.batch = 32;
  o.overrides.max_iter = 6;
  o.overrides.warmup_iters = 0;
  o.snapshot_every = -1;
  return o;
}

// Builds the bundle's network and loads its weights with every tensor required.
void expect_weights_load(const Bundle& b, const TempDir& dir) {
  NetworkSpec spec = parse_network(b.files.at("network.yaml"), "network.yaml");
  std::string weights = dir / "from-bundle.safetensors";
  std::string bytes = b.files.at("weights.safetensors");
  tf::write_bytes(weights, {bytes.begin(), bytes.end()});
  SessionOptions so;
  so.batch = 1;
  so.train = false;
  so.recipe = spec.recipe;
  Session s(spec, so);
  WeightsReport r = load_weights(s, weights, true);
  EXPECT_FALSE(r.loaded.empty());
  EXPECT_TRUE(r.missing.empty()) << r.summary();
  EXPECT_TRUE(r.unused.empty()) << r.summary();
}

const std::vector<std::string> kFiles = {"info.json", "network.yaml", "labels.txt",
                                         "weights.safetensors"};

}  // namespace

TEST(Bundle, FinishedRunHoldsNetworkWeightsLabelsAndInfo) {
  TempDir dir;
  TrainResult tr = train(lenet_options(dir / "run"));
  ASSERT_FALSE(tr.stopped);
  json returned = write_bundle(dir / "run", dir / "lenet.tar.gz");
  Bundle b = read_bundle(dir / "lenet.tar.gz");
  EXPECT_EQ(b.names, kFiles);

  json info = json::parse(b.files["info.json"]);
  EXPECT_EQ(info, returned);
  EXPECT_EQ(info["format"], "myelin-bundle");
  EXPECT_EQ(info["network"], "lenet");
  EXPECT_EQ(info["iterations"], 6);
  EXPECT_EQ(info["finished"], true);
  EXPECT_EQ(info["weights_from"], "weights.safetensors");
  EXPECT_EQ(info["device"], "cpu");
  EXPECT_EQ(info["precision"], "fp32");
  EXPECT_EQ(info["dataset"]["spec"], "fashion-mnist");
  EXPECT_EQ(info["dataset"]["train_examples"], 320);
  EXPECT_EQ(info["recipe"]["batch"], 32);  // the flag, not the file's 64
  EXPECT_DOUBLE_EQ(info["metrics"]["test_accuracy"].get<double>(), tr.test_top1);
  EXPECT_EQ(info["metrics"]["iterations"], 6);
  EXPECT_EQ(info["created"].get<std::string>().back(), 'Z');

  std::string labels;
  DatasetSplits fashion = open_dataset("fashion-mnist");
  for (const auto& n : fashion.train->class_names()) labels += n + "\n";
  EXPECT_EQ(b.files["labels.txt"], labels);

  // The network file, with the recipe in force, and the run's own final weights.
  NetworkSpec spec = parse_network(b.files["network.yaml"], "network.yaml");
  NetworkSpec lenet = load_network("lenet");
  EXPECT_EQ(spec.layers.size(), lenet.layers.size());
  EXPECT_EQ(spec.recipe.batch, 32);
  std::vector<uint8_t> run_weights = tf::read_bytes(dir / "run/weights.safetensors");
  EXPECT_EQ(b.files["weights.safetensors"], std::string(run_weights.begin(), run_weights.end()));
  expect_weights_load(b, dir);
  // Written atomically: nothing but the bundle beside it.
  for (const auto& e : fs::directory_iterator(dir.str()))
    EXPECT_EQ(e.path().string().find(".tmp"), std::string::npos) << e.path();
}

TEST(Bundle, StoppedRunUsesItsLatestCheckpoint) {
  TempDir dir;
  TrainOptions o = lenet_options(dir / "run");
  o.overrides.max_iter = 40;
  int steps = 0;
  TrainObserver obs;
  obs.on_step = [&](const StepInfo&) { ++steps; };
  obs.should_stop = [&] { return steps >= 3; };
  ASSERT_TRUE(train(o, obs).stopped);
  ASSERT_FALSE(fs::exists(dir / "run/weights.safetensors"));
  json info = write_bundle(dir / "run", dir / "stopped.tar.gz");
  EXPECT_EQ(info["finished"], false);
  EXPECT_EQ(info["iterations"], 3);
  EXPECT_EQ(info["max_iter"], 40);
  EXPECT_EQ(info["weights_from"], "checkpoints/iter-000003/weights.safetensors");
  Bundle b = read_bundle(dir / "stopped.tar.gz");
  EXPECT_EQ(b.names, kFiles);
  expect_weights_load(b, dir);
}

TEST(Bundle, NetworkGivenAsSpecNeedsNetworkYamlInTheRun) {
  TempDir dir;
  NetworkSpec spec = parse_network(R"(
name: small
input: [1, 28, 28]
classes: 12
train: {solver: adam, lr: 0.001, batch: 16}
layers:
  - conv: {name: conv1, filters: 4, kernel: 5, stride: 2}
  - relu: {name: relu1}
  - fc: {name: fc1, outputs: 12}
)",
                                   "small.yaml");
  TrainOptions o = lenet_options(dir / "run");
  o.model = "small";
  o.spec = spec;
  o.overrides = {};
  o.overrides.max_iter = 3;
  train(o);
  expect_error([&] { write_bundle(dir / "run", dir / "small.tar.gz"); },
               {"model 'small'", "network.yaml"});
  EXPECT_FALSE(fs::exists(dir / "small.tar.gz"));

  tf::write_bytes(dir / "run/network.yaml", [&] {
    std::string text = write_network(spec);
    return std::vector<uint8_t>(text.begin(), text.end());
  }());
  write_bundle(dir / "run", dir / "small.tar.gz");
  Bundle b = read_bundle(dir / "small.tar.gz");
  EXPECT_EQ(parse_network(b.files["network.yaml"], "network.yaml").recipe.solver, "adam");
  // 12 outputs, 10 classes: the two extra outputs are named by number.
  std::string labels = b.files["labels.txt"];
  EXPECT_EQ(std::count(labels.begin(), labels.end(), '\n'), 12);
  EXPECT_NE(labels.find("\n10\n11\n"), std::string::npos);
  expect_weights_load(b, dir);
}

TEST(Bundle, RunWithoutWeightsIsAnError) {
  TempDir dir;
  fs::create_directories(dir / "empty");
  expect_error([&] { write_bundle(dir / "empty", dir / "x.tar.gz"); },
               {"has no weights", "weights.safetensors", "checkpoint"});
  expect_error([&] { write_bundle(dir / "missing", dir / "x.tar.gz"); }, {"missing"});
  EXPECT_FALSE(fs::exists(dir / "x.tar.gz"));
}
