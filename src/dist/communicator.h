// Collectives among the ranks of a data-parallel run: NCCL between GPUs, MPI between CPU
// processes (on one machine or many). The session sums gradients with all_reduce, the trainer
// starts every rank from rank 0's tensors with broadcast and agrees on figures and decisions
// (losses, stop requests) with all_reduce_host. Nothing here is home-made transport.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/tensor.h"
#include "dist/world.h"

namespace myelin::dist {

class Communicator {
 public:
  virtual ~Communicator() = default;
  int rank() const { return rank_; }
  int size() const { return size_; }
  virtual std::string transport() const = 0;  // "nccl" or "mpi"

  // Sums each tensor over all ranks, in place. The tensors live on the backend's device; on a
  // GPU the reduction is queued on the backend's stream (so a captured step graph holds it).
  virtual void all_reduce(const std::vector<Tensor>& tensors) = 0;
  // The overlapped form, for gradients in buckets as the backward pass produces them: starts
  // summing `tensors` once the work queued so far is done, on a side stream, so later work runs
  // meanwhile; wait_all_reduced() makes the work queued next wait for every sum started. (MPI
  // sums at once.)
  virtual void start_all_reduce(const std::vector<Tensor>& tensors) { all_reduce(tensors); }
  virtual void wait_all_reduced() {}
  // Copies rank `root`'s tensors into every other rank's.
  virtual void broadcast(const std::vector<Tensor>& tensors, int root) = 0;
  // Sums host numbers over all ranks; returns once every rank has given its own.
  virtual void all_reduce_host(std::vector<double>& values) = 0;

 protected:
  int rank_ = 0, size_ = 1;
};

// A communicator for this process's world on `backend`'s device: NCCL for a CUDA backend (its
// unique id from rank 0 over MPI, or from the local launcher), MPI for the CPU. Throws UsageError
// when the build lacks the transport the device needs.
std::unique_ptr<Communicator> connect(const World& world, Backend& backend);

// Ends this process's part in a run: finish() after success (MPI_Finalize waits for every rank);
// abort_run() after an error ends every rank at once (MPI_Abort; the local launcher stops the
// others when one exits) and exits with `code`.
void finish();
[[noreturn]] void abort_run(int code);

// A fresh NCCL unique id as hex text, for the local launcher to hand to its ranks.
std::string new_nccl_id();

}  // namespace myelin::dist
