// The request bodies `myelin serve-model` takes, read into the network's input [n, C, H, W]: every
// mistake (a body that is not an image, a shape the network does not take, a content type it does
// not read) is an ApiError naming what was expected.
#pragma once
#include <string>
#include <vector>

#include "server/api.h"
#include "train/predictor.h"

namespace myelin::server {

struct Inputs {
  std::vector<float> values;       // n * example_size floats
  int64_t n = 0;                   // examples
  std::vector<std::string> names;  // /v1/classify: one per image (file name or "image N")
};

// /v1/predict: JSON {"inputs": [nested or flat numbers], "shape": [n, C, H, W] (optional)}, or
// application/octet-stream float32 little-endian with an optional X-Shape: n,C,H,W header.
// Without a shape, n is the number of values over the network's example size.
Inputs tensor_inputs(const Request& req, const Predictor& p);

// /v1/classify: a PNG or JPEG body (image/png, image/jpeg, application/octet-stream), or
// multipart/form-data whose every file is an image.
Inputs image_inputs(const Request& req, const Predictor& p);

// ?k=N (default 5), clamped to 1..classes; 400 for what is not a whole number.
int top_k_param(const Request& req, int64_t classes);

}  // namespace myelin::server
