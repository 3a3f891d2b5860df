// What each launcher runs for a job's resources: the trainer's device flags locally, and the
// Slurm batch script's options and command (the one-node cluster test, tests/slurm, runs CPU
// jobs for real; GPU and multi-node scripts are checked here).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "server/launcher.h"
#include "server/slurm.h"

namespace {

using myelin::server::batch_script;
using myelin::server::device_flags;
using myelin::server::Launch;
using myelin::server::Resources;

Launch launch_of(const Resources& r) {
  Launch l;
  l.job = 7;
  l.run_dir = "/data/jobs/7";
  l.log_path = "/data/jobs/7/log.txt";
  l.train = {"/opt/myelin", "train", "--model", "/data/jobs/7/network.yaml"};
  l.resources = r;
  return l;
}

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(LocalLauncher, DeviceFlagsForTheGpusGiven) {
  EXPECT_EQ(device_flags({"cpu", 0, 1, 1}, {}), (std::vector<std::string>{"--device", "cpu"}));
  EXPECT_EQ(device_flags({"cuda", 1, 1, 1}, {3}), (std::vector<std::string>{"--device", "cuda:3"}));
  EXPECT_EQ(device_flags({"cuda", 2, 1, 1}, {0, 2}),
            (std::vector<std::string>{"--gpus", "0,2", "--device", "cuda"}));
}

TEST(SlurmScript, OneCpuProcess) {
  std::string s = batch_script(launch_of({"cpu", 0, 1, 1}));
  EXPECT_TRUE(has(s, "#SBATCH --ntasks=1\n")) << s;
  EXPECT_TRUE(has(s, "#SBATCH --output=/data/jobs/7/log.txt\n")) << s;
  EXPECT_TRUE(has(s, "#SBATCH --open-mode=append\n")) << s;
  EXPECT_TRUE(has(s,
                  "'/opt/myelin' 'train' '--model' '/data/jobs/7/network.yaml' '--device' "
                  "'cpu'\n"))
      << s;
  EXPECT_FALSE(has(s, "mpirun")) << s;
  EXPECT_FALSE(has(s, "--gpus")) << s;
  EXPECT_TRUE(has(s, "trap ")) << s;  // the shell outlives SIGTERM to record the exit status
}

TEST(SlurmScript, CpuRanksRunUnderMpirun) {
  std::string s = batch_script(launch_of({"cpu", 0, 1, 3}));
  EXPECT_TRUE(has(s, "#SBATCH --ntasks=3\n")) << s;
  EXPECT_TRUE(has(s, "'mpirun' ")) << s;
  EXPECT_TRUE(has(s, "'-np' '3' '/opt/myelin' 'train'")) << s;
  EXPECT_TRUE(has(s, "'--device' 'cpu'\n")) << s;
}

TEST(SlurmScript, GpusOnOneNode) {
  std::string s = batch_script(launch_of({"cuda", 4, 1, 1}));
  EXPECT_TRUE(has(s, "#SBATCH --gpus=4\n")) << s;
  EXPECT_TRUE(has(s, "#SBATCH --ntasks=1\n")) << s;
  EXPECT_TRUE(has(s, "'--gpus' '4' '--device' 'cuda'\n")) << s;  // the trainer starts 4 ranks
  EXPECT_FALSE(has(s, "mpirun")) << s;
}

TEST(SlurmScript, OneGpu) {
  std::string s = batch_script(launch_of({"cuda", 1, 1, 1}));
  EXPECT_TRUE(has(s, "#SBATCH --gpus=1\n")) << s;
  EXPECT_TRUE(has(s, "'--device' 'cuda'\n")) << s;
  EXPECT_FALSE(has(s, "'--gpus'")) << s;
}

TEST(SlurmScript, NodesRunOneRankPerGpuUnderMpirun) {
  std::string s = batch_script(launch_of({"cuda", 8, 2, 1}));
  EXPECT_TRUE(has(s, "#SBATCH --nodes=2\n")) << s;
  EXPECT_TRUE(has(s, "#SBATCH --ntasks-per-node=8\n")) << s;
  EXPECT_TRUE(has(s, "#SBATCH --gpus-per-node=8\n")) << s;
  EXPECT_TRUE(has(s, "'mpirun' ")) << s;
  EXPECT_FALSE(has(s, "'-np'")) << s;     // mpirun takes the allocation's tasks
  EXPECT_FALSE(has(s, "'--gpus'")) << s;  // each rank picks its GPU by local rank
  EXPECT_TRUE(has(s, "'--device' 'cuda'\n")) << s;
}

TEST(SlurmScript, QuotesArguments) {
  Launch l = launch_of({"cpu", 0, 1, 1});
  l.train.push_back("it's");
  EXPECT_TRUE(has(batch_script(l), "'it'\\''s'")) << batch_script(l);
}

}  // namespace
