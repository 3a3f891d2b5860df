// Shape ops: reshape (a view, no copy), flatten (composite), concat and split along an axis.
#include "ops/common.h"

namespace myelin {

namespace {

// attrs.shape may hold one -1 (inferred) and 0s (copy the input's dimension).
std::vector<TensorType> infer_reshape(const Node& n, const std::vector<TensorType>& in) {
  Dims d = n.attrs.ints("shape", {});
  int infer_at = -1;
  int64_t known = 1;
  for (size_t i = 0; i < d.size(); ++i) {
    if (d[i] == 0 && static_cast<int>(i) < in[0].shape.rank())
      d[i] = in[0].shape[static_cast<int>(i)];
    if (d[i] == -1) {
      expect(infer_at < 0, n, in, "shape may contain only one -1");
      infer_at = static_cast<int>(i);
    } else {
      expect(d[i] > 0, n, in, "shape dimensions must be positive, 0 or -1");
      known *= d[i];
    }
  }
  if (infer_at >= 0 && known > 0) d[infer_at] = in[0].shape.numel() / known;
  expect(Shape(d).numel() == in[0].shape.numel(), n, in,
         "cannot reshape to " + Shape(d).str() + ": element counts differ");
  return {{Shape(d), in[0].dtype}};
}

int norm_axis(int64_t axis, int rank) {
  return static_cast<int>(axis < 0 ? axis + rank : axis);
}

std::vector<TensorType> infer_concat(const Node& n, const std::vector<TensorType>& in) {
  int axis = norm_axis(n.attrs.i("axis", 1), in[0].shape.rank());
  expect(axis >= 0 && axis < in[0].shape.rank(), n, in, "axis out of range");
  Dims d = in[0].shape.dims;
  for (size_t i = 1; i < in.size(); ++i) {
    Dims o = in[i].shape.dims;
    expect(o.size() == d.size(), n, in, "inputs must have the same rank");
    for (size_t k = 0; k < d.size(); ++k)
      expect(static_cast<int>(k) == axis || o[k] == d[k], n, in,
             "inputs must match except along axis " + std::to_string(axis));
    d[axis] += o[axis];
  }
  return {{Shape(d), in[0].dtype}};
}

std::vector<TensorType> infer_split(const Node& n, const std::vector<TensorType>& in) {
  int axis = norm_axis(n.attrs.i("axis", 1), in[0].shape.rank());
  Dims sizes = n.attrs.ints("sizes", {});
  int64_t total = 0;
  std::vector<TensorType> out;
  for (int64_t s : sizes) {
    Dims d = in[0].shape.dims;
    d[axis] = s;
    total += s;
    out.push_back({Shape(d), in[0].dtype});
  }
  expect(axis >= 0 && axis < in[0].shape.rank() && total == in[0].shape[axis], n, in,
         "sizes must add up to the input's extent along axis");
  return out;
}

std::vector<ValueId> grad_concat(GradBuilder& g) {
  Dims sizes;
  int axis = norm_axis(g.node().attrs.i("axis", 1), g.shape(g.in(0)).rank());
  for (ValueId v : g.node().inputs) sizes.push_back(g.shape(v)[axis]);
  return g.add("split", {g.grad_out(0)}, Attrs{{"axis", int64_t{axis}}, {"sizes", sizes}});
}

std::vector<ValueId> grad_split(GradBuilder& g) {
  std::vector<ValueId> parts;
  for (size_t i = 0; i < g.node().outputs.size(); ++i) {
    ValueId d = g.grad_out(static_cast<int>(i));
    if (d == kNoValue)
      d = g.add1("fill", {},
                 Attrs{{"shape", g.shape(g.out(static_cast<int>(i))).dims}, {"value", 0.0}});
    parts.push_back(d);
  }
  return {g.add1("concat", parts, g.node().attrs)};
}

}  // namespace

MYELIN_REGISTER_OPS {
  register_op({.name = "reshape",
               .infer = infer_reshape,
               .grad =
                   [](GradBuilder& g) {
                     return std::vector{g.add1("reshape", {g.grad_out(0)},
                                               Attrs{{"shape", g.shape(g.in(0)).dims}})};
                   },
               .is_view = true,
               .doc = "same data, new shape (one -1 inferred, 0 copies)"});
  register_op(
      {.name = "flatten",
       .expand =
           [](Graph& g, const std::string& name, const std::vector<ValueId>& in, const Attrs& a) {
             const Shape& x = g.value(in[0]).shape;
             int axis = norm_axis(a.i("axis", 1), x.rank());
             Dims d(x.dims.begin(), x.dims.begin() + axis);
             d.push_back(-1);
             return g.add("reshape", name, in, Attrs{{"shape", d}});
           },
       .doc = "keeps dimensions before axis (default 1), flattens the rest"});
  register_op({.name = "concat",
               .min_inputs = 1,
               .max_inputs = 64,
               .infer = infer_concat,
               .grad = grad_concat,
               .flops = no_flops,
               .doc = "joins inputs along axis (default 1)"});
  register_op({.name = "split",
               .infer = infer_split,
               .grad = grad_split,
               .flops = no_flops,
               .doc = "cuts the input along axis into parts of attrs.sizes"});
}

}  // namespace myelin
