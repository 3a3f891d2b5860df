// `myelin train --gpus 0,1,...` on one host: one process per GPU, all running this command.
// Each child gets its rank, the world size, its GPU and the NCCL unique id in its environment
// (dist/world.h). The launcher forwards SIGINT/SIGTERM (the ranks agree to stop, and rank 0 writes
// the checkpoint); when one rank fails it stops the others at once and says which one failed.
#pragma once
#include <string>
#include <vector>

namespace myelin::dist {

// "N" (a count: GPUs 0..N-1) or a comma list of device indices ("0,2", or "3," for GPU 3 alone),
// checked against the `visible` GPUs.
std::vector<int> parse_gpus(const std::string& spec, int visible);

// Runs this process's own command line (/proc/self/cmdline) once per GPU and waits; returns the
// exit code to exit with: 0 when every rank succeeded, else the first failure's.
int launch_local(const std::vector<int>& gpus);

// The GPUs this process can see (0 in a build without CUDA).
int visible_gpus();

}  // namespace myelin::dist
