// Canonical specs, the graph of a network, and finding standard networks.
#include "model/network.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "model/layers.h"

namespace myelin {

namespace fs = std::filesystem;

namespace {

const std::set<std::string> kReserved = {"data", "label", "loss", "top1", "top5", "logits"};

bool valid_name(const std::string& n) {
  if (n.empty() || n.size() > 128) return false;
  for (char c : n)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) return false;
  return true;
}

void check_name(int i, const std::string& name) {
  if (!valid_name(name))
    throw LayerError(i, "name",
                     "layer name '" + name +
                         "' must be 1-128 letters, digits, '_' or '-' (no dots: "
                         "parameters are named NAME.weight, NAME.bias)");
  if (kReserved.count(name))
    throw LayerError(i, "name",
                     "'" + name +
                         "' is reserved for the network's own values (data, "
                         "label, loss, top1, top5, logits)");
}

void check_inputs(const NetworkSpec& spec, int i, const std::map<std::string, int>& index) {
  const LayerSpec& l = spec.layers[i];
  const LayerDef& def = *find_layer_def(l.type);
  for (const std::string& in : l.inputs) {
    auto it = index.find(in);
    if (in == "data") continue;
    if (it == index.end()) {
      std::string known = "data";
      for (int j = 0; j < i; ++j) known += ", " + spec.layers[j].name;
      throw LayerError(i, "input", "unknown input '" + in + "' (earlier layers: " + known + ")");
    }
    if (it->second >= i)
      throw LayerError(
          i, "input",
          "input '" + in + "' is " +
              (it->second == i
                   ? "this layer itself"
                   : "a later layer (line " + std::to_string(spec.layers[it->second].line) + ")") +
              "; a layer reads only earlier layers");
  }
  int n = l.inputs.empty() ? 1 : static_cast<int>(l.inputs.size());
  if (n < def.min_inputs || n > def.max_inputs)
    throw LayerError(i, "input",
                     "a " + l.type + " layer takes " + std::to_string(def.min_inputs) +
                         (def.max_inputs > def.min_inputs ? " to " + std::to_string(def.max_inputs)
                                                          : std::string()) +
                         " inputs, got " + std::to_string(n) +
                         (l.inputs.empty() ? " (name them: input: [a, b])" : ""));
}

void check_network_fields(const NetworkSpec& spec) {
  if (spec.name.size() > 256 || !printable_text(spec.name, false))
    throw LayerError(-1, "name",
                     "the network's name must be printable UTF-8 text on one line "
                     "(at most 256 bytes)");
  if (!printable_text(spec.description, true))
    throw LayerError(-1, "description", "the description must be printable UTF-8 text");
  if (spec.input_type != "image" && spec.input_type != "tokens")
    throw LayerError(-1, "input_type",
                     "input_type must be image (pixels, one label each) or tokens (symbol ids, "
                     "each step labelled with the next)");
  if (spec.input_type == "tokens" && spec.input.size() != 1)
    throw LayerError(-1, "input", "a tokens input is [steps], the sequence length");
  if (spec.input.empty() || spec.input.size() > 3)
    throw LayerError(-1, "input", "input must be [C, H, W] (or [C, W] or [features])");
  for (int64_t d : spec.input)
    if (d < 1 || d > kMaxDim)
      throw LayerError(-1, "input",
                       spec.input_type == "tokens"
                           ? "the sequence length (input: [steps]) must be in 1.." +
                                 std::to_string(kMaxDim) + ", got " + std::to_string(d)
                           : "input dimensions must be in 1.." + std::to_string(kMaxDim));
  if (bounded_numel(spec.input) < 0) throw LayerError(-1, "input", "input is too large");
  if (spec.classes < 1 || spec.classes > kMaxOutputs)
    throw LayerError(-1, "classes", "classes must be in 1.." + std::to_string(kMaxOutputs));
  if (spec.layers.empty()) throw LayerError(-1, "layers", "a network needs at least one layer");
  if (static_cast<int64_t>(spec.layers.size()) > kMaxLayers)
    throw LayerError(-1, "layers", "at most " + std::to_string(kMaxLayers) + " layers");
  try {
    check_recipe(spec.recipe);
  } catch (const FieldError& e) {
    throw LayerError(-1, e.field(), e.what());
  }
  const Recipe& r = spec.recipe;
  if (r.mean.size() > 1 && static_cast<int64_t>(r.mean.size()) != spec.input[0])
    throw LayerError(-1, "train.mean",
                     "mean has " + std::to_string(r.mean.size()) + " values; the input has " +
                         std::to_string(spec.input[0]) + " channels");
  if (r.crop > 0 && spec.input.size() == 3 && (r.crop != spec.input[1] || r.crop != spec.input[2]))
    throw LayerError(
        -1, "train.crop",
        "crop " + std::to_string(r.crop) + " differs from the input's height and width");
}

// Renames a layer's output value after the layer, so tools find it as "conv1".
void name_output(Graph& g, ValueId out, const std::string& layer) {
  Value& v = g.value(out);
  if (v.producer < 0 || g.nodes()[v.producer].name != layer || v.name == layer) return;
  if (g.find(layer) == kNoValue) v.name = layer;
}

void check_sizes(const Graph& g, size_t first_value, const LayerSpec& l, int64_t batch) {
  for (size_t v = first_value; v < g.values().size(); ++v) {
    const Dims& d = g.values()[v].shape.dims;
    Dims per_example = d.empty() ? d : Dims(d.begin() + 1, d.end());
    bool batched = !d.empty() && d[0] == batch;
    if (bounded_numel(batched ? per_example : d) < 0)
      throw ShapeError(l.type + " '" + l.name + "': value " + g.values()[v].name + " of " +
                       g.values()[v].shape.str() + " is too large");
  }
}

ValueId logits_of(BuiltNetwork& net, const NetworkSpec& s, ValueId last, int64_t batch) {
  Graph& g = net.graph;
  const LayerSpec& l = s.layers.back();
  const Shape out = g.value(last).shape;
  auto fail = [&](const std::string& what) {
    throw ParseError(spec_origin(s), l.line, l.type, what);
  };
  if (l.type == "softmax")
    fail(
        "the last layer's output is the logits and the loss applies softmax itself: remove "
        "this softmax layer");
  if (s.input_type == "tokens") {
    const int64_t steps = s.input[0];
    if (out != Shape{batch, steps, s.classes})
      fail("the last layer must give a score per step and symbol, [N, steps, classes] = [" +
           std::to_string(batch) + ", " + std::to_string(steps) + ", " + std::to_string(s.classes) +
           "], it gives " + out.str() + " (an fc layer with axis: 2 scores each step)");
    return g.add1("reshape", "logits", {last}, Attrs{{"shape", Dims{batch * steps, s.classes}}});
  }
  if (out.rank() < 2 || out[0] != batch || bounded_numel(out.dims) != batch * s.classes)
    fail("the last layer must give [N, classes] = [" + std::to_string(batch) + ", " +
         std::to_string(s.classes) + "], it gives " + out.str());
  if (out.rank() == 2) return last;
  // [N, classes, 1, 1] from a global pooling ends many all-convolutional networks.
  return g.add1("reshape", "logits", {last}, Attrs{{"shape", Dims{batch, s.classes}}});
}

std::string exe_dir() {
  std::error_code ec;
  fs::path p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : p.parent_path().string();
}

}  // namespace

std::string spec_origin(const NetworkSpec& spec) {
  if (!spec.file.empty()) return spec.file;
  return (spec.name.empty() ? std::string("network") : spec.name) + " (C++ builder)";
}

const std::vector<std::string>& solver_names() {
  static const std::vector<std::string> names = {"sgd",   "nesterov", "adam",
                                                 "adamw", "rmsprop",  "adagrad"};
  return names;
}

const std::vector<std::string>& lr_policy_names() {
  static const std::vector<std::string> names = {"fixed", "step", "multistep", "exp",
                                                 "inv",   "poly", "cosine"};
  return names;
}

void check_recipe(const Recipe& r) {
  auto range = [](const char* key, double v, double lo, double hi, bool open_hi = false) {
    if (!(v >= lo && (open_hi ? v < hi : v <= hi)))
      throw FieldError(std::string("train.") + key,
                       std::string(key) + " must be in [" + format_number(lo) + ", " +
                           format_number(hi) + (open_hi ? ")" : "]") + ", got " + format_number(v));
  };
  auto one_of = [](const char* key, const std::string& v, const std::vector<std::string>& names) {
    std::set<std::string> ok(names.begin(), names.end());  // listed in sorted order
    if (ok.count(v)) return;
    std::string list;
    for (const std::string& s : ok) list += (list.empty() ? "" : ", ") + s;
    throw FieldError(std::string("train.") + key,
                     std::string(key) + " '" + v + "' is not one of: " + list);
  };
  one_of("solver", r.solver, solver_names());
  one_of("lr_policy", r.lr_policy, lr_policy_names());
  range("lr", r.lr, 1e-12, 1e3);
  range("momentum", r.momentum, 0, 1, true);
  range("weight_decay", r.weight_decay, 0, 1);
  range("beta1", r.beta1, 0, 1, true);
  range("beta2", r.beta2, 0, 1, true);
  range("rms_decay", r.rms_decay, 0, 1, true);
  range("eps", r.eps, 1e-30, 1);
  range("gamma", r.gamma, 0, 1e3);
  range("power", r.power, 0, 1e3);
  range("step_size", double(r.step_size), 0, 1e12);
  range("warmup_iters", double(r.warmup_iters), 0, 1e12);
  range("clip_grad_norm", r.clip_grad_norm, 0, 1e12);
  range("accumulate", double(r.accumulate), 1, 1e6);
  range("batch", double(r.batch), 1, double(kMaxBatch));
  range("epochs", double(r.epochs), 0, 1e6);
  range("max_iter", double(r.max_iter), 0, 1e12);
  range("label_smoothing", r.label_smoothing, 0, 1, true);
  range("scale", r.scale, 1e-12, 1e6);
  range("crop", double(r.crop), 0, double(kMaxDim));
  range("pad", double(r.pad), 0, double(kMaxDim));
  range("cutout", double(r.cutout), 0, double(kMaxDim));
  for (double m : r.mean) range("mean", m, -1e6, 1e6);
  for (size_t i = 0; i < r.milestones.size(); ++i)
    if (r.milestones[i] < 1 || r.milestones[i] > int64_t(1e12) ||
        (i > 0 && r.milestones[i] <= r.milestones[i - 1]))
      throw FieldError("train.milestones", "milestones must be increasing iteration numbers >= 1");
  if (r.lr_policy == "step" && r.step_size == 0)
    throw FieldError("train.step_size", "lr_policy step needs step_size (iterations)");
  if (r.lr_policy == "multistep" && r.milestones.empty())
    throw FieldError("train.milestones", "lr_policy multistep needs milestones (iterations)");
  if (r.epochs == 0 && r.max_iter == 0)
    throw FieldError("train.epochs", "give epochs or max_iter (both are 0)");
}

void canonicalize_network(NetworkSpec& spec) {
  check_network_fields(spec);
  std::map<std::string, int> index;  // layer name -> position
  std::map<std::string, int> count;  // per type, for default names
  for (int i = 0; i < static_cast<int>(spec.layers.size()); ++i) {
    LayerSpec& l = spec.layers[i];
    try {
      canonicalize_layer(l);
    } catch (const FieldError& e) {
      throw LayerError(i, e.field(), e.what());
    }
    ++count[l.type];
    if (l.name.empty()) l.name = l.type + std::to_string(count[l.type]);
    check_name(i, l.name);
    if (auto it = index.find(l.name); it != index.end())
      throw LayerError(i, "name",
                       "duplicate layer name '" + l.name + "' (first at line " +
                           std::to_string(spec.layers[it->second].line) + ")");
    index[l.name] = i;
  }
  for (int i = 0; i < static_cast<int>(spec.layers.size()); ++i) {
    check_inputs(spec, i, index);
    LayerSpec& l = spec.layers[i];
    const std::string prev = i == 0 ? "data" : spec.layers[i - 1].name;
    if (l.inputs == std::vector<std::string>{prev}) l.inputs.clear();
  }
}

BuiltNetwork build_network(const NetworkSpec& spec, int64_t batch, bool training,
                           double label_smoothing) {
  NetworkSpec s = spec;
  try {
    canonicalize_network(s);
  } catch (const LayerError& e) {
    int line = e.layer() >= 0 ? s.layers[e.layer()].line : 0;
    throw ParseError(spec_origin(s), line, e.field(), e.what());
  }
  if (batch < 1 || batch > kMaxBatch)
    throw UsageError("batch size must be in 1.." + std::to_string(kMaxBatch) + ", got " +
                     std::to_string(batch));
  if (!(label_smoothing >= 0 && label_smoothing < 1))
    throw UsageError("label smoothing must be in [0, 1), got " + format_number(label_smoothing));
  BuiltNetwork net{Graph(training)};
  Graph& g = net.graph;
  Dims data_shape{batch};
  data_shape.insert(data_shape.end(), s.input.begin(), s.input.end());
  const bool tokens = s.input_type == "tokens";
  net.data = g.input("data", Shape(data_shape), tokens ? DType::i32 : DType::f32);
  net.label = g.input("label", Shape(tokens ? data_shape : Dims{batch}), DType::i32);
  std::map<std::string, ValueId> outputs{{"data", net.data}};
  ValueId prev = net.data;
  for (const LayerSpec& l : s.layers) {
    std::vector<ValueId> in;
    for (const std::string& name : l.inputs) in.push_back(outputs.at(name));
    if (in.empty()) in.push_back(prev);
    size_t first_value = g.values().size();
    LayerSpec built = l;
    if (l.type == "embedding" && !l.attrs.has("vocabulary"))
      built.attrs.set("vocabulary", s.classes);  // a text network reads the symbols it predicts
    try {
      prev = find_layer_def(l.type)->build(g, built, in);
      check_sizes(g, first_value, l, batch);
    } catch (const ParseError&) {
      throw;
    } catch (const Error& e) {
      throw ParseError(spec_origin(s), l.line, l.type, e.what());
    }
    name_output(g, prev, l.name);
    outputs[l.name] = prev;
    net.layer_names.push_back(l.name);
  }
  net.logits = logits_of(net, s, prev, batch);
  // Tokens: one label per step, scored alongside the logits' [N * steps] rows.
  ValueId labels =
      tokens ? g.add1("reshape", "label", {net.label}, Attrs{{"shape", Dims{batch * s.input[0]}}})
             : net.label;
  net.loss = g.add1("softmax_cross_entropy", "loss", {net.logits, labels},
                    Attrs{{"label_smoothing", label_smoothing}});
  net.top1 = g.add1("top_k_accuracy", "top1", {net.logits, labels}, Attrs{{"k", int64_t{1}}});
  for (auto [v, name] : {std::pair{net.logits, "logits"}, {net.loss, "loss"}, {net.top1, "top1"}})
    name_output(g, v, name);
  g.keep(net.loss);
  g.keep(net.top1);
  if (s.classes >= 5) {
    net.top5 = g.add1("top_k_accuracy", "top5", {net.logits, labels}, Attrs{{"k", int64_t{5}}});
    name_output(g, net.top5, "top5");
    g.keep(net.top5);
  }
  return net;
}

std::vector<std::string> model_search_path() {
  std::vector<std::string> dirs;
  if (const char* env = std::getenv("MYELIN_MODELS")) {
    std::stringstream ss(env);
    for (std::string d; std::getline(ss, d, ':');)
      if (!d.empty()) dirs.push_back(d);
  }
  if (std::string exe = exe_dir(); !exe.empty()) {
    dirs.push_back(exe + "/../models");
    dirs.push_back(exe + "/../share/myelin/models");
  }
#ifdef MYELIN_SOURCE_DIR
  dirs.push_back(std::string(MYELIN_SOURCE_DIR) + "/models");
#endif
  return dirs;
}

std::vector<std::string> standard_networks() {
  std::set<std::string> names;
  for (const std::string& d : model_search_path()) {
    std::error_code ec;
    for (fs::directory_iterator it(d, ec), end; !ec && it != end; it.increment(ec))
      if (it->path().extension() == ".yaml" && valid_name(it->path().stem().string()))
        names.insert(it->path().stem().string());
  }
  return {names.begin(), names.end()};
}

namespace {

NetworkSpec parse_file(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    std::string stem = fs::path(path).stem().string();
    auto known = standard_networks();
    bool standard = std::find(known.begin(), known.end(), stem) != known.end();
    throw ParseError(
        path, 0, "",
        std::string(fs::exists(path, ec) ? "not a regular file" : "no such file") +
            (standard ? " (the standard network is named '" + stem + "', without .yaml)" : ""));
  }
  constexpr std::uintmax_t kMaxBytes = 4 << 20;
  if (fs::file_size(path, ec) > kMaxBytes)
    throw ParseError(path, 0, "", "larger than 4 MiB: not a network file");
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  if (!f && !f.eof()) throw ParseError(path, 0, "", "cannot read the file");
  return parse_network(ss.str(), path);
}

}  // namespace

NetworkSpec load_network(const std::string& name_or_path) {
  const std::string& s = name_or_path;
  auto ends_with = [&](const std::string& suffix) {
    return s.size() >= suffix.size() &&
           s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (s.find('/') != std::string::npos || ends_with(".yaml") || ends_with(".yml"))
    return parse_file(s);
  std::error_code ec;
  std::vector<std::string> dirs = model_search_path();
  if (valid_name(s))
    for (const std::string& d : dirs)
      if (fs::is_regular_file(d + "/" + s + ".yaml", ec)) return parse_file(d + "/" + s + ".yaml");
  std::string known, searched;
  for (const std::string& n : standard_networks()) known += (known.empty() ? "" : ", ") + n;
  for (const std::string& d : dirs) searched += (searched.empty() ? "" : ", ") + d;
  throw UsageError("unknown network '" + s +
                   "': not a file (a path has a '/' or ends in .yaml) "
                   "and not a standard network (standard networks: " +
                   (known.empty() ? "none found" : known) + "; searched " + searched + ")");
}

bool equivalent(const NetworkSpec& a, const NetworkSpec& b) {
  if (a.name != b.name || a.description != b.description || a.input != b.input ||
      a.input_type != b.input_type || a.classes != b.classes || !(a.recipe == b.recipe) ||
      a.layers.size() != b.layers.size())
    return false;
  for (size_t i = 0; i < a.layers.size(); ++i) {
    const LayerSpec &x = a.layers[i], &y = b.layers[i];
    if (x.name != y.name || x.type != y.type || x.inputs != y.inputs ||
        x.attrs.items() != y.attrs.items())
      return false;
  }
  return true;
}

}  // namespace myelin
