#include "server/jobs.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>

#include "core/backend.h"
#include "core/error.h"
#include "core/text.h"
#include "model/network.h"
#include "server/datasets.h"
#include "server/launcher.h"
#include "server/process.h"
#include "server/slurm.h"
#include "server/system.h"
#include "train/checkpoint.h"
#include "train/memory.h"

namespace myelin::server {

namespace fs = std::filesystem;

namespace {

enum class Kind { number, integer, text };

struct TrainField {
  const char* name;  // as `myelin train` spells the flag
  Kind kind;
  const std::vector<std::string>* values = nullptr;  // the text values it takes, where fixed
};

// The request fields passed on to `myelin train` as flags of the same name.
const std::vector<TrainField>& train_fields() {
  static const std::vector<TrainField> f = {{"epochs", Kind::integer},
                                            {"iterations", Kind::integer},
                                            {"batch", Kind::integer},
                                            {"solver", Kind::text, &solver_names()},
                                            {"lr", Kind::number},
                                            {"momentum", Kind::number},
                                            {"weight-decay", Kind::number},
                                            {"lr-policy", Kind::text, &lr_policy_names()},
                                            {"gamma", Kind::number},
                                            {"power", Kind::number},
                                            {"step-size", Kind::integer},
                                            {"milestones", Kind::text},
                                            {"warmup", Kind::integer},
                                            {"clip", Kind::number},
                                            {"accumulate", Kind::integer},
                                            {"label-smoothing", Kind::number},
                                            {"beta1", Kind::number},
                                            {"beta2", Kind::number},
                                            {"eps", Kind::number},
                                            {"rms-decay", Kind::number},
                                            {"seed", Kind::integer},
                                            {"eval-every", Kind::integer},
                                            {"eval-batch", Kind::integer},
                                            {"log-every", Kind::integer},
                                            {"snapshot-every", Kind::integer},
                                            {"keep", Kind::integer},
                                            {"loader-threads", Kind::integer},
                                            {"train-limit", Kind::integer},
                                            {"test-limit", Kind::integer},
                                            {"precision", Kind::text, &precision_names()},
                                            {"conv-search", Kind::text, &conv_search_names()},
                                            {"threads", Kind::integer}};
  return f;
}

const std::vector<std::string>& job_fields() {
  static const std::vector<std::string> f = {"name",   "dataset",      "model",
                                             "device", "gpus",         "nodes",
                                             "ranks",  "weights_from", "weights-from"};
  return f;
}

std::string flag_name(std::string key) {
  std::replace(key.begin(), key.end(), '_', '-');
  return key;
}

const TrainField* find_train_field(const std::string& flag) {
  for (const TrainField& f : train_fields())
    if (flag == f.name) return &f;
  return nullptr;
}

// The request with train fields under their flag names, checked for type; unknown keys are a 400.
nlohmann::json normalize(const nlohmann::json& req) {
  nlohmann::json spec = nlohmann::json::object(), train = nlohmann::json::object();
  for (auto& [key, value] : req.items()) {
    if (std::find(job_fields().begin(), job_fields().end(), key) != job_fields().end()) {
      spec[key == "weights-from" ? "weights_from" : key] = value;
      continue;
    }
    const TrainField* f = find_train_field(flag_name(key));
    if (!f)
      throw ApiError(400, "unknown field '" + key +
                              "'; a job takes name, dataset, model, device, gpus, nodes, ranks, "
                              "weights_from "
                              "and the flags of `myelin train` (epochs, batch, lr, solver, ...)");
    if (value.is_null()) continue;
    bool ok = f->kind == Kind::text      ? value.is_string()
              : f->kind == Kind::integer ? value.is_number_integer()
                                         : value.is_number();
    if (!ok)
      throw ApiError(400, "'" + key + "' must be " +
                              (f->kind == Kind::text      ? "a string"
                               : f->kind == Kind::integer ? "an integer"
                                                          : "a number") +
                              ", got " + value.dump());
    if (f->values && std::ranges::find(*f->values, value.get<std::string>()) == f->values->end())
      throw ApiError(400,
                     "'" + key + "' must be " + either_of(*f->values) + ", got " + value.dump());
    train[f->name] = value;
  }
  spec["train"] = train;
  return spec;
}

NetworkSpec network_of(const std::string& model) {
  if (model.empty()) throw ApiError(400, "'model' is required: a standard network or its text");
  bool is_text = model.find('\n') != std::string::npos || model.find(':') != std::string::npos;
  if (is_text) return parse_network(model, "network.yaml");
  std::vector<std::string> names = standard_networks();
  if (std::find(names.begin(), names.end(), model) == names.end()) {
    std::string list;
    for (const std::string& n : names) list += (list.empty() ? "" : ", ") + n;
    throw ApiError(400, "unknown network '" + model + "'; standard networks: " + list);
  }
  return load_network(model);
}

int gpu_index(const std::string& device) {
  if (device == "cuda") return -1;
  static const std::regex re(R"(cuda:(\d{1,3}))");
  std::smatch m;
  if (!std::regex_match(device, m, re))
    throw ApiError(400, "'device' must be cpu, cuda or cuda:N, got '" + device + "'");
  return std::stoi(m[1].str());
}

// gpus, nodes and ranks: whole numbers from 1 to 1024 where given.
void check_counts(const nlohmann::json& spec) {
  for (const char* key : {"gpus", "nodes", "ranks"}) {
    if (!spec.contains(key)) continue;
    const nlohmann::json& v = spec[key];
    if (!v.is_number_integer() || v.get<int64_t>() < 1 || v.get<int64_t>() > 1024)
      throw ApiError(
          400, std::string("'") + key + "' must be an integer from 1 to 1024, got " + v.dump());
  }
}

// The GPUs asked for, checked against this machine's (a cluster has its own: Slurm refuses a job
// it cannot run when it is submitted).
void check_gpus(const Resources& r, const SystemMonitor& sys, bool cluster) {
  int index = gpu_index(r.device);
  if (index >= 0 && r.gpus > 1)
    throw ApiError(400, "device '" + r.device + "' names one GPU; for " + std::to_string(r.gpus) +
                            " GPUs ask for device cuda and gpus: " + std::to_string(r.gpus));
  if (cluster) {
    if (index >= 0)
      throw ApiError(400,
                     "under Slurm the cluster picks the GPUs: ask for device cuda (and gpus: "
                     "N), not '" +
                         r.device + "'");
    return;
  }
  int count = sys.gpu_count();
  if (count == 0)
    throw ApiError(400, "this server has no GPU (no NVIDIA driver found); use device 'cpu'");
  if (index >= count)
    throw ApiError(400, "there is no GPU " + std::to_string(index) + ": this server has " +
                            std::to_string(count) +
                            " (cuda:0 .. cuda:" + std::to_string(count - 1) + ")");
  if (r.gpus > count)
    throw ApiError(400, "this job asks for " + std::to_string(r.gpus) +
                            " GPUs but this server has " + std::to_string(count) +
                            "; ask for fewer, or run the server with --scheduler slurm");
}

// The device, GPUs, nodes and MPI ranks asked for: sense everywhere, and what this server has
// under the local scheduler.
void check_resources(const nlohmann::json& spec, const SystemMonitor& sys, bool cluster) {
  bool on_cpu = spec.value("device", "cpu") == "cpu";
  if (on_cpu && spec.contains("gpus") && spec["gpus"] != 1)  // 1: the default a form may send
    throw ApiError(400,
                   "'gpus' is for jobs on device cuda, and this job runs on the CPU (got "
                   "gpus: " +
                       spec["gpus"].dump() + "); several CPU processes: ranks: N");
  if (!on_cpu && spec.contains("ranks"))
    throw ApiError(400,
                   "'ranks' is for jobs on the CPU; a GPU job runs one rank per GPU: ask "
                   "for gpus: N");
  check_counts(spec);
  Resources r = resources_of(spec);
  if (r.on_gpu()) check_gpus(r, sys, cluster);
  if (r.nodes > 1 && !cluster)
    throw ApiError(400, "a job on " + std::to_string(r.nodes) +
                            " nodes needs a cluster: start the server with --scheduler slurm");
  if (!r.on_gpu() && r.ranks < r.nodes)
    throw ApiError(400, "a CPU job on " + std::to_string(r.nodes) + " nodes needs at least " +
                            std::to_string(r.nodes) + " ranks (one per node or more)");
  if (!cluster && r.ranks > 1 && find_program("mpirun").empty())
    throw ApiError(400,
                   "a job with ranks > 1 runs under mpirun, which this server does not have: "
                   "install openmpi-bin, or ask for ranks: 1");
}

// Refuses a job that cannot fit the device, with the figure and the largest batch that fits.
void check_memory(const NetworkSpec& net, const nlohmann::json& spec, const SystemMonitor& sys) {
  const nlohmann::json& t = spec["train"];
  int64_t batch = t.value("batch", net.recipe.batch);
  int64_t eval_batch = t.value("eval-batch", int64_t{100});
  std::string precision = t.value("precision", "fp32");
  std::string device = spec.value("device", "cpu");
  int64_t available = sys.memory_available();
  std::string where = "the server's free memory";
  if (device != "cpu") {
    int index = std::max(0, gpu_index(device));
    std::vector<GpuStatus> gpus = sys.gpus();
    if (index < static_cast<int>(gpus.size())) available = gpus[index].memory_total;
    where = "GPU " + std::to_string(index) + "'s memory";
  }
  if (available <= 0) return;
  MemoryEstimate m = estimate_training_memory(net, batch, device, precision, eval_batch);
  if (m.total <= available) return;
  int64_t best = largest_batch(net, device, precision, available, eval_batch);
  auto gib = [](int64_t b) {
    char text[32];
    std::snprintf(text, sizeof text, "%.1f GiB", static_cast<double>(b) / (1 << 30));
    return std::string(text);
  };
  throw ApiError(400, "this job needs " + gib(m.total) + " at batch " + std::to_string(batch) +
                          " but " + where + " is " + gib(available) +
                          "; the largest batch that fits is " + std::to_string(best));
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  if (!out) throw Error("cannot write " + path);
}

std::optional<int64_t> parent_of(const Context& c, const nlohmann::json& spec) {
  if (!spec.contains("weights_from")) return std::nullopt;
  if (!spec["weights_from"].is_number_integer())
    throw ApiError(400, "'weights_from' must be a job id");
  int64_t parent = spec["weights_from"].get<int64_t>();
  nlohmann::json p = job_json(c, parent);
  if (!fs::exists(p["run_dir"].get<std::string>() + "/checkpoints") &&
      !fs::exists(p["run_dir"].get<std::string>() + "/weights.safetensors"))
    throw ApiError(400, "job " + std::to_string(parent) + " has no weights to start from yet");
  return parent;
}

}  // namespace

bool is_final(const std::string& state) {
  return state == kDone || state == kFailed || state == kAborted;
}

int64_t create_job(Context& c, const SystemMonitor& sys, const Identity& who, const NewJob& job) {
  nlohmann::json spec = normalize(job.request);
  if (!spec.contains("dataset") || !spec["dataset"].is_number_integer())
    throw ApiError(400, "'dataset' is required: the id of a dataset (GET /api/v1/datasets)");
  if (spec.contains("device") && !spec["device"].is_string())
    throw ApiError(400, "'device' must be cpu, cuda or cuda:N");
  DatasetView ds = dataset_view(c, spec["dataset"].get<int64_t>());
  if (ds.state == "failed")
    throw ApiError(400, "dataset " + std::to_string(ds.id) + " failed to build; make it again");
  NetworkSpec net = network_of(spec.value("model", ""));
  check_network_kind(net, ds);
  bool cluster = c.options.scheduler != "local";
  check_resources(spec, sys, cluster);
  if (ds.state == "ready" && !cluster) {  // a cluster's nodes are not this server
    net = fit_network(net, ds);
    check_memory(net, spec, sys);
  }
  std::optional<int64_t> parent = parent_of(c, spec);
  std::string name = spec.value("name", "");
  if (name.empty()) name = net.name + " on " + ds.name;
  int64_t id = 0;
  c.db.transaction([&] {
    c.db.run(
        "INSERT INTO jobs(name, owner, spec, state, dataset, sweep, parent, run_dir, created) "
        "VALUES(?, ?, ?, ?, ?, ?, ?, '', ?)",
        {name, who.user, spec.dump(), std::string(kQueued), ds.id,
         job.sweep ? SqlValue(*job.sweep) : SqlValue(nullptr),
         parent ? SqlValue(*parent) : SqlValue(nullptr), now_seconds()});
    id = c.db.last_insert_id();
    std::string dir = c.jobs_dir() + "/" + std::to_string(id);
    c.db.run("UPDATE jobs SET run_dir = ? WHERE id = ?", {dir, id});
    fs::create_directories(dir);
    write_text(dir + "/network.yaml", write_network(net));
  });
  c.events.job_event(id, "state", {{"state", kQueued}});
  c.events.change("job", id, {{"state", kQueued}, {"name", name}});
  return id;
}

nlohmann::json job_json(const Context& c, int64_t id) {
  Statement s = c.db.query(
      "SELECT id, name, owner, spec, state, dataset, sweep, parent, run_dir, pool, restarts, "
      "error, waiting_for, metrics, created, started, finished, pid, pid_start FROM jobs "
      "WHERE id = ?",
      {id});
  if (!s.step()) throw ApiError(404, "no job " + std::to_string(id));
  auto opt_int = [&](int col) {
    return s.is_null(col) ? nlohmann::json() : nlohmann::json(s.integer(col));
  };
  auto opt_real = [&](int col) {
    return s.is_null(col) ? nlohmann::json() : nlohmann::json(s.real(col));
  };
  auto opt_text = [&](int col) {
    return s.is_null(col) ? nlohmann::json() : nlohmann::json(s.text(col));
  };
  nlohmann::json spec = nlohmann::json::parse(s.text(3));
  nlohmann::json use;  // the running process's memory and CPU time, when it runs here
  if (s.text(4) == kRunning && !is_slurm_handle(s.text(18)))
    if (std::optional<ProcessUse> u = process_use(static_cast<pid_t>(s.integer(17))))
      use = {{"rss_bytes", u->rss_bytes}, {"cpu_seconds", u->cpu_seconds}};
  return {{"process", use},
          {"id", s.integer(0)},
          {"name", s.text(1)},
          {"owner", s.integer(2)},
          {"spec", spec},
          {"state", s.text(4)},
          {"dataset", opt_int(5)},
          {"sweep", opt_int(6)},
          {"weights_from", opt_int(7)},
          {"run_dir", s.text(8)},
          {"device", spec.value("device", "cpu")},
          {"pool", opt_text(9)},
          {"restarts", s.integer(10)},
          {"error", opt_text(11)},
          {"waiting_for", opt_text(12)},
          {"metrics", nlohmann::json::parse(s.text(13))},
          {"created", s.real(14)},
          {"started", opt_real(15)},
          {"finished", opt_real(16)}};
}

nlohmann::json jobs_json(const Context& c, const std::string& state, int64_t limit,
                         int64_t offset) {
  std::string where = state.empty() ? "" : " WHERE state = ?";
  std::vector<SqlValue> params;
  if (!state.empty()) params.push_back(state);
  int64_t total = c.db.scalar("SELECT COUNT(*) FROM jobs" + where, params).value_or(0);
  params.push_back(limit);
  params.push_back(offset);
  Statement s =
      c.db.query("SELECT id FROM jobs" + where + " ORDER BY id DESC LIMIT ? OFFSET ?", params);
  nlohmann::json jobs = nlohmann::json::array();
  while (s.step()) {
    nlohmann::json j = job_json(c, s.integer(0));
    j.erase("spec");
    jobs.push_back(std::move(j));
  }
  return {{"jobs", jobs}, {"total", total}};
}

std::vector<std::string> train_command(const Context& c, int64_t id, bool resume) {
  nlohmann::json job = job_json(c, id);
  const nlohmann::json& spec = job["spec"];
  std::string dir = job["run_dir"];
  std::vector<std::string> argv = {c.options.myelin_binary, "train"};
  if (resume) {
    argv.insert(argv.end(), {"--resume", dir});
  } else {
    DatasetView ds = dataset_view(c, spec["dataset"].get<int64_t>());
    argv.insert(argv.end(),
                {"--model", dir + "/network.yaml", "--data", ds.data_spec, "--out", dir});
    if (!job["weights_from"].is_null()) {
      nlohmann::json parent = job_json(c, job["weights_from"].get<int64_t>());
      std::string from = parent["run_dir"];
      argv.insert(argv.end(), {"--weights", fs::exists(from + "/weights.safetensors")
                                                ? from + "/weights.safetensors"
                                                : from});
    }
  }
  // On resume too: the checkpoint keeps the recipe, not log/eval/snapshot cadence or threads.
  for (auto& [flag, value] : spec["train"].items())
    argv.insert(argv.end(),
                {"--" + flag, value.is_string() ? value.get<std::string>() : value.dump()});
  return argv;
}

int64_t latest_checkpoint_iter(const std::string& run_dir) {
  std::vector<std::string> snaps = list_checkpoints(run_dir);
  if (snaps.empty()) return -1;
  return snapshot_iteration(fs::path(snaps.back()).filename().string());
}

}  // namespace myelin::server
