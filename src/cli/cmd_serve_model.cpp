// myelin serve-model: one trained classifier behind HTTP with dynamic batching, until Ctrl-C.
#include <signal.h>
#include <unistd.h>

#include <cerrno>

#include <cstdio>
#include <thread>

#include "cli/command.h"
#include "cli/common.h"
#include "cli/onnx_model.h"
#include "core/error.h"
#include "server/model_server.h"

namespace myelin::cli {

namespace {

const std::vector<Flag>& serve_model_flags() {
  static const std::vector<Flag> f = [] {
    std::vector<Flag> v = {
        {"weights", "W", "weights for a network given by name or file", ""},
        {"host", "ADDR", "address to listen on (0.0.0.0: every interface)", "127.0.0.1"},
        {"port", "N", "port to listen on (0: any free one, printed)", "8000"},
        {"max-batch", "B", "the most examples run as one batch (1: no batching)", "32"},
        {"max-delay-ms", "D",
         "how long a request waits for others to join its batch (0: only those already queued)",
         "2"},
        {"instances", "N", "copies of the network running batches at once", "1"},
        {"max-request-mb", "M", "the largest request body accepted", "16"},
        {"http-threads", "N", "HTTP worker threads (each kept-alive connection holds one)", "128"}};
    for (const Flag& d : device_flags()) v.push_back(d);
    return v;
  }();
  return f;
}

server::ModelServerOptions serve_model_options(const Args& a) {
  if (a.positional().size() != 1)
    throw UsageError(
        "give one model: a bundle (.tar.gz), a run directory, a weights file, or a "
        "network with --weights");
  server::ModelServerOptions o;
  o.model = a.positional()[0];
  o.predictor.weights = a.str("weights");
  o.predictor.device = a.str("device", "cpu");
  BackendOptions b = backend_from(a);
  o.predictor.threads = b.threads;
  o.predictor.precision = b.precision;
  o.predictor.max_batch = a.integer("max-batch", 32);
  o.predictor.instances = static_cast<int>(a.integer("instances", 1));
  o.host = a.str("host", o.host);
  o.port = static_cast<int>(a.integer("port", o.port));
  o.max_delay_ms = a.number("max-delay-ms", o.max_delay_ms);
  o.max_request_bytes = a.integer("max-request-mb", 16) << 20;
  o.http_threads = static_cast<int>(a.integer("http-threads", o.http_threads));
  if (o.port < 0 || o.port > 65535) throw UsageError("--port must be 0..65535");
  if (o.predictor.max_batch < 1 || o.predictor.max_batch > 4096)
    throw UsageError("--max-batch must be 1..4096");
  if (o.max_delay_ms < 0 || o.max_delay_ms > 10000)
    throw UsageError("--max-delay-ms must be 0..10000");
  if (o.predictor.instances < 1 || o.predictor.instances > 64)
    throw UsageError("--instances must be 1..64");
  if (o.max_request_bytes < (1 << 20)) throw UsageError("--max-request-mb must be at least 1");
  if (o.http_threads < 1) throw UsageError("--http-threads must be at least 1");
  return o;
}

// An .onnx model is imported (cli/onnx_model.h) into a network file and weights in `dir`, which
// the server reads at start; the options then name those.
void import_if_onnx(server::ModelServerOptions& o, const TemporaryDirectory& dir) {
  if (!is_onnx_path(o.model)) return;
  if (!o.predictor.weights.empty())
    throw UsageError("an ONNX model holds its weights: drop --weights");
  const ModelFiles files = resolve_model(o.model, "", dir.path(), true);
  o.model = files.model;
  o.predictor.weights = files.weights;
}

// SIGINT and SIGTERM stop the server. Libraries start threads of their own before main() (the
// BLAS thread pool) that do not block signals, so a signal may land on any thread: its handler
// only writes to a pipe, and a thread of ours reads the pipe and stops the server.
int signal_pipe[2] = {-1, -1};

void on_signal(int) {
  char byte = 1;
  [[maybe_unused]] ssize_t n = write(signal_pipe[1], &byte, 1);
}

void wake_stopper() {
  on_signal(0);
}

std::thread stop_on_signals(server::ModelServer& s) {
  if (pipe(signal_pipe) != 0) throw Error("cannot create a pipe for signals");
  struct sigaction act = {};
  act.sa_handler = on_signal;
  sigemptyset(&act.sa_mask);
  sigaction(SIGINT, &act, nullptr);
  sigaction(SIGTERM, &act, nullptr);
  return std::thread([&s] {
    char byte = 0;
    while (read(signal_pipe[0], &byte, 1) < 0 && errno == EINTR) {
    }
    std::fprintf(stderr, "\nmyelin serve-model: stopping\n");
    s.stop();
  });
}

int run_serve_model(const std::vector<std::string>& argv) {
  const std::string help = help_text(
      "myelin serve-model BUNDLE|RUN_DIR|WEIGHTS|MODEL.onnx [--weights W] [--port N]\n"
      "                   [--max-batch B] [--max-delay-ms D] [--instances N]",
      "Serves a trained classifier (a bundle, a run, weights, or an ONNX model) over HTTP until\n"
      "Ctrl-C. Requests that arrive within D ms of each other run as one batch of up to B\n"
      "examples on one of N copies of the network.\n"
      "  POST /v1/classify  a PNG or JPEG body (or multipart files) -> top classes (?k=5)\n"
      "  POST /v1/predict   tensors [n, C, H, W]: JSON {\"inputs\": [...], \"shape\": [...]} or\n"
      "                     float32 (application/octet-stream, X-Shape: n,C,H,W) -> probabilities\n"
      "  GET  /v1/health, /v1/model, /v1/metrics (?format=prometheus)",
      serve_model_flags(),
      "  myelin serve-model lenet.tar.gz --port 8000\n"
      "  myelin serve-model runs/resnet --max-batch 64 --max-delay-ms 5 --instances 2\n"
      "  curl --data-binary @shoe.png -H 'Content-Type: image/png' localhost:8000/v1/classify\n");
  if (wants_help(argv, help)) return 0;
  Args a("serve-model", argv, serve_model_flags());
  server::ModelServerOptions options = serve_model_options(a);
  std::string source = options.source = options.model;
  TemporaryDirectory imported;
  import_if_onnx(options, imported);
  server::ModelServer s(options);
  std::thread stopper = stop_on_signals(s);
  const Predictor& p = s.predictor();
  std::printf("myelin serve-model: %s (%s), max batch %lld, %d instance%s\n  serving at %s/v1/\n",
              p.spec().name.c_str(), source.c_str(), static_cast<long long>(p.max_batch()),
              p.instances(), p.instances() == 1 ? "" : "s", s.url().c_str());
  std::fflush(stdout);
  s.run();
  wake_stopper();
  stopper.join();
  return 0;
}

const bool registered = register_command(
    {"serve-model", "a trained classifier over HTTP, with dynamic batching", run_serve_model});

}  // namespace

}  // namespace myelin::cli
