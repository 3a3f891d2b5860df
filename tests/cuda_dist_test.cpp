// Data-parallel training on GPUs through `myelin train --gpus`: with one GPU it takes the NCCL
// path (a world of one, the all-reduce inside the captured step) and trains like the plain path;
// with two it reaches what one GPU reaches with the doubled batch and lands in its accuracy band.
// Skipped without a GPU (or without a second one).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "support/data_files.h"
#include "support/require_gpu.h"
#include "support/runs.h"

namespace {

using nlohmann::json;
namespace tf = myelin::testing;

using tf::last_event;
using tf::weights_difference;

tf::Outcome myelin(const std::string& args) {
  return tf::run_command(std::string(MYELIN_BINARY) + " " + args);
}

const std::string kRun =
    "train --model lenet --iterations 60 --lr 0.05 --warmup 0 --train-limit 6400 --test-limit "
    "1000 --quiet ";

TEST(CudaDataParallel, OneGpuTakesTheNcclPathAndTrainsLikeThePlainPath) {
  REQUIRE_GPU();
  tf::TempDir d;
  tf::Outcome plain = myelin(kRun + "--device cuda --batch 64 --out " + d / "plain");
  ASSERT_EQ(plain.status, 0) << plain.output;
  tf::Outcome one = myelin(kRun + "--gpus 1 --batch 64 --out " + d / "one");
  ASSERT_EQ(one.status, 0) << one.output;
  json start;
  std::ifstream in(d / "one/metrics.jsonl");
  std::string first;
  std::getline(in, first);
  start = json::parse(first);
  EXPECT_EQ(start["transport"], "nccl");
  EXPECT_EQ(start["world_size"], 1);
  EXPECT_LT(weights_difference(d / "one/weights.safetensors", d / "plain/weights.safetensors"),
            1e-3);
}

TEST(CudaDataParallel, TwoGpusReachTheWeightsOfOneWithTheDoubledBatch) {
  REQUIRE_GPU();
  if (myelin::cuda_device_count() < 2) GTEST_SKIP() << "needs 2 GPUs, this machine has 1";
  tf::TempDir d;
  tf::Outcome one = myelin(kRun + "--device cuda --batch 64 --out " + d / "one");
  ASSERT_EQ(one.status, 0) << one.output;
  tf::Outcome two = myelin(kRun + "--gpus 2 --batch 32 --out " + d / "two");
  ASSERT_EQ(two.status, 0) << two.output;
  EXPECT_EQ(last_event(d / "two/metrics.jsonl")["world_size"], 2);
  EXPECT_LT(weights_difference(d / "two/weights.safetensors", d / "one/weights.safetensors"), 1e-3);
}

TEST(CudaDataParallel, FashionMnistOnTwoGpusLandsInTheAccuracyBandOfOne) {
  REQUIRE_GPU();
  if (myelin::cuda_device_count() < 2) GTEST_SKIP() << "needs 2 GPUs, this machine has 1";
  tf::TempDir d;
  const std::string run = "train --model lenet --epochs 2 --batch 64 --snapshot-every -1 --quiet ";
  tf::Outcome one = myelin(run + "--device cuda --out " + d / "one");
  ASSERT_EQ(one.status, 0) << one.output;
  tf::Outcome two = myelin(run + "--gpus 2 --lr 0.1 --out " + d / "two");
  ASSERT_EQ(two.status, 0) << two.output;
  double a1 = last_event(d / "one/metrics.jsonl")["test_accuracy"];
  double a2 = last_event(d / "two/metrics.jsonl")["test_accuracy"];
  std::printf("Fashion-MNIST, 2 epochs of LeNet: 1 GPU %.2f%%, 2 GPUs %.2f%%\n", 100 * a1,
              100 * a2);
  EXPECT_NEAR(a2, a1, 0.03);
}

}  // namespace
