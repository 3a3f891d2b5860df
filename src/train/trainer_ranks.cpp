// Trainer's data parallelism (trainer_impl.h): each rank's device, the communicator and watchdog,
// resumed counters rescaled to the global batch, and figures summed over the ranks.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "dist/communicator.h"
#include "dist/watchdog.h"
#include "train/evaluate.h"
#include "train/session.h"
#include "train/trainer_impl.h"

namespace myelin::detail {

// A rank's GPU: the local launcher's, else under mpirun or srun the one its local rank names.
std::string Trainer::rank_device() const {
  if (world_.gpu >= 0) return "cuda:" + std::to_string(world_.gpu);
  if (world_.distributed() && o_.device == "cuda")
    return "cuda:" + std::to_string(world_.local_rank);
  return o_.device;
}

// Every rank starts from rank 0's parameters, states and solver slots; from here on the session
// sums the gradients over the ranks.
void Trainer::connect_ranks() {
  if (!comm_) return;
  session_->set_communicator(comm_.get());
  if (ranks() > 1)
    watchdog_ = std::make_unique<dist::Watchdog>(world_.rank, dist::Watchdog::default_timeout());
}

// A run resumed with another global batch (other ranks or --batch) goes on from the same number
// of examples seen: its counters are in batches of the old size.
void Trainer::rescale_resumed_counters(int64_t old_global) {
  const int64_t global = recipe_.batch * ranks();
  if (old_global == global) return;
  auto rescale = [&](int64_t& v) { v = v * old_global / global; };
  int64_t before = st_.iteration;
  rescale(st_.iteration), rescale(st_.micro_batches), rescale(st_.batch_in_epoch);
  if (st_.best_iter >= 0) rescale(st_.best_iter);
  if (!o_.quiet && world_.is_root())
    std::fprintf(stderr,
                 "the checkpoint's global batch was %lld, now %lld (%lld rank%s x %lld): "
                 "iteration %lld continues as %lld\n",
                 static_cast<long long>(old_global), static_cast<long long>(global),
                 static_cast<long long>(ranks()), ranks() == 1 ? "" : "s",
                 static_cast<long long>(recipe_.batch), static_cast<long long>(before),
                 static_cast<long long>(st_.iteration));
}

std::vector<double> Trainer::sum_over_ranks(std::vector<double> v) {
  if (comm_ && ranks() > 1) comm_->all_reduce_host(v);
  return v;
}

// The train event's figures over every rank's batches.
void Trainer::reduce_window() {
  if (!parallel()) return;
  std::vector<double> v =
      sum_over_ranks({window_.loss, window_.top1, static_cast<double>(window_.batches)});
  window_.loss = v[0], window_.top1 = v[1], window_.batches = static_cast<int64_t>(v[2]);
}

// Each rank evaluated its share of the test set: the whole set's figures.
void Trainer::reduce_eval(EvalResult& r) {
  if (!parallel()) return;
  const double n = static_cast<double>(r.examples);
  auto part = [&](double x) { return r.examples > 0 ? x * n : 0.0; };
  std::vector<double> v = sum_over_ranks({part(r.loss), part(r.top1), part(r.top5), n});
  r.examples = static_cast<int64_t>(v[3]);
  if (v[3] > 0) r.loss = v[0] / v[3], r.top1 = v[1] / v[3], r.top5 = v[2] / v[3];
  r.images_per_second = r.seconds > 0 ? v[3] / r.seconds : 0;
}

}  // namespace myelin::detail
