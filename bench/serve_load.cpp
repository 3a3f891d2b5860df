// Load on an inference server's POST /v1/predict (myelin serve-model, bench/ort_server.*): a fixed
// number of clients, each on its own kept-alive connection, send one float32 example after
// another for a fixed time. Prints throughput, latency percentiles and errors as one JSON line.
//
//   serve_load --url http://127.0.0.1:8000 --clients 16 --seconds 5 [--warmup 1] [--examples 1]
//
// The example shape comes from the server's GET /v1/health ("input"); the inputs are uniform
// random values in [0, 1), a few different ones per client.
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string url = "http://127.0.0.1:8000";
  int clients = 16;
  double seconds = 5, warmup = 1;
  int examples = 1;  // per request
};

struct ClientResult {
  std::vector<double> latencies;  // seconds, requests finished inside the measured window
  int64_t errors = 0;
  std::string first_error;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--url")
      o.url = value;
    else if (flag == "--clients")
      o.clients = std::stoi(value);
    else if (flag == "--seconds")
      o.seconds = std::stod(value);
    else if (flag == "--warmup")
      o.warmup = std::stod(value);
    else if (flag == "--examples")
      o.examples = std::stoi(value);
    else
      throw std::invalid_argument("unknown flag " + flag +
                                  " (--url, --clients, --seconds, --warmup, --examples)");
  }
  if ((argc - 1) % 2 != 0) throw std::invalid_argument("every flag takes a value");
  if (o.clients < 1 || o.seconds <= 0 || o.examples < 1)
    throw std::invalid_argument("--clients, --seconds and --examples must be positive");
  return o;
}

// The example's shape [C, H, W] from /v1/health.
std::vector<int64_t> input_shape(const std::string& url) {
  httplib::Client c(url);
  auto res = c.Get("/v1/health");
  if (!res || res->status != 200)
    throw std::runtime_error("GET " + url + "/v1/health failed: is the server up?");
  return nlohmann::json::parse(res->body).at("input").get<std::vector<int64_t>>();
}

void run_client(const Options& o, const std::string& shape_header, size_t floats, unsigned seed,
                Clock::time_point measure_from, Clock::time_point end, ClientResult& out) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
  std::vector<std::string> bodies(4);  // a few distinct inputs, so no answer can be cached
  for (std::string& b : bodies) {
    std::vector<float> x(floats);
    for (float& v : x) v = uniform(rng);
    b.assign(reinterpret_cast<const char*>(x.data()), x.size() * sizeof(float));
  }
  httplib::Client c(o.url);
  c.set_keep_alive(true);
  c.set_tcp_nodelay(true);
  c.set_read_timeout(30, 0);
  httplib::Headers headers = {{"X-Shape", shape_header}};
  for (size_t i = 0; Clock::now() < end; ++i) {
    Clock::time_point start = Clock::now();
    auto res =
        c.Post("/v1/predict", headers, bodies[i % bodies.size()], "application/octet-stream");
    Clock::time_point done = Clock::now();
    bool ok = res && res->status == 200;
    if (start < measure_from || done > end) continue;
    if (ok) {
      out.latencies.push_back(std::chrono::duration<double>(done - start).count());
    } else {
      ++out.errors;
      if (out.first_error.empty())
        out.first_error =
            res ? std::to_string(res->status) + " " + res->body : httplib::to_string(res.error());
    }
  }
}

double percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

}  // namespace

int main(int argc, char** argv) {
  try {
    Options o = parse(argc, argv);
    std::vector<int64_t> shape = input_shape(o.url);
    size_t floats = static_cast<size_t>(o.examples);
    std::string header = std::to_string(o.examples);
    for (int64_t d : shape) {
      floats *= static_cast<size_t>(d);
      header += "," + std::to_string(d);
    }
    Clock::time_point measure_from =
        Clock::now() + std::chrono::microseconds(static_cast<int64_t>(o.warmup * 1e6));
    Clock::time_point end =
        measure_from + std::chrono::microseconds(static_cast<int64_t>(o.seconds * 1e6));
    std::vector<ClientResult> results(static_cast<size_t>(o.clients));
    std::vector<std::thread> threads;
    for (int i = 0; i < o.clients; ++i)
      threads.emplace_back(run_client, std::cref(o), std::cref(header), floats, 1000u + i,
                           measure_from, end, std::ref(results[static_cast<size_t>(i)]));
    for (std::thread& t : threads) t.join();
    std::vector<double> all;
    int64_t errors = 0;
    std::string first_error;
    for (const ClientResult& r : results) {
      all.insert(all.end(), r.latencies.begin(), r.latencies.end());
      errors += r.errors;
      if (first_error.empty()) first_error = r.first_error;
    }
    std::sort(all.begin(), all.end());
    nlohmann::json report = {
        {"url", o.url},
        {"clients", o.clients},
        {"seconds", o.seconds},
        {"examples_per_request", o.examples},
        {"requests", all.size()},
        {"requests_per_second", static_cast<double>(all.size()) / o.seconds},
        {"examples_per_second", static_cast<double>(all.size()) * o.examples / o.seconds},
        {"p50_ms", 1e3 * percentile(all, 0.5)},
        {"p99_ms", 1e3 * percentile(all, 0.99)},
        {"errors", errors}};
    if (!first_error.empty()) report["first_error"] = first_error.substr(0, 200);
    std::printf("%s\n", report.dump().c_str());
    return errors == 0 && !all.empty() ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "serve_load: %s\n", e.what());
    return 2;
  }
}
