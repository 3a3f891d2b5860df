// What an import says to people, and the files it writes.
#include <filesystem>

#include "model/layers.h"
#include "onnx/import.h"

namespace myelin {

std::string import_summary(const ImportedNetwork& net) {
  const NetworkSpec& s = net.spec;
  std::string text =
      "network '" + s.name + "' from " + s.file + " (opset " + std::to_string(net.opset) +
      (net.producer.size() > 1 ? ", " + net.producer : "") + "): input " + Shape(s.input).str() +
      ", " + std::to_string(s.classes) + " classes\n" + describe_network(s);
  std::string mean;
  for (double m : s.recipe.mean) mean.append(mean.empty() ? "" : ",").append(format_number(m));
  mean = mean.empty() ? std::string("0") : std::string("[").append(mean).append("]");
  text +=
      "pixels: (value - " + mean + ") * " + format_number(s.recipe.scale) +
      (s.recipe.scale == 1 && s.recipe.mean.empty() ? " (the dataset's values as they are)" : "") +
      "\n";
  for (const std::string& n : net.notes) text += "note: " + n + "\n";
  return text;
}

void write_imported(const ImportedNetwork& net, const std::string& network_path,
                    const std::string& weights_path) {
  namespace fs = std::filesystem;
  for (const std::string& p : {network_path, weights_path})
    if (fs::path(p).has_parent_path()) fs::create_directories(fs::path(p).parent_path());
  NetworkSpec spec = net.spec;
  spec.file.clear();
  write_file_atomic(network_path, write_network(spec));
  TrainerState state;
  state.network = spec.name;
  state.class_names = net.class_names;
  state.options = {{"model", fs::absolute(network_path).lexically_normal().string()}};
  write_safetensors(weights_path, net.weights, weights_metadata(state));
}

}  // namespace myelin
