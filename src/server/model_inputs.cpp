#include "server/model_inputs.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <sstream>

namespace myelin::server {

using nlohmann::json;

namespace {

std::string media_type(const Request& req) {
  std::string t = req.get_header_value("Content-Type");
  t = t.substr(0, t.find(';'));
  std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return std::tolower(c); });
  while (!t.empty() && t.back() == ' ') t.pop_back();
  return t;
}

// Numbers of nested arrays in order; 400 naming the first value that is not a number.
void flatten(const json& j, std::vector<float>& out, int depth) {
  if (j.is_number()) {
    out.push_back(j.get<float>());
    return;
  }
  if (!j.is_array() || depth > 8)
    throw ApiError(400, "'inputs' must hold numbers in (nested) arrays, got " +
                            j.dump().substr(0, 60) + " at value " + std::to_string(out.size()));
  for (const json& v : j) flatten(v, out, depth + 1);
}

Dims parse_shape_header(const std::string& text) {
  Dims shape;
  std::string part;
  std::istringstream in(text);
  while (std::getline(in, part, ',')) {
    try {
      size_t used = 0;
      shape.push_back(std::stoll(part, &used));
      if (part.find_first_not_of(' ', used) != std::string::npos) throw std::invalid_argument("");
    } catch (const std::exception&) {
      throw ApiError(
          400, "X-Shape must be comma-separated whole numbers like 4,1,28,28, got '" + text + "'");
    }
  }
  return shape;
}

// n from the number of values when no shape was given, else the shape checked against them.
int64_t examples_of(const Predictor& p, size_t values, const Dims* shape) {
  if (shape) {
    p.check_shape(*shape);
    if (static_cast<int64_t>(values) != (*shape)[0] * p.example_size())
      throw ApiError(400, "shape [" + std::to_string((*shape)[0]) + ", ...] holds " +
                              std::to_string((*shape)[0] * p.example_size()) + " values, got " +
                              std::to_string(values));
    return (*shape)[0];
  }
  int64_t example = p.example_size();
  if (values == 0 || static_cast<int64_t>(values) % example != 0)
    throw ApiError(400, "got " + std::to_string(values) + " values, not a whole number of " +
                            "examples of " + std::to_string(example) + " (network '" +
                            p.spec().name + "' takes [N, C, H, W] inputs)");
  return static_cast<int64_t>(values) / example;
}

Inputs json_tensors(const Request& req, const Predictor& p) {
  json body = json_body(req);
  if (!body.contains("inputs")) throw ApiError(400, "'inputs' is required");
  Inputs in;
  flatten(body["inputs"], in.values, 0);
  std::optional<Dims> shape;
  if (body.contains("shape")) {
    if (!body["shape"].is_array())
      throw ApiError(400, "'shape' must be an array like [1, 1, 28, 28]");
    shape.emplace();
    for (const json& d : body["shape"]) {
      if (!d.is_number_integer()) throw ApiError(400, "'shape' must hold whole numbers");
      shape->push_back(d.get<int64_t>());
    }
  }
  in.n = examples_of(p, in.values.size(), shape ? &*shape : nullptr);
  return in;
}

Inputs binary_tensors(const Request& req, const Predictor& p) {
  static_assert(std::endian::native == std::endian::little, "float32 bodies are little-endian");
  if (req.body.size() % sizeof(float) != 0)
    throw ApiError(
        400, "a float32 body is a multiple of 4 bytes, got " + std::to_string(req.body.size()));
  Inputs in;
  in.values.resize(req.body.size() / sizeof(float));
  std::memcpy(in.values.data(), req.body.data(), req.body.size());
  std::optional<Dims> shape;
  if (req.has_header("X-Shape")) shape = parse_shape_header(req.get_header_value("X-Shape"));
  in.n = examples_of(p, in.values.size(), shape ? &*shape : nullptr);
  return in;
}

void add_image(Inputs& in, const Predictor& p, const std::string& name, const std::string& bytes) {
  std::vector<uint8_t> encoded(bytes.begin(), bytes.end());
  in.values.resize(static_cast<size_t>((in.n + 1) * p.example_size()));
  p.prepare(name, encoded, in.values.data() + in.n * p.example_size());
  in.names.push_back(name);
  ++in.n;
}

}  // namespace

Inputs tensor_inputs(const Request& req, const Predictor& p) {
  std::string type = media_type(req);
  if (type == "application/json") return json_tensors(req, p);
  if (type == "application/octet-stream") return binary_tensors(req, p);
  throw ApiError(415,
                 "/v1/predict reads application/json or application/octet-stream (float32), "
                 "got Content-Type '" +
                     type + "'");
}

Inputs image_inputs(const Request& req, const Predictor& p) {
  std::string type = media_type(req);
  Inputs in;
  if (type == "multipart/form-data") {
    for (const auto& [field, file] : req.files) {
      if (file.filename.empty()) continue;  // a plain form field
      add_image(in, p, file.filename, file.content);
    }
    if (in.n == 0) throw ApiError(400, "the multipart body holds no files");
    return in;
  }
  if (type == "image/png" || type == "image/jpeg" || type == "application/octet-stream") {
    if (req.body.empty()) throw ApiError(400, "the body is empty: send a PNG or JPEG image");
    add_image(in, p, "image 1", req.body);
    return in;
  }
  throw ApiError(415,
                 "/v1/classify reads image/png, image/jpeg, application/octet-stream or "
                 "multipart/form-data, got Content-Type '" +
                     type + "'");
}

int top_k_param(const Request& req, int64_t classes) {
  if (!req.has_param("k")) return static_cast<int>(std::min<int64_t>(5, classes));
  std::string k = req.get_param_value("k");
  try {
    size_t used = 0;
    long long v = std::stoll(k, &used);
    if (used != k.size() || v < 1) throw std::invalid_argument(k);
    return static_cast<int>(std::min<long long>(v, classes));
  } catch (const std::exception&) {
    throw ApiError(400, "k must be a whole number of at least 1, got '" + k + "'");
  }
}

}  // namespace myelin::server
