// Each ONNX op as a Myelin layer: checks the attributes Myelin can honour, names the ones it
// cannot, and lays the weights out as the layer's parameters.
#include <algorithm>

#include "onnx/import_context.h"
#include "onnx/onnx_io.h"

namespace myelin::onnx_import {

namespace {

std::string ints_text(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

// [h, w] from ONNX's 2-D attribute, which must have two values.
std::vector<int64_t> pair_attr(Context& c, const char* name, std::vector<int64_t> dflt) {
  std::vector<int64_t> v = attr_ints(c.node(), name, std::move(dflt));
  if (v.size() != 2)
    c.fail(std::string(name) + " " + ints_text(v) + ": only 2-D convolutions and pools import");
  return v;
}

// Myelin pads both sides of each axis alike; ONNX's pads are [top, left, bottom, right].
std::vector<int64_t> symmetric_pads(Context& c) {
  const std::string auto_pad = attr_string(c.node(), "auto_pad", "NOTSET");
  if (auto_pad != "NOTSET" && auto_pad != "VALID")
    c.fail("auto_pad " + auto_pad + " is not supported (give explicit pads)");
  std::vector<int64_t> p = attr_ints(c.node(), "pads", {0, 0, 0, 0});
  if (auto_pad == "VALID") p = {0, 0, 0, 0};
  if (p.size() != 4) c.fail("pads " + ints_text(p) + ": only 2-D convolutions and pools import");
  if (p[0] != p[2] || p[1] != p[3])
    c.fail("asymmetric pads " + ints_text(p) + " (Myelin pads both sides of an axis alike)");
  return {p[0], p[1]};
}

void need_rank(Context& c, const Ref& x, int rank, const char* form) {
  if (x.rank != rank)
    c.fail("needs an input of " + std::string(form) + ", got rank " + std::to_string(x.rank));
}

Tensor transposed(const Tensor& t) {
  const int64_t rows = t.shape()[0], cols = t.shape()[1];
  Tensor r = Tensor::empty(Shape{cols, rows});
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) r.f32()[j * rows + i] = t.f32()[i * cols + j];
  return r;
}

Tensor scaled(const Tensor& t, double s) {
  Tensor r = Tensor::empty(t.shape());
  for (int64_t i = 0; i < t.numel(); ++i) r.f32()[i] = static_cast<float>(t.f32()[i] * s);
  return r;
}

const Tensor& float_constant(Context& c, int i, const char* role) {
  const Tensor& t = c.constant_input(i, role);
  if (t.dtype() != DType::f32) c.fail(std::string("its ") + role + " is not floating point");
  return t;
}

// A bias of `outputs` values from a constant of that many values or one value (broadcast).
Tensor bias_vector(Context& c, const Tensor& t, int64_t outputs, double scale) {
  Tensor b = Tensor::empty(Shape{outputs});
  if (t.numel() != outputs && t.numel() != 1)
    c.fail("its bias has " + std::to_string(t.numel()) + " values; " + std::to_string(outputs) +
           " outputs need " + std::to_string(outputs) + " or 1");
  for (int64_t i = 0; i < outputs; ++i)
    b.f32()[i] = static_cast<float>(t.f32()[t.numel() == 1 ? 0 : i] * scale);
  return b;
}

void conv(Context& c) {
  const Ref& x = c.layer_input(0);
  need_rank(c, x, 4, "[N, C, H, W]");
  const Tensor& w = float_constant(c, 1, "weight");
  if (w.shape().rank() != 4) c.fail("weight " + w.shape().str() + ": only 2-D convolutions import");
  const std::vector<int64_t> kernel = pair_attr(c, "kernel_shape", {w.shape()[2], w.shape()[3]});
  if (kernel[0] != w.shape()[2] || kernel[1] != w.shape()[3])
    c.fail("kernel_shape " + ints_text(kernel) + " differs from its weight " + w.shape().str());
  Attrs a{{"filters", w.shape()[0]},
          {"kernel", kernel},
          {"stride", pair_attr(c, "strides", {1, 1})},
          {"pad", symmetric_pads(c)},
          {"dilation", pair_attr(c, "dilations", {1, 1})},
          {"groups", attr_int(c.node(), "group", 1)},
          {"bias", int64_t{c.has_input(2)}}};
  const std::string name = c.add_layer("conv", {x.layer}, a);
  c.add_weight(name, "weight", w);
  if (c.has_input(2))
    c.add_weight(name, "bias", bias_vector(c, float_constant(c, 2, "bias"), w.shape()[0], 1.0));
  c.set_output({name, 4});
}

void pool(Context& c, const std::string& mode) {
  const Ref& x = c.layer_input(0);
  need_rank(c, x, 4, "[N, C, H, W]");
  if (attr_int(c.node(), "storage_order", 0) != 0) c.fail("storage_order 1 is not supported");
  const std::vector<int64_t> dilations = pair_attr(c, "dilations", {1, 1});
  if (dilations != std::vector<int64_t>{1, 1})
    c.fail("dilations " + ints_text(dilations) + " are not supported in pooling");
  Attrs a{{"mode", mode},
          {"kernel", pair_attr(c, "kernel_shape", {})},
          {"stride", pair_attr(c, "strides", {1, 1})},
          {"pad", symmetric_pads(c)},
          {"ceil_mode", attr_int(c.node(), "ceil_mode", 0)}};
  if (mode == "avg") a.set("count_include_pad", attr_int(c.node(), "count_include_pad", 0));
  c.set_output({c.add_layer("pool", {x.layer}, a), 4});
}

void global_pool(Context& c, const std::string& mode) {
  const Ref& x = c.layer_input(0);
  need_rank(c, x, 4, "[N, C, H, W]");
  c.set_output({c.add_layer("pool", {x.layer}, Attrs{{"global", mode}}), 4});
}

void batch_norm(Context& c) {
  const Ref& x = c.layer_input(0);
  if (attr_int(c.node(), "training_mode", 0) != 0)
    c.fail("training_mode 1 is not supported (export the model in eval mode)");
  if (c.node().output_size() > 1 && !c.node().output(1).empty())
    c.fail("running-statistics outputs are not supported (export the model in eval mode)");
  Attrs a{{"eps", attr_float(c.node(), "epsilon", 1e-5)},
          {"momentum", attr_float(c.node(), "momentum", 0.9)}};
  const std::string name = c.add_layer("batch_norm", {x.layer}, a);
  const char* suffixes[] = {"gamma", "beta", "running_mean", "running_var"};
  const char* roles[] = {"scale", "bias", "mean", "variance"};
  for (int i = 0; i < 4; ++i) c.add_weight(name, suffixes[i], float_constant(c, i + 1, roles[i]));
  c.set_output({name, x.rank});
}

Converter activation(std::string type, std::string alpha_key = "", double alpha_dflt = 0) {
  return [=](Context& c) {
    const Ref& x = c.layer_input(0);
    Attrs a;
    if (!alpha_key.empty()) a.set(alpha_key, attr_float(c.node(), "alpha", alpha_dflt));
    c.set_output({c.add_layer(type, {x.layer}, a), x.rank});
  };
}

void lrn(Context& c) {
  const Ref& x = c.layer_input(0);
  need_rank(c, x, 4, "[N, C, H, W]");
  const int64_t size = attr_int(c.node(), "size", 0);
  if (size < 1) c.fail("needs its size attribute");
  Attrs a{{"size", size},
          {"alpha", attr_float(c.node(), "alpha", 1e-4)},
          {"beta", attr_float(c.node(), "beta", 0.75)},
          {"k", attr_float(c.node(), "bias", 1.0)}};
  c.set_output({c.add_layer("lrn", {x.layer}, a), 4});
}

// fc weights are [outputs, features]: Gemm's B with transB, else B transposed.
void gemm(Context& c) {
  const Ref& x = c.layer_input(0);
  need_rank(c, x, 2, "[N, features] (flatten first)");
  if (attr_int(c.node(), "transA", 0) != 0) c.fail("transA 1 is not supported");
  const Tensor& b = float_constant(c, 1, "weight");
  if (b.shape().rank() != 2) c.fail("weight " + b.shape().str() + " is not a matrix");
  const double alpha = attr_float(c.node(), "alpha", 1.0), beta = attr_float(c.node(), "beta", 1.0);
  Tensor w = scaled(attr_int(c.node(), "transB", 0) ? b : transposed(b), alpha);
  const int64_t outputs = w.shape()[0];
  const bool bias = c.has_input(2) && beta != 0;
  const std::string name =
      c.add_layer("fc", {x.layer}, Attrs{{"outputs", outputs}, {"bias", int64_t{bias}}});
  c.add_weight(name, "weight", w);
  if (bias) c.add_weight(name, "bias", bias_vector(c, float_constant(c, 2, "bias"), outputs, beta));
  c.set_output({name, 2});
}

void matmul(Context& c) {
  const Ref& x = c.layer_input(0);
  need_rank(c, x, 2, "[N, features] (flatten first)");
  const Tensor& b = float_constant(c, 1, "weight");
  if (b.shape().rank() != 2) c.fail("weight " + b.shape().str() + " is not a matrix");
  const std::string name =
      c.add_layer("fc", {x.layer}, Attrs{{"outputs", b.shape()[1]}, {"bias", int64_t{0}}});
  c.add_weight(name, "weight", transposed(b));
  Ref out{name, 2};
  out.bias_pending = c.consumers(c.node().output(0)) == 1;
  c.set_output(out);
}

// The bias of a MatMul's fc (MatMul + Add, as PyTorch writes x @ W + b).
void add_bias(Context& c, const Ref& fc, const Tensor& bias) {
  LayerSpec& l = c.layer(fc.layer);
  l.attrs.set("bias", int64_t{1});
  c.add_weight(fc.layer, "bias", bias_vector(c, bias, l.attrs.i("outputs", 1), 1.0));
  c.set_output({fc.layer, fc.rank});
}

void add(Context& c) {
  const Ref &a = c.input(0), &b = c.input(1);
  if (a.is_shape || b.is_shape) c.fail("arithmetic on shapes is not supported");
  if (!a.constant && !b.constant) {
    c.set_output({c.add_layer("add", {a.layer, b.layer}, {}), std::max(a.rank, b.rank)});
    return;
  }
  const Ref& layer = a.constant ? b : a;
  const Ref& constant = a.constant ? a : b;
  if (layer.constant || !layer.bias_pending || constant.constant->dtype() != DType::f32)
    c.fail("adding a constant imports only as the bias of a MatMul (MatMul + Add)");
  add_bias(c, layer, *constant.constant);
}

void mul(Context& c) {
  const Ref &a = c.layer_input(0), &b = c.layer_input(1);
  c.set_output({c.add_layer("mul", {a.layer, b.layer}, {}), std::max(a.rank, b.rank)});
}

int64_t positive_axis(Context& c, int64_t axis, int rank) {
  if (axis < -rank || axis >= rank)
    c.fail("axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(rank));
  return axis < 0 ? axis + rank : axis;
}

// --- Shape arithmetic: Shape -> Gather(0) -> Unsqueeze -> Concat, as PyTorch computes
// x.view(x.size(0), -1), folded into a constant with the batch as kBatchDim ---

void shape(Context& c) {
  const Ref& x = c.layer_input(0);
  if (attr_int(c.node(), "start", 0) != 0 || attr_int(c.node(), "end", x.rank) != x.rank)
    c.fail("start and end are not supported");
  Ref r;
  r.rank = 1;
  r.is_shape = true;
  c.set_output(r);
}

Tensor int64_constant(const Dims& dims, const std::vector<int64_t>& values) {
  Tensor t = Tensor::empty(Shape(dims), DType::i64);
  std::copy(values.begin(), values.end(), t.data_as<int64_t>());
  return t;
}

void gather(Context& c) {
  const Ref& data = c.input(0);
  const Tensor& index = c.constant_input(1, "index");
  const bool first = index.numel() == 1 && index.dtype() == DType::i64 &&
                     index.data_as<int64_t>()[0] == 0 && attr_int(c.node(), "axis", 0) == 0;
  if (!data.is_shape || !first)
    c.fail("Gather imports only as the batch size, element 0 of a Shape");
  Ref r;
  r.constant = int64_constant(index.shape().dims, {kBatchDim});
  c.set_output(std::move(r));
}

void unsqueeze(Context& c) {
  const Tensor& x = c.constant_input(0, "input");
  std::vector<int64_t> axes = attr_ints(c.node(), "axes", {});  // before opset 13
  if (c.has_input(1)) {
    const Tensor& a = c.constant_input(1, "axes");
    axes.assign(a.data_as<int64_t>(), a.data_as<int64_t>() + a.numel());
  }
  Dims dims = x.shape().dims;
  std::sort(axes.begin(), axes.end());
  for (int64_t axis : axes) {
    if (axis < 0) axis += static_cast<int64_t>(dims.size() + axes.size());
    if (axis < 0 || axis > static_cast<int64_t>(dims.size())) c.fail("axes out of range");
    dims.insert(dims.begin() + axis, 1);
  }
  Ref r;
  r.constant = x.reshape(Shape(dims));
  c.set_output(std::move(r));
}

// Constant int64 vectors joined (a shape being computed).
void concat_constants(Context& c) {
  std::vector<int64_t> values;
  for (int i = 0; i < c.node().input_size(); ++i) {
    const Tensor& t = c.constant_input(i, "input");
    if (t.dtype() != DType::i64 || t.shape().rank() != 1)
      c.fail("joins constants that are not int64 vectors");
    values.insert(values.end(), t.data_as<int64_t>(), t.data_as<int64_t>() + t.numel());
  }
  Ref r;
  r.constant = int64_constant({static_cast<int64_t>(values.size())}, values);
  c.set_output(std::move(r));
}

void concat(Context& c) {
  if (c.input(0).constant) return concat_constants(c);
  std::vector<std::string> inputs;
  const int rank = c.layer_input(0).rank;
  for (int i = 0; i < c.node().input_size(); ++i) inputs.push_back(c.layer_input(i).layer);
  const int64_t axis = positive_axis(c, attr_int(c.node(), "axis", 1), rank);
  if (axis == 0) c.fail("concatenating along the batch axis is not supported");
  c.set_output({c.add_layer("concat", inputs, Attrs{{"axis", axis}}), rank});
}

void flatten(Context& c) {
  const Ref& x = c.layer_input(0);
  const int64_t axis = positive_axis(c, attr_int(c.node(), "axis", 1), x.rank);
  if (axis != 1) c.fail("axis " + std::to_string(axis) + ": only Flatten(axis=1) imports");
  c.set_output({c.add_layer("flatten", {x.layer}, {}), 2});
}

// A constant shape whose first dimension is the batch ([N, -1] is a flatten).
void reshape(Context& c) {
  const Ref& x = c.layer_input(0);
  const Tensor& shape = c.constant_input(1, "shape");
  if (shape.dtype() != DType::i64 || shape.shape().rank() != 1 || shape.numel() < 2)
    c.fail("its shape must be a constant list of at least 2 int64 dimensions");
  std::vector<int64_t> dims(shape.data_as<int64_t>(), shape.data_as<int64_t>() + shape.numel());
  if (std::find(dims.begin() + 1, dims.end(), kBatchDim) != dims.end())
    c.fail("shape " + ints_text(dims) + " moves the batch size away from the first dimension");
  const int64_t first = dims[0] == kBatchDim ? 0 : dims[0];
  if (first != 0 && first != -1 && (c.batch() < 0 || first != c.batch()))
    c.fail("shape " + ints_text(dims) + " changes the batch dimension (it must stay first)");
  if (attr_int(c.node(), "allowzero", 0) != 0 &&
      std::find(dims.begin() + 1, dims.end(), 0) != dims.end())
    c.fail("allowzero with a 0 dimension is not supported");
  std::vector<int64_t> rest(dims.begin() + 1, dims.end());
  if (first == -1 && std::find(rest.begin(), rest.end(), -1) != rest.end())
    c.fail("shape " + ints_text(dims) + " has two inferred dimensions");
  if (rest == std::vector<int64_t>{-1}) {
    c.set_output({c.add_layer("flatten", {x.layer}, {}), 2});
    return;
  }
  c.set_output(
      {c.add_layer("reshape", {x.layer}, Attrs{{"shape", rest}}), static_cast<int>(dims.size())});
}

void dropout(Context& c) {
  const Ref& x = c.layer_input(0);
  double ratio = 0.5;
  if (c.node().input_size() > 1 && c.has_input(1)) {
    const Tensor& r = float_constant(c, 1, "ratio");
    ratio = r.numel() == 1 ? r.f32()[0] : ratio;
  } else {
    ratio = attr_float(c.node(), "ratio", 0.5);  // opsets before 12
  }
  c.set_output({c.add_layer("dropout", {x.layer}, Attrs{{"ratio", ratio}}), x.rank});
}

void identity(Context& c) {
  c.set_output(c.input(0));
}

void constant(Context& c) {
  const onnx::TensorProto* t = attr_tensor(c.node(), "value");
  if (!t) c.fail("only Constant nodes with a tensor value are supported");
  Ref r;
  r.constant = onnx_io::from_proto(*t, c.origin() + ": " + c.where());
  c.set_output(std::move(r));
}

// A softmax inside the network (one that gives the graph's output is dropped before this).
void softmax(Context& c) {
  const Ref& x = c.layer_input(0);
  const int64_t axis = positive_axis(c, attr_int(c.node(), "axis", -1), x.rank);
  if (axis != 1 || x.rank != 2)
    c.fail("a softmax inside the network imports only over the features of [N, features]");
  c.set_output({c.add_layer("softmax", {x.layer}, {}), 2});
}

}  // namespace

const std::map<std::string, Converter>& converters() {
  static const std::map<std::string, Converter> table = {
      {"Conv", conv},
      {"MaxPool", [](Context& c) { pool(c, "max"); }},
      {"AveragePool", [](Context& c) { pool(c, "avg"); }},
      {"GlobalAveragePool", [](Context& c) { global_pool(c, "avg"); }},
      {"GlobalMaxPool", [](Context& c) { global_pool(c, "max"); }},
      {"BatchNormalization", batch_norm},
      {"Relu", activation("relu")},
      {"Sigmoid", activation("sigmoid")},
      {"Tanh", activation("tanh")},
      {"LeakyRelu", activation("leaky_relu", "alpha", 0.01)},
      {"Elu", activation("elu", "alpha", 1.0)},
      {"LRN", lrn},
      {"Gemm", gemm},
      {"MatMul", matmul},
      {"Add", add},
      {"Mul", mul},
      {"Concat", concat},
      {"Flatten", flatten},
      {"Reshape", reshape},
      {"Dropout", dropout},
      {"Identity", identity},
      {"Constant", constant},
      {"Softmax", softmax},
      {"Shape", shape},
      {"Gather", gather},
      {"Unsqueeze", unsqueeze},
  };
  return table;
}

}  // namespace myelin::onnx_import
