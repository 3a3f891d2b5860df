// Sweeps: one request, many jobs. `grid` takes lists and makes every combination; `random` takes
// ranges (learning rate and weight decay sampled log-uniformly) or lists, `count` samples. With
// `halving`, the group is pruned by successive halving as it runs: at each rung (a fraction of
// the run), a job whose test accuracy is in the worse half of those that reached the rung is
// stopped, so the budget goes to the promising ones. Jobs of one pool run one after another, so
// this is the asynchronous form (ASHA): a job is judged against the jobs that reached the rung
// before it.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>

#include "server/api.h"
#include "server/context.h"

namespace myelin::server {

class Scheduler;
class SystemMonitor;

// The jobs' requests a sweep body expands to (each: the base fields plus one combination).
std::vector<nlohmann::json> expand_sweep(const nlohmann::json& body);

// Stops `job` when its latest test accuracy puts it in the worse half at a rung it just passed.
void apply_halving(Context& c, Scheduler& s, int64_t job);

nlohmann::json sweep_json(const Context& c, int64_t id);

void add_sweep_routes(Router& r, Context& c, Scheduler& s, const SystemMonitor& sys);

}  // namespace myelin::server
