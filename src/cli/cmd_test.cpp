// myelin test: accuracy, per-class accuracy and the confusion matrix of trained weights.
#include <cstdio>

#include "cli/command.h"
#include "cli/common.h"
#include "cli/onnx_model.h"
#include "train/evaluate.h"

namespace myelin::cli {

namespace {

const std::vector<Flag>& test_flags() {
  static const std::vector<Flag> f = [] {
    std::vector<Flag> v = {
        {"model", "NAME|FILE",
         "the network (default: the one recorded with the weights); an .onnx model brings its "
         "weights",
         ""},
        {"weights", "W", "a .safetensors file, a checkpoint or a run directory", ""},
        {"data", "SPEC", "dataset to evaluate (its test split)", "fashion-mnist"},
        {"train-split", "", "evaluate the training split instead", ""},
        {"limit", "N", "only the first N examples", "all"},
        {"batch", "B", "examples per batch", "100"},
        {"loader-threads", "T", "threads preparing batches", "2"},
        {"mirror", "on|off",
         "score each image by the mean of its logits and its mirror image's (test-time "
         "augmentation)",
         "the recipe's test_mirror"},
        {"seed", "N", "seed of the validation split of image folders", "1"},
        {"json", "", "print one JSON object", ""}};
    for (const Flag& d : data_flags()) v.push_back(d);
    for (const Flag& d : device_flags()) v.push_back(d);
    return v;
  }();
  return f;
}

int run_test(const std::vector<std::string>& argv) {
  const std::string help = help_text(
      "myelin test --weights W [--model NAME|FILE] [--data SPEC] [--json]",
      "Evaluates trained weights on a dataset's test split: loss, top-1 and top-5 accuracy,\n"
      "accuracy per class and the confusion matrix (rows: true class, columns: predicted). On a\n"
      "text dataset: the validation text's loss in bits per symbol and next-symbol accuracy.",
      test_flags(),
      "  myelin test --model lenet --weights runs/lenet --data fashion-mnist\n"
      "  myelin test --weights runs/lenet/weights.safetensors --json\n"
      "  myelin test --weights runs/fortunes --data data/fortunes\n");
  if (wants_help(argv, help)) return 0;
  Args a("test", argv, test_flags());
  if (!a.has("weights") && !is_onnx_path(a.str("model")))
    throw UsageError("--weights is required (a run directory or .safetensors)");
  EvalOptions o;
  const ModelFiles model = resolve_model(a.str("model"), a.str("weights"));
  o.model = model.model;
  o.weights = model.weights;
  o.data = a.str("data", "fashion-mnist");
  o.open = open_options(a);
  o.train_split = a.has("train-split");
  o.limit = a.integer("limit", 0);
  o.batch = a.integer("batch", 100);
  o.device = a.str("device", "cpu");
  BackendOptions b = backend_from(a);
  o.threads = b.threads;
  o.precision = b.precision;
  o.loader_threads = static_cast<int>(a.integer("loader-threads", 2));
  if (a.has("mirror")) {
    const std::string m = a.str("mirror");
    if (m != "on" && m != "off") throw UsageError("--mirror takes on or off, got '" + m + "'");
    o.mirror = m == "on";
  }
  EvalResult r = evaluate(o);
  if (a.has("json"))
    std::printf("%s\n", r.to_json().dump(2).c_str());
  else
    std::fputs(r.report().c_str(), stdout);
  return 0;
}

const bool registered = register_command(
    {"test", "accuracy, per-class accuracy and confusion matrix of trained weights", run_test});

}  // namespace

}  // namespace myelin::cli
