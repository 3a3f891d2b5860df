// The layer types of network files: each type's keys (kind, range, default) and how it becomes
// graph ops. The parser, the C++ builder and build_network all validate through this table, so
// a network is checked the same way however it was made.
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "model/network.h"

namespace myelin {

// A problem with one key of a layer (or of the file); the caller adds the file and line.
class FieldError : public Error {
 public:
  FieldError(std::string field, const std::string& what) : Error(what), field_(std::move(field)) {}
  const std::string& field() const { return field_; }

 private:
  std::string field_;
};

enum class KeyKind : uint8_t {
  integer,  // int64
  pair,     // int64 k (meaning k, k) or [h, w]
  number,   // double
  boolean,  // stored as int64 0/1
  choice,   // one string of `choices`
  init,     // an initializer, stored as its canonical text ("xavier", "gaussian(0.01)")
  ints,     // list of int64
};

struct KeyDef {
  std::string key;
  KeyKind kind;
  double min = 0, max = 0;        // integer, pair, number and ints elements
  std::string choices;            // choice: "max|avg"
  std::optional<AttrValue> dflt;  // canonical specs leave out a value equal to the default
  bool required = false;
  std::string doc;
};

using LayerBuildFn =
    std::function<ValueId(Graph&, const LayerSpec&, const std::vector<ValueId>& inputs)>;

struct LayerDef {
  std::string type;
  std::string doc;
  std::vector<KeyDef> keys;
  int min_inputs = 1, max_inputs = 1;
  LayerBuildFn build;
  // Rewrites shorthands and checks keys against each other (after each key was checked alone).
  std::function<void(LayerSpec&)> check;
};

const std::vector<LayerDef>& layer_defs();
// Resolves aliases (inner_product -> fc); nullptr for an unknown type.
const LayerDef* find_layer_def(const std::string& type);
std::string known_layer_types();  // "add, batch_norm, concat, ..."
const KeyDef* find_key(const LayerDef& def, const std::string& key);
std::string allowed_keys(const LayerDef& def);  // "name, input, filters, kernel, ..."

// Checks each key (known, right kind, in range), expands shorthands, checks that required keys
// are there and drops values equal to their defaults. Throws FieldError.
void canonicalize_layer(LayerSpec& layer);

// Initializers as written: "xavier", "msra", "gaussian(STD)", "uniform(SCALE)",
// "constant(VALUE)" ("constant" alone is 0); a bare number is a constant.
Init parse_init(std::string_view text, const std::string& field);  // throws FieldError
std::string init_text(const Init& init);
// Shortest text that reads back as the same double ("0.01", "1e-05", "3").
std::string format_number(double v);

// A problem with a layer of a network (layer = its index, -1 for the network's own fields).
class LayerError : public FieldError {
 public:
  LayerError(int layer, std::string field, const std::string& what)
      : FieldError(std::move(field), what), layer_(layer) {}
  int layer() const { return layer_; }

 private:
  int layer_;
};

// Checks a whole spec and makes it canonical: every layer canonical and named (a layer without
// a name is TYPE<k>, its k-th layer of that type), inputs that only repeat the default left
// out. Throws LayerError.
void canonicalize_network(NetworkSpec& spec);
// The recipe's values in range; throws FieldError naming "train.KEY".
void check_recipe(const Recipe& r);
// What errors name as the file: the file, or "NAME (C++ builder)".
std::string spec_origin(const NetworkSpec& spec);

// Shared bounds of the format.
constexpr int64_t kMaxDim = int64_t{1} << 16;       // input and kernel extents
constexpr int64_t kMaxChannels = int64_t{1} << 20;  // filters, groups
constexpr int64_t kMaxOutputs = int64_t{1} << 24;   // fc outputs, classes
constexpr int64_t kMaxElements = int64_t{1} << 40;  // elements per example of any value
constexpr int64_t kMaxLayers = 5000;
constexpr int64_t kMaxBatch = int64_t{1} << 20;

// Valid UTF-8 without control characters (newlines and tabs only where `multiline`).
bool printable_text(const std::string& s, bool multiline);

// Product of dims, or -1 when it would pass kMaxElements.
int64_t bounded_numel(const Dims& dims);

}  // namespace myelin
