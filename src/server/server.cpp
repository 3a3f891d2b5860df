#include "server/server.h"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "core/error.h"
#include "server/datasets.h"
#include "server/routes.h"
#include "server/scheduler.h"
#include "server/sweeps.h"
#include "server/system.h"

namespace myelin::server {

namespace fs = std::filesystem;

namespace {

std::string this_executable() {
  std::error_code ec;
  fs::path p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? "myelin" : p.string();
}

// The built web UI: beside the binary (build/ -> web/dist) or installed under share/.
std::string find_web_dir(const std::string& exe) {
  fs::path bin = fs::path(exe).parent_path();
  for (const fs::path& p : {bin / "../web/dist", bin / "../share/myelin/web"}) {
    std::error_code ec;
    if (fs::exists(p / "index.html", ec)) return fs::canonical(p, ec).string();
  }
  return "";
}

ServeOptions completed(ServeOptions o) {
  if (o.data_dir.empty()) o.data_dir = default_data_dir();
  fs::create_directories(o.data_dir);
  o.data_dir = fs::canonical(o.data_dir).string();
  if (o.myelin_binary.empty()) o.myelin_binary = this_executable();
  if (o.web_dir.empty()) o.web_dir = find_web_dir(o.myelin_binary);
  return o;
}

const char* kNoWebPage =
    "<!doctype html><meta charset=utf-8><title>Myelin</title><body style='font-family:sans-serif;"
    "max-width:40em;margin:3em auto'><h1>Myelin</h1><p>The server runs, but the web UI is not "
    "built. The REST API is under <code>/api/v1</code> (see <code>docs/openapi.yaml</code>); "
    "<code>/api/v1/health</code> answers without a token.</p>";

}  // namespace

std::string default_data_dir() {
  if (const char* d = std::getenv("MYELIN_DATA"); d && *d) return d;
  if (const char* x = std::getenv("XDG_DATA_HOME"); x && *x) return std::string(x) + "/myelin";
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : ".") + "/.local/share/myelin";
}

struct Server::Impl {
  explicit Impl(const ServeOptions& o)
      : context(completed(o)),
        router(http, context.auth),
        builder(context),
        scheduler(context, system) {
    configure();
    add_routes();
  }

  void configure() {
    int threads = context.options.threads;
    http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    http.set_tcp_nodelay(true);  // else Nagle + delayed ACK hold each kept-alive answer 40 ms
    http.set_payload_max_length(static_cast<size_t>(context.options.max_upload_bytes) + (1 << 20));
    http.set_read_timeout(30, 0);
    http.set_write_timeout(30, 0);
    http.set_error_handler([](const Request& req, Response& res) {
      if (!res.body.empty()) return;
      std::string what = res.status == 404   ? "no such route: " + req.method + " " + req.path
                         : res.status == 413 ? "the request is larger than the server accepts"
                         : res.status == 400 ? "malformed HTTP request (a POST needs a "
                                               "Content-Length header, even 0)"
                                             : "the request failed";
      send_error(res, res.status, what);
    });
    if (!context.options.web_dir.empty()) http.set_mount_point("/", context.options.web_dir);
  }

  void add_routes() {
    router.add(
        "GET", "/api/v1/health",
        [this](const Request&, Response& res, const Call&) {
          send_json(res, {{"status", "ok"}, {"gpus", system.gpu_count()}});
        },
        Access::open);
    add_auth_routes(router, context);
    add_network_routes(router, context);
    add_dataset_routes(router, context, builder);
    add_upload_routes(router, context);
    add_job_routes(router, context, scheduler, system);
    add_model_routes(router, context);
    add_event_routes(router, context);
    router.add("GET", "/api/v1/system", [this](const Request&, Response& res, const Call&) {
      nlohmann::json body = system.snapshot();
      body["pools"] = scheduler.pools_json();
      send_json(res, body);
    });
    router.add("GET", "/api/v1/pools", [this](const Request&, Response& res, const Call&) {
      send_json(res, {{"pools", scheduler.pools_json()}});
    });
    if (context.options.web_dir.empty())
      http.Get("/",
               [](const Request&, Response& res) { res.set_content(kNoWebPage, "text/html"); });
  }

  Context context;
  SystemMonitor system;
  httplib::Server http;
  Router router;
  DatasetBuilder builder;
  Scheduler scheduler;
};

Server::Server(const ServeOptions& options) : impl_(std::make_unique<Impl>(options)) {}

Server::~Server() {
  stop();
}

void Server::run() {
  const ServeOptions& o = impl_->context.options;
  if (!impl_->http.bind_to_port(o.host, o.port))
    throw Error("cannot listen on " + o.host + ":" + std::to_string(o.port) +
                " (in use? choose another with --port)");
  impl_->http.listen_after_bind();
}

void Server::stop() {
  impl_->context.stopping = true;
  impl_->context.hub.notify();
  impl_->http.stop();
}

Context& Server::context() {
  return impl_->context;
}
const std::vector<Route>& Server::routes() const {
  return impl_->router.routes();
}

std::string Server::url() const {
  const ServeOptions& o = impl_->context.options;
  std::string host = o.host == "0.0.0.0" ? "127.0.0.1" : o.host;
  return "http://" + host + ":" + std::to_string(o.port) +
         "/login?token=" + impl_->context.auth.token();
}

}  // namespace myelin::server
