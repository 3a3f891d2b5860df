// The pieces of the `_myelin` extension, one topic a file: errors, networks, models (inference),
// training and export. The typed Python API (python/myelin/) wraps what they define.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "core/tensor.h"
#include "model/network.h"

namespace myelin::python {

namespace py = pybind11;

// A C-contiguous float32 array: the caller's own when it already is one (no copy), else one
// converted copy. `what` names the argument in the TypeError for data that is not numeric.
py::array_t<float, py::array::c_style> float_array(const py::handle& a, const char* what);
// The same for integer labels as int32.
py::array_t<int32_t, py::array::c_style> label_array(const py::handle& a, const char* what);
// A host tensor as a new numpy array (a copy: the tensor's memory is not Python's).
py::array tensor_to_numpy(const Tensor& t);
// An array's shape as the library writes shapes: "[64, 1, 28, 28]".
std::string shape_text(const py::array& a);

// ShapeError unless `a` is [N, *network input] with N >= 1; `what` names the array ("x").
void check_examples(const NetworkSpec& spec, const py::array& a, const std::string& what);

void bind_errors(py::module_& m);
void bind_network(py::module_& m);
void bind_model(py::module_& m);
void bind_training(py::module_& m);
void bind_export(py::module_& m);

}  // namespace myelin::python
