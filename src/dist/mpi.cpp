#include "dist/mpi.h"

#include "core/error.h"

#if MYELIN_WITH_MPI
#include <mpi.h>

#include <unistd.h>
#include <cstdio>
#include <cstdlib>
#endif

namespace myelin::dist {

#if MYELIN_WITH_MPI

namespace {

void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  throw Error(std::string("MPI ") + what + " failed: " + std::string(text, len));
}

void start() {
  int started = 0;
  MPI_Initialized(&started);
  if (started) return;
  int provided = 0;
  check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "init");
  // Errors come back as codes (thrown as Error naming the call), not as a silent abort.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
}

MPI_Datatype mpi_type(DType t) {
  switch (t) {
    case DType::f32:
      return MPI_FLOAT;
    case DType::i32:
      return MPI_INT32_T;
    case DType::i64:
      return MPI_INT64_T;
    case DType::u8:
      return MPI_UINT8_T;
    default:
      throw UnsupportedError(std::string("MPI collectives take f32, i32, i64 or u8 tensors, not ") +
                             dtype_name(t) + " (train with --precision fp32 on the CPU)");
  }
}

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator() {
    start();
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
  }
  std::string transport() const override { return "mpi"; }

  void all_reduce(const std::vector<Tensor>& tensors) override {
    for (const Tensor& t : tensors) {
      if (t.dtype() != DType::f32) mpi_type(t.dtype());  // throws for 16-bit types
      check(MPI_Allreduce(MPI_IN_PLACE, t.data(), static_cast<int>(t.numel()), MPI_FLOAT, MPI_SUM,
                          MPI_COMM_WORLD),
            "all-reduce");
    }
  }
  void broadcast(const std::vector<Tensor>& tensors, int root) override {
    for (const Tensor& t : tensors)
      check(MPI_Bcast(t.data(), static_cast<int>(t.numel()), mpi_type(t.dtype()), root,
                      MPI_COMM_WORLD),
            "broadcast");
  }
  void all_reduce_host(std::vector<double>& v) override {
    check(MPI_Allreduce(MPI_IN_PLACE, v.data(), static_cast<int>(v.size()), MPI_DOUBLE, MPI_SUM,
                        MPI_COMM_WORLD),
          "all-reduce");
  }
};

}  // namespace

bool mpi_built() {
  return true;
}

void mpi_broadcast_bytes(void* data, size_t bytes, int root) {
  start();
  check(MPI_Bcast(data, static_cast<int>(bytes), MPI_BYTE, root, MPI_COMM_WORLD), "broadcast");
}

std::unique_ptr<Communicator> make_mpi_communicator(const World&) {
  return std::make_unique<MpiCommunicator>();
}

void mpi_finish() {
  int started = 0, finished = 0;
  MPI_Initialized(&started);
  MPI_Finalized(&finished);
  if (started && !finished) MPI_Finalize();
}

void mpi_abort(int code) {
  int started = 0;
  MPI_Initialized(&started);
  if (started) MPI_Abort(MPI_COMM_WORLD, code);
}

#else

namespace {
[[noreturn]] void not_built() {
  throw UsageError(
      "this myelin was built without MPI: install libopenmpi-dev (scripts/install-deps.sh) and "
      "rebuild to train over several processes");
}
}  // namespace

bool mpi_built() {
  return false;
}
void mpi_broadcast_bytes(void*, size_t, int) {
  not_built();
}
std::unique_ptr<Communicator> make_mpi_communicator(const World&) {
  not_built();
}
void mpi_finish() {}
void mpi_abort(int) {}

#endif

}  // namespace myelin::dist
