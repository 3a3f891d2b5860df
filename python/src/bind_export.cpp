// myelin.export_onnx's engine, where the library was built with ONNX export.
#include "bindings.h"

namespace myelin::python {

void bind_export(py::module_& m) {}

}  // namespace myelin::python
