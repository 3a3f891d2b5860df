#include "server/model_server.h"

#include <atomic>
#include <chrono>
#include <thread>

#include "core/error.h"
#include "server/api.h"
#include "server/model_batcher.h"
#include "server/model_inputs.h"
#include "server/model_metrics.h"

namespace myelin::server {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

json top_json(const std::vector<Prediction>& top) {
  json out = json::array();
  for (const Prediction& p : top)
    out.push_back({{"label", p.label}, {"name", p.name}, {"probability", p.probability}});
  return out;
}

json dims_json(const Dims& d) {
  return json(std::vector<int64_t>(d.begin(), d.end()));
}

}  // namespace

struct ModelServer::Impl {
  explicit Impl(const ModelServerOptions& o)
      : options(o),
        predictor(o.model, o.predictor),
        metrics(predictor.max_batch(), predictor.instances()),
        batcher(predictor, std::chrono::microseconds(static_cast<int64_t>(o.max_delay_ms * 1000)),
                [this](int instance, int64_t n) { metrics.batch(instance, n); }) {
    configure();
    add_routes();
  }

  void configure() {
    int threads = options.http_threads;
    http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    http.set_tcp_nodelay(true);  // else Nagle + delayed ACK hold each kept-alive answer 40 ms
    http.set_keep_alive_max_count(1 << 30);  // clients send request after request on one socket
    http.set_payload_max_length(static_cast<size_t>(options.max_request_bytes));
    http.set_read_timeout(30, 0);
    http.set_write_timeout(30, 0);
    http.set_error_handler([this](const Request& req, Response& res) {
      if (!res.body.empty()) return;
      std::string what = res.status == 404   ? "no such route: " + req.method + " " + req.path
                         : res.status == 413 ? "the request is larger than the server accepts (" +
                                                   std::to_string(options.max_request_bytes >> 20) +
                                                   " MiB: --max-request-mb)"
                                             : "malformed HTTP request";
      send_error(res, res.status, what);
      metrics.request("other", res.status, 0, 0);
    });
  }

  // Registers a route whose handler returns how many examples it ran; its answer, status and
  // latency (from the whole body's arrival) go to the metrics.
  void route(const std::string& method, const std::string& path,
             std::function<int64_t(const Request&, Response&)> h) {
    auto timed = [this, path, h = std::move(h)](const Request& req, Response& res) {
      Clock::time_point start = Clock::now();
      int64_t examples = 0;
      answer_errors(req, res, [&] { examples = h(req, res); });
      double seconds = std::chrono::duration<double>(Clock::now() - start).count();
      metrics.request(path, res.status, seconds, res.status < 400 ? examples : 0);
    };
    if (method == "GET")
      http.Get(path, timed);
    else
      http.Post(path, timed);
  }

  void add_routes() {
    route("POST", "/v1/classify",
          [this](const Request& req, Response& res) { return classify(req, res); });
    route("POST", "/v1/predict",
          [this](const Request& req, Response& res) { return predict(req, res); });
    route("GET", "/v1/health", [this](const Request&, Response& res) {
      send_json(res, {{"status", "ready"},
                      {"model", predictor.spec().name},
                      {"input", dims_json(predictor.spec().input)},
                      {"classes", predictor.classes()}});
      return 0;
    });
    route("GET", "/v1/metrics", [this](const Request& req, Response& res) {
      if (req.get_param_value("format") == "prometheus")
        res.set_content(metrics.to_prometheus(), "text/plain; version=0.0.4");
      else
        send_json(res, metrics.to_json());
      return 0;
    });
    route("GET", "/v1/model", [this](const Request&, Response& res) {
      send_json(res, model_json());
      return 0;
    });
  }

  // Runs the inputs through the batcher: [n, classes] probabilities.
  std::vector<float> probabilities(const Inputs& in) {
    std::vector<float> p(static_cast<size_t>(in.n * predictor.classes()));
    batcher.run(in.values.data(), in.n, p.data());
    return p;
  }

  int64_t classify(const Request& req, Response& res) {
    int k = top_k_param(req, predictor.classes());
    Inputs in = image_inputs(req, predictor);
    std::vector<float> p = probabilities(in);
    json results = json::array();
    for (int64_t i = 0; i < in.n; ++i) {
      auto top = top_classes(p.data() + i * predictor.classes(), predictor.classes(), k,
                             predictor.class_names());
      results.push_back({{"image", in.names[static_cast<size_t>(i)]}, {"top", top_json(top)}});
    }
    send_json(res, {{"results", results}});
    return in.n;
  }

  int64_t predict(const Request& req, Response& res) {
    int k = top_k_param(req, predictor.classes());
    Inputs in = tensor_inputs(req, predictor);
    std::vector<float> p = probabilities(in);
    const int64_t classes = predictor.classes();
    json rows = json::array(), tops = json::array();
    for (int64_t i = 0; i < in.n; ++i) {
      const float* row = p.data() + i * classes;
      rows.push_back(std::vector<float>(row, row + classes));
      tops.push_back(top_json(top_classes(row, classes, k, predictor.class_names())));
    }
    send_json(res, {{"probabilities", rows}, {"top", tops}});
    return in.n;
  }

  json model_json() const {
    const NetworkSpec& spec = predictor.spec();
    json layers = json::array();
    for (const LayerSpec& l : spec.layers) layers.push_back({{"name", l.name}, {"type", l.type}});
    const PredictorOptions& po = predictor.options();
    return {{"name", spec.name},
            {"description", spec.description},
            {"source", options.source.empty() ? predictor.source() : options.source},
            {"input", dims_json(spec.input)},
            {"classes", spec.classes},
            {"class_names", predictor.class_names()},
            {"layers", layers},
            {"device", po.device},
            {"precision", po.precision},
            {"threads", po.threads},
            {"instances", predictor.instances()},
            {"max_batch", predictor.max_batch()},
            {"max_delay_ms", options.max_delay_ms},
            {"compiled_batches", predictor.compiled_batches()}};
  }

  ModelServerOptions options;
  Predictor predictor;
  ModelMetrics metrics;
  Batcher batcher;
  httplib::Server http;
  std::atomic<bool> running{false}, stopping{false};
};

ModelServer::ModelServer(const ModelServerOptions& options)
    : impl_(std::make_unique<Impl>(options)) {
  ModelServerOptions& o = impl_->options;
  bool bound = o.port == 0 ? (o.port = impl_->http.bind_to_any_port(o.host)) > 0
                           : impl_->http.bind_to_port(o.host, o.port);
  if (!bound)
    throw Error("cannot listen on " + o.host + ":" + std::to_string(o.port) +
                " (in use? choose another with --port)");
}

ModelServer::~ModelServer() {
  stop();
}

void ModelServer::run() {
  impl_->running = true;
  if (!impl_->stopping) impl_->http.listen_after_bind();
  impl_->running = false;
}

void ModelServer::stop() {
  impl_->stopping = true;
  // httplib forgets a stop() that comes before it listens: wait until it does (or run() is over).
  while (impl_->running && !impl_->http.is_running())
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  impl_->http.stop();
  impl_->batcher.stop();
}

std::string ModelServer::url() const {
  const ModelServerOptions& o = impl_->options;
  std::string host = o.host == "0.0.0.0" ? "127.0.0.1" : o.host;
  return "http://" + host + ":" + std::to_string(o.port);
}

const Predictor& ModelServer::predictor() const {
  return impl_->predictor;
}

}  // namespace myelin::server
