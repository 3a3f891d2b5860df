// Data-parallel training over MPI on CPUs, as a user runs it: `mpirun -np N myelin train` reaches
// the weights one process reaches with the global batch, lands in its accuracy band, and a rank
// that dies or stalls ends the whole run within a minute; the run then resumes on another number
// of ranks. Skipped where mpirun is missing.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "support/data_files.h"
#include "support/runs.h"

namespace {

using nlohmann::json;
namespace fs = std::filesystem;
namespace tf = myelin::testing;
using Clock = std::chrono::steady_clock;
using tf::last_event;
using tf::Outcome;
using tf::weights_difference;

Outcome run(const std::string& cmd) {
  return tf::run_command(cmd);
}

bool have_mpirun() {
  return std::system("command -v mpirun > /dev/null 2>&1") == 0;
}

#define REQUIRE_MPIRUN() \
  if (!have_mpirun()) GTEST_SKIP() << "mpirun not installed (scripts/install-deps.sh)"

// Root may run MPI here (CI runs as root); more ranks than cores is what the 4-rank test wants.
std::string mpirun(int ranks) {
  return "mpirun --allow-run-as-root --oversubscribe -np " + std::to_string(ranks) + " ";
}

std::string train(const std::string& flags) {
  return std::string(MYELIN_BINARY) + " train --model lenet --threads 1 --quiet " + flags;
}

// 20 updates at a rate that moves the weights well away from their start.
const std::string kShort =
    "--iterations 20 --lr 0.05 --warmup 0 --train-limit 1280 --test-limit 200 ";

TEST(DataParallel, TwoRanksReachTheWeightsOfOneProcessWithTheDoubledBatch) {
  REQUIRE_MPIRUN();
  tf::TempDir d;
  Outcome one = run(train(kShort + "--batch 32 --out " + d / "one"));
  ASSERT_EQ(one.status, 0) << one.output;
  Outcome two = run(mpirun(2) + train(kShort + "--batch 16 --out " + d / "two"));
  ASSERT_EQ(two.status, 0) << two.output;
  EXPECT_LT(weights_difference(d / "two/weights.safetensors", d / "one/weights.safetensors"), 1e-4);
  json end = last_event(d / "two/metrics.jsonl");
  EXPECT_EQ(end["event"], "end");
  EXPECT_EQ(end["world_size"], 2);
  EXPECT_NEAR(end["test_loss"].get<double>(),
              last_event(d / "one/metrics.jsonl")["test_loss"].get<double>(), 1e-4);
}

TEST(DataParallel, FourRanksOnTwoCoresReachTheSameWeights) {
  REQUIRE_MPIRUN();
  tf::TempDir d;
  Outcome one = run(train(kShort + "--batch 32 --out " + d / "one"));
  ASSERT_EQ(one.status, 0) << one.output;
  Outcome four = run(mpirun(4) + train(kShort + "--batch 8 --out " + d / "four"));
  ASSERT_EQ(four.status, 0) << four.output;
  EXPECT_LT(weights_difference(d / "four/weights.safetensors", d / "one/weights.safetensors"),
            1e-4);
}

// The user's view: twice the global batch at twice the rate (linear scaling) learns as well.
TEST(DataParallel, OneEpochOnTwoRanksLandsInTheAccuracyBandOfOneRank) {
  REQUIRE_MPIRUN();
  tf::TempDir d;
  const std::string epoch = "--epochs 1 --batch 64 --threads 2 --snapshot-every -1 ";
  Outcome one = run(train(epoch + "--out " + d / "one"));
  ASSERT_EQ(one.status, 0) << one.output;
  Outcome two = run(mpirun(2) + train(epoch + "--threads 1 --lr 0.1 --out " + d / "two"));
  ASSERT_EQ(two.status, 0) << two.output;
  double a1 = last_event(d / "one/metrics.jsonl")["test_accuracy"];
  double a2 = last_event(d / "two/metrics.jsonl")["test_accuracy"];
  std::printf("Fashion-MNIST, 1 epoch of LeNet: 1 rank %.2f%%, 2 ranks %.2f%%\n", 100 * a1,
              100 * a2);
  EXPECT_GT(a1, 0.80);
  EXPECT_NEAR(a2, a1, 0.03);
}

// mpirun with its output in `log`, in its own process group (so a failed test stops it all).
pid_t start(const std::string& cmd, const std::string& log) {
  pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    execl("/bin/sh", "sh", "-c", ("exec " + cmd + " > " + log + " 2>&1").c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

// Waits up to `seconds` for the process; its exit status, or -1 if it still runs.
int wait_for(pid_t pid, double seconds) {
  const auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
  int status = 0;
  while (Clock::now() < deadline) {
    if (waitpid(pid, &status, WNOHANG) == pid) return status;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return -1;
}

// The process of rank `rank` of the run writing to `out` (other tests' runs may be going on).
pid_t rank_pid(int rank, const std::string& out) {
  const std::string want = "OMPI_COMM_WORLD_RANK=" + std::to_string(rank);
  for (const auto& e : fs::directory_iterator("/proc")) {
    std::ifstream env(e.path() / "environ", std::ios::binary);
    std::ifstream cmd(e.path() / "cmdline", std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(env)), {});
    std::string line((std::istreambuf_iterator<char>(cmd)), {});
    if (line.find(MYELIN_BINARY) == 0 && line.find(out) != std::string::npos &&
        text.find(want + '\0') != std::string::npos)
      return std::stoi(e.path().filename().string());
  }
  return -1;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

// A long 2-rank run with a checkpoint every 10 updates, once it has written one.
pid_t start_long_run(const tf::TempDir& d, const std::string& env = "") {
  pid_t pid = start(env + mpirun(2) +
                        train("--iterations 100000 --snapshot-every 10 --batch 16 "
                              "--train-limit 3200 --test-limit 200 --out " +
                              d / "run"),
                    d / "log");
  const auto deadline = Clock::now() + std::chrono::seconds(120);
  int status = 0;
  while (!fs::exists(d / "run/checkpoints/latest") && Clock::now() < deadline &&
         waitpid(pid, &status, WNOHANG) == 0)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  return pid;
}

TEST(DataParallel, AKilledRankEndsTheRunWithinAMinuteAndItResumesOnOneRank) {
  REQUIRE_MPIRUN();
  tf::TempDir d;
  pid_t mpi = start_long_run(d);
  ASSERT_TRUE(fs::exists(d / "run/checkpoints/latest")) << slurp(d / "log");
  pid_t victim = rank_pid(1, d / "run");
  ASSERT_GT(victim, 0);
  kill(victim, SIGKILL);
  const auto killed = Clock::now();
  int status = wait_for(mpi, 60);
  double seconds = std::chrono::duration<double>(Clock::now() - killed).count();
  if (status == -1) kill(-mpi, SIGKILL), waitpid(mpi, &status, 0);
  std::printf("a killed rank ended the run in %.1f s\n", seconds);
  ASSERT_LT(seconds, 60) << "the run went on after a rank died:\n" << slurp(d / "log");
  EXPECT_FALSE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_NE(slurp(d / "log").find("rank 1"), std::string::npos) << slurp(d / "log");

  // Its checkpoint, of batches of 2 x 16, resumes on one rank of 16: the same examples seen.
  json saved = json::parse(slurp(d / "run/checkpoints/latest/trainer.json"));
  Outcome resumed = run(train("--resume " + d / "run" + " --iterations " +
                              std::to_string(2 * saved["iteration"].get<int64_t>() + 10)));
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  json end = last_event(d / "run/metrics.jsonl");
  EXPECT_EQ(end["event"], "end");
  EXPECT_EQ(end["world_size"], 1);
  EXPECT_EQ(end["iterations"], 2 * saved["iteration"].get<int64_t>() + 10);
}

TEST(DataParallel, AStalledRankEndsTheRunWithAClearError) {
  REQUIRE_MPIRUN();
  tf::TempDir d;
  pid_t mpi = start_long_run(d, "env MYELIN_COLLECTIVE_TIMEOUT=5 ");
  ASSERT_TRUE(fs::exists(d / "run/checkpoints/latest")) << slurp(d / "log");
  pid_t victim = rank_pid(1, d / "run");
  ASSERT_GT(victim, 0);
  kill(victim, SIGSTOP);  // alive, but never joins another collective
  int status = wait_for(mpi, 60);
  if (status == -1) kill(-mpi, SIGKILL), waitpid(mpi, &status, 0);
  kill(victim, SIGKILL);
  ASSERT_NE(status, -1) << "the run hung:\n" << slurp(d / "log");
  EXPECT_FALSE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_NE(slurp(d / "log").find("rank 0: no training step finished in"), std::string::npos)
      << slurp(d / "log");
}

}  // namespace
