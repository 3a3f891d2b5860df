// Myelin's C++ exceptions as the Python exceptions of myelin/errors.py, with their messages and
// the fields they carry (ParseError: file, line, field; DataError: path, offset).
#include "core/error.h"
#include "train/trainer.h"

#include "bindings.h"

namespace myelin::python {

using namespace pybind11::literals;

namespace {

// Raises errors.<name>(message) with the given attributes set on the exception.
void raise(const char* name, const char* message, const py::dict& attrs = {}) {
  py::object type = py::module_::import("myelin.errors").attr(name);
  py::object e = type(message);
  for (auto item : attrs) py::setattr(e, item.first, item.second);
  PyErr_SetObject(type.ptr(), e.ptr());
}

void translate(std::exception_ptr p) {
  try {
    std::rethrow_exception(p);
  } catch (const ShapeError& e) {
    raise("ShapeError", e.what());
  } catch (const ParseError& e) {
    raise("ParseError", e.what(),
          py::dict("file"_a = e.file(), "line"_a = e.line(), "field"_a = e.field()));
  } catch (const DataError& e) {
    raise("DataError", e.what(), py::dict("path"_a = e.path(), "offset"_a = e.offset()));
  } catch (const DivergedError& e) {
    raise("DivergedError", e.what(), py::dict("iteration"_a = e.iteration()));
  } catch (const DeviceError& e) {
    raise("DeviceError", e.what());
  } catch (const UnsupportedError& e) {
    raise("UnsupportedError", e.what());
  } catch (const UsageError& e) {
    raise("UsageError", e.what());
  } catch (const Error& e) {
    raise("Error", e.what());
  }
}

}  // namespace

void bind_errors(py::module_& m) {
  py::register_exception_translator(&translate);
}

}  // namespace myelin::python
