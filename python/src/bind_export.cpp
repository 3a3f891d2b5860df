// myelin.export_onnx's engine: a model's weights, as it holds them, written as an ONNX model by
// the exporter of `myelin export` (where the library was built with ONNX, MYELIN_WITH_ONNX).
#include <pybind11/stl.h>

#include "core/error.h"
#include "model.h"

#ifdef MYELIN_WITH_ONNX
#include "onnx/export.h"
#include "onnx/onnx_io.h"
#endif

#include "bindings.h"

namespace myelin::python {

using namespace pybind11::literals;

namespace {

py::dict export_model(Predictor& m, const std::string& out) {
#ifdef MYELIN_WITH_ONNX
  onnx::ModelProto proto;
  {
    py::gil_scoped_release nogil;
    OnnxExportOptions o;
    o.class_names = m.class_names();
    o.weights_origin = "the model's weights";
    proto = export_onnx(m.spec(), TensorFile{m.weights(), {}}, o);
    onnx_io::write_model(proto, out);
  }
  return py::dict("opset"_a = kOnnxOpset, "nodes"_a = proto.graph().node_size(),
                  "initializers"_a = proto.graph().initializer_size());
#else
  throw UnsupportedError(
      "this build of Myelin has no ONNX export: rebuild it with libonnx-dev "
      "and libprotobuf-dev installed (MYELIN_ONNX)");
#endif
}

}  // namespace

void bind_export(py::module_& m) {
  m.def("export_onnx", &export_model, "model"_a, "out"_a);
}

}  // namespace myelin::python
