// myelin classify: the most probable classes of image files under trained weights.
#include <nlohmann/json.hpp>

#include <cstdio>

#include "cli/command.h"
#include "cli/common.h"
#include "cli/onnx_model.h"
#include "train/evaluate.h"

namespace myelin::cli {

namespace {

const std::vector<Flag>& classify_flags() {
  static const std::vector<Flag> f = [] {
    std::vector<Flag> v = {
        {"model", "NAME|FILE",
         "the network (default: the one recorded with the weights); an .onnx model brings its "
         "weights",
         ""},
        {"weights", "W", "a .safetensors file, a checkpoint or a run directory", ""},
        {"top", "K", "classes shown per image", "5"},
        {"resize", "MODE", "crop, squash or fill to the network's input", "squash"},
        {"json", "", "print JSON", ""}};
    for (const Flag& d : device_flags()) v.push_back(d);
    return v;
  }();
  return f;
}

int run_classify(const std::vector<std::string>& argv) {
  const std::string help = help_text(
      "myelin classify --weights W [--model NAME|FILE] IMAGE...",
      "Classifies PNG or JPEG images: each is converted to the network's channels, resized to its\n"
      "input and normalised as in training; prints the top classes with probabilities.",
      classify_flags(), "  myelin classify --weights runs/lenet shoe.png shirt.jpg\n");
  if (wants_help(argv, help)) return 0;
  Args a("classify", argv, classify_flags());
  if (!a.has("weights") && !is_onnx_path(a.str("model")))
    throw UsageError("--weights is required (a run directory or .safetensors)");
  if (a.positional().empty()) throw UsageError("give at least one image file to classify");
  ClassifyOptions o;
  const ModelFiles model = resolve_model(a.str("model"), a.str("weights"));
  o.model = model.model;
  o.weights = model.weights;
  o.device = a.str("device", "cpu");
  BackendOptions b = backend_from(a);
  o.threads = b.threads;
  o.precision = b.precision;
  o.top_k = static_cast<int>(a.integer("top", 5));
  o.resize_mode = a.str("resize", "squash");
  std::vector<Classification> results = classify(o, a.positional());
  nlohmann::json all = nlohmann::json::array();
  for (const Classification& c : results) {
    if (!a.has("json")) std::printf("%s\n", c.path.c_str());
    nlohmann::json top = nlohmann::json::array();
    for (const Prediction& p : c.top) {
      if (!a.has("json"))
        std::printf("  %6.2f%%  %s (%d)\n", 100 * p.probability, p.name.c_str(), p.label);
      top.push_back({{"label", p.label}, {"name", p.name}, {"probability", p.probability}});
    }
    all.push_back({{"image", c.path}, {"top", top}});
  }
  if (a.has("json")) std::printf("%s\n", all.dump(2).c_str());
  return 0;
}

const bool registered = register_command(
    {"classify", "top classes of image files under trained weights", run_classify});

}  // namespace

}  // namespace myelin::cli
