// myelin import: an ONNX model (as PyTorch exports it) as a Myelin network file and weights.
#include <cstdio>
#include <sstream>

#include "cli/command.h"
#include "cli/common.h"
#if MYELIN_WITH_ONNX
#include "onnx/import.h"
#endif

namespace myelin::cli {

namespace {

const std::vector<Flag>& import_flags() {
  static const std::vector<Flag> f = {
      {"out", "FILE", "the network file written (YAML)", ""},
      {"weights", "FILE", "the weights written (.safetensors)", ""},
      {"name", "N", "the network's name", "the model file's name"},
      {"scale", "S", "pixel scale: the network sees (pixel - mean) * S, pixels 0-255",
       "the model's metadata, else 1"},
      {"mean", "A,B,C", "per-channel mean in pixel units (0-255), or one value",
       "the model's metadata, else none"}};
  return f;
}

#if MYELIN_WITH_ONNX
std::vector<double> mean_list(const std::string& s) {
  std::vector<double> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t used = 0;
      out.push_back(std::stod(item, &used));
      if (used != item.size()) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      throw UsageError("--mean expects numbers separated by commas, got '" + s + "'");
    }
  }
  return out;
}

int run_import(const std::vector<std::string>& argv) {
  const std::string help = help_text(
      "myelin import MODEL.onnx --out NET.yaml --weights W.safetensors [--scale S] [--mean A,B,C]",
      "Imports an ONNX model (CNNs as PyTorch's torch.onnx.export writes them) as a network file\n"
      "and weights that train, test, time and classify take. A final Softmax is dropped (the\n"
      "network ends in its logits). The network takes the dataset's pixel values as they are\n"
      "(0-255) unless --scale/--mean or the model's metadata say otherwise: a model trained on\n"
      "pixels / 255 needs --scale 0.00392156862745098. `--model MODEL.onnx` imports on the "
      "fly.\n" +
          wrap_words("Ops: " + importable_ops() + ".", 0),
      import_flags(),
      "  myelin import lenet.onnx --out lenet.yaml --weights lenet.safetensors --scale "
      "0.00392156862745098\n"
      "  myelin test --model lenet.yaml --weights lenet.safetensors --data fashion-mnist\n");
  if (wants_help(argv, help)) return 0;
  Args a("import", argv, import_flags());
  if (a.positional().size() != 1) throw UsageError("give one ONNX model file to import");
  if (!a.has("out") || !a.has("weights"))
    throw UsageError("--out NET.yaml and --weights W.safetensors are required: the files written");
  OnnxImportOptions o;
  o.name = a.str("name");
  if (a.has("scale")) o.scale = a.number("scale", 1.0);
  if (a.has("mean")) o.mean = mean_list(a.str("mean"));
  ImportedNetwork net = import_onnx_file(a.positional()[0], o);
  write_imported(net, a.str("out"), a.str("weights"));
  std::printf("%swrote %s and %s (%zu tensors)\n", import_summary(net).c_str(),
              a.str("out").c_str(), a.str("weights").c_str(), net.weights.size());
  return 0;
}
#else
int run_import(const std::vector<std::string>&) {
  throw UnsupportedError(
      "myelin import: this myelin was built without ONNX support (needs libonnx-dev and "
      "libprotobuf-dev)");
}
#endif

const bool registered = register_command(
    {"import", "an ONNX model as a network file and weights (PyTorch CNNs)", run_import});

}  // namespace

}  // namespace myelin::cli
