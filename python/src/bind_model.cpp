// myelin.Model's engine: opening, forward (zero-copy in, GIL released), images, weights, bundles.
#include <pybind11/stl.h>

#include "core/error.h"
#include "model.h"
#include "train/bundle.h"
#include "train/evaluate.h"

#include "bindings.h"

namespace myelin::python {

using namespace pybind11::literals;

namespace {

// Probabilities (or logits) [N, classes] of x [N, C, H, W]. A C-contiguous float32 `x` is read
// where it lies; anything else is converted once. The GIL is released while the network runs.
py::array forward(Model& m, const py::handle& x, bool logits) {
  py::array_t<float, py::array::c_style> in = float_array(x, "x");
  check_examples(m.spec(), in, "x");
  const int64_t n = in.shape(0);
  py::array_t<float> out({n, m.spec().classes});
  const float* src = in.data();
  float* dst = out.mutable_data();
  {
    py::gil_scoped_release nogil;
    m.run(src, n, dst, logits);
  }
  return out;
}

// An encoded PNG or JPEG image as the network's input [C, H, W], as `myelin classify` prepares it.
py::array prepare(const Model& m, const py::bytes& image, const std::string& name,
                  const std::string& resize) {
  std::string_view bytes = image;
  std::vector<uint8_t> encoded(bytes.begin(), bytes.end());
  Dims dims = m.spec().input;
  py::array_t<float> out(std::vector<py::ssize_t>(dims.begin(), dims.end()));
  prepare_image(m.spec(), resize, name, encoded, out.mutable_data());
  return out;
}

py::dict weights_dict(Model& m) {
  std::vector<NamedTensor> tensors;
  {
    py::gil_scoped_release nogil;
    tensors = m.weights();
  }
  py::dict out;
  for (const NamedTensor& t : tensors) out[py::str(t.name)] = tensor_to_numpy(t.tensor);
  return out;
}

std::unique_ptr<Model> open(const std::string& path, const std::string& weights,
                            const std::optional<NetworkSpec>& network, const std::string& device,
                            int threads, int64_t batch) {
  py::gil_scoped_release nogil;
  return Model::open(path, weights, network, {device, threads, batch});
}

}  // namespace

void bind_model(py::module_& m) {
  py::class_<Model>(m, "Model")
      .def_static("open", &open, "path"_a, "weights"_a, "network"_a, "device"_a, "threads"_a,
                  "batch"_a)
      .def_property_readonly("spec", &Model::spec)
      .def_property_readonly("class_names", &Model::class_names)
      .def_property_readonly("batch", &Model::batch)
      .def_property_readonly("device", &Model::device)
      .def("forward", &forward, "x"_a, "logits"_a)
      .def("prepare", &prepare, "image"_a, "name"_a, "resize"_a)
      .def("weights", &weights_dict)
      .def("save", &Model::save, "path"_a, py::call_guard<py::gil_scoped_release>());
  m.def(
      "write_bundle",
      [](const std::string& run_dir, const std::string& out) {
        return write_bundle(run_dir, out).dump();
      },
      "run_dir"_a, "out"_a);
}

}  // namespace myelin::python
