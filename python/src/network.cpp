// Networks: a NetworkSpec read from a standard name, a file or YAML text, with its size and cost.
#include <pybind11/stl.h>

#include "model/network.h"
#include "train/checkpoint.h"

#include "bindings.h"

namespace myelin::python {

using namespace pybind11::literals;

namespace {

py::tuple dims_tuple(const Dims& d) {
  py::tuple t(d.size());
  for (size_t i = 0; i < d.size(); ++i) t[i] = d[i];
  return t;
}

// One dict per layer: name, type, output shape (per example), parameters and forward FLOPs.
py::list layer_table(const NetworkCost& cost) {
  py::list out;
  for (const LayerCost& l : cost.layers) {
    Dims per_example(l.output.dims.begin() + (l.output.rank() > 0 ? 1 : 0), l.output.dims.end());
    out.append(py::dict("name"_a = l.name, "type"_a = l.type, "output"_a = dims_tuple(per_example),
                        "params"_a = l.params, "flops"_a = l.flops));
  }
  return out;
}

}  // namespace

void bind_network(py::module_& m) {
  py::class_<NetworkSpec>(m, "NetworkSpec")
      .def_static("load", &load_network, "name_or_path"_a)
      .def_static("parse", &parse_network, "text"_a, "file"_a)
      .def_readonly("name", &NetworkSpec::name)
      .def_readonly("file", &NetworkSpec::file)
      .def_readonly("description", &NetworkSpec::description)
      .def_readonly("input_type", &NetworkSpec::input_type)
      .def_readonly("classes", &NetworkSpec::classes)
      .def_property_readonly("input_shape",
                             [](const NetworkSpec& s) { return dims_tuple(s.input); })
      .def_property_readonly("recipe",  // a JSON object, as trainer.json records it
                             [](const NetworkSpec& s) { return recipe_to_json(s.recipe).dump(); })
      .def("describe", &describe_network)
      .def("to_yaml", &write_network)
      .def("cost", [](const NetworkSpec& s) {
        NetworkCost c = network_cost(s);
        return py::dict("params"_a = c.params, "flops"_a = c.flops, "layers"_a = layer_table(c));
      });
  m.def("standard_networks", &standard_networks);
}

}  // namespace myelin::python
