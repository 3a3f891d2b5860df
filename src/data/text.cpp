// Text datasets: reading and cutting UTF-8 text into symbols, the vocabulary, the saved token
// files and the truncated-BPTT batches (see text.h for the rules and the format).
#include "data/text.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string_view>
#include <unordered_map>

#include "core/error.h"
#include "data/io.h"

namespace myelin {

using namespace data;
namespace fs = std::filesystem;

namespace {

constexpr int kFormat = 1;
constexpr size_t kBinarySniff = 8000;  // a NUL byte this early: a binary file, not text
const char* const kHeader = "text.json";
const char* const kTrainFile = "train.tokens";
const char* const kValidationFile = "validation.tokens";

// ---------------------------------------------------------------------------------------------
// UTF-8

// The length of the valid UTF-8 sequence at p[i] (1 to 4), or 0 when there is none.
size_t sequence_at(const uint8_t* p, size_t n, size_t i) {
  uint8_t c = p[i];
  if (c < 0x80) return 1;
  size_t more = 0;
  uint8_t lo = 0x80, hi = 0xBF;  // the range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    more = 1;
  } else if (c >= 0xE0 && c <= 0xEF) {
    more = 2;
    if (c == 0xE0) lo = 0xA0;  // no overlong forms
    if (c == 0xED) hi = 0x9F;  // no surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    more = 3;
    if (c == 0xF0) lo = 0x90;  // no overlong forms
    if (c == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
  }
  // A lead byte, the whole sequence within the data, the second byte in range, the others
  // continuation bytes.
  bool ok = more > 0 && i + more < n && p[i + 1] >= lo && p[i + 1] <= hi;
  for (size_t k = 2; ok && k <= more; ++k) ok = (p[i + k] & 0xC0) == 0x80;
  return ok ? more + 1 : 0;
}

// The offset of the first NUL byte or byte that is not part of valid UTF-8, or npos. `why` says
// what is wrong there.
size_t first_bad_byte(const uint8_t* p, size_t n, std::string& why) {
  for (size_t i = 0; i < n;) {
    if (p[i] == 0) {
      why = "a NUL byte: expected text, this looks like a binary file";
      return i;
    }
    size_t len = sequence_at(p, n, i);
    if (len == 0) {
      why = "invalid UTF-8 (bytes " + describe_bytes(p + i, std::min<size_t>(n - i, 4), 4) +
            "): expected UTF-8 text";
      return i;
    }
    i += len;
  }
  return std::string::npos;
}

// The code point at p[i] of valid UTF-8; advances i past it.
uint32_t decode_at(const uint8_t* p, size_t& i) {
  uint32_t c = p[i++];
  if (c < 0x80) return c;
  int more = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : 1;
  uint32_t cp = c & (0x3F >> more);
  for (int k = 0; k < more; ++k) cp = (cp << 6) | (p[i++] & 0x3F);
  return cp;
}

bool is_word_char(uint32_t cp) {
  if (cp < 0x80)
    return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || (cp >= '0' && cp <= '9');
  if (cp < 0xC0 || cp == 0xD7 || cp == 0xF7) return false;
  if (cp >= 0x2000 && cp <= 0x2BFF) return false;
  if (cp >= 0x3000 && cp <= 0x303F) return false;
  return true;
}

bool is_blank(uint32_t cp) {
  return cp == ' ' || cp == '\t' || cp == '\r' || cp == '\v' || cp == '\f';
}

// Calls fn(symbol, byte offset) for each symbol of valid UTF-8 `text`: code points, or the word
// level's tokens when `words` is set (text.h gives the rules).
template <class Fn>
void for_each_symbol(std::string_view text, bool words, Fn&& fn) {
  const auto* p = reinterpret_cast<const uint8_t*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    size_t b = i;
    uint32_t cp = decode_at(p, i);
    if (words && cp != '\n') {
      if (is_blank(cp)) {
        while (i < n && is_blank(p[i])) ++i;
      } else if (is_word_char(cp)) {
        while (i < n) {
          size_t j = i;
          if (!is_word_char(decode_at(p, j))) break;
          i = j;
        }
      }
    }
    fn(text.substr(b, i - b), b);
  }
}

bool check_level(const std::string& level) {
  if (level != "char" && level != "word")
    throw UsageError("the text level must be 'char' or 'word', got '" + level + "'");
  return level == "word";
}

// ---------------------------------------------------------------------------------------------
// Reading sources

struct SourceText {
  std::string text;  // every text file joined, each ending with a newline
  int64_t files = 0, binary = 0, empty = 0;
};

// Appends one file's text; DataError naming the file and offset for NUL bytes or invalid UTF-8.
void append_file(const std::string& path, const std::vector<uint8_t>& bytes, SourceText& out) {
  std::string why;
  size_t bad = first_bad_byte(bytes.data(), bytes.size(), why);
  if (bad != std::string::npos) throw DataError(path, static_cast<int64_t>(bad), why);
  out.text.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  if (bytes.back() != '\n') out.text.push_back('\n');
  ++out.files;
}

SourceText read_source(const std::string& source) {
  SourceText out;
  std::error_code ec;
  fs::file_status st = fs::status(source, ec);
  if (ec || !fs::exists(st))
    throw DataError(source, -1, "no such file or folder: expected a text file or a folder of them");
  if (fs::is_regular_file(st)) {
    std::vector<uint8_t> bytes = read_file(source);
    if (bytes.empty()) throw DataError(source, -1, "the file is empty: expected text");
    append_file(source, bytes, out);
    return out;
  }
  if (!fs::is_directory(st))
    throw DataError(source, -1, "neither a file nor a folder: expected text");

  std::vector<std::string> paths;
  fs::recursive_directory_iterator it(source, fs::directory_options::none, ec), end;
  if (ec) throw DataError(source, -1, "cannot read the folder: " + ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec) throw DataError(source, -1, "cannot read the folder: " + ec.message());
    const fs::directory_entry& e = *it;
    std::string name = e.path().filename().string();
    if (!name.empty() && name[0] == '.') {  // hidden files and folders (.git)
      if (e.is_directory(ec) && !e.is_symlink(ec)) it.disable_recursion_pending();
      continue;
    }
    // symlink_status: links (fortune's .u8 names) are never followed.
    if (e.symlink_status(ec).type() == fs::file_type::regular) paths.push_back(e.path().string());
  }
  std::sort(paths.begin(), paths.end());
  std::vector<uint8_t> bytes;
  for (const std::string& path : paths) {
    read_file_into(path, bytes);
    if (bytes.empty()) {
      ++out.empty;
      continue;
    }
    size_t head = std::min(bytes.size(), kBinarySniff);
    if (std::memchr(bytes.data(), 0, head)) {
      ++out.binary;
      continue;
    }
    append_file(path, bytes, out);
  }
  if (out.files == 0)
    throw DataError(source, -1,
                    "no text under this folder (" + std::to_string(paths.size()) + " files, " +
                        std::to_string(out.binary) + " binary, " + std::to_string(out.empty) +
                        " empty): expected UTF-8 text files");
  return out;
}

// ---------------------------------------------------------------------------------------------
// Token files

std::vector<uint8_t> to_le_bytes(const std::vector<int32_t>& tokens) {
  std::vector<uint8_t> b(tokens.size() * 4);
  if constexpr (std::endian::native == std::endian::little) {
    if (!tokens.empty()) std::memcpy(b.data(), tokens.data(), b.size());
  } else {
    for (size_t i = 0; i < tokens.size(); ++i) {
      auto v = static_cast<uint32_t>(tokens[i]);
      for (int k = 0; k < 4; ++k) b[i * 4 + k] = static_cast<uint8_t>(v >> (8 * k));
    }
  }
  return b;
}

void write_file(const std::string& path, const void* p, size_t n) {
  AtomicFile f(path);
  f.write(p, n);
  f.commit();
}

std::vector<int32_t> read_tokens(const std::string& path, int64_t count, uint32_t crc,
                                 int64_t vocabulary) {
  std::vector<uint8_t> b = read_file(path);
  if (static_cast<int64_t>(b.size()) != count * 4)
    throw DataError(path, -1,
                    "holds " + std::to_string(b.size()) + " bytes, but " + kHeader + " says " +
                        std::to_string(count) + " tokens (" + std::to_string(count * 4) +
                        " bytes of little-endian int32)");
  std::vector<int32_t> t(static_cast<size_t>(count));
  for (size_t i = 0; i < t.size(); ++i) {
    uint32_t v = static_cast<uint32_t>(b[i * 4]) | static_cast<uint32_t>(b[i * 4 + 1]) << 8 |
                 static_cast<uint32_t>(b[i * 4 + 2]) << 16 |
                 static_cast<uint32_t>(b[i * 4 + 3]) << 24;
    t[i] = static_cast<int32_t>(v);
    if (t[i] < 0 || t[i] >= vocabulary)
      throw DataError(path, static_cast<int64_t>(i * 4),
                      "token " + std::to_string(t[i]) + " is outside the vocabulary of " +
                          std::to_string(vocabulary) + " symbols (expected 0 to " +
                          std::to_string(vocabulary - 1) + ")");
  }
  if (crc32(0, b.data(), b.size()) != crc)
    throw DataError(path, -1,
                    std::string("checksum mismatch with ") + kHeader + ": the file is damaged");
  return t;
}

}  // namespace

// -----------------------------------------------------------------------------------------------

TextCorpus build_text_corpus(const std::string& source, const std::string& level,
                             double validation_fraction) {
  const bool words = check_level(level);
  if (!(validation_fraction > 0 && validation_fraction <= 0.5)) {
    char got[32];
    std::snprintf(got, sizeof got, "%g", validation_fraction);
    throw UsageError(std::string("the validation fraction must be in (0, 0.5], got ") + got);
  }
  SourceText src = read_source(source);

  // Pass 1: the distinct symbols; pass 2: the token stream.
  std::unordered_map<std::string_view, int32_t> ids;
  int64_t n = 0;
  for_each_symbol(src.text, words, [&](std::string_view s, size_t) {
    ids.emplace(s, 0);
    ++n;
  });
  std::vector<std::string_view> symbols;
  symbols.reserve(ids.size());
  for (const auto& [s, id] : ids) symbols.push_back(s);
  std::sort(symbols.begin(), symbols.end());
  if (symbols.size() > static_cast<size_t>(INT32_MAX))
    throw DataError(source, -1, "more distinct symbols than int32 token numbers can hold");

  TextCorpus c;
  c.level = level;
  c.source = source;
  c.files = src.files;
  c.vocabulary.reserve(symbols.size());
  for (size_t i = 0; i < symbols.size(); ++i) {
    ids[symbols[i]] = static_cast<int32_t>(i);
    c.vocabulary.emplace_back(symbols[i]);
  }
  std::vector<int32_t> stream;
  stream.reserve(static_cast<size_t>(n));
  for_each_symbol(src.text, words, [&](std::string_view s, size_t) { stream.push_back(ids[s]); });

  // The last fraction is validation text (at least one token, at most half the stream).
  int64_t val = n >= 2 ? std::max<int64_t>(1, static_cast<int64_t>(std::floor(
                                                  static_cast<double>(n) * validation_fraction)))
                       : 0;
  c.train.assign(stream.begin(), stream.end() - val);
  c.validation.assign(stream.end() - val, stream.end());
  return c;
}

void save_text_dataset(const TextCorpus& corpus, const std::string& dir) {
  check_level(corpus.level);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw DataError(dir, -1, "cannot create the folder: " + ec.message());
  nlohmann::json j;
  j["kind"] = "text";
  j["format"] = kFormat;
  j["level"] = corpus.level;
  j["source"] = corpus.source;
  j["files"] = corpus.files;
  j["vocabulary_size"] = corpus.vocabulary.size();
  j["vocabulary"] = corpus.vocabulary;
  const std::pair<const char*, const std::vector<int32_t>*> splits[] = {
      {"train", &corpus.train}, {"validation", &corpus.validation}};
  for (const auto& [name, tokens] : splits) {
    for (int32_t t : *tokens)
      if (t < 0 || static_cast<size_t>(t) >= corpus.vocabulary.size())
        throw Error("save_text_dataset: token " + std::to_string(t) + " of the " + name +
                    " text is outside the vocabulary of " +
                    std::to_string(corpus.vocabulary.size()) + " symbols");
    std::vector<uint8_t> b = to_le_bytes(*tokens);
    std::string file = std::string(name) == "train" ? kTrainFile : kValidationFile;
    write_file((fs::path(dir) / file).string(), b.data(), b.size());
    j[name] = {{"tokens", tokens->size()}, {"crc32", crc32(0, b.data(), b.size())}};
  }
  std::string text = j.dump(2) + "\n";
  write_file((fs::path(dir) / kHeader).string(), text.data(), text.size());
}

bool is_text_dataset(const std::string& dir) {
  std::error_code ec;
  fs::path p = fs::path(dir) / kHeader;
  if (!fs::is_regular_file(p, ec)) return false;
  try {
    std::vector<uint8_t> b = read_file(p.string());
    nlohmann::json j = nlohmann::json::parse(b.begin(), b.end());
    return j.is_object() && j.value("kind", "") == "text";
  } catch (const std::exception&) {
    return false;
  }
}

TextCorpus load_text_dataset(const std::string& dir) {
  const std::string path = (fs::path(dir) / kHeader).string();
  std::error_code ec;
  if (!fs::is_regular_file(path, ec))
    throw DataError(dir, -1,
                    std::string("no ") + kHeader +
                        ": not a text dataset (make one with 'myelin dataset create --text char')");
  std::vector<uint8_t> b = read_file(path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(b.begin(), b.end());
  } catch (const nlohmann::json::parse_error& e) {
    throw DataError(path, static_cast<int64_t>(e.byte) - 1,
                    std::string("not valid JSON: ") + e.what());
  }
  auto bad = [&](const std::string& what) { return DataError(path, -1, what); };
  try {
    if (!j.is_object() || j.value("kind", "") != "text")
      throw bad("expected a JSON object with \"kind\": \"text\"");
    if (j.value("format", 0) != kFormat)
      throw bad("format " + j.value("format", nlohmann::json()).dump() + " is not known: " +
                "expected " + std::to_string(kFormat) + " (written by a newer Myelin?)");
    TextCorpus c;
    c.level = j.value("level", "");
    if (c.level != "char" && c.level != "word")
      throw bad("\"level\" must be \"char\" or \"word\", got \"" + c.level + "\"");
    c.source = j.value("source", "");
    c.files = j.value("files", int64_t{0});
    if (!j.contains("vocabulary") || !j["vocabulary"].is_array())
      throw bad("\"vocabulary\" must be an array of symbols");
    c.vocabulary = j["vocabulary"].get<std::vector<std::string>>();
    if (c.vocabulary.empty()) throw bad("the vocabulary is empty");
    if (j.value("vocabulary_size", int64_t{-1}) != static_cast<int64_t>(c.vocabulary.size()))
      throw bad("\"vocabulary_size\" disagrees with the " + std::to_string(c.vocabulary.size()) +
                " symbols of \"vocabulary\"");
    for (size_t i = 0; i < c.vocabulary.size(); ++i) {
      if (c.vocabulary[i].empty())
        throw bad("vocabulary symbol " + std::to_string(i) + " is empty");
      if (i > 0 && !(c.vocabulary[i - 1] < c.vocabulary[i]))
        throw bad("vocabulary symbol " + std::to_string(i) + " ('" + escape_text(c.vocabulary[i]) +
                  "') is out of order or repeated: expected " + "distinct symbols sorted by bytes");
    }
    const auto vocab = static_cast<int64_t>(c.vocabulary.size());
    for (const char* name : {"train", "validation"}) {
      if (!j.contains(name) || !j[name].is_object())
        throw bad(std::string("\"") + name + "\" must be an object with \"tokens\" and \"crc32\"");
      const nlohmann::json& s = j[name];
      int64_t count = s.value("tokens", int64_t{-1});
      if (count < 0) throw bad(std::string("\"") + name + "\".\"tokens\" must be a count");
      auto crc = s.value("crc32", uint32_t{0});
      std::string file =
          (fs::path(dir) / (std::string(name) == "train" ? kTrainFile : kValidationFile)).string();
      (std::string(name) == "train" ? c.train : c.validation) =
          read_tokens(file, count, crc, vocab);
    }
    return c;
  } catch (const nlohmann::json::exception& e) {
    throw bad(std::string("a field has the wrong type: ") + e.what());
  }
}

// -----------------------------------------------------------------------------------------------

std::string decode_tokens(const std::vector<std::string>& vocabulary,
                          const std::vector<int32_t>& tokens) {
  std::string out;
  for (int32_t t : tokens) {
    if (t < 0 || static_cast<size_t>(t) >= vocabulary.size())
      throw Error("decode_tokens: token " + std::to_string(t) + " is outside the vocabulary of " +
                  std::to_string(vocabulary.size()) + " symbols");
    out += vocabulary[static_cast<size_t>(t)];
  }
  return out;
}

std::string decode_tokens(const TextCorpus& corpus, const std::vector<int32_t>& tokens) {
  return decode_tokens(corpus.vocabulary, tokens);
}

std::vector<int32_t> encode_text(const std::vector<std::string>& vocabulary,
                                 const std::string& level, const std::string& text) {
  const bool words = check_level(level);
  std::string why;
  size_t bad = first_bad_byte(reinterpret_cast<const uint8_t*>(text.data()), text.size(), why);
  if (bad != std::string::npos)
    throw UsageError("the text at byte " + std::to_string(bad) + ": " + why);
  std::unordered_map<std::string_view, int32_t> ids;
  ids.reserve(vocabulary.size());
  for (size_t i = 0; i < vocabulary.size(); ++i)
    ids.emplace(vocabulary[i], static_cast<int32_t>(i));
  std::vector<int32_t> out;
  for_each_symbol(text, words, [&](std::string_view s, size_t offset) {
    auto it = ids.find(s);
    if (it == ids.end())
      throw UsageError("'" + escape_text(std::string(s)) + "' at byte " + std::to_string(offset) +
                       " of the text is not in the vocabulary (" +
                       std::to_string(vocabulary.size()) + " " + level +
                       "-level symbols): use only symbols of the training text");
    out.push_back(it->second);
  });
  return out;
}

std::string escape_text(const std::string& s) {
  std::string out;
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  const size_t n = s.size();
  char buf[16];
  size_t i = 0;
  while (i < n) {
    uint8_t c = p[i];
    if (c < 0x80) {
      ++i;
      switch (c) {
        case '\n':
          out += "\\n";
          break;
        case '\t':
          out += "\\t";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\\':
          out += "\\\\";
          break;
        case '\'':
          out += "\\'";
          break;
        default:
          if (c < 0x20 || c == 0x7F) {
            std::snprintf(buf, sizeof buf, "\\x%02x", c);
            out += buf;
          } else {
            out += static_cast<char>(c);
          }
      }
      continue;
    }
    if (sequence_at(p, n, i) == 0) {  // not UTF-8: the byte in hex
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
      ++i;
      continue;
    }
    size_t b = i;
    uint32_t cp = decode_at(p, i);
    // Invisible or look-alike spaces and C1 controls by number.
    if (cp <= 0xA0 || cp == 0xAD || (cp >= 0x2000 && cp <= 0x200F) || cp == 0x2028 ||
        cp == 0x2029 || cp == 0x202F || cp == 0x3000 || cp == 0xFEFF) {
      std::snprintf(buf, sizeof buf, "\\u{%04x}", cp);
      out += buf;
    } else {
      out.append(s, b, i - b);
    }
  }
  return out;
}

// -----------------------------------------------------------------------------------------------

TextLoader::TextLoader(std::shared_ptr<const std::vector<int32_t>> tokens, int64_t batch,
                       int64_t steps, int rank, int world)
    : tokens_(std::move(tokens)), batch_(batch), steps_(steps), rank_(rank), world_(world) {
  if (!tokens_) throw Error("TextLoader: no tokens");
  if (batch_ < 1)
    throw UsageError("the batch size must be at least 1, got " + std::to_string(batch_));
  if (steps_ < 1)
    throw UsageError("the sequence length (steps) must be at least 1, got " +
                     std::to_string(steps_));
  if (world_ < 1 || rank_ < 0 || rank_ >= world_)
    throw UsageError("rank " + std::to_string(rank_) + " is outside a world of " +
                     std::to_string(world_));
  const int64_t rows = batch_ * world_;
  const auto size = static_cast<int64_t>(tokens_->size());
  row_length_ = size > 0 ? (size - 1) / rows : 0;
  batches_ = row_length_ / steps_;
  if (batches_ == 0)
    throw UsageError("the text (" + std::to_string(size) + " tokens) is too short for batch " +
                     std::to_string(batch_) + " x steps " + std::to_string(steps_) +
                     (world_ > 1 ? " x " + std::to_string(world_) + " ranks" : std::string()) +
                     ": one batch needs at least " + std::to_string(rows * steps_ + 1) +
                     " tokens; use a smaller batch or sequence length, or more text");
}

void TextLoader::start_epoch(int64_t epoch, int64_t skip_batches) {
  if (epoch < 0 || skip_batches < 0)
    throw Error("TextLoader::start_epoch: epoch and skip_batches must not be negative");
  epoch_ = epoch;
  next_ = std::min(skip_batches, batches_);
}

bool TextLoader::next(Batch& out) {
  if (next_ >= batches_) return false;
  const Shape shape = batch_shape();
  for (Tensor* t : {&out.images, &out.labels})
    if (!t->data() || t->shape() != shape || t->dtype() != DType::i32 || !t->device().is_cpu())
      *t = Tensor::empty(shape, DType::i32);
  auto* in = out.images.data_as<int32_t>();
  auto* next = out.labels.data_as<int32_t>();
  const int32_t* src = tokens_->data();
  const auto bytes = static_cast<size_t>(steps_) * sizeof(int32_t);
  for (int64_t i = 0; i < batch_; ++i) {
    const int64_t row = rank_ * batch_ + i;
    const int64_t start = row * row_length_ + next_ * steps_;
    std::memcpy(in + i * steps_, src + start, bytes);
    std::memcpy(next + i * steps_, src + start + 1, bytes);
  }
  out.count = batch_;
  out.epoch = epoch_;
  out.index = next_++;
  return true;
}

int64_t TextLoader::batches_per_epoch() const {
  return batches_;
}

Shape TextLoader::batch_shape() const {
  return {batch_, steps_};
}

}  // namespace myelin
