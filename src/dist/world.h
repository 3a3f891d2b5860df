// Where this process stands in a data-parallel run: its rank among the processes that train one
// network together, and who started them: mpirun or srun (MPI), `myelin train --gpus` (the local
// launcher, src/dist/launch.h), or nobody (a plain run of one process).
#pragma once
#include <string>

namespace myelin::dist {

struct World {
  int rank = 0, size = 1;
  int local_rank = 0;         // rank among the processes of this host (picks the GPU)
  std::string launcher = "";  // "mpi", "local" or "" (one process)
  int gpu = -1;               // the local launcher's GPU for this rank (-1: not given)
  bool is_root() const { return rank == 0; }
  bool distributed() const { return !launcher.empty(); }
};

// From the environment: OpenMPI's OMPI_COMM_WORLD_*, PMIx/PMI (srun), or the local launcher's
// MYELIN_RANK, MYELIN_WORLD_SIZE and MYELIN_GPU.
World detect_world();

// The local launcher's environment variables.
inline constexpr const char* kRankEnv = "MYELIN_RANK";
inline constexpr const char* kWorldSizeEnv = "MYELIN_WORLD_SIZE";
inline constexpr const char* kGpuEnv = "MYELIN_GPU";
inline constexpr const char* kNcclIdEnv = "MYELIN_NCCL_ID";

}  // namespace myelin::dist
