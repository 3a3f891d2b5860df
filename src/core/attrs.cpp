#include "core/attrs.h"

#include "core/error.h"

namespace myelin {

namespace {
[[noreturn]] void wrong_type(const std::string& key, const char* want) {
  throw Error("attribute '" + key + "' must be " + want);
}
}  // namespace

int64_t Attrs::i(const std::string& key, int64_t dflt) const {
  auto it = map_.find(key);
  if (it == map_.end()) return dflt;
  if (auto* v = std::get_if<int64_t>(&it->second)) return *v;
  wrong_type(key, "an integer");
}

double Attrs::f(const std::string& key, double dflt) const {
  auto it = map_.find(key);
  if (it == map_.end()) return dflt;
  if (auto* v = std::get_if<double>(&it->second)) return *v;
  if (auto* v = std::get_if<int64_t>(&it->second)) return static_cast<double>(*v);
  wrong_type(key, "a number");
}

std::string Attrs::s(const std::string& key, const std::string& dflt) const {
  auto it = map_.find(key);
  if (it == map_.end()) return dflt;
  if (auto* v = std::get_if<std::string>(&it->second)) return *v;
  wrong_type(key, "a string");
}

std::vector<int64_t> Attrs::ints(const std::string& key, std::vector<int64_t> dflt) const {
  auto it = map_.find(key);
  if (it == map_.end()) return dflt;
  if (auto* v = std::get_if<std::vector<int64_t>>(&it->second)) return *v;
  if (auto* v = std::get_if<int64_t>(&it->second)) return {*v};
  wrong_type(key, "a list of integers");
}

std::vector<double> Attrs::floats(const std::string& key, std::vector<double> dflt) const {
  auto it = map_.find(key);
  if (it == map_.end()) return dflt;
  if (auto* v = std::get_if<std::vector<double>>(&it->second)) return *v;
  if (auto* v = std::get_if<std::vector<int64_t>>(&it->second))
    return std::vector<double>(v->begin(), v->end());
  if (auto* v = std::get_if<double>(&it->second)) return {*v};
  wrong_type(key, "a list of numbers");
}

std::vector<int64_t> Attrs::pair(const std::string& key, int64_t dflt) const {
  auto it = map_.find(key);
  if (it == map_.end()) return {dflt, dflt};
  if (auto* v = std::get_if<int64_t>(&it->second)) return {*v, *v};
  if (auto* v = std::get_if<std::vector<int64_t>>(&it->second)) {
    if (v->size() == 2) return *v;
    if (v->size() == 1) return {(*v)[0], (*v)[0]};
  }
  wrong_type(key, "an integer or a list of two integers");
}

}  // namespace myelin
