// myelin export: trained weights and their network as a file another runtime reads (ONNX).
#include <cstdio>

#include "cli/command.h"
#include "cli/common.h"
#include "train/evaluate.h"
#ifdef MYELIN_WITH_ONNX
#include "onnx/export.h"
#endif

namespace myelin::cli {

namespace {

const std::vector<Flag>& export_flags() {
  static const std::vector<Flag> f = {
      {"model", "NAME|FILE", "the network (default: the one recorded with the weights)", ""},
      {"weights", "W", "a .safetensors file, a checkpoint or a run directory", ""},
      {"format", "F", "onnx (the only format so far)", "onnx"},
      {"out", "FILE", "the file to write, e.g. model.onnx", ""}};
  return f;
}

const char* kDescription =
    "Writes trained weights and their network as an ONNX model (opset 17, IR version 8) for\n"
    "onnxruntime, TensorRT, OpenVINO and other runtimes.\n"
    "\n"
    "The model takes \"data\", float [N, C, H, W] with any batch N, normalised as in training:\n"
    "  data = (pixel - mean[c]) * scale   (pixels 0-255; scale and mean from the network's\n"
    "                                      train: section, e.g. lenet: scale 1/255, no mean)\n"
    "A text network (input_type: tokens) takes int64 symbol ids [N, steps] instead.\n"
    "It gives \"logits\" [N, classes] (text: [N, steps, classes]) and \"probabilities\", their\n"
    "softmax. Dropout is left out; batch norm uses its running statistics; recurrent layers\n"
    "start from zero states on every call.\n"
    "\n"
    "The model's metadata_props say how to feed it: myelin.input_scale, myelin.input_mean\n"
    "(JSON, pixel units), myelin.input_layout, myelin.input_type, myelin.preprocessing,\n"
    "myelin.class_names (JSON, label order), myelin.network and myelin.network_yaml.\n"
    "\n"
    "Layers: conv, deconv, pool (max, avg, global), relu, leaky_relu, sigmoid, tanh, elu, gelu,\n"
    "lrn, dropout, fc, embedding, lstm, gru, rnn, batch_norm, softmax, add, mul, concat,\n"
    "flatten, reshape. Model bundles (.tar.gz): unpack them and pass network.yaml and\n"
    "weights.safetensors.";

#ifndef MYELIN_WITH_ONNX
[[noreturn]] void no_onnx() {
  throw UnsupportedError(
      "this myelin was built without ONNX support: install libonnx-dev and libprotobuf-dev "
      "(scripts/install-deps.sh does) and rebuild (cmake finds them and builds src/onnx)");
}
#endif

// The weights to export, once the flags are checked.
std::string checked_weights(const Args& a) {
  if (!a.has("weights"))
    throw UsageError("--weights is required (a run directory or .safetensors)");
  if (!a.has("out")) throw UsageError("--out is required (the file to write, e.g. model.onnx)");
  choice_from(a, "format", "onnx", {"onnx"});  // the one format written
  if (!a.positional().empty())
    throw UsageError("unexpected argument '" + a.positional()[0] +
                     "' (flags: --model, --weights, --format, --out)");
  const std::string weights = a.str("weights");
  if (weights.ends_with(".tar.gz") || weights.ends_with(".tgz"))
    throw UsageError("--weights " + weights +
                     " is a model bundle: unpack it (tar xzf) and pass --model DIR/network.yaml "
                     "--weights DIR/weights.safetensors");
  return weights;
}

int run_export(const std::vector<std::string>& argv) {
  const std::string help = help_text(
      "myelin export --weights W [--model NAME|FILE] --format onnx --out FILE", kDescription,
      export_flags(),
      "  myelin export --weights runs/lenet --out lenet.onnx\n"
      "  myelin export --model resnet --weights runs/resnet/weights.safetensors --out r.onnx\n"
      "  # then, in Python with onnxruntime (pixels: float32 [N, 1, 28, 28], 0-255):\n"
      "  #   s = onnxruntime.InferenceSession(\"lenet.onnx\")\n"
      "  #   p = s.run([\"probabilities\"], {\"data\": pixels / 255})[0]   # lenet: scale 1/255\n");
  if (wants_help(argv, help)) return 0;
  Args a("export", argv, export_flags());
  const std::string weights = checked_weights(a);
#ifdef MYELIN_WITH_ONNX
  NetworkSpec spec = resolve_spec(std::nullopt, a.str("model"), weights);
  OnnxExportSummary s = export_onnx_file(spec, weights, a.str("out"));
  std::printf("wrote %s: ONNX opset %lld, network %s, %lld nodes, %lld parameters, %.1f MB\n",
              a.str("out").c_str(), static_cast<long long>(kOnnxOpset), spec.name.c_str(),
              static_cast<long long>(s.nodes), static_cast<long long>(s.parameters),
              static_cast<double>(s.bytes) / 1e6);
  std::printf("weights from %s\n", s.weights_path.c_str());
  return 0;
#else
  no_onnx();
#endif
}

const bool registered =
    register_command({"export", "trained weights as an ONNX model for other runtimes", run_export});

}  // namespace

}  // namespace myelin::cli
