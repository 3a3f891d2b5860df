// `myelin serve-model`: one trained classifier behind HTTP, with dynamic batching.
//
//   POST /v1/classify   PNG/JPEG body (or multipart files) -> top-k classes per image (?k=5)
//   POST /v1/predict    tensors [n, C, H, W] as JSON {"inputs": [...], "shape": [...]} or raw
//                       float32 little-endian (application/octet-stream, X-Shape: n,C,H,W)
//                       -> probabilities and top-k per example
//   GET  /v1/health     ready, model, input shape, classes
//   GET  /v1/metrics    requests, examples, statuses, batch sizes, latencies (?format=prometheus)
//   GET  /v1/model      the network: layers, input, class names, batching settings
#pragma once
#include <memory>
#include <string>

#include "train/predictor.h"

namespace myelin::server {

struct ModelServerOptions {
  std::string model;  // bundle, run directory, weights file, or network with predictor.weights
  PredictorOptions predictor;
  std::string source;  // what /v1/model names as the model (default: `model`)
  std::string host = "127.0.0.1";
  int port = 8000;  // 0: any free port (url() tells which)
  double max_delay_ms = 2;
  int64_t max_request_bytes = int64_t{16} << 20;
  int http_threads = 128;  // each open connection holds one while it is kept alive
};

class ModelServer {
 public:
  // Opens the model (every instance compiled) and binds the address; throws Error when the
  // address cannot be bound, or what opening the model threw.
  explicit ModelServer(const ModelServerOptions& options);
  ~ModelServer();
  void run();   // serves until stop()
  void stop();  // from another thread: fails queued requests, ends the workers
  std::string url() const;
  const Predictor& predictor() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace myelin::server
