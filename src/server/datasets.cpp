// Dataset rows as the API and the scheduler see them.
#include "server/datasets.h"

#include <filesystem>

#include "model/adapt.h"
#include "server/datasets_util.h"

namespace myelin::server {

namespace fs = std::filesystem;

namespace {

constexpr const char* kColumns =
    "SELECT d.id, d.name, d.owner, u.name, d.spec, d.state, d.progress, d.error, d.info, "
    "d.created, d.updated FROM datasets d LEFT JOIN users u ON u.id = d.owner";

nlohmann::json parsed(const Statement& q, int col) {
  if (q.is_null(col)) return nlohmann::json::object();
  nlohmann::json j = nlohmann::json::parse(q.text(col), nullptr, false);
  return j.is_discarded() ? nlohmann::json::object() : j;
}

nlohmann::json or_null(const Statement& q, int col) {
  return q.is_null(col) ? nlohmann::json() : nlohmann::json(q.text(col));
}

nlohmann::json source_json(const nlohmann::json& spec) {
  if (spec.value("kind", "") == "upload") return spec.value("upload", int64_t{0});
  return spec.value("source", "");
}

// [{"label", "name", "train", "test"}] from the info the builder kept.
nlohmann::json classes_json(const nlohmann::json& info) {
  nlohmann::json out = nlohmann::json::array();
  const nlohmann::json names = info.value("classes", nlohmann::json::array());
  const nlohmann::json splits = info.value("splits", nlohmann::json::object());
  for (size_t k = 0; k < names.size(); ++k) {
    nlohmann::json c = {{"label", k}, {"name", names[k]}};
    for (const auto& [split, s] : splits.items()) {
      const nlohmann::json& counts = s.at("class_counts");
      c[split] = k < counts.size() ? counts[k] : nlohmann::json(0);
    }
    out.push_back(std::move(c));
  }
  return out;
}

nlohmann::json examples_json(const nlohmann::json& info) {
  nlohmann::json out = nlohmann::json::object();
  const nlohmann::json splits = info.value("splits", nlohmann::json::object());
  for (const auto& [split, s] : splits.items()) out[split] = s.at("count");
  return out;
}

// A text dataset's facts from the info the builder kept (null until it is built).
nlohmann::json text_json(const nlohmann::json& info) {
  if (info.value("kind", "") != "text") return nullptr;
  nlohmann::json out = nlohmann::json::object();
  for (const char* k :
       {"level", "files", "vocabulary_size", "train_tokens", "validation_tokens", "symbols"})
    out[k] = info.value(k, nlohmann::json());
  return out;
}

nlohmann::json row_json(const Statement& q) {
  nlohmann::json spec = parsed(q, 4), info = parsed(q, 8);
  bool text = spec.value("text", nlohmann::json()).is_string();
  nlohmann::json options = spec;
  for (const char* k : {"kind", "source", "upload"}) options.erase(k);
  if (options.value("size", nlohmann::json()).is_array())  // as the create request takes it
    options["size"] = options["size"][0].dump() + "x" + options["size"][1].dump();
  return {{"id", q.integer(0)},
          {"name", q.text(1)},
          {"owner", q.integer(2)},
          {"owner_name", or_null(q, 3)},
          {"source", source_json(spec)},
          {"kind", text ? "text" : "image"},
          {"options", options},
          {"state", q.text(5)},
          {"progress", q.real(6)},
          {"error", or_null(q, 7)},
          {"shape", info.value("shape", nlohmann::json())},
          {"num_classes", info.value("classes", nlohmann::json::array()).size()},
          {"classes", classes_json(info)},
          {"examples", examples_json(info)},
          {"text", text_json(info)},
          {"bytes", info.value("bytes", int64_t{0})},
          {"build_seconds", info.value("seconds", nlohmann::json())},
          {"created", q.real(9)},
          {"updated", q.real(10)}};
}

}  // namespace

std::string dataset_dir(const Context& c, int64_t id) {
  return c.datasets_dir() + "/" + std::to_string(id);
}

int64_t dir_bytes(const std::string& dir) {
  int64_t total = 0;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    if (it->is_regular_file(ec)) total += static_cast<int64_t>(it->file_size(ec));
  return total;
}

nlohmann::json dataset_json(const Context& c, int64_t id) {
  Statement q = c.db.query(std::string(kColumns) + " WHERE d.id = ?", {id});
  if (!q.step()) throw ApiError(404, "no dataset " + std::to_string(id));
  return row_json(q);
}

nlohmann::json dataset_list_json(const Context& c) {
  nlohmann::json out = nlohmann::json::array();
  Statement q = c.db.query(std::string(kColumns) + " ORDER BY d.id");
  while (q.step()) out.push_back(row_json(q));
  return out;
}

DatasetView dataset_view(const Context& c, int64_t id) {
  Statement q =
      c.db.query("SELECT name, state, owner, info, spec FROM datasets WHERE id = ?", {id});
  if (!q.step()) throw ApiError(404, "no dataset " + std::to_string(id));
  DatasetView v;
  v.id = id;
  v.name = q.text(0);
  v.state = q.text(1);
  v.owner = q.integer(2);
  v.data_spec = store_dir(dataset_dir(c, id));
  nlohmann::json info = parsed(q, 3);
  if (parsed(q, 4).value("text", nlohmann::json()).is_string()) {
    v.kind = "text";
    v.classes = info.value("vocabulary_size", int64_t{0});
    return v;
  }
  if (info.contains("shape")) v.input = info["shape"].get<Dims>();
  v.class_names = info.value("classes", std::vector<std::string>{});
  v.classes = static_cast<int64_t>(v.class_names.size());
  return v;
}

void check_network_kind(const NetworkSpec& net, const DatasetView& ds) {
  bool tokens = net.input_type == "tokens";
  std::string what = "dataset " + std::to_string(ds.id) + " (" + ds.name + ")";
  if (ds.is_text() && !tokens)
    throw ApiError(400, what +
                            " is text: it trains text networks (input_type: tokens, such as "
                            "char-lstm), and '" +
                            net.name + "' reads images");
  if (!ds.is_text() && tokens)
    throw ApiError(400, what + " holds images, and '" + net.name +
                            "' reads text (input_type: tokens): make a text dataset for it, or "
                            "pick an image network");
}

NetworkSpec fit_network(const NetworkSpec& net, const DatasetView& ds) {
  check_network_kind(net, ds);
  if (ds.is_text()) return adapt_network(net, net.input, ds.classes);
  return adapt_network(net, ds.input, ds.classes);
}

}  // namespace myelin::server
