// Checking what a dataset create request asks for, before anything is queued, and again what the
// builder is about to read.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>

#include "server/datasets_util.h"

namespace myelin::server {

namespace fs = std::filesystem;

namespace {

constexpr int64_t kMaxSide = 4096;  // larger images would make one example over 48 MiB

void parse_size(const std::string& text, OpenOptions& o) {
  static const std::regex hxw(R"(\s*(\d{1,5})\s*(?:[xX]\s*(\d{1,5}))?\s*)");
  std::smatch m;
  if (!std::regex_match(text, m, hxw))
    throw ApiError(400, "'size' must be HxW, e.g. \"32x32\", got \"" + text + "\"");
  o.resize_h = std::stoll(m[1].str());
  o.resize_w = m[2].matched ? std::stoll(m[2].str()) : o.resize_h;
  if (o.resize_h < 1 || o.resize_w < 1 || o.resize_h > kMaxSide || o.resize_w > kMaxSide)
    throw ApiError(
        400, "'size' sides must be 1 to " + std::to_string(kMaxSide) + ", got \"" + text + "\"");
}

OpenOptions parse_options(const nlohmann::json& body) {
  OpenOptions o;
  if (auto size = opt_string(body, "size")) parse_size(*size, o);
  if (auto ch = opt_integer(body, "channels")) {
    if (*ch != 1 && *ch != 3)
      throw ApiError(400, "'channels' must be 1 (gray) or 3 (color), got " + std::to_string(*ch));
    o.channels = static_cast<int>(*ch);
  }
  if (auto mode = opt_string(body, "resize")) {
    if (*mode != "squash" && *mode != "crop" && *mode != "fill")
      throw ApiError(400, "'resize' must be squash, crop or fill, got \"" + *mode + "\"");
    o.resize_mode = *mode;
  }
  if (auto v = opt_number(body, "validation")) {
    if (!(*v >= 0 && *v <= 90))
      throw ApiError(400,
                     "'validation' is a percent from 0 to 90, got " + nlohmann::json(*v).dump());
    o.validation_percent = *v;
  }
  if (auto seed = opt_integer(body, "seed")) o.seed = static_cast<uint64_t>(*seed);
  return o;
}

constexpr double kTextValidation = 5;  // percent, as `myelin dataset create --text` holds out

// "char" | "word" from the request's "text", "" when it asks for images.
std::string parse_text_level(const nlohmann::json& body) {
  auto it = body.find("text");
  if (it == body.end() || it->is_null()) return "";
  if (!it->is_string() || (*it != "char" && *it != "word"))
    throw ApiError(400,
                   "'text' must be \"char\" (a symbol per character) or \"word\" (words, "
                   "spaces and punctuation), got " +
                       it->dump());
  return it->get<std::string>();
}

// A text dataset's options: the validation percent only.
OpenOptions parse_text_options(const nlohmann::json& body) {
  for (const char* key : {"size", "channels", "resize", "seed"})
    if (body.contains(key) && !body[key].is_null())
      throw ApiError(400, std::string("'") + key +
                              "' applies to image datasets; a text dataset takes 'validation' "
                              "only (the percent of the text held out at its end)");
  OpenOptions o;
  o.validation_percent = kTextValidation;
  if (auto v = opt_number(body, "validation")) {
    if (!(*v > 0 && *v <= 50))
      throw ApiError(400,
                     "'validation' of a text dataset is a percent above 0 and at most 50, "
                     "got " +
                         nlohmann::json(*v).dump());
    o.validation_percent = *v;
  }
  return o;
}

DatasetSpec upload_spec(const Context& c, int64_t id, const Identity& who, bool text) {
  Statement q = c.db.query("SELECT owner, kind, path FROM uploads WHERE id = ?", {id});
  if (!q.step()) throw ApiError(404, "no upload " + std::to_string(id));
  require_owner(who, q.integer(0), "upload " + std::to_string(id));
  std::string what = "upload " + std::to_string(id);
  if (q.text(1) == "image")
    throw ApiError(400, what + " is an image, not an archive" + (text ? " or text" : "") +
                            ": a dataset needs " +
                            (text ? "a text file, or an archive of text files"
                                  : "a .zip or .tar.gz of class folders"));
  if (q.text(1) == "text" && !text)
    throw ApiError(400, what +
                            " is a text file: make a text dataset of it (\"text\": \"char\" or "
                            "\"word\"); an image dataset needs a .zip or .tar.gz of class folders");
  return {"upload", q.text(2), id, "", {}};
}

DatasetSpec source_spec(const Context& c, const nlohmann::json& src, const Identity& who,
                        bool text) {
  if (src.is_number_integer()) return upload_spec(c, src.get<int64_t>(), who, text);
  if (!src.is_string())
    throw ApiError(400,
                   "'source' must be \"fashion-mnist\", \"mnist\", an absolute server path "
                   "or an upload id, got " +
                       src.dump());
  std::string s = src.get<std::string>();
  if (s == "fashion-mnist" || s == "mnist") {
    if (text)
      throw ApiError(400, s + " holds images: a text dataset is made from a text file or folder "
                              "on the server, or an uploaded one");
    return {"builtin", s, 0, "", {}};
  }
  if (!s.empty() && s.find_first_not_of("0123456789") == std::string::npos)
    return upload_spec(c, std::stoll(s.substr(0, 18)), who, text);
  if (s.empty() || s[0] != '/')
    throw ApiError(400, "unknown source \"" + s + "\": expected " +
                            (text ? std::string("an absolute path on the server (a text file or "
                                                "a folder of them) or an upload id")
                                  : std::string("fashion-mnist, mnist, an absolute path on the "
                                                "server (an image folder or a list file) or an "
                                                "upload id")));
  return {"path", c.paths.resolve(s), 0, "", {}};
}

// A text file's first bytes must be text: 400 naming the file and byte otherwise.
void check_text_file(const std::string& path) {
  constexpr size_t kHead = 64 << 10;
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ApiError(400, path + ": cannot be read");
  std::string head(kHead, '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  head.resize(static_cast<size_t>(in.gcount()));
  if (head.empty()) throw ApiError(400, path + " is empty: a text dataset needs text");
  std::string why;
  size_t bad = first_non_text_byte(head, head.size() == kHead, why);
  if (bad != std::string::npos)
    throw ApiError(400, path + " is not UTF-8 text: byte " + std::to_string(bad) + " is " + why);
}

// Every symbolic link under `dir` must lead inside the roots; real files and folders under a
// folder inside the roots are inside too. A link back to a folder above it is refused: the image
// folder reader would walk it 32 levels deep, and two such links make that 2^32 folders. Folders
// reached twice through links are checked once.
struct TreeCheck {
  const PathGuard& paths;
  std::set<std::string> done;
  std::vector<std::string> above;

  void check(const std::string& dir) {
    if (!done.insert(dir).second) return;
    above.push_back(dir);
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      std::string next = it->path().string();
      if (it->is_symlink(ec)) next = paths.resolve(next);
      if (!fs::is_directory(next, ec)) continue;
      if (std::find(above.begin(), above.end(), next) != above.end())
        throw ApiError(400, it->path().string() + " links back to " + next +
                                ", a folder above it: image folders may not loop");
      check(next);
    }
    if (ec) throw ApiError(400, dir + ": cannot list the folder: " + ec.message());
    above.pop_back();
  }
};

// A list file names images anywhere ("path label" per line, relative to its folder): each must
// lie inside the roots.
void check_list_file(const PathGuard& paths, const fs::path& file) {
  std::ifstream in(file);
  if (!in) throw ApiError(400, file.string() + ": cannot be read");
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    size_t b = line.find_first_not_of(" \t\r"), e = line.find_last_not_of(" \t\r");
    if (b == std::string::npos || line[b] == '#') continue;
    std::string t = line.substr(b, e - b + 1);
    size_t split = t.find_last_of(" \t");
    if (split == std::string::npos) continue;  // the reader reports the malformed line
    fs::path p(t.substr(0, t.find_last_not_of(" \t", split) + 1));
    if (p.is_relative()) p = file.parent_path() / p;
    try {
      paths.resolve(p.lexically_normal().string());
    } catch (const ApiError& err) {
      throw ApiError(err.status, file.string() + ":" + std::to_string(n) + ": " + err.what());
    }
  }
}

}  // namespace

DatasetSpec parse_dataset_spec(const Context& c, const nlohmann::json& body, const Identity& who) {
  auto src = body.find("source");
  if (src == body.end() || src->is_null())
    throw ApiError(400,
                   "'source' is required: \"fashion-mnist\", \"mnist\", an absolute server "
                   "path or an upload id");
  std::string text = parse_text_level(body);
  DatasetSpec s = source_spec(c, *src, who, !text.empty());
  s.text = text;
  s.open = s.is_text() ? parse_text_options(body) : parse_options(body);
  bool reshaped = s.open.resize_h || s.open.channels;
  if (s.kind == "builtin" && reshaped)
    throw ApiError(400, s.source +
                            " holds 28x28 gray images: 'size' and 'channels' apply to "
                            "image folders, list files and archives only");
  checked_source(c, s);
  return s;
}

std::string checked_source(const Context& c, const DatasetSpec& s) {
  if (s.kind == "builtin") return s.source;
  std::string path = c.paths.resolve(s.source);  // a link swapped in since is caught here
  if (s.is_text()) {  // links under a folder are never followed (data/text.h)
    if (fs::is_regular_file(path))
      check_text_file(path);
    else if (!fs::is_directory(path))
      throw ApiError(400, s.source + " is neither a text file nor a folder");
    return path;
  }
  if (fs::is_directory(path))
    TreeCheck{c.paths, {}, {}}.check(path);
  else if (fs::is_regular_file(path))
    check_list_file(c.paths, path);
  else
    throw ApiError(400, s.source + " is neither a folder nor a list file");
  return path;
}

nlohmann::json spec_json(const DatasetSpec& s) {
  const OpenOptions& o = s.open;
  if (s.is_text())
    return {{"kind", s.kind},
            {"source", s.source},
            {"upload", s.upload},
            {"text", s.text},
            {"validation", o.validation_percent}};
  return {{"kind", s.kind},
          {"source", s.source},
          {"upload", s.upload},
          {"size", o.resize_h ? nlohmann::json{o.resize_h, o.resize_w} : nlohmann::json()},
          {"channels", o.channels},
          {"resize", o.resize_mode},
          {"validation", o.validation_percent},
          {"seed", o.seed}};
}

DatasetSpec spec_from_json(const nlohmann::json& j) {
  DatasetSpec s;
  s.kind = j.at("kind").get<std::string>();
  s.source = j.at("source").get<std::string>();
  s.upload = j.value("upload", int64_t{0});
  if (j.contains("text") && j["text"].is_string()) {
    s.text = j["text"].get<std::string>();
    s.open.validation_percent = j.value("validation", kTextValidation);
    return s;
  }
  if (j.contains("size") && j["size"].is_array()) {
    s.open.resize_h = j["size"][0].get<int64_t>();
    s.open.resize_w = j["size"][1].get<int64_t>();
  }
  s.open.channels = j.value("channels", 0);
  s.open.resize_mode = j.value("resize", std::string("squash"));
  s.open.validation_percent = j.value("validation", 20.0);
  s.open.seed = j.value("seed", uint64_t{1});
  return s;
}

UploadKind sniff_upload(const std::string& b) {
  auto starts = [&](const char* magic, size_t n, size_t at = 0) {
    return b.size() >= at + n && b.compare(at, n, magic, n) == 0;
  };
  if (starts("\x89PNG\r\n\x1a\n", 8) || starts("\xff\xd8\xff", 3)) return UploadKind::image;
  if (starts("PK\x03\x04", 4) || starts("PK\x05\x06", 4) || starts("\x1f\x8b", 2) ||
      starts("ustar", 5, 257))
    return UploadKind::archive;
  constexpr size_t kSniff = 8000;
  std::string why;
  if (!b.empty() &&
      first_non_text_byte(b.substr(0, kSniff), b.size() > kSniff, why) == std::string::npos)
    return UploadKind::text;
  return UploadKind::unknown;
}

size_t first_non_text_byte(const std::string& bytes, bool cut_ok, std::string& why) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const size_t n = bytes.size();
  for (size_t i = 0; i < n;) {
    unsigned char c = p[i];
    if (c == 0) {
      why = "a NUL byte, as in a binary file";
      return i;
    }
    size_t more = c < 0x80                 ? 0
                  : c >= 0xC2 && c <= 0xDF ? 1
                  : c >= 0xE0 && c <= 0xEF ? 2
                  : c >= 0xF0 && c <= 0xF4 ? 3
                                           : 4;
    // The second byte's range rules out overlong forms, surrogates and code points past U+10FFFF.
    unsigned char lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80;
    unsigned char hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
    bool ok = more < 4;
    for (size_t k = 1; ok && k <= more; ++k) {
      if (i + k >= n) {
        if (cut_ok) return std::string::npos;
        ok = false;
        break;
      }
      unsigned char b = p[i + k];
      ok = k == 1 ? b >= lo && b <= hi : (b & 0xC0) == 0x80;
    }
    if (!ok) {
      why = "not valid UTF-8";
      return i;
    }
    i += more + 1;
  }
  return std::string::npos;
}

}  // namespace myelin::server
