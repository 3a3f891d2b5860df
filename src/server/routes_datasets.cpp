// The dataset routes: create (queued for the builder), list, describe, delete, and the PNG views
// the web UI shows (mean image, example grids, single examples, a preview before creating); for
// a text dataset, excerpts of its text instead of the pictures.
#include <algorithm>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "data/io.h"
#include "data/preview.h"
#include "data/store.h"
#include "data/text.h"
#include "server/datasets.h"
#include "server/datasets_util.h"

namespace myelin::server {

namespace fs = std::filesystem;

namespace {

void send_png(Response& res, const std::vector<uint8_t>& png) {
  // Ids can be reused after a delete, so a browser must ask again rather than trust its cache.
  res.set_header("Cache-Control", "no-cache");
  res.set_content(std::string(png.begin(), png.end()), "image/png");
}

// A query parameter that must be an integer in [lo, hi]; `fallback` when absent.
int64_t query_int(const Request& req, const std::string& key, int64_t fallback, int64_t lo,
                  int64_t hi) {
  if (!req.has_param(key.c_str())) return fallback;
  std::string text = req.get_param_value(key.c_str());
  size_t used = 0;
  int64_t v = 0;
  try {
    v = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size() || v < lo || v > hi)
    throw ApiError(400, "'" + key + "' must be an integer from " + std::to_string(lo) + " to " +
                            std::to_string(hi) + ", got '" + text + "'");
  return v;
}

// A ready dataset, or 409.
DatasetView ready_dataset(const Context& c, int64_t id) {
  DatasetView v = dataset_view(c, id);
  if (v.state != "ready")
    throw ApiError(409, "dataset " + std::to_string(id) + " is " + v.state + ", not ready");
  return v;
}

// The split a ready image dataset keeps under `name` ("train", or "test"/"val": its second
// split); 400 for a text dataset, which has no pictures.
std::shared_ptr<Dataset> open_split(const Context& c, int64_t id, const std::string& name) {
  DatasetView v = ready_dataset(c, id);
  if (v.is_text())
    throw ApiError(400, "dataset " + std::to_string(id) +
                            " is text: it has no images; GET /api/v1/datasets/" +
                            std::to_string(id) + "/text gives an excerpt of its text");
  DatasetSplits s = open_store_dir(v.data_spec);
  if (name == "train") return s.train;
  if (name != "test" && name != "val")
    throw ApiError(400, "'split' must be train or test, got '" + name + "'");
  if (!s.test) throw ApiError(404, "dataset " + std::to_string(id) + " has no test split");
  return s.test;
}

// Pictures are drawn in memory: a grid of large examples could take gigabytes.
constexpr int64_t kMaxPixels = int64_t{64} << 20;

void check_pixels(int64_t pixels) {
  if (pixels > kMaxPixels)
    throw ApiError(400, "that picture would have " + std::to_string(pixels) +
                            " pixel values; ask for fewer or smaller examples (at most " +
                            std::to_string(kMaxPixels) + ")");
}

std::string split_param(const Request& req, const char* fallback) {
  return req.has_param("split") ? req.get_param_value("split") : fallback;
}

// Renders with the data layer; its Errors (a class without examples, ...) are the caller's.
template <class F>
std::vector<uint8_t> render(F&& f) {
  try {
    return f();
  } catch (const ApiError&) {
    throw;
  } catch (const DataError&) {
    throw;
  } catch (const Error& e) {
    throw ApiError(400, e.what());
  }
}

void create(Context& c, DatasetBuilder& builder, const Request& req, Response& res,
            const Call& call) {
  nlohmann::json body = json_body(req);
  std::string name = need_string(body, "name");
  if (name.size() > 200) throw ApiError(400, "'name' is longer than 200 characters");
  DatasetSpec spec = parse_dataset_spec(c, body, call.who);
  int64_t id = 0;
  c.db.transaction([&] {
    double now = now_seconds();
    c.db.run(
        "INSERT INTO datasets(name, owner, spec, state, progress, dir, created, updated) "
        "VALUES(?, ?, ?, 'building', 0, '', ?, ?)",
        {name, call.who.user, spec_json(spec).dump(), now, now});
    id = c.db.last_insert_id();
    c.db.run("UPDATE datasets SET dir = ? WHERE id = ?", {dataset_dir(c, id), id});
  });
  std::error_code ec;
  fs::remove_all(dataset_dir(c, id), ec);  // a reused id's leftovers from a crash
  c.events.change("dataset", id, {{"id", id}, {"state", "building"}, {"progress", 0.0}});
  builder.wake();
  send_json(res, {{"id", id}, {"state", "building"}}, 201);
}

// Jobs keep using a dataset after they finish (evaluation, classify reads its labels), so any
// job row that names it keeps it.
void remove(Context& c, const Call& call, Response& res) {
  int64_t id = call.id();
  std::string what = "dataset " + std::to_string(id);
  c.db.transaction([&] {
    std::optional<int64_t> owner = c.db.scalar("SELECT owner FROM datasets WHERE id = ?", {id});
    if (!owner) throw ApiError(404, "no " + what);
    require_owner(call.who, *owner, what);
    std::string jobs;
    Statement q = c.db.query("SELECT id FROM jobs WHERE dataset = ? ORDER BY id", {id});
    while (q.step()) jobs += (jobs.empty() ? "" : ", ") + std::to_string(q.integer(0));
    if (!jobs.empty())
      throw ApiError(409, what + " is used by jobs " + jobs + ": delete them first");
    c.db.run("DELETE FROM datasets WHERE id = ?", {id});
  });
  std::error_code ec;
  fs::remove_all(dataset_dir(c, id), ec);
  c.events.change("dataset", id, {{"id", id}, {"state", "deleted"}});
  send_json(res, {{"id", id}, {"deleted", true}});
}

void mean(const Context& c, const Call& call, Response& res) {
  std::shared_ptr<Dataset> train = open_split(c, call.id(), "train");
  std::string file = store_dir(dataset_dir(c, call.id())) + "/mean.png";
  if (fs::exists(file)) return send_png(res, data::read_file(file));  // create_store drew it
  send_png(res, render([&] { return mean_png(*train); }));
}

void examples(const Context& c, const Request& req, const Call& call, Response& res) {
  std::shared_ptr<Dataset> data = open_split(c, call.id(), split_param(req, "train"));
  int64_t label = query_int(req, "class", -1, -1, data->num_classes() - 1);
  int64_t count = query_int(req, "count", 32, 1, 1024);
  int64_t columns = query_int(req, "columns", 8, 1, 256);
  int64_t seed = query_int(req, "seed", 1, 0, INT64_MAX);
  check_pixels(count * data->example_shape().numel());
  send_png(res, render([&] {
             return examples_grid_png(*data, static_cast<int>(label), static_cast<int>(count),
                                      static_cast<int>(columns), static_cast<uint64_t>(seed));
           }));
}

void example(const Context& c, const Request& req, const Call& call, Response& res) {
  std::shared_ptr<Dataset> data = open_split(c, call.id(), split_param(req, "test"));
  int64_t index = call.id(1);
  if (index >= data->size())
    throw ApiError(404, "dataset " + std::to_string(call.id()) + " has no example " +
                            std::to_string(index) + " in that split (it holds " +
                            std::to_string(data->size()) + ")");
  int64_t scale = query_int(req, "scale", 1, 1, 16);
  check_pixels(scale * scale * data->example_shape().numel());
  send_png(res, render([&] { return example_png(*data, index, static_cast<int>(scale)); }));
}

// Tokens [offset, offset + length) of a text dataset's split, as text. An excerpt that does not
// start the split starts after its first newline (within the first half), so that it begins
// a line; the answer says where it starts.
nlohmann::json text_excerpt(const Context& c, const Request& req, const Call& call) {
  DatasetView v = ready_dataset(c, call.id());
  if (!v.is_text())
    throw ApiError(400, "dataset " + std::to_string(v.id) +
                            " holds images: its pictures are mean.png and examples.png");
  std::string split = split_param(req, "train");
  if (split == "test" || split == "val") split = "validation";
  if (split != "train" && split != "validation")
    throw ApiError(400, "'split' must be train or validation, got '" + split + "'");
  std::string dir = v.data_spec;
  std::vector<uint8_t> header = data::read_file(dir + "/text.json");
  nlohmann::json h = nlohmann::json::parse(header.begin(), header.end(), nullptr, false);
  if (h.is_discarded() || !h.contains(split) || !h.contains("vocabulary"))
    throw DataError(dir + "/text.json", -1, "not a text dataset's header");
  std::vector<std::string> vocabulary = h["vocabulary"].get<std::vector<std::string>>();
  int64_t total = h[split].value("tokens", int64_t{0});
  int64_t offset = query_int(req, "offset", 0, 0, total);
  int64_t length = query_int(req, "length", 2000, 1, 20000);
  length = std::min(length, total - offset);
  std::vector<int32_t> tokens(static_cast<size_t>(length));
  std::string file = dir + "/" + h[split].value("file", split + ".tokens");
  std::ifstream in(file, std::ios::binary);
  in.seekg(offset * 4);
  std::vector<unsigned char> raw(tokens.size() * 4);
  in.read(reinterpret_cast<char*>(raw.data()), static_cast<std::streamsize>(raw.size()));
  if (in.gcount() != static_cast<std::streamsize>(raw.size()))
    throw DataError(file, offset * 4, "shorter than text.json says");
  for (size_t i = 0; i < tokens.size(); ++i) {  // little-endian int32
    uint32_t u = raw[4 * i] | raw[4 * i + 1] << 8 | raw[4 * i + 2] << 16 |
                 static_cast<uint32_t>(raw[4 * i + 3]) << 24;
    tokens[i] = static_cast<int32_t>(u);
    if (tokens[i] < 0 || tokens[i] >= static_cast<int32_t>(vocabulary.size()))
      throw DataError(file, (offset + static_cast<int64_t>(i)) * 4,
                      "a token outside the vocabulary");
  }
  auto newline = std::find(vocabulary.begin(), vocabulary.end(), "\n");
  if (offset > 0 && newline != vocabulary.end()) {
    auto id = static_cast<int32_t>(newline - vocabulary.begin());
    auto half = tokens.begin() + static_cast<std::ptrdiff_t>(tokens.size() / 2);
    auto at = std::find(tokens.begin(), half, id);
    if (at != half) {
      offset += (at - tokens.begin()) + 1;
      tokens.erase(tokens.begin(), at + 1);
    }
  }
  return {{"split", split},
          {"offset", offset},
          {"length", tokens.size()},
          {"tokens", total},
          {"text", decode_tokens(vocabulary, tokens)}};
}

void preview(const Context& c, const Request& req, const Call& call, Response& res) {
  nlohmann::json body = json_body(req);
  DatasetSpec spec = parse_dataset_spec(c, body, call.who);
  if (spec.is_text())
    throw ApiError(400,
                   "a preview draws images; a text dataset shows an excerpt of its text once it "
                   "is built (GET /api/v1/datasets/{id}/text)");
  int64_t count = opt_integer(body, "count").value_or(16);
  if (count < 1 || count > 64) throw ApiError(400, "'count' must be 1 to 64");
  int64_t channels = spec.open.channels ? spec.open.channels : 3;
  check_pixels(count * channels * spec.open.resize_h * spec.open.resize_w);
  send_png(res, render([&] {
             return preview_source_png(spec.source, spec.open, static_cast<int>(count));
           }));
}

}  // namespace

void add_dataset_routes(Router& r, Context& c, DatasetBuilder& builder) {
  r.add("POST", "/api/v1/datasets", [&c, &builder](const Request& q, Response& s, const Call& k) {
    create(c, builder, q, s, k);
  });
  r.add("POST", "/api/v1/datasets/preview",
        [&c](const Request& q, Response& s, const Call& k) { preview(c, q, k, s); });
  r.add("GET", "/api/v1/datasets",
        [&c](const Request&, Response& s, const Call&) { send_json(s, dataset_list_json(c)); });
  r.add("GET", "/api/v1/datasets/{id}", [&c](const Request&, Response& s, const Call& k) {
    send_json(s, dataset_json(c, k.id()));
  });
  r.add("DELETE", "/api/v1/datasets/{id}",
        [&c](const Request&, Response& s, const Call& k) { remove(c, k, s); });
  r.add("GET", "/api/v1/datasets/{id}/mean.png",
        [&c](const Request&, Response& s, const Call& k) { mean(c, k, s); });
  r.add("GET", "/api/v1/datasets/{id}/examples.png",
        [&c](const Request& q, Response& s, const Call& k) { examples(c, q, k, s); });
  r.add("GET", "/api/v1/datasets/{id}/examples/{index}.png",
        [&c](const Request& q, Response& s, const Call& k) { example(c, q, k, s); });
  r.add("GET", "/api/v1/datasets/{id}/text", [&c](const Request& q, Response& s, const Call& k) {
    send_json(s, text_excerpt(c, q, k));
  });
}

}  // namespace myelin::server
