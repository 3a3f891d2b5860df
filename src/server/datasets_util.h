// The pieces the dataset routes, the builder and the upload routes share: what a create request
// asks for (checked before anything is queued), where a dataset's files live, and its rows as
// JSON.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "data/dataset.h"
#include "server/api.h"
#include "server/context.h"

namespace myelin::server {

// A dataset's source and options as the create request gave them, checked. Stored as the row's
// `spec` (JSON) so that a dataset left building by a killed server can be built again.
struct DatasetSpec {
  std::string kind;    // builtin | path | upload
  std::string source;  // fashion-mnist / mnist, the canonical server path, or the upload's path
  int64_t upload = 0;  // kind upload: its id
  // A text dataset's level ("char" | "word"; data/text.h), "" for images. Of the options, text
  // takes only the validation percent (0 to 50, 5 by default).
  std::string text;
  OpenOptions open;
  bool is_text() const { return !text.empty(); }
};

// Reads and checks the fields of a create or preview body (all but "name"): an unknown source,
// a path outside the allowed roots, a bad size, an upload that is not the caller's archive are
// ApiErrors with a message that says what was expected.
DatasetSpec parse_dataset_spec(const Context& c, const nlohmann::json& body, const Identity& who);

nlohmann::json spec_json(const DatasetSpec& s);
DatasetSpec spec_from_json(const nlohmann::json& j);

// What create_store (or, for text, build_text_corpus) may read for this spec, checked again at
// build time (a folder can change between the request and the build): ApiError 403 when a
// symbolic link inside a folder, or a path in a list file, leads outside the allowed roots. For
// text: 400 when a file is empty, binary or not UTF-8 in its first 64 KiB (the builder reads
// the rest, and a folder's files, and fails naming the file and byte).
std::string checked_source(const Context& c, const DatasetSpec& s);

// DATA_DIR/datasets/ID and the store inside it.
std::string dataset_dir(const Context& c, int64_t id);
inline std::string store_dir(const std::string& dataset_dir) {
  return dataset_dir + "/store";
}

// Bytes of every file under `dir` (0 when it is missing).
int64_t dir_bytes(const std::string& dir);

// A dataset row as the API answers it; 404 when there is none.
nlohmann::json dataset_json(const Context& c, int64_t id);
nlohmann::json dataset_list_json(const Context& c);

// Uploads: where they are kept and what a file's first bytes say it is. Text: no NUL byte and
// valid UTF-8 in the first 8000 bytes (a sequence cut at that point counts as valid).
enum class UploadKind { unknown, image, archive, text };
UploadKind sniff_upload(const std::string& bytes);

// Where `bytes` stop being text: the offset of the first NUL byte or byte that is not part of
// valid UTF-8, with `why` set; npos when it is all text. A sequence cut by the end of `bytes`
// is valid when `cut_ok` (a file's first bytes, not all of it).
size_t first_non_text_byte(const std::string& bytes, bool cut_ok, std::string& why);

}  // namespace myelin::server
