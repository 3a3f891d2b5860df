// OpenMPI for this process: started on first use, finalized by finish(). Built only where the
// MPI development files are (MYELIN_WITH_MPI); elsewhere mpi_built() is false and the rest throw.
#pragma once
#include <cstddef>
#include <memory>

#include "dist/communicator.h"

namespace myelin::dist {

bool mpi_built();
// Copies `bytes` bytes from rank `root` to every rank of MPI_COMM_WORLD (starts MPI if needed).
void mpi_broadcast_bytes(void* data, size_t bytes, int root);
std::unique_ptr<Communicator> make_mpi_communicator(const World& world);
void mpi_finish();         // MPI_Finalize, if MPI was started
void mpi_abort(int code);  // MPI_Abort on every rank, if MPI was started

}  // namespace myelin::dist
