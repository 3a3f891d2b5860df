// numpy arrays in and out of the library's host tensors.
#include <cstring>

#include "core/error.h"

#include "bindings.h"

namespace myelin::python {

namespace {

template <class T>
py::array_t<T, py::array::c_style> contiguous(const py::handle& a, const char* what,
                                              const char* kind) {
  // Exactly the right type and layout: the caller's array itself, no copy.
  if (py::isinstance<py::array_t<T, py::array::c_style>>(a))
    return py::reinterpret_borrow<py::array_t<T, py::array::c_style>>(a);
  auto converted = py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(a);
  if (!converted) {
    PyErr_Clear();
    throw py::type_error(std::string(what) + " must be an array of " + kind + ", got " +
                         std::string(py::str(py::type::of(a).attr("__name__"))));
  }
  return converted;
}

}  // namespace

py::array_t<float, py::array::c_style> float_array(const py::handle& a, const char* what) {
  return contiguous<float>(a, what, "numbers (float32)");
}

py::array_t<int32_t, py::array::c_style> label_array(const py::handle& a, const char* what) {
  py::array any = py::array::ensure(a);
  if (any && any.dtype().kind() == 'f')
    throw py::type_error(std::string(what) + " must hold integer class labels, got floats");
  return contiguous<int32_t>(a, what, "integer labels");
}

py::array tensor_to_numpy(const Tensor& t) {
  py::dtype type;
  switch (t.dtype()) {
    case DType::f32:
      type = py::dtype::of<float>();
      break;
    case DType::i32:
      type = py::dtype::of<int32_t>();
      break;
    case DType::i64:
      type = py::dtype::of<int64_t>();
      break;
    case DType::u8:
      type = py::dtype::of<uint8_t>();
      break;
    case DType::f16:
      type = py::dtype("float16");
      break;
    case DType::bf16:
      type = py::dtype("uint16");
      break;  // numpy has no bfloat16: the raw bits
  }
  py::array out(type, std::vector<py::ssize_t>(t.shape().dims.begin(), t.shape().dims.end()));
  std::memcpy(out.mutable_data(), t.data(), t.nbytes());
  return out;
}

std::string shape_text(const py::array& a) {
  std::string s = "[";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
  return s + "]";
}

void check_examples(const NetworkSpec& spec, const py::array& a, const std::string& what) {
  const Dims& want = spec.input;
  bool ok = a.ndim() == static_cast<py::ssize_t>(want.size() + 1) && a.shape(0) > 0;
  for (size_t i = 0; ok && i < want.size(); ++i)
    ok = a.shape(static_cast<py::ssize_t>(i + 1)) == want[i];
  if (ok) return;
  std::string expect = "[N";
  for (int64_t d : want) expect += ", " + std::to_string(d);
  throw ShapeError(what + " of shape " + shape_text(a) + " does not fit network '" + spec.name +
                   "', which takes " + expect + "] with N >= 1");
}

}  // namespace myelin::python
