#include "dist/world.h"

#include <cstdlib>

#include "core/error.h"

namespace myelin::dist {

namespace {

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : nullptr;
}

int env_int(const char* name, int dflt) {
  const char* v = env(name);
  if (!v) return dflt;
  char* end = nullptr;
  long n = std::strtol(v, &end, 10);
  if (*end != '\0' || n < 0 || n > 1 << 20)
    throw UsageError(std::string("environment variable ") + name + "='" + v +
                     "' is not a rank or count");
  return static_cast<int>(n);
}

}  // namespace

World detect_world() {
  World w;
  if (env(kRankEnv)) {
    w.launcher = "local";
    w.rank = w.local_rank = env_int(kRankEnv, 0);
    w.size = env_int(kWorldSizeEnv, 1);
    w.gpu = env_int(kGpuEnv, -1);
  } else if (env("OMPI_COMM_WORLD_SIZE")) {
    w.launcher = "mpi";
    w.rank = env_int("OMPI_COMM_WORLD_RANK", 0);
    w.size = env_int("OMPI_COMM_WORLD_SIZE", 1);
    w.local_rank = env_int("OMPI_COMM_WORLD_LOCAL_RANK", 0);
  } else if (env("PMIX_RANK") || env("PMI_RANK")) {
    // srun --mpi=pmix (or pmi2): the size and local rank come from Slurm.
    w.launcher = "mpi";
    w.rank = env("PMIX_RANK") ? env_int("PMIX_RANK", 0) : env_int("PMI_RANK", 0);
    w.size = env_int("SLURM_NTASKS", env_int("PMI_SIZE", 1));
    w.local_rank = env_int("SLURM_LOCALID", 0);
  }
  if (w.size < 1 || w.rank >= w.size)
    throw UsageError("rank " + std::to_string(w.rank) + " is outside a world of " +
                     std::to_string(w.size) + " processes");
  return w;
}

}  // namespace myelin::dist
