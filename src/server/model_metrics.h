// What `myelin serve-model` has done since it started: requests and examples per route, answers
// by status, batch sizes, batches per model instance, and request latencies (arrival of the whole
// body to the answer, so queueing for a batch counts). Read as JSON or as Prometheus text.
#pragma once
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace myelin::server {

class ModelMetrics {
 public:
  ModelMetrics(int64_t max_batch, int instances);

  void request(const std::string& route, int status, double seconds, int64_t examples);
  void batch(int instance, int64_t examples);

  nlohmann::json to_json() const;
  std::string to_prometheus() const;

  // Upper bounds of the latency histogram's buckets, in seconds (the last bucket is +Inf).
  static const std::vector<double>& latency_bounds();

 private:
  std::vector<double> percentiles(const std::vector<double>& qs) const;  // of recent_, locked

  mutable std::mutex mutex_;
  std::chrono::steady_clock::time_point started_;
  std::map<std::string, int64_t> requests_, examples_;  // by route
  std::map<int, int64_t> statuses_;
  std::vector<int64_t> batches_;           // [size] -> batches run of that many examples
  std::vector<int64_t> instance_batches_;  // [instance] -> batches it ran
  std::vector<int64_t> latency_buckets_;   // counts per latency_bounds() bucket, +Inf last
  double latency_sum_ = 0;
  // The latest latencies (a ring), for percentiles that do not depend on bucket bounds.
  std::vector<double> recent_;
  size_t recent_next_ = 0;
  static constexpr size_t kRecent = 1 << 16;
};

}  // namespace myelin::server
