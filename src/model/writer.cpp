// NetworkSpec back to a network file: what the C++ builder made can be saved, shown in the web
// UI and read again. Only values that differ from the defaults are written.
#include <yaml-cpp/yaml.h>

#include "model/layers.h"

namespace myelin {

namespace {

void emit_value(YAML::Emitter& out, const AttrValue& v) {
  if (auto* x = std::get_if<int64_t>(&v)) {
    out << *x;
  } else if (auto* x = std::get_if<double>(&v)) {
    out << format_number(*x);
  } else if (auto* x = std::get_if<std::string>(&v)) {
    out << *x;
  } else if (auto* x = std::get_if<std::vector<int64_t>>(&v)) {
    out << YAML::Flow << YAML::BeginSeq;
    for (int64_t e : *x) out << e;
    out << YAML::EndSeq;
  } else if (auto* x = std::get_if<std::vector<double>>(&v)) {
    out << YAML::Flow << YAML::BeginSeq;
    for (double e : *x) out << format_number(e);
    out << YAML::EndSeq;
  }
}

// A layer's attribute as the file writes it (booleans as true/false).
void emit_attr(YAML::Emitter& out, const LayerDef& def, const std::string& key,
               const AttrValue& v) {
  out << YAML::Key << key << YAML::Value;
  const KeyDef* k = find_key(def, key);
  if (k && k->kind == KeyKind::boolean && std::holds_alternative<int64_t>(v))
    out << (std::get<int64_t>(v) != 0);
  else
    emit_value(out, v);
}

void emit_recipe(YAML::Emitter& out, const Recipe& r) {
  const Recipe d;
  out << YAML::Key << "train" << YAML::Value << YAML::BeginMap;
  auto str = [&](const char* k, const std::string& v, const std::string& dv) {
    if (v != dv) out << YAML::Key << k << YAML::Value << v;
  };
  auto num = [&](const char* k, double v, double dv) {
    if (v != dv) out << YAML::Key << k << YAML::Value << format_number(v);
  };
  auto integer = [&](const char* k, int64_t v, int64_t dv) {
    if (v != dv) out << YAML::Key << k << YAML::Value << v;
  };
  str("solver", r.solver, d.solver);
  num("lr", r.lr, d.lr);
  num("momentum", r.momentum, d.momentum);
  num("weight_decay", r.weight_decay, d.weight_decay);
  num("beta1", r.beta1, d.beta1);
  num("beta2", r.beta2, d.beta2);
  num("rms_decay", r.rms_decay, d.rms_decay);
  num("eps", r.eps, d.eps);
  str("lr_policy", r.lr_policy, d.lr_policy);
  num("gamma", r.gamma, d.gamma);
  num("power", r.power, d.power);
  integer("step_size", r.step_size, d.step_size);
  if (!r.milestones.empty())
    out << YAML::Key << "milestones" << YAML::Value << YAML::Flow << r.milestones;
  integer("warmup_iters", r.warmup_iters, d.warmup_iters);
  num("clip_grad_norm", r.clip_grad_norm, d.clip_grad_norm);
  integer("accumulate", r.accumulate, d.accumulate);
  integer("batch", r.batch, d.batch);
  integer("epochs", r.epochs, d.epochs);
  integer("max_iter", r.max_iter, d.max_iter);
  num("label_smoothing", r.label_smoothing, d.label_smoothing);
  num("scale", r.scale, d.scale);
  if (!r.mean.empty()) emit_attr(out, LayerDef{}, "mean", r.mean);
  integer("crop", r.crop, d.crop);
  integer("pad", r.pad, d.pad);
  if (r.mirror != d.mirror) out << YAML::Key << "mirror" << YAML::Value << r.mirror;
  integer("cutout", r.cutout, d.cutout);
  if (r.test_mirror != d.test_mirror)
    out << YAML::Key << "test_mirror" << YAML::Value << r.test_mirror;
  out << YAML::EndMap;
}

}  // namespace

std::string write_network(const NetworkSpec& spec) {
  NetworkSpec s = spec;
  try {
    canonicalize_network(s);
  } catch (const LayerError& e) {
    throw ParseError(spec_origin(s), e.layer() >= 0 ? s.layers[e.layer()].line : 0, e.field(),
                     e.what());
  }
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value << s.name;
  if (!s.description.empty()) out << YAML::Key << "description" << YAML::Value << s.description;
  out << YAML::Key << "input" << YAML::Value << YAML::Flow << s.input;
  if (s.input_type != "image") out << YAML::Key << "input_type" << YAML::Value << s.input_type;
  out << YAML::Key << "classes" << YAML::Value << s.classes;
  emit_recipe(out, s.recipe);
  out << YAML::Key << "layers" << YAML::Value << YAML::BeginSeq;
  for (const LayerSpec& l : s.layers) {
    const LayerDef& def = *find_layer_def(l.type);
    out << YAML::BeginMap << YAML::Key << l.type << YAML::Value << YAML::Flow << YAML::BeginMap;
    out << YAML::Key << "name" << YAML::Value << l.name;
    if (l.inputs.size() == 1) out << YAML::Key << "input" << YAML::Value << l.inputs[0];
    if (l.inputs.size() > 1) out << YAML::Key << "input" << YAML::Value << YAML::Flow << l.inputs;
    for (auto& [key, v] : l.attrs.items()) emit_attr(out, def, key, v);
    out << YAML::EndMap << YAML::EndMap;
  }
  out << YAML::EndSeq << YAML::EndMap;
  if (!out.good()) throw Error("cannot write network '" + s.name + "': " + out.GetLastError());
  return std::string(out.c_str()) + "\n";
}

}  // namespace myelin
