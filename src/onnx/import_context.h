// The state of one import while its nodes are converted (import.cpp walks the graph,
// import_ops.cpp converts each op). Internal to src/onnx.
#pragma once
#include <onnx/onnx_pb.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "onnx/import.h"

namespace myelin::onnx_import {

// What an ONNX value is in the network being built: a layer's output (the network input is
// "data"), or a constant (an initializer or a Constant node's output).
struct Ref {
  std::string layer;
  int rank = 0;  // of the layer's output, batch included
  std::optional<Tensor> constant;
  // Set on the output of an fc made from a MatMul: an Add of a constant may become its bias.
  bool bias_pending = false;
  // The output of Shape(layer): only its first element, the batch, is known (see kBatchDim).
  bool is_shape = false;
};

// The batch size in shapes computed from Shape(x) (x.view(x.size(0), -1) with a symbolic batch):
// Reshape reads it as "the batch, unchanged".
constexpr int64_t kBatchDim = INT64_MIN + 1;

class Context {
 public:
  Context(std::string origin, int64_t batch) : origin_(std::move(origin)), batch_(batch) {}

  const std::string& origin() const { return origin_; }
  int64_t batch() const { return batch_; }  // the graph input's batch size, -1 if symbolic
  NetworkSpec& spec() { return spec_; }
  ImportedNetwork& result() { return result_; }

  void set_node(const onnx::NodeProto& n, int index) { node_ = &n, index_ = index; }
  const onnx::NodeProto& node() const { return *node_; }
  // "node '/conv1/Conv' (Conv)" or "node #3 (Conv)" when unnamed.
  std::string where() const;
  [[noreturn]] void fail(const std::string& what) const;  // UnsupportedError

  void define(const std::string& value, Ref r) { values_[value] = std::move(r); }
  const Ref* find(const std::string& value) const {
    auto it = values_.find(value);
    return it == values_.end() ? nullptr : &it->second;
  }
  bool has_input(int i) const;  // present and not ""
  const Ref& input(int i) const;
  const Tensor& constant_input(int i, const char* role) const;
  const Ref& layer_input(int i) const;
  void set_output(Ref r) { define(node_->output(0), std::move(r)); }
  int consumers(const std::string& value) const;
  void count_consumers(const onnx::GraphProto& g, const std::vector<int>& nodes);

  // A layer reading `inputs` (layer names), named after the node's weight or the node; returns
  // its name.
  std::string add_layer(const std::string& type, const std::vector<std::string>& inputs,
                        Attrs attrs);
  LayerSpec& layer(const std::string& name);
  void add_weight(const std::string& layer, const std::string& suffix, Tensor t);
  void note(std::string line) { result_.notes.push_back(std::move(line)); }

 private:
  std::string layer_name() const;

  std::string origin_;
  int64_t batch_;
  NetworkSpec spec_;
  ImportedNetwork result_;
  const onnx::NodeProto* node_ = nullptr;
  int index_ = 0;
  std::map<std::string, Ref> values_;
  std::map<std::string, int> consumers_;
};

// Node attributes with ONNX's defaults.
int64_t attr_int(const onnx::NodeProto& n, const std::string& name, int64_t dflt);
double attr_float(const onnx::NodeProto& n, const std::string& name, double dflt);
std::vector<int64_t> attr_ints(const onnx::NodeProto& n, const std::string& name,
                               std::vector<int64_t> dflt);
std::string attr_string(const onnx::NodeProto& n, const std::string& name, std::string dflt);
const onnx::TensorProto* attr_tensor(const onnx::NodeProto& n, const std::string& name);

using Converter = std::function<void(Context&)>;
const std::map<std::string, Converter>& converters();  // by op type

}  // namespace myelin::onnx_import
