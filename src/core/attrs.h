// Op attributes: a small typed dictionary (kernel sizes, strides, ratios, names).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

namespace myelin {

using AttrValue =
    std::variant<int64_t, double, std::string, std::vector<int64_t>, std::vector<double>>;

class Attrs {
 public:
  Attrs() = default;
  Attrs(std::initializer_list<std::pair<const std::string, AttrValue>> init) : map_(init) {}

  bool has(const std::string& key) const { return map_.count(key) != 0; }
  void set(const std::string& key, AttrValue v) { map_[key] = std::move(v); }
  const std::map<std::string, AttrValue>& items() const { return map_; }

  // Typed getters with a default; a wrong type throws an Error naming the key.
  int64_t i(const std::string& key, int64_t dflt) const;
  double f(const std::string& key, double dflt) const;  // accepts an integer too
  std::string s(const std::string& key, const std::string& dflt) const;
  std::vector<int64_t> ints(const std::string& key, std::vector<int64_t> dflt) const;
  std::vector<double> floats(const std::string& key, std::vector<double> dflt) const;
  // A pair for 2-D ops: an integer k means {k, k}.
  std::vector<int64_t> pair(const std::string& key, int64_t dflt) const;

 private:
  std::map<std::string, AttrValue> map_;
};

}  // namespace myelin
