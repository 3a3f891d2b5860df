// Network files (YAML) to NetworkSpec. Every error names the file, the line of the offending
// key (yaml-cpp's marks) and the key; nothing in the file is ignored silently.
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <functional>
#include <map>
#include <sstream>

#include "core/text.h"
#include "model/layers.h"

namespace myelin {

namespace {

constexpr size_t kMaxFileBytes = 4 << 20;

std::string suggest(const std::string& word, const std::vector<std::string>& options) {
  std::string best = closest_match(word, options);
  return best.empty() ? "" : " (did you mean '" + best + "'?)";
}

std::string describe(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Scalar: {
      std::string s = n.Scalar();
      return "'" + (s.size() > 40 ? s.substr(0, 40) + "..." : s) + "'";
    }
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a map";
    default:
      return "nothing";
  }
}

struct Entry {
  std::string key;
  YAML::Node key_node, value;
};

class Reader {
 public:
  explicit Reader(std::string file) : file_(std::move(file)) {}
  const std::string& file() const { return file_; }

  static int line(const YAML::Node& n) {
    YAML::Mark m = n.Mark();
    return m.line >= 0 ? m.line + 1 : 0;
  }
  [[noreturn]] void fail(const YAML::Node& at, const std::string& field,
                         const std::string& what) const {
    throw ParseError(file_, line(at), field, what);
  }

  // A map's entries in order; keys must be plain names and appear once.
  std::vector<Entry> entries(const YAML::Node& map, const std::string& field,
                             const std::string& want) const {
    if (!map.IsMap()) fail(map, field, "expected " + want + ", got " + describe(map));
    std::vector<Entry> out;
    for (auto it = map.begin(); it != map.end(); ++it) {
      if (!it->first.IsScalar())
        fail(it->first, field, "keys must be names, got " + describe(it->first));
      Entry e{it->first.Scalar(), it->first, it->second};
      for (const Entry& o : out)
        if (o.key == e.key)
          fail(e.key_node, e.key,
               "'" + e.key + "' is given twice (first at line " + std::to_string(line(o.key_node)) +
                   ")");
      out.push_back(std::move(e));
    }
    return out;
  }

  std::string text(const YAML::Node& n, const std::string& field,
                   const std::string& want = "text") const {
    if (!n.IsScalar()) fail(n, field, "expected " + want + ", got " + describe(n));
    return n.Scalar();
  }

  int64_t integer(const YAML::Node& n, const std::string& field) const {
    std::string s = text(n, field, "an integer");
    int64_t v = 0;
    std::string_view t = s;
    if (!t.empty() && t.front() == '+') t.remove_prefix(1);
    auto r = std::from_chars(t.data(), t.data() + t.size(), v);
    if (r.ec == std::errc() && r.ptr == t.data() + t.size()) return v;
    double d = 0;  // 1e5 is an integer too
    if (parse_number(s, d) && d == std::floor(d) && std::abs(d) < 9e15) return int64_t(d);
    fail(n, field, "expected an integer, got " + describe(n));
  }

  double number(const YAML::Node& n, const std::string& field) const {
    double v = 0;
    if (!parse_number(text(n, field, "a number"), v))
      fail(n, field, "expected a number, got " + describe(n));
    return v;
  }

  // A finite number: 0.01, 1e-4, or a fraction like 1/255.
  static bool parse_number(std::string_view s, double& v) {
    auto parse = [](std::string_view t, double& x) {
      if (!t.empty() && t.front() == '+') t.remove_prefix(1);
      auto r = std::from_chars(t.data(), t.data() + t.size(), x);
      return r.ec == std::errc() && r.ptr == t.data() + t.size() && std::isfinite(x);
    };
    size_t slash = s.find('/');
    if (slash == std::string_view::npos) return parse(s, v);
    double den = 0;
    if (!parse(s.substr(0, slash), v) || !parse(s.substr(slash + 1), den) || den == 0) return false;
    v /= den;
    return std::isfinite(v);
  }

  bool boolean(const YAML::Node& n, const std::string& field) const {
    std::string s = text(n, field, "true or false");
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    if (s == "true" || s == "yes" || s == "on") return true;
    if (s == "false" || s == "no" || s == "off") return false;
    fail(n, field, "expected true or false, got " + describe(n));
  }

  // A scalar or a list of scalars, each read by `one`.
  template <class T, class F>
  std::vector<T> list(const YAML::Node& n, const std::string& field, F one) const {
    if (n.IsScalar()) return {one(n)};
    if (!n.IsSequence()) fail(n, field, "expected a value or a list, got " + describe(n));
    std::vector<T> out;
    for (const YAML::Node& e : n) out.push_back(one(e));
    return out;
  }
  std::vector<int64_t> integers(const YAML::Node& n, const std::string& field) const {
    return list<int64_t>(n, field, [&](const YAML::Node& e) { return integer(e, field); });
  }
  std::vector<double> numbers(const YAML::Node& n, const std::string& field) const {
    return list<double>(n, field, [&](const YAML::Node& e) { return number(e, field); });
  }
  std::vector<std::string> texts(const YAML::Node& n, const std::string& field) const {
    return list<std::string>(n, field, [&](const YAML::Node& e) { return text(e, field); });
  }

  // A layer key's value, by the key's kind (ranges are checked by canonicalize_layer).
  AttrValue attr(const KeyDef& k, const YAML::Node& n) const {
    switch (k.kind) {
      case KeyKind::integer:
        return integer(n, k.key);
      case KeyKind::pair:
      case KeyKind::ints: {
        auto v = integers(n, k.key);
        if (n.IsScalar()) return v[0];
        return v;
      }
      case KeyKind::number:
        return number(n, k.key);
      case KeyKind::boolean:
        return int64_t{boolean(n, k.key)};
      case KeyKind::choice:
        return text(n, k.key);
      case KeyKind::init:
        return init_attr(k, n);
    }
    fail(n, k.key, "unreadable value");
  }

 private:
  // gaussian(0.01) | xavier | 0.1 | {gaussian: 0.01}
  AttrValue init_attr(const KeyDef& k, const YAML::Node& n) const {
    if (n.IsScalar()) return n.Scalar();
    if (n.IsMap() && n.size() == 1) {
      auto e = entries(n, k.key, "an initializer");
      return e[0].key + "(" + text(e[0].value, k.key) + ")";
    }
    fail(n, k.key,
         "expected an initializer (xavier, msra, gaussian(std), uniform(scale), "
         "constant(v) or a number), got " +
             describe(n));
  }

  std::string file_;
};

// Counts the documents of a stream, stopping at the second or at an empty one. yaml-cpp 0.7's
// LoadAll loops forever (allocating) on some malformed streams, e.g. a lone ',', because the
// parser keeps reporting empty documents (jbeder/yaml-cpp#1040, fixed upstream by #1319 the same
// way: stop at the first empty root).
class DocumentCounter : public YAML::EventHandler {
 public:
  int documents = 0;
  YAML::Mark second;  // where the second document starts

  static DocumentCounter count(const std::string& text) {
    DocumentCounter c;
    std::istringstream in(text);
    YAML::Parser parser(in);
    while (c.documents < 2 && parser.HandleNextDocument(c) && !c.empty_) {
    }
    return c;
  }

  void OnDocumentStart(const YAML::Mark& m) override {
    if (++documents == 2) second = m;
    depth_ = 0, empty_ = false;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override { empty_ = empty_ || depth_ == 0; }
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    ++depth_;
  }
  void OnSequenceEnd() override { --depth_; }
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    ++depth_;
  }
  void OnMapEnd() override { --depth_; }

 private:
  int depth_ = 0;
  bool empty_ = false;
};

// Where each key of a layer was written (its own settings or the file's defaults).
using KeyMarks = std::map<std::string, YAML::Node>;

struct Parsed {
  NetworkSpec spec;
  std::vector<KeyMarks> marks;  // per layer
  KeyMarks top;                 // top-level and train.* keys
};

Recipe parse_recipe(const Reader& r, const YAML::Node& node, KeyMarks& marks) {
  Recipe rc;
  using Set = std::function<void(const YAML::Node&, const std::string&)>;
  auto num = [&](double& f) -> Set {
    return [&](const YAML::Node& n, const std::string& k) { f = r.number(n, k); };
  };
  auto integer = [&](int64_t& f) -> Set {
    return [&](const YAML::Node& n, const std::string& k) { f = r.integer(n, k); };
  };
  auto str = [&](std::string& f) -> Set {
    return [&](const YAML::Node& n, const std::string& k) { f = r.text(n, k); };
  };
  const std::vector<std::pair<std::string, Set>> keys = {
      {"solver", str(rc.solver)},
      {"lr", num(rc.lr)},
      {"momentum", num(rc.momentum)},
      {"weight_decay", num(rc.weight_decay)},
      {"beta1", num(rc.beta1)},
      {"beta2", num(rc.beta2)},
      {"rms_decay", num(rc.rms_decay)},
      {"eps", num(rc.eps)},
      {"lr_policy", str(rc.lr_policy)},
      {"gamma", num(rc.gamma)},
      {"power", num(rc.power)},
      {"step_size", integer(rc.step_size)},
      {"milestones",
       [&](const YAML::Node& n, const std::string& k) { rc.milestones = r.integers(n, k); }},
      {"warmup_iters", integer(rc.warmup_iters)},
      {"clip_grad_norm", num(rc.clip_grad_norm)},
      {"accumulate", integer(rc.accumulate)},
      {"batch", integer(rc.batch)},
      {"epochs", integer(rc.epochs)},
      {"max_iter", integer(rc.max_iter)},
      {"label_smoothing", num(rc.label_smoothing)},
      {"scale", num(rc.scale)},
      {"mean", [&](const YAML::Node& n, const std::string& k) { rc.mean = r.numbers(n, k); }},
      {"crop", integer(rc.crop)},
      {"pad", integer(rc.pad)},
      {"mirror", [&](const YAML::Node& n, const std::string& k) { rc.mirror = r.boolean(n, k); }},
      {"cutout", integer(rc.cutout)},
      {"test_mirror",
       [&](const YAML::Node& n, const std::string& k) { rc.test_mirror = r.boolean(n, k); }},
  };
  std::vector<std::string> names;
  for (auto& [k, set] : keys) names.push_back(k);
  for (const Entry& e : r.entries(node, "train", "a map of training settings")) {
    auto it = std::find_if(keys.begin(), keys.end(), [&](auto& k) { return k.first == e.key; });
    std::string field = "train." + e.key;
    if (it == keys.end()) {
      std::string allowed;
      for (const std::string& n : names) allowed += (allowed.empty() ? "" : ", ") + n;
      r.fail(e.key_node, field,
             "unknown training setting '" + e.key + "'" + suggest(e.key, names) +
                 " (allowed: " + allowed + ")");
    }
    it->second(e.value, field);
    marks[field] = e.key_node;
  }
  return rc;
}

// Settings of one layer type, as written under `defaults:`.
struct Default {
  std::string key;
  AttrValue value;
  YAML::Node mark;
};
using Defaults = std::map<std::string, std::vector<Default>>;

std::string unknown_key(const LayerDef& def, const std::string& key) {
  std::vector<std::string> names{"name", "input"};
  for (const KeyDef& k : def.keys) names.push_back(k.key);
  return "unknown key '" + key + "' in a " + def.type + " layer" + suggest(key, names) +
         " (allowed: " + allowed_keys(def) + ")";
}

const LayerDef& layer_type(const Reader& r, const YAML::Node& at, const std::string& type) {
  if (const LayerDef* def = find_layer_def(type)) return *def;
  std::vector<std::string> names{"inner_product"};
  for (const LayerDef& d : layer_defs()) names.push_back(d.type);
  r.fail(at, type,
         "unknown layer type '" + type + "'" + suggest(type, names) +
             " (known: " + known_layer_types() + ")");
}

Defaults parse_defaults(const Reader& r, const YAML::Node& node) {
  Defaults out;
  for (const Entry& t : r.entries(node, "defaults", "a map of layer types to settings")) {
    const LayerDef& def = layer_type(r, t.key_node, t.key);
    for (const Entry& e : r.entries(t.value, t.key, "a map of " + def.type + " settings")) {
      const KeyDef* k = find_key(def, e.key);
      if (!k) r.fail(e.key_node, e.key, unknown_key(def, e.key) + "; name and input are per layer");
      out[def.type].push_back({e.key, r.attr(*k, e.value), e.key_node});
    }
  }
  return out;
}

LayerSpec parse_layer(const Reader& r, const YAML::Node& node, KeyMarks& marks) {
  LayerSpec l;
  l.line = Reader::line(node);
  YAML::Node settings, type_node = node;
  if (node.IsScalar()) {
    l.type = node.Scalar();
  } else {
    auto e = r.entries(node, "layers", "a layer: - TYPE: {key: value, ...}");
    if (e.size() != 1) {
      std::string keys;
      for (const Entry& x : e) keys += (keys.empty() ? "" : ", ") + x.key;
      bool indent = !e.empty() && find_layer_def(e[0].key) && e[0].value.IsNull();
      r.fail(node, e.empty() ? "layers" : e[0].key,
             "a layer is written '- TYPE: {key: value, ...}', this one has keys " + keys +
                 (indent ? ": indent the settings under '" + e[0].key + ":'" : ""));
    }
    l.type = e[0].key, type_node = e[0].key_node, settings = e[0].value;
  }
  const LayerDef& def = layer_type(r, type_node, l.type);
  marks[""] = type_node;
  if (!settings.IsDefined() || settings.IsNull()) return l;
  for (const Entry& e : r.entries(settings, l.type, "the layer's settings as a map")) {
    marks[e.key] = e.key_node;
    if (e.key == "name") {
      l.name = r.text(e.value, "name");
    } else if (e.key == "input") {
      l.inputs = r.texts(e.value, "input");
      if (l.inputs.empty()) r.fail(e.key_node, "input", "input lists no layer");
    } else if (const KeyDef* k = find_key(def, e.key)) {
      l.attrs.set(e.key, r.attr(*k, e.value));
    } else {
      r.fail(e.key_node, e.key, unknown_key(def, e.key));
    }
  }
  return l;
}

void apply_defaults(const Defaults& defaults, LayerSpec& l, KeyMarks& marks) {
  const LayerDef* def = find_layer_def(l.type);
  auto it = defaults.find(def->type);
  if (it == defaults.end()) return;
  for (const Default& d : it->second)
    if (!l.attrs.has(d.key)) l.attrs.set(d.key, d.value), marks[d.key] = d.mark;
}

void parse_top(const Reader& r, const YAML::Node& root, Parsed& p) {
  NetworkSpec& s = p.spec;
  const std::vector<std::string> top = {"name",    "description", "input",    "input_type",
                                        "classes", "train",       "defaults", "layers"};
  Defaults defaults;
  YAML::Node layers;
  for (const Entry& e : r.entries(root, "", "a network: name, input, classes, layers")) {
    p.top[e.key] = e.key_node;
    if (e.key == "name")
      s.name = r.text(e.value, "name");
    else if (e.key == "description")
      s.description = r.text(e.value, "description");
    else if (e.key == "input")
      s.input = r.integers(e.value, "input");
    else if (e.key == "input_type")
      s.input_type = r.text(e.value, "input_type");
    else if (e.key == "classes")
      s.classes = r.integer(e.value, "classes");
    else if (e.key == "train")
      s.recipe = parse_recipe(r, e.value, p.top);
    else if (e.key == "defaults")
      defaults = parse_defaults(r, e.value);
    else if (e.key == "layers")
      layers = e.value;
    else
      r.fail(e.key_node, e.key,
             "unknown key '" + e.key + "'" + suggest(e.key, top) +
                 " (a network file has: name, description, input, input_type, classes, "
                 "train, defaults, layers)");
  }
  for (const char* k : {"input", "classes", "layers"})
    if (!p.top.count(k))
      r.fail(root, k,
             std::string("the network has no '") + k + "' (" +
                 (k == std::string("input")     ? "input: [C, H, W]"
                  : k == std::string("classes") ? "classes: 10"
                                                : "layers: a list") +
                 ")");
  if (!layers.IsSequence() || layers.size() == 0)
    r.fail(layers.IsNull() ? p.top["layers"] : layers, "layers",
           "layers must be a list of one or more layers ('- conv: {...}')");
  if (layers.size() > size_t(kMaxLayers))
    r.fail(p.top["layers"], "layers", "at most " + std::to_string(kMaxLayers) + " layers");
  for (const YAML::Node& n : layers) {
    p.marks.emplace_back();
    s.layers.push_back(parse_layer(r, n, p.marks.back()));
    apply_defaults(defaults, s.layers.back(), p.marks.back());
  }
}

// The line of the key an error is about: the key itself, else its layer (or the file's top).
int error_line(const Parsed& p, int layer, const std::string& field) {
  const KeyMarks& m = layer >= 0 ? p.marks[layer] : p.top;
  if (auto it = m.find(field); it != m.end()) return Reader::line(it->second);
  if (layer >= 0) return p.spec.layers[layer].line;
  if (field.rfind("train.", 0) == 0)
    if (auto it = m.find("train"); it != m.end()) return Reader::line(it->second);
  return 1;
}

}  // namespace

NetworkSpec parse_network(const std::string& text, const std::string& file) {
  Reader r(file.empty() ? "<network>" : file);
  if (text.size() > kMaxFileBytes) throw ParseError(r.file(), 0, "", "larger than 4 MiB");
  Parsed p;
  try {
    YAML::Node root = YAML::Load(text);
    if (root.IsNull() && text.find_first_not_of(" \t\r\n") != std::string::npos &&
        text[text.find_first_not_of(" \t\r\n")] != '#')
      throw ParseError(r.file(), 1, "", "not a network file: its YAML document is empty (null)");
    if (root.IsNull())
      throw ParseError(r.file(), 1, "",
                       "empty file: a network file has name, input, classes "
                       "and layers");
    if (DocumentCounter c = DocumentCounter::count(text); c.documents > 1)
      throw ParseError(r.file(), c.second.line + 1, "",
                       "the file holds several YAML documents ('---'); a network file holds one");
    if (!root.IsMap())
      r.fail(root, "",
             "not a network file: expected a map of name, input, classes and "
             "layers, got " +
                 describe(root));
    parse_top(r, root, p);
  } catch (const YAML::Exception& e) {
    throw ParseError(r.file(), e.mark.line >= 0 ? e.mark.line + 1 : 0, "",
                     "YAML syntax error: " + e.msg);
  }
  NetworkSpec& s = p.spec;
  s.file = r.file();
  if (s.name.empty()) {
    s.name = file.empty() ? "" : std::filesystem::path(file).stem().string();
    if (s.name.empty() || !printable_text(s.name, false)) s.name = "network";
  }
  try {
    canonicalize_network(s);
  } catch (const LayerError& e) {
    throw ParseError(r.file(), error_line(p, e.layer(), e.field()), e.field(), e.what());
  }
  build_network(s, 1, true);  // shape errors now, with the layer's line
  return s;
}

}  // namespace myelin
