// myelin.Model's engine, train/predictor.h's Predictor: opening, forward (zero-copy in, GIL
// released), images, weights, bundles.
#include <pybind11/stl.h>

#include "core/error.h"
#include "model.h"
#include "train/bundle.h"

#include "bindings.h"

namespace myelin::python {

using namespace pybind11::literals;

namespace {

// Probabilities (or logits) [N, classes] of x [N, C, H, W]. A C-contiguous float32 `x` is read
// where it lies; anything else is converted once. The GIL is released while the network runs.
py::array forward(Predictor& m, const py::handle& x, bool logits) {
  py::array_t<float, py::array::c_style> in = float_array(x, "x");
  check_examples(m.spec(), in, "x");
  const int64_t n = in.shape(0);
  py::array_t<float> out({n, m.classes()});
  const float* src = in.data();
  float* dst = out.mutable_data();
  {
    py::gil_scoped_release nogil;
    m.run(src, n, dst, logits ? Scores::logits : Scores::probabilities);
  }
  return out;
}

// An encoded PNG or JPEG image as the network's input [C, H, W], as `myelin classify` prepares it.
py::array prepare(const Predictor& m, const py::bytes& image, const std::string& name,
                  const std::string& resize) {
  std::string_view bytes = image;
  Dims dims = m.spec().input;
  py::array_t<float> out(std::vector<py::ssize_t>(dims.begin(), dims.end()));
  m.prepare(name, std::vector<uint8_t>(bytes.begin(), bytes.end()), out.mutable_data(), resize);
  return out;
}

py::dict weights_dict(Predictor& m) {
  std::vector<NamedTensor> tensors;
  {
    py::gil_scoped_release nogil;
    tensors = m.weights();
  }
  py::dict out;
  for (const NamedTensor& t : tensors) out[py::str(t.name)] = tensor_to_numpy(t.tensor);
  return out;
}

PredictorOptions options(const std::string& weights, const std::string& device, int threads,
                         int64_t batch, int instances) {
  PredictorOptions o;
  o.weights = weights;
  o.device = device;
  o.threads = threads;
  o.max_batch = batch;
  o.instances = instances;
  return o;
}

std::unique_ptr<Predictor> open(const std::string& path, const std::string& weights,
                                const std::optional<NetworkSpec>& network,
                                const std::string& device, int threads, int64_t batch,
                                int instances) {
  py::gil_scoped_release nogil;
  return open_model(path, network, options(weights, device, threads, batch, instances));
}

std::unique_ptr<Predictor> open_bytes(const py::bytes& data, const std::string& device, int threads,
                                      int64_t batch, int instances) {
  std::string_view bytes = data;
  py::gil_scoped_release nogil;
  return open_model_bytes(bytes, options("", device, threads, batch, instances));
}

}  // namespace

void bind_model(py::module_& m) {
  py::class_<Predictor>(m, "Model")
      .def_static("open", &open, "path"_a, "weights"_a, "network"_a, "device"_a, "threads"_a,
                  "batch"_a, "instances"_a)
      .def_static("open_bytes", &open_bytes, "data"_a, "device"_a, "threads"_a, "batch"_a,
                  "instances"_a)
      .def_property_readonly("spec", &Predictor::spec)
      .def_property_readonly("class_names", &Predictor::class_names)
      .def_property_readonly("batch", &Predictor::max_batch)
      .def_property_readonly("instances", &Predictor::instances)
      .def_property_readonly("device", [](const Predictor& p) { return p.options().device; })
      .def("forward", &forward, "x"_a, "logits"_a)
      .def("prepare", &prepare, "image"_a, "name"_a, "resize"_a)
      .def("weights", &weights_dict)
      .def("save", &save_weights, "path"_a, py::call_guard<py::gil_scoped_release>());
  m.def(
      "write_bundle",
      [](const std::string& run_dir, const std::string& out) {
        return write_bundle(run_dir, out).dump();
      },
      "run_dir"_a, "out"_a);
}

}  // namespace myelin::python
