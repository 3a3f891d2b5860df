#include "data/archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <vector>

#include "core/error.h"
#include "data/io.h"

namespace fs = std::filesystem;

namespace myelin {

namespace {

using ReadArchive = std::unique_ptr<archive, decltype(&archive_read_free)>;

std::string in_quotes(const std::string& s) {
  return "'" + s + "'";
}

// Only the formats we document: anything else libarchive could read (cpio, 7z, rar, ISO) is
// refused, which keeps the attack surface to two well-worn readers.
ReadArchive open_reader(const std::string& path) {
  ReadArchive a(archive_read_new(), archive_read_free);
  if (!a) throw Error("libarchive: out of memory opening " + path);
  archive_read_support_filter_gzip(a.get());
  archive_read_support_format_tar(a.get());
  archive_read_support_format_gnutar(a.get());
  archive_read_support_format_zip(a.get());
  if (archive_read_open_filename(a.get(), path.c_str(), 1 << 16) != ARCHIVE_OK)
    throw DataError(path, -1,
                    std::string("not a readable .zip, .tar or .tar.gz archive: ") +
                        archive_error_string(a.get()));
  return a;
}

// An entry's path relative to the output directory, or an empty path for entries to skip
// ("./", __MACOSX/). Throws for absolute paths and `..` components.
fs::path safe_relative_path(const std::string& archive_path, const std::string& name) {
  if (name.empty()) throw DataError(archive_path, -1, "an entry has an empty name");
  if (name.front() == '/')
    throw DataError(archive_path, -1, "entry " + in_quotes(name) + " has an absolute path");
  fs::path rel;
  for (size_t begin = 0; begin <= name.size();) {
    size_t end = name.find('/', begin);
    if (end == std::string::npos) end = name.size();
    std::string part = name.substr(begin, end - begin);
    begin = end + 1;
    if (part.empty() || part == ".") continue;
    if (part == "..")
      throw DataError(archive_path, -1,
                      "entry " + in_quotes(name) +
                          " has a '..' component (it would land outside the directory)");
    rel /= part;
  }
  if (!rel.empty() && *rel.begin() == "__MACOSX") return {};
  return rel;
}

std::string entry_name(archive_entry* e) {
  const char* name = archive_entry_pathname(e);
  if (!name) name = archive_entry_pathname_utf8(e);
  return name ? name : "";
}

// Why an entry of this type is refused, or empty for files and directories.
std::string refused_type(archive_entry* e) {
  if (archive_entry_hardlink(e)) return "is a hard link";
  switch (archive_entry_filetype(e)) {
    case AE_IFREG:
    case AE_IFDIR:
      return "";
    case AE_IFLNK:
      return "is a symbolic link";
    case AE_IFCHR:
    case AE_IFBLK:
      return "is a device";
    case AE_IFIFO:
      return "is a FIFO";
    case AE_IFSOCK:
      return "is a socket";
    default:
      return "has an unknown file type";
  }
}

class Extractor {
 public:
  Extractor(std::string archive_path, fs::path out, const ExtractLimits& limits)
      : path_(std::move(archive_path)), out_(std::move(out)), limits_(limits) {}
  ExtractResult run();

 private:
  void extract_entry(archive* a, archive_entry* e);
  void write_file(archive* a, const std::string& name, const fs::path& rel, int64_t declared);
  void count_entry(const std::string& name);
  [[noreturn]] void too_big(const std::string& name) const;
  [[noreturn]] void libarchive_error(archive* a, const std::string& when) const;

  std::string path_;
  fs::path out_;
  ExtractLimits limits_;
  ExtractResult result_;
  int64_t entries_ = 0;
  std::vector<char> buf_ = std::vector<char>(1 << 16);
};

void Extractor::libarchive_error(archive* a, const std::string& when) const {
  const char* msg = archive_error_string(a);
  throw DataError(path_, -1, when + ": " + (msg ? msg : "unknown libarchive error"));
}

void Extractor::too_big(const std::string& name) const {
  throw DataError(path_, -1,
                  "extracting entry " + in_quotes(name) + " would exceed the limit of " +
                      std::to_string(limits_.max_bytes) + " bytes of uncompressed data");
}

void Extractor::count_entry(const std::string& name) {
  if (++entries_ > limits_.max_files)
    throw DataError(path_, -1,
                    "more than " + std::to_string(limits_.max_files) + " entries (at " +
                        in_quotes(name) + "): the archive exceeds the limit on files");
}

ExtractResult Extractor::run() {
  ReadArchive a = open_reader(path_);
  archive_entry* e = nullptr;
  for (bool first = true;; first = false) {
    int r = archive_read_next_header(a.get(), &e);
    if (r == ARCHIVE_EOF) break;
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
      if (first) libarchive_error(a.get(), "not a readable .zip, .tar or .tar.gz archive");
      libarchive_error(a.get(), "corrupt archive after " + std::to_string(entries_) + " entries");
    }
    extract_entry(a.get(), e);
  }
  if (result_.files == 0) throw DataError(path_, -1, "the archive holds no files");
  return result_;
}

void Extractor::extract_entry(archive* a, archive_entry* e) {
  std::string name = entry_name(e);
  fs::path rel = safe_relative_path(path_, name);
  std::string why = refused_type(e);
  if (!why.empty()) throw DataError(path_, -1, "entry " + in_quotes(name) + " " + why);
  if (rel.empty()) return;  // its data is skipped by the next read_next_header
  count_entry(name);
  try {
    if (archive_entry_filetype(e) == AE_IFDIR) {
      fs::create_directories(out_ / rel);
      return;
    }
    fs::create_directories(out_ / rel.parent_path());
  } catch (const fs::filesystem_error& err) {
    throw DataError(path_, -1,
                    "cannot create entry " + in_quotes(name) + ": " + err.code().message());
  }
  int64_t declared = archive_entry_size_is_set(e) ? archive_entry_size(e) : -1;
  write_file(a, name, rel, declared);
}

// Streams the entry's data into a new file (O_EXCL: never over one already written, and with
// O_NOFOLLOW never through a link), counting bytes against the limit as they come.
void Extractor::write_file(archive* a, const std::string& name, const fs::path& rel,
                           int64_t declared) {
  if (declared > limits_.max_bytes - result_.bytes) too_big(name);
  std::string target = (out_ / rel).string();
  int fd = ::open(target.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) {
    bool twice = errno == EEXIST;
    throw DataError(path_, -1,
                    "cannot create entry " + in_quotes(name) + ": " + data::errno_text() +
                        (twice ? " (the archive holds it twice)" : ""));
  }
  std::unique_ptr<int, void (*)(int*)> closer(&fd, [](int* f) { ::close(*f); });
  for (;;) {
    la_ssize_t n = archive_read_data(a, buf_.data(), buf_.size());
    if (n == 0) break;
    if (n < 0) libarchive_error(a, "corrupt archive at entry " + in_quotes(name));
    if (n > limits_.max_bytes - result_.bytes) too_big(name);
    result_.bytes += n;
    for (la_ssize_t done = 0; done < n;) {
      ssize_t w = ::write(fd, buf_.data() + done, static_cast<size_t>(n - done));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) throw Error("cannot write " + target + ": " + data::errno_text());
      done += w;
    }
  }
  ++result_.files;
}

bool hidden(const fs::path& p) {
  std::string n = p.filename().string();
  return n.empty() || n.front() == '.' || n == "__MACOSX";
}

// The visible entries of a directory.
std::vector<fs::directory_entry> visible_entries(const fs::path& dir) {
  std::vector<fs::directory_entry> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (!hidden(e.path())) out.push_back(e);
  return out;
}

bool has_subdirectory(const fs::path& dir) {
  for (const auto& e : visible_entries(dir))
    if (e.is_directory()) return true;
  return false;
}

// Descends through folders that wrap everything ("photos.zip" holding "photos/cat/1.png"), but
// never into a single class folder: a folder of images stays one class of its parent.
std::string dataset_root(const fs::path& out) {
  fs::path root = out;
  for (int depth = 0; depth < 8; ++depth) {
    auto entries = visible_entries(root);
    if (entries.size() != 1 || !entries[0].is_directory() || !has_subdirectory(entries[0].path()))
      break;
    root = entries[0].path();
  }
  return root.string();
}

// Leaves out_dir as it was found when extraction fails: removed if we made it, else emptied.
class CleanupGuard {
 public:
  CleanupGuard(fs::path dir, bool created) : dir_(std::move(dir)), created_(created) {}
  ~CleanupGuard() {
    if (done_) return;
    std::error_code ec;
    if (created_) {
      fs::remove_all(dir_, ec);
      return;
    }
    for (const auto& e : fs::directory_iterator(dir_, ec)) fs::remove_all(e.path(), ec);
  }
  void release() { done_ = true; }

 private:
  fs::path dir_;
  bool created_, done_ = false;
};

// Creates out_dir, or checks that it is empty; returns whether it was created.
bool prepare_out_dir(const fs::path& out) {
  std::error_code ec;
  if (fs::exists(fs::symlink_status(out, ec))) {
    if (!fs::is_directory(out, ec)) throw Error(out.string() + " exists and is not a directory");
    if (!fs::is_empty(out, ec))
      throw Error("cannot extract into " + out.string() + ": the directory is not empty");
    return false;
  }
  if (!fs::create_directories(out, ec) && ec)
    throw Error("cannot create " + out.string() + ": " + ec.message());
  return true;
}

}  // namespace

ExtractResult extract_archive(const std::string& archive_path, const std::string& out_dir,
                              const ExtractLimits& limits) {
  std::error_code ec;
  if (!fs::is_regular_file(archive_path, ec))
    throw DataError(archive_path, -1, "no such file (expected a .zip, .tar or .tar.gz archive)");
  fs::path out = fs::absolute(out_dir);
  CleanupGuard guard(out, prepare_out_dir(out));
  Extractor x(archive_path, out, limits);
  ExtractResult r = x.run();
  r.root = dataset_root(out);
  guard.release();
  return r;
}

}  // namespace myelin
