#include "model/adapt.h"

#include <numeric>
#include <set>

#include "core/error.h"

namespace myelin {

namespace {

// Layers whose output has their input's channels (or features): the logits pass through them
// unchanged in count on their way from the layer that makes them.
bool keeps_channels(const std::string& type) {
  static const std::set<std::string> kinds = {"relu", "leaky_relu", "sigmoid", "tanh",
                                              "elu",  "gelu",       "lrn",     "dropout",
                                              "pool", "batch_norm", "flatten", "reshape"};
  return kinds.count(type) != 0;
}

int find_layer(const NetworkSpec& spec, const std::string& name) {
  for (int i = 0; i < static_cast<int>(spec.layers.size()); ++i)
    if (spec.layers[i].name == name) return i;
  return -1;
}

// The index of the conv/fc that makes the logits, or -1.
int logits_layer(const NetworkSpec& spec) {
  int i = static_cast<int>(spec.layers.size()) - 1;
  while (i >= 0) {
    const LayerSpec& l = spec.layers[i];
    const char* key = l.type == "fc" ? "outputs" : (l.type == "conv" ? "filters" : nullptr);
    if (key) return l.attrs.i(key, 0) == spec.classes ? i : -1;
    if (!keeps_channels(l.type) || l.inputs.size() > 1) return -1;
    if (l.inputs.empty()) {
      --i;  // reads the layer before it
    } else {
      if (l.inputs[0] == "data") return -1;
      i = find_layer(spec, l.inputs[0]);
    }
  }
  return -1;
}

// Recipe fields tied to the input's shape.
void adapt_recipe(Recipe& r, const Dims& input) {
  if (r.mean.size() > 1 && static_cast<int64_t>(r.mean.size()) != input[0])
    r.mean = {std::accumulate(r.mean.begin(), r.mean.end(), 0.0) /
              static_cast<double>(r.mean.size())};
  if (r.crop > 0 && (input.size() != 3 || r.crop != input[1] || r.crop != input[2])) r.crop = 0;
}

}  // namespace

NetworkSpec adapt_network(const NetworkSpec& spec, const Dims& input, int64_t classes) {
  if (spec.input == input && spec.classes == classes) return spec;
  auto fail = [&](const std::string& why) -> ShapeError {
    return ShapeError("network '" + spec.name + "' takes " + Shape(spec.input).str() +
                      "; the dataset gives " + Shape(input).str() + ": " + why);
  };
  if (input.empty() || classes < 1) throw fail("the dataset has no shape or no classes");
  NetworkSpec out = spec;
  out.input = input;
  out.classes = classes;
  if (input.size() == spec.input.size()) adapt_recipe(out.recipe, input);
  if (classes != spec.classes) {
    int i = logits_layer(spec);
    if (i < 0)
      throw fail("no conv or fc layer with " + std::to_string(spec.classes) +
                 " outputs makes the logits (the last layer's output), so its " +
                 std::to_string(spec.classes) + " classes cannot become " +
                 std::to_string(classes));
    LayerSpec& l = out.layers[i];
    l.attrs.set(l.type == "fc" ? "outputs" : "filters", classes);
  }
  try {
    build_network(out, 1, false);
  } catch (const Error& e) {
    throw fail(e.what());
  }
  return out;
}

}  // namespace myelin
