#include "server/model_metrics.h"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace myelin::server {

using nlohmann::json;

ModelMetrics::ModelMetrics(int64_t max_batch, int instances)
    : started_(std::chrono::steady_clock::now()),
      batches_(static_cast<size_t>(max_batch) + 1, 0),
      instance_batches_(static_cast<size_t>(instances), 0),
      latency_buckets_(latency_bounds().size() + 1, 0) {
  recent_.reserve(kRecent);
}

const std::vector<double>& ModelMetrics::latency_bounds() {
  // 0.1 ms to 10 s in steps of about 2x: inference on one example takes from tens of
  // microseconds (a small network on a GPU) to seconds (a large one on a CPU).
  static const std::vector<double> b = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                        0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
  return b;
}

void ModelMetrics::request(const std::string& route, int status, double seconds, int64_t examples) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++requests_[route];
  examples_[route] += examples;
  ++statuses_[status];
  const std::vector<double>& bounds = latency_bounds();
  size_t bucket = std::lower_bound(bounds.begin(), bounds.end(), seconds) - bounds.begin();
  ++latency_buckets_[bucket];
  latency_sum_ += seconds;
  if (recent_.size() < kRecent)
    recent_.push_back(seconds);
  else
    recent_[recent_next_] = seconds;
  recent_next_ = (recent_next_ + 1) % kRecent;
}

void ModelMetrics::batch(int instance, int64_t examples) {
  std::lock_guard<std::mutex> lock(mutex_);
  size_t at = std::min(static_cast<size_t>(examples), batches_.size() - 1);
  ++batches_[at];
  ++instance_batches_.at(static_cast<size_t>(instance));
}

std::vector<double> ModelMetrics::percentiles(const std::vector<double>& qs) const {
  std::vector<double> sorted = recent_;
  std::sort(sorted.begin(), sorted.end());
  std::vector<double> out;
  for (double q : qs) {
    if (sorted.empty()) {
      out.push_back(0);
      continue;
    }
    size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(sorted.size())));
    out.push_back(sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1]);
  }
  return out;
}

json ModelMetrics::to_json() const {
  std::lock_guard<std::mutex> lock(mutex_);
  json statuses = json::object(), batch_sizes = json::object(), buckets = json::array();
  for (auto [status, n] : statuses_) statuses[std::to_string(status)] = n;
  int64_t batches = 0, batched = 0;
  for (size_t size = 1; size < batches_.size(); ++size) {
    if (batches_[size] == 0) continue;
    batch_sizes[std::to_string(size)] = batches_[size];
    batches += batches_[size];
    batched += batches_[size] * static_cast<int64_t>(size);
  }
  const std::vector<double>& bounds = latency_bounds();
  for (size_t i = 0; i < latency_buckets_.size(); ++i)
    buckets.push_back({{"le", i < bounds.size() ? json(bounds[i]) : json("+Inf")},
                       {"count", latency_buckets_[i]}});
  std::vector<double> p = percentiles({0.5, 0.9, 0.99});
  int64_t requests = 0, examples = 0;
  for (auto& [route, n] : requests_) requests += n;
  for (auto& [route, n] : examples_) examples += n;
  double uptime =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  return {{"uptime_seconds", uptime},
          {"max_batch", batches_.size() - 1},
          {"requests", requests},
          {"examples", examples},
          {"requests_by_route", requests_},
          {"examples_by_route", examples_},
          {"responses_by_status", statuses},
          {"batches", batches},
          {"mean_batch_size", batches ? static_cast<double>(batched) / batches : 0.0},
          {"batch_sizes", batch_sizes},
          {"batches_by_instance", instance_batches_},
          {"latency_seconds",
           {{"p50", p[0]},
            {"p90", p[1]},
            {"p99", p[2]},
            {"mean", requests ? latency_sum_ / static_cast<double>(requests) : 0.0},
            {"sum", latency_sum_},
            {"percentiles_over", recent_.size()},
            {"buckets", buckets}}}};
}

std::string ModelMetrics::to_prometheus() const {
  json j = to_json();
  std::ostringstream o;
  o << "# TYPE myelin_requests_total counter\n";
  for (auto& [route, n] : j["requests_by_route"].items())
    o << "myelin_requests_total{route=\"" << route << "\"} " << n << "\n";
  o << "# TYPE myelin_examples_total counter\n";
  for (auto& [route, n] : j["examples_by_route"].items())
    o << "myelin_examples_total{route=\"" << route << "\"} " << n << "\n";
  o << "# TYPE myelin_responses_total counter\n";
  for (auto& [status, n] : j["responses_by_status"].items())
    o << "myelin_responses_total{status=\"" << status << "\"} " << n << "\n";
  o << "# TYPE myelin_batch_size histogram\n";
  int64_t cumulative = 0, sum = 0;
  for (size_t size = 1; size < static_cast<size_t>(j["max_batch"].get<int64_t>()) + 1; ++size) {
    int64_t n = j["batch_sizes"].value(std::to_string(size), int64_t{0});
    cumulative += n;
    sum += n * static_cast<int64_t>(size);
    o << "myelin_batch_size_bucket{le=\"" << size << "\"} " << cumulative << "\n";
  }
  o << "myelin_batch_size_bucket{le=\"+Inf\"} " << cumulative << "\n"
    << "myelin_batch_size_sum " << sum << "\nmyelin_batch_size_count " << cumulative << "\n";
  o << "# TYPE myelin_instance_batches_total counter\n";
  for (size_t i = 0; i < j["batches_by_instance"].size(); ++i)
    o << "myelin_instance_batches_total{instance=\"" << i << "\"} " << j["batches_by_instance"][i]
      << "\n";
  o << "# TYPE myelin_request_latency_seconds histogram\n";
  cumulative = 0;
  for (const json& b : j["latency_seconds"]["buckets"]) {
    cumulative += b["count"].get<int64_t>();
    std::string le = b["le"].is_string() ? "+Inf" : json(b["le"]).dump();
    o << "myelin_request_latency_seconds_bucket{le=\"" << le << "\"} " << cumulative << "\n";
  }
  o << "myelin_request_latency_seconds_sum " << j["latency_seconds"]["sum"].get<double>() << "\n"
    << "myelin_request_latency_seconds_count " << cumulative << "\n";
  return o.str();
}

}  // namespace myelin::server
