// Networks: the standard ones, and checking a network file as a person types it (the editor
// calls this): its layers with output shapes, parameters and FLOPs, or its errors by line.
#include <regex>

#include "core/backend.h"
#include "core/error.h"
#include "data/io.h"
#include "model/network.h"
#include "server/datasets.h"
#include "server/routes.h"
#include "train/checkpoint.h"
#include "train/memory.h"

namespace myelin::server {

namespace {

nlohmann::json dims_json(const std::vector<int64_t>& d) {
  return nlohmann::json(d);
}

// "network.yaml:12: 'filters': ..." -> column of a yaml-cpp error when the message has one.
nlohmann::json error_json(const std::string& message, int line) {
  nlohmann::json e = {{"message", message}, {"line", line > 0 ? nlohmann::json(line) : nullptr}};
  static const std::regex col(R"(column (\d+))");
  std::smatch m;
  e["column"] =
      std::regex_search(message, m, col) ? nlohmann::json(std::stoi(m[1].str())) : nullptr;
  return e;
}

nlohmann::json check_network(const Context& c, const nlohmann::json& body) {
  std::string text = need_string(body, "text");
  NetworkSpec net;
  try {
    net = parse_network(text, "network.yaml");
    if (auto ds = opt_integer(body, "dataset")) {
      DatasetView v = dataset_view(c, *ds);
      try {
        check_network_kind(net, v);
      } catch (const ApiError& e) {  // the network as typed does not fit: an error in it
        return {{"valid", false}, {"errors", {error_json(e.what(), 0)}}};
      }
      if (v.state == "ready") net = fit_network(net, v);
    }
    nlohmann::json out = {{"valid", true}, {"network", network_json(net)}};
    if (auto solver = opt_string(body, "solver")) net.recipe.solver = *solver;
    int64_t batch = opt_integer(body, "batch").value_or(net.recipe.batch);
    if (batch < 1) throw ApiError(400, "'batch' must be at least 1");
    std::string device = opt_string(body, "device").value_or("cpu");
    if (device != "cpu") device = "cuda";
    MemoryEstimate m = estimate_training_memory(net, batch, device,
                                                opt_string(body, "precision").value_or("fp32"));
    out["memory"] = m.to_json();
    out["memory"]["batch"] = batch;
    out["memory"]["device"] = device;
    return out;
  } catch (const ParseError& e) {
    return {{"valid", false}, {"errors", {error_json(e.what(), e.line())}}};
  } catch (const ApiError&) {
    throw;
  } catch (const Error& e) {
    return {{"valid", false}, {"errors", {error_json(e.what(), 0)}}};
  }
}

}  // namespace

nlohmann::json network_json(const NetworkSpec& net) {
  NetworkCost cost = network_cost(net);
  nlohmann::json layers = nlohmann::json::array();
  for (size_t i = 0; i < cost.layers.size(); ++i) {
    const LayerCost& l = cost.layers[i];
    nlohmann::json inputs = nlohmann::json::array();
    for (const LayerSpec& s : net.layers)
      if (s.name == l.name)
        for (const std::string& in : s.inputs) inputs.push_back(in);
    layers.push_back({{"name", l.name},
                      {"type", l.type},
                      {"output", dims_json(l.output.dims)},
                      {"params", l.params},
                      {"flops", l.flops},
                      {"inputs", inputs}});
  }
  return {{"name", net.name},
          {"description", net.description},
          {"input", dims_json(net.input)},
          {"input_type", net.input_type},
          {"classes", net.classes},
          {"layers", layers},
          {"params", cost.params},
          {"flops", cost.flops},
          {"batch", net.recipe.batch},
          {"epochs", net.recipe.epochs},
          {"solver", net.recipe.solver},
          {"lr", net.recipe.lr},
          {"lr_policy", net.recipe.lr_policy},
          {"recipe", recipe_to_json(net.recipe)}};
}

void add_network_routes(Router& r, Context& c) {
  r.add("GET", "/api/v1/networks", [](const Request&, Response& res, const Call&) {
    nlohmann::json out = nlohmann::json::array();
    for (const std::string& name : standard_networks()) {
      NetworkSpec net = load_network(name);
      nlohmann::json j = network_json(net);
      std::vector<uint8_t> text = data::read_file(net.file);
      j["text"] = std::string(text.begin(), text.end());
      out.push_back(std::move(j));
    }
    // The values a job's recipe fields take, for forms to offer (a job with another is a 400).
    nlohmann::json choices = {{"solvers", solver_names()},
                              {"lr_policies", lr_policy_names()},
                              {"precisions", precision_names()},
                              {"conv_searches", conv_search_names()}};
    send_json(res, {{"networks", out}, {"choices", choices}});
  });
  r.add("POST", "/api/v1/networks/validate", [&c](const Request& req, Response& res, const Call&) {
    send_json(res, check_network(c, json_body(req)));
  });
}

}  // namespace myelin::server
