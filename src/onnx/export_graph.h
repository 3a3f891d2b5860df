// Internal to ONNX export: a GraphProto under construction (unique node and value names,
// attributes, initializers from the trained weights) and the per-layer emitters that fill it.
#pragma once
#include <onnx/onnx_pb.h>

#include <set>
#include <string>
#include <vector>

#include "model/network.h"
#include "train/checkpoint.h"

namespace myelin::onnx_export {

onnx::AttributeProto attr(const std::string& name, int64_t v);
onnx::AttributeProto attr(const std::string& name, double v);
onnx::AttributeProto attr(const std::string& name, const std::string& v);
onnx::AttributeProto attr(const std::string& name, const std::vector<int64_t>& v);
onnx::AttributeProto attr(const std::string& name, const std::vector<std::string>& v);

class GraphWriter {
 public:
  // `weights` must outlive the writer; `weights_origin` names the file in errors.
  GraphWriter(onnx::GraphProto& graph, const TensorFile& weights, std::string weights_origin);

  // Appends a node of `layer` and returns its outputs' names: `outputs` where given (an empty
  // name is an unused optional output), else one fresh name "LAYER/Op".
  std::vector<std::string> node(const std::string& op, const std::string& layer,
                                const std::vector<std::string>& inputs,
                                const std::vector<onnx::AttributeProto>& attrs = {},
                                std::vector<std::string> outputs = {});
  std::string node1(const std::string& op, const std::string& layer,
                    const std::vector<std::string>& inputs,
                    const std::vector<onnx::AttributeProto>& attrs = {},
                    const std::string& output = "") {
    return node(op, layer, inputs, attrs,
                output.empty() ? std::vector<std::string>{} : std::vector<std::string>{output})
        .at(0);
  }

  // The trained tensor `name` as an initializer of the same name (added once).
  std::string weight(const std::string& name);
  const Tensor& weight_tensor(const std::string& name) const;  // DataError when absent
  // A tensor made here (re-laid-out weights, shapes for Reshape) as an initializer.
  std::string initializer(const std::string& name, const Tensor& t);
  std::string int64s(const std::string& name, const std::vector<int64_t>& values);

  // A value name not used yet: `base`, else "base:1", "base:2", ...
  std::string fresh(const std::string& base);
  void reserve(const std::string& name) { values_.insert(name); }

 private:
  onnx::GraphProto& graph_;
  const TensorFile& weights_;
  std::string origin_;
  std::set<std::string> values_, nodes_, initializers_;
};

// Emits one layer (canonical spec) reading `inputs` (value names); its last node writes `out`.
// `in_shapes` are the inputs' shapes in Myelin's graph (batch 1). Returns the output's name (an
// input's, for layers that are the identity at inference). Throws UnsupportedError for a layer
// type without an ONNX counterpart.
std::string emit_layer(GraphWriter& w, const LayerSpec& l, const std::vector<std::string>& inputs,
                       const std::vector<Shape>& in_shapes, const std::string& out);

// lstm, gru and rnn layers (export_recurrent.cpp): input [N, T, F] batch first, as in Myelin.
std::string emit_recurrent(GraphWriter& w, const LayerSpec& l, const std::string& x,
                           const std::string& out);

}  // namespace myelin::onnx_export
