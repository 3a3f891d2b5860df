// The `_myelin` extension module; python/myelin/__init__.py is its public face.
#include "bindings.h"

PYBIND11_MODULE(_myelin, m) {
  m.doc() = "Myelin's C++ library; use the `myelin` package, which wraps this module";
  myelin::python::bind_errors(m);
  myelin::python::bind_network(m);
  myelin::python::bind_model(m);
  myelin::python::bind_training(m);
  myelin::python::bind_export(m);
}
