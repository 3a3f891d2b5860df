// POST /api/v1/uploads: an image (to classify), an archive of class folders (to make a dataset
// from) or a text file (to make a text dataset from). Files are kept under DATA_DIR/uploads with
// names the server makes; the client's file name is only shown.
//
// An archive is unpacked here, not when a dataset is made from it: a corrupt archive, an entry
// that would escape the folder or a zip bomb is then a 4xx on the upload itself, and previews and
// datasets of the same upload read one folder. The uploads row's `path` is that folder (the
// archive's image root); the archive itself is removed once unpacked.
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "data/archive.h"
#include "server/datasets.h"
#include "server/datasets_util.h"

namespace myelin::server {

namespace fs = std::filesystem;

namespace {

// The client's file name as a label: its last component, printable, at most 200 bytes.
std::string display_name(const std::string& filename) {
  std::string base = fs::path(filename).filename().string(), out;
  for (char ch : base)
    if (static_cast<unsigned char>(ch) >= 0x20 && ch != 0x7f) out += ch;
  if (out.size() > 200) out.resize(200);
  return out.empty() ? "upload" : out;
}

// Written under a temporary name, then renamed, so a crash never leaves half a file in place.
void write_file(const std::string& path, const std::string& bytes) {
  std::string tmp = path + ".part";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out.flush()) throw std::runtime_error("cannot write " + tmp);
  }
  fs::rename(tmp, path);
}

std::string describe_head(const std::string& b) {
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < std::min<size_t>(b.size(), 8); ++i) {
    unsigned char ch = static_cast<unsigned char>(b[i]);
    s += std::string(s.empty() ? "" : " ") + hex[ch >> 4] + hex[ch & 15];
  }
  return s.empty() ? "nothing (the file is empty)" : s;
}

// Unpacks the archive at `archive` next to it; returns the image root. 400 naming what is wrong.
std::string unpack(const Context& c, const std::string& archive, const std::string& dir) {
  ExtractLimits limits;
  limits.max_bytes = std::max<int64_t>(limits.max_bytes, 4 * c.options.max_upload_bytes);
  try {
    ExtractResult r = extract_archive(archive, dir, limits);
    if (r.files == 0) throw ApiError(400, "the archive holds no files");
    return r.root;
  } catch (const ApiError&) {
    std::error_code ec;
    fs::remove_all(dir, ec);
    throw;
  } catch (const Error& e) {
    throw ApiError(400, std::string("the archive cannot be unpacked: ") + e.what());
  }
}

// Stores the upload; returns its path for the row (the image or text file, or the archive's
// folder).
std::string store(const Context& c, const std::string& bytes, UploadKind kind) {
  std::string stem = c.uploads_dir() + "/" + random_hex(12);
  if (kind == UploadKind::image || kind == UploadKind::text) {
    std::string path = stem + (kind == UploadKind::text ? ".txt"
                               : bytes[0] == '\x89'     ? ".png"
                                                        : ".jpg");
    write_file(path, bytes);
    return path;
  }
  std::string archive = stem + ".archive";
  write_file(archive, bytes);
  std::string root;
  try {
    root = unpack(c, archive, stem + ".d");
  } catch (...) {
    fs::remove(archive);
    throw;
  }
  fs::remove(archive);
  return root;
}

void upload(Context& c, const Request& req, Response& res, const Call& call) {
  int64_t limit = c.options.max_upload_bytes;
  std::string too_big =
      "the upload is larger than this server's limit of " + std::to_string(limit) + " bytes";
  if (static_cast<int64_t>(req.body.size()) > limit + (1 << 20)) throw ApiError(413, too_big);
  if (!req.is_multipart_form_data() || !req.has_file("file"))
    throw ApiError(400, "send the file as multipart/form-data in a field named 'file'");
  httplib::MultipartFormData file = req.get_file_value("file");
  if (static_cast<int64_t>(file.content.size()) > limit) throw ApiError(413, too_big);
  UploadKind kind = sniff_upload(file.content);
  if (kind == UploadKind::unknown)
    throw ApiError(415, "'" + display_name(file.filename) +
                            "' is neither an image (PNG, JPEG), an archive (.zip, .tar, "
                            ".tar.gz) nor UTF-8 text: it starts with " +
                            describe_head(file.content));
  std::string path = store(c, file.content, kind);
  std::string name = display_name(file.filename);
  const char* kind_name = kind == UploadKind::image  ? "image"
                          : kind == UploadKind::text ? "text"
                                                     : "archive";
  int64_t bytes = static_cast<int64_t>(file.content.size());
  c.db.run("INSERT INTO uploads(owner, name, path, bytes, kind, created) VALUES(?, ?, ?, ?, ?, ?)",
           {call.who.user, name, path, bytes, std::string(kind_name), now_seconds()});
  send_json(res,
            {{"id", c.db.last_insert_id()}, {"name", name}, {"bytes", bytes}, {"kind", kind_name}},
            201);
}

}  // namespace

void add_upload_routes(Router& r, Context& c) {
  r.add("POST", "/api/v1/uploads",
        [&c](const Request& q, Response& s, const Call& k) { upload(c, q, s, k); });
}

}  // namespace myelin::server
