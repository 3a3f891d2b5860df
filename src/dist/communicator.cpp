#include "dist/communicator.h"

#include <unistd.h>

#include "core/error.h"
#include "dist/mpi.h"

namespace myelin::dist {

std::unique_ptr<Communicator> make_nccl_communicator(const World& world, Backend& backend);

std::unique_ptr<Communicator> connect(const World& world, Backend& backend) {
  if (!backend.device().is_cpu()) return make_nccl_communicator(world, backend);
  if (world.launcher == "local")
    throw UsageError("--gpus trains on GPUs; for several CPU processes start them with mpirun");
  return make_mpi_communicator(world);
}

void finish() {
  mpi_finish();
}

void abort_run(int code) {
  mpi_abort(code);
  _exit(code);
}

}  // namespace myelin::dist
