#include "server/sweeps.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "server/jobs.h"
#include "server/scheduler.h"

namespace myelin::server {

namespace {

constexpr int64_t kMaxSweepJobs = 256;

const std::vector<std::string>& swept_fields() {
  static const std::vector<std::string> f = {"lr",           "batch",        "solver",
                                             "weight-decay", "weight_decay", "momentum"};
  return f;
}

void check_swept(const std::string& key) {
  if (std::find(swept_fields().begin(), swept_fields().end(), key) == swept_fields().end())
    throw ApiError(400,
                   "a sweep varies lr, batch, solver, weight_decay or momentum, not '" + key + "'");
}

std::vector<nlohmann::json> grid(const nlohmann::json& base, const nlohmann::json& g) {
  std::vector<nlohmann::json> jobs = {base};
  for (auto& [key, values] : g.items()) {
    check_swept(key);
    if (!values.is_array() || values.empty())
      throw ApiError(400, "grid '" + key + "' must be a non-empty list");
    std::vector<nlohmann::json> next;
    for (const nlohmann::json& j : jobs)
      for (const nlohmann::json& v : values) {
        nlohmann::json k = j;
        k[key] = v;
        next.push_back(std::move(k));
      }
    jobs = std::move(next);
    if (static_cast<int64_t>(jobs.size()) > kMaxSweepJobs)
      throw ApiError(400, "a sweep makes at most " + std::to_string(kMaxSweepJobs) + " jobs");
  }
  return jobs;
}

nlohmann::json sample(const std::string& key, const nlohmann::json& range, std::mt19937_64& rng) {
  if (range.is_array()) {
    if (range.empty()) throw ApiError(400, "random '" + key + "' must not be empty");
    return range[std::uniform_int_distribution<size_t>(0, range.size() - 1)(rng)];
  }
  double lo = range.value("min", 0.0), hi = range.value("max", 0.0);
  if (!(lo > 0 && hi >= lo))
    throw ApiError(400, "random '" + key + "' needs {\"min\": x, \"max\": y} with 0 < x <= y");
  double u = std::uniform_real_distribution<double>(0, 1)(rng);
  if (key == "batch" || key == "momentum") {
    double v = lo + u * (hi - lo);
    return key == "batch" ? nlohmann::json(static_cast<int64_t>(std::lround(v)))
                          : nlohmann::json(v);
  }
  return std::exp(std::log(lo) + u * (std::log(hi) - std::log(lo)));  // log-uniform
}

std::vector<nlohmann::json> random_jobs(const nlohmann::json& base, const nlohmann::json& r) {
  int64_t count = r.value("count", int64_t{0});
  if (count < 1 || count > kMaxSweepJobs)
    throw ApiError(400, "random 'count' must be 1.." + std::to_string(kMaxSweepJobs));
  std::mt19937_64 rng(r.value("seed", uint64_t{1}));
  std::vector<nlohmann::json> jobs;
  for (int64_t i = 0; i < count; ++i) {
    nlohmann::json j = base;
    for (auto& [key, range] : r.items()) {
      if (key == "count" || key == "seed") continue;
      check_swept(key);
      j[key] = sample(key, range, rng);
    }
    jobs.push_back(std::move(j));
  }
  return jobs;
}

// Rungs as fractions of the run in (0, 1).
std::vector<double> rungs_of(const nlohmann::json& spec) {
  std::vector<double> rungs;
  if (!spec.contains("halving")) return rungs;
  const nlohmann::json& h = spec["halving"];
  if (!h.is_object() || !h.contains("at") || !h["at"].is_array())
    throw ApiError(400, "'halving' must be {\"at\": [fractions of the run, e.g. 0.25, 0.5]}");
  for (const nlohmann::json& f : h["at"]) {
    if (!f.is_number() || f.get<double>() <= 0 || f.get<double>() >= 1)
      throw ApiError(400, "'halving.at' takes fractions between 0 and 1, got " + f.dump());
    rungs.push_back(f.get<double>());
  }
  std::sort(rungs.begin(), rungs.end());
  return rungs;
}

// The first test accuracy each job of the sweep logged at or after `iter` (by the event log).
std::vector<std::pair<int64_t, double>> accuracies_at(const Context& c, int64_t sweep,
                                                      double fraction) {
  std::vector<std::pair<int64_t, double>> out;
  Statement s = c.db.query("SELECT id, metrics FROM jobs WHERE sweep = ?", {sweep});
  std::vector<std::pair<int64_t, int64_t>> jobs;
  while (s.step()) {
    nlohmann::json m = nlohmann::json::parse(s.text(1));
    if (m.contains("max_iter")) jobs.emplace_back(s.integer(0), m["max_iter"].get<int64_t>());
  }
  for (auto& [job, max_iter] : jobs) {
    double rung_iter = fraction * static_cast<double>(max_iter);
    Statement e = c.db.query(
        "SELECT data FROM events WHERE job = ? AND kind = 'metrics' AND "
        "json_extract(data, '$.event') = 'test' AND json_extract(data, '$.iter') >= ? "
        "ORDER BY seq LIMIT 1",
        {job, rung_iter});
    if (e.step()) out.emplace_back(job, nlohmann::json::parse(e.text(0)).value("top1", 0.0));
  }
  return out;
}

}  // namespace

std::vector<nlohmann::json> expand_sweep(const nlohmann::json& body) {
  nlohmann::json base = body.contains("job") ? body["job"] : nlohmann::json::object();
  if (!base.is_object()) throw ApiError(400, "'job' must be an object: the fields of POST /jobs");
  bool has_grid = body.contains("grid"), has_random = body.contains("random");
  if (has_grid == has_random)
    throw ApiError(400, "a sweep takes either 'grid' (lists) or 'random' (ranges and a count)");
  const nlohmann::json& g = has_grid ? body["grid"] : body["random"];
  if (!g.is_object()) throw ApiError(400, "'grid' / 'random' must be an object");
  return has_grid ? grid(base, g) : random_jobs(base, g);
}

void apply_halving(Context& c, Scheduler& sched, int64_t job) {
  nlohmann::json j = job_json(c, job);
  int64_t sweep = j["sweep"].get<int64_t>();
  Statement s = c.db.query("SELECT spec FROM sweeps WHERE id = ?", {sweep});
  if (!s.step()) return;
  std::vector<double> rungs = rungs_of(nlohmann::json::parse(s.text(0)));
  const nlohmann::json& m = j["metrics"];
  if (rungs.empty() || !m.contains("max_iter") || !m.contains("iter")) return;
  double done = static_cast<double>(m["iter"].get<int64_t>()) / m["max_iter"].get<int64_t>();
  for (double rung : rungs) {
    if (done < rung) break;
    auto reached = accuracies_at(c, sweep, rung);
    if (reached.size() < 2) continue;
    std::vector<double> accs;
    for (auto& [id, acc] : reached) accs.push_back(acc);
    std::sort(accs.begin(), accs.end(), std::greater<>());
    double cutoff = accs[(accs.size() + 1) / 2 - 1];  // the worst of the better half
    for (auto& [id, acc] : reached)
      if (id == job && acc < cutoff) {
        sched.abort(job, "stopped by successive halving at " + std::to_string(rung) +
                             " of the run: test accuracy " + std::to_string(acc) +
                             " below the better half's " + std::to_string(cutoff));
        return;
      }
  }
}

nlohmann::json sweep_json(const Context& c, int64_t id) {
  Statement s = c.db.query("SELECT name, owner, spec, created FROM sweeps WHERE id = ?", {id});
  if (!s.step()) throw ApiError(404, "no sweep " + std::to_string(id));
  nlohmann::json out = {{"id", id},
                        {"name", s.text(0)},
                        {"owner", s.integer(1)},
                        {"spec", nlohmann::json::parse(s.text(2))},
                        {"created", s.real(3)}};
  nlohmann::json jobs = nlohmann::json::array(), best;
  Statement j = c.db.query("SELECT id FROM jobs WHERE sweep = ? ORDER BY id", {id});
  while (j.step()) {
    nlohmann::json job = job_json(c, j.integer(0));
    job.erase("spec");
    double acc = job["metrics"].value("best_accuracy", -1.0);
    if (acc >= 0 && (best.is_null() || acc > best["accuracy"].get<double>()))
      best = {{"job", job["id"]}, {"accuracy", acc}};
    jobs.push_back(std::move(job));
  }
  out["jobs"] = jobs;
  out["best"] = best;
  return out;
}

}  // namespace myelin::server
