// Unpacking uploaded datasets: .zip, .tar and .tar.gz archives (told apart by their content, not
// their name) extracted with libarchive into a fresh directory.
//
// Archives come from users' browsers, so nothing in them is trusted: an entry with an absolute
// path, a `..` component, a symbolic or hard link, or a device, FIFO or socket is refused (a
// DataError naming the entry), so nothing is ever written outside the output directory; the
// total size and number of entries are limited while streaming (a zip bomb stops at the limit);
// file modes, owners and times are not restored. On any error the directory is left as it was
// found (removed when this call created it).
#pragma once
#include <cstdint>
#include <string>

namespace myelin {

struct ExtractLimits {
  int64_t max_bytes = int64_t{2} << 30;  // uncompressed bytes written, all files together
  int64_t max_files = 200000;            // entries created: files and directories
};

struct ExtractResult {
  // The directory to open as an image folder: out_dir, or the folder the archive wraps
  // everything in ("photos/cat/1.png" gives out_dir/photos; dot-files are ignored).
  std::string root;
  int64_t files = 0;  // regular files written
  int64_t bytes = 0;  // their total size
};

// Extracts `archive_path` into `out_dir`, which must be missing or an empty directory. Entries
// under __MACOSX/ (resource forks macOS adds to zips) are skipped. Throws DataError naming the
// archive and the entry for an unsafe entry, a corrupt or truncated archive (with libarchive's
// message), a file that is no archive, and a limit exceeded; Error when out_dir is not empty.
ExtractResult extract_archive(const std::string& archive_path, const std::string& out_dir,
                              const ExtractLimits& limits = {});

}  // namespace myelin
