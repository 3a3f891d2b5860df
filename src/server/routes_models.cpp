// Trained models (a job's weights): classify an image, evaluate the dataset's test split, look
// at the first layer's filters and a layer's activations, download the bundle.
#include <algorithm>
#include <filesystem>
#include <fstream>

#include "model/network.h"
#include "server/datasets.h"
#include "server/jobs.h"
#include "server/routes.h"
#include "train/bundle.h"
#include "train/evaluate.h"
#include "train/inspect.h"

namespace myelin::server {

namespace fs = std::filesystem;

namespace {

struct Model {
  std::string run_dir, network;
  int64_t dataset = 0;
};

// The job's trained weights; 409 while it has none.
Model model_of(const Context& c, int64_t job) {
  nlohmann::json j = job_json(c, job);
  std::string dir = j["run_dir"];
  if (!fs::exists(dir + "/weights.safetensors") && latest_checkpoint_iter(dir) < 0)
    throw ApiError(409, "job " + std::to_string(job) + " has no weights yet (state " +
                            j["state"].get<std::string>() + "); wait for its first checkpoint");
  return {dir, dir + "/network.yaml", j["dataset"].is_null() ? 0 : j["dataset"].get<int64_t>()};
}

// 400 for a job that trained a text network: it reads symbols, not images.
void require_images(const Context& c, const Model& m, int64_t job) {
  if (m.dataset == 0 || !dataset_view(c, m.dataset).is_text()) return;
  throw ApiError(400, "job " + std::to_string(job) +
                          " trained a text network: it reads text, not images (its samples are "
                          "among its metrics events)");
}

std::vector<uint8_t> uploaded_image(const Request& req) {
  if (!req.has_file("image"))
    throw ApiError(400, "send the image as multipart/form-data field 'image' (PNG or JPEG)");
  const std::string& bytes = req.get_file_value("image").content;
  return std::vector<uint8_t>(bytes.begin(), bytes.end());
}

ClassifyOptions classify_options(const Model& m) {
  ClassifyOptions o;
  o.model = m.network;
  o.weights = m.run_dir;
  o.threads = 1;  // one image: threads would only wait for each other
  return o;
}

void send_png(Response& res, const std::vector<uint8_t>& png) {
  res.set_content(std::string(png.begin(), png.end()), "image/png");
}

void send_file(Response& res, const std::string& path, const std::string& download_name) {
  auto size = static_cast<size_t>(fs::file_size(path));
  res.set_header("Content-Disposition", "attachment; filename=\"" + download_name + "\"");
  auto in = std::make_shared<std::ifstream>(path, std::ios::binary);
  res.set_content_provider(
      size, "application/gzip",
      [in](size_t offset, size_t length, httplib::DataSink& sink) {
        std::vector<char> buf(std::min<size_t>(length, 1 << 20));
        in->seekg(static_cast<std::streamoff>(offset));
        in->read(buf.data(), static_cast<std::streamsize>(buf.size()));
        return in->gcount() > 0 && sink.write(buf.data(), static_cast<size_t>(in->gcount()));
      },
      [path](bool) {
        std::error_code ec;
        fs::remove(path, ec);
      });
}

nlohmann::json classify_json(const Context& c, const Model& m, const Request& req) {
  std::vector<Classification> r = classify_bytes(classify_options(m), {uploaded_image(req)});
  nlohmann::json top = nlohmann::json::array();
  for (const Prediction& p : r.at(0).top)
    top.push_back({{"class", p.label}, {"label", p.name}, {"probability", p.probability}});
  return {{"top", top}};
}

nlohmann::json evaluate_json(const Context& c, const Model& m, const nlohmann::json& body) {
  DatasetView ds = dataset_view(c, m.dataset);
  EvalOptions o;
  o.model = m.network;
  o.weights = m.run_dir;
  o.data = ds.data_spec;
  o.limit = opt_integer(body, "limit").value_or(0);
  std::string split = opt_string(body, "split").value_or("test");
  if (split != "test" && split != "train") throw ApiError(400, "'split' must be test or train");
  o.train_split = split == "train";
  o.worst = static_cast<int>(std::clamp<int64_t>(opt_integer(body, "worst").value_or(20), 0, 1000));
  if (o.limit < 0) throw ApiError(400, "'limit' must be 0 (all) or more");
  nlohmann::json out = evaluate(o).to_json();
  out["dataset"] = ds.id;
  out["split"] = o.train_split ? "train" : "test";
  return out;
}

}  // namespace

void add_model_routes(Router& r, Context& c) {
  r.add("POST", "/api/v1/jobs/{id}/classify",
        [&c](const Request& req, Response& res, const Call& call) {
          Model m = model_of(c, call.id());
          require_images(c, m, call.id());
          send_json(res, classify_json(c, m, req));
        });
  r.add("POST", "/api/v1/jobs/{id}/evaluate",
        [&c](const Request& req, Response& res, const Call& call) {
          Model m = model_of(c, call.id());
          require_images(c, m, call.id());
          send_json(res, evaluate_json(c, m, json_body(req)));
        });
  r.add("GET", "/api/v1/jobs/{id}/filters.png",
        [&c](const Request& req, Response& res, const Call& call) {
          Model m = model_of(c, call.id());
          send_png(res,
                   filters_png(load_network(m.network), m.run_dir, req.get_param_value("layer")));
        });
  r.add("POST", "/api/v1/jobs/{id}/activations",
        [&c](const Request& req, Response& res, const Call& call) {
          Model m = model_of(c, call.id());
          require_images(c, m, call.id());
          std::string layer = req.has_file("layer") ? req.get_file_value("layer").content
                                                    : req.get_param_value("layer");
          if (layer.empty()) throw ApiError(400, "'layer' is required: the name of a layer");
          send_png(res, activations_png(classify_options(m), uploaded_image(req), layer));
        });
  r.add("GET", "/api/v1/jobs/{id}/download", [&c](const Request&, Response& res, const Call& call) {
    Model m = model_of(c, call.id());
    std::string path = m.run_dir + "/bundle-" + random_hex(8) + ".tar.gz";  // one per request
    write_bundle(m.run_dir, path);
    send_file(res, path, "myelin-job-" + std::to_string(call.id()) + ".tar.gz");
  });
}

}  // namespace myelin::server
