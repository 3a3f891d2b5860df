// Jobs and sweeps: create, list, look, abort, resume, clone, delete.
#include <filesystem>

#include "data/io.h"
#include "model/network.h"
#include "server/jobs.h"
#include "server/routes.h"
#include "server/scheduler.h"
#include "server/sweeps.h"
#include "server/system.h"

namespace myelin::server {

namespace fs = std::filesystem;

namespace {

int64_t owner_of(const Context& c, int64_t job) {
  return job_json(c, job)["owner"].get<int64_t>();
}

// The request that made a job, with `changes` on top (for clones).
nlohmann::json request_of(const nlohmann::json& job, const nlohmann::json& changes) {
  nlohmann::json spec = job["spec"], req = nlohmann::json::object();
  for (auto& [k, v] : spec.items())
    if (k != "train") req[k] = v;
  for (auto& [k, v] : spec["train"].items()) req[k] = v;
  req["name"] = job["name"].get<std::string>() + " (clone)";
  for (auto& [k, v] : changes.items()) req[k] = v;
  return req;
}

// `unstarted`: a sweep's member being taken back, still queued.
void delete_job(Context& c, int64_t id, const Identity& who, bool unstarted = false) {
  nlohmann::json job = job_json(c, id);
  require_owner(who, job["owner"], "job " + std::to_string(id));
  std::string state = job["state"];
  if (!unstarted && (state == kRunning || state == kQueued))
    throw ApiError(409, "job " + std::to_string(id) + " is " + state + "; abort it first");
  Statement s = c.db.query(
      "SELECT id FROM jobs WHERE parent = ? AND state IN ('queued', "
      "'running', 'interrupted')",
      {id});
  std::string users;
  while (s.step()) users += (users.empty() ? "" : ", ") + std::to_string(s.integer(0));
  if (!users.empty())
    throw ApiError(409, "job " + std::to_string(id) + " is the starting point of job(s) " + users +
                            "; delete or finish them first");
  c.db.transaction([&] {
    c.db.run("DELETE FROM events WHERE job = ?", {id});
    c.db.run("UPDATE jobs SET parent = NULL WHERE parent = ?", {id});
    c.db.run("DELETE FROM jobs WHERE id = ?", {id});
  });
  std::error_code ec;
  fs::remove_all(job["run_dir"].get<std::string>(), ec);
  c.events.change("job", id, {{"state", "deleted"}});
}

// The file as text ("" when it does not exist yet: a queued job has no log).
std::string text_of(const std::string& path) {
  if (!fs::exists(path)) return "";
  std::vector<uint8_t> bytes = data::read_file(path);
  return std::string(bytes.begin(), bytes.end());
}

int64_t int_param(const Request& req, const std::string& name, int64_t fallback) {
  if (!req.has_param(name)) return fallback;
  try {
    return std::stoll(req.get_param_value(name));
  } catch (const std::exception&) {
    throw ApiError(400, "'" + name + "' must be an integer");
  }
}

void add_sweeps(Router& r, Context& c, Scheduler& s, const SystemMonitor& sys) {
  r.add("POST", "/api/v1/sweeps", [&](const Request& req, Response& res, const Call& call) {
    nlohmann::json body = json_body(req);
    std::vector<nlohmann::json> requests = expand_sweep(body);
    int64_t sweep = 0;
    c.db.run("INSERT INTO sweeps(name, owner, spec, created) VALUES(?, ?, ?, ?)",
             {body.value("name", std::string("sweep")), call.who.user, body.dump(), now_seconds()});
    sweep = c.db.last_insert_id();
    nlohmann::json ids = nlohmann::json::array();
    try {
      for (const nlohmann::json& j : requests)
        ids.push_back(create_job(c, sys, call.who, {j, sweep}));
    } catch (...) {
      for (const nlohmann::json& id : ids) delete_job(c, id.get<int64_t>(), call.who, true);
      c.db.run("DELETE FROM sweeps WHERE id = ?", {sweep});
      throw;
    }
    s.wake();
    send_json(res, {{"id", sweep}, {"jobs", ids}}, 201);
  });
  r.add("GET", "/api/v1/sweeps", [&](const Request&, Response& res, const Call&) {
    nlohmann::json out = nlohmann::json::array();
    Statement q = c.db.query("SELECT id FROM sweeps ORDER BY id DESC");
    while (q.step()) out.push_back(sweep_json(c, q.integer(0)));
    send_json(res, {{"sweeps", out}});
  });
  r.add("GET", "/api/v1/sweeps/{id}", [&](const Request&, Response& res, const Call& call) {
    send_json(res, sweep_json(c, call.id()));
  });
}

}  // namespace

void add_job_routes(Router& r, Context& c, Scheduler& s, const SystemMonitor& sys) {
  r.add("POST", "/api/v1/jobs", [&](const Request& req, Response& res, const Call& call) {
    int64_t id = create_job(c, sys, call.who, {json_body(req), std::nullopt});
    s.wake();
    send_json(res, {{"id", id}, {"state", kQueued}}, 201);
  });
  r.add("GET", "/api/v1/jobs", [&](const Request& req, Response& res, const Call&) {
    int64_t limit = std::clamp<int64_t>(int_param(req, "limit", 100), 1, 10000);
    send_json(res, jobs_json(c, req.get_param_value("state"), limit,
                             std::max<int64_t>(0, int_param(req, "offset", 0))));
  });
  r.add("GET", "/api/v1/jobs/{id}", [&](const Request&, Response& res, const Call& call) {
    send_json(res, job_json(c, call.id()));
  });
  r.add("POST", "/api/v1/jobs/{id}/abort", [&](const Request&, Response& res, const Call& call) {
    require_owner(call.who, owner_of(c, call.id()), "job " + std::to_string(call.id()));
    s.abort(call.id());
    send_json(res, job_json(c, call.id()));
  });
  r.add("POST", "/api/v1/jobs/{id}/resume", [&](const Request&, Response& res, const Call& call) {
    nlohmann::json job = job_json(c, call.id());
    require_owner(call.who, job["owner"], "job " + std::to_string(call.id()));
    std::string state = job["state"];
    if (state != kAborted && state != kInterrupted && state != kFailed)
      throw ApiError(409, "job " + std::to_string(call.id()) + " is " + state +
                              "; only aborted, interrupted or failed jobs resume");
    s.resume(call.id());
    send_json(res, job_json(c, call.id()));
  });
  r.add("POST", "/api/v1/jobs/{id}/clone",
        [&](const Request& req, Response& res, const Call& call) {
          nlohmann::json request = request_of(job_json(c, call.id()), json_body(req));
          int64_t id = create_job(c, sys, call.who, {request, std::nullopt});
          s.wake();
          send_json(res, {{"id", id}, {"state", kQueued}}, 201);
        });
  r.add("DELETE", "/api/v1/jobs/{id}", [&](const Request&, Response& res, const Call& call) {
    delete_job(c, call.id(), call.who);
    send_json(res, {{"deleted", call.id()}});
  });
  r.add("GET", "/api/v1/jobs/{id}/network", [&](const Request&, Response& res, const Call& call) {
    std::string path = job_json(c, call.id())["run_dir"].get<std::string>() + "/network.yaml";
    NetworkSpec net = load_network(path);
    send_json(res, {{"text", text_of(path)}, {"network", network_json(net)}});
  });
  r.add("GET", "/api/v1/jobs/{id}/log", [&](const Request& req, Response& res, const Call& call) {
    std::string log = text_of(job_json(c, call.id())["run_dir"].get<std::string>() + "/log.txt");
    size_t tail = static_cast<size_t>(std::max<int64_t>(0, int_param(req, "bytes", 65536)));
    if (log.size() > tail) log = log.substr(log.size() - tail);
    res.set_content(log, "text/plain; charset=utf-8");
  });
  add_sweeps(r, c, s, sys);
}

}  // namespace myelin::server
