// Text datasets for recurrent networks: a plain-text file or folder becomes a token stream over a
// character-level or word-level vocabulary, split into training and validation text, saved once
// by `myelin dataset create --text char|word` and read back as contiguous batches for truncated
// backpropagation through time.
//
// Symbols. Text must be UTF-8 without NUL bytes.
//   char: one symbol per Unicode code point (stored as its UTF-8 bytes).
//   word: the text is cut into tokens, in order:
//     - a word: a maximal run of word characters: ASCII letters and digits, and every code point
//       from U+00C0 up except U+00D7, U+00F7, U+2000-U+2BFF (punctuation, symbols, arrows, box
//       drawing) and U+3000-U+303F (CJK punctuation);
//     - a newline "\n", always a token of its own;
//     - a maximal run of other whitespace (space, tab, \r, \v, \f), one token ("  " and " " are
//       different symbols);
//     - any other character (punctuation, symbols) alone.
//   Joining the tokens gives back the text exactly, at either level.
// The vocabulary is every symbol of the whole text, sorted by bytes (= by code point), so the
// same text always gives the same token numbers.
//
// Sources. A file, or a folder: every regular file under it, recursively, sorted by path.
// Symbolic links are not followed; files whose first 8000 bytes hold a NUL byte are binary, not
// text, and are skipped (fortune's .dat index files), as are empty files. Files are joined in
// that order; a file that does not end with a newline gets one, so words of two files never run
// together. A file that is read and holds a NUL byte or invalid UTF-8 is a DataError naming the
// file and the byte offset.
//
// On disk (save_text_dataset), a directory holding:
//   text.json        {"kind": "text", "format": 1, "level": "char" | "word", "source": "...",
//                     "files": N, "vocabulary": ["\n", " ", "!", ...], "vocabulary_size": V,
//                     "train": {"file": "train.tokens", "tokens": n, "crc32": c},
//                     "validation": {"file": "validation.tokens", "tokens": m, "crc32": c}}
//   train.tokens     n little-endian int32 token numbers, each in [0, V)
//   validation.tokens
// Every file is written under a temporary name and renamed when complete; text.json last, so a
// directory with a text.json is complete.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/loader.h"

namespace myelin {

struct TextCorpus {
  std::string level;                    // "char" | "word"
  std::vector<std::string> vocabulary;  // sorted; a token is an index into it
  std::vector<int32_t> train, validation;
  std::string source;  // the file or folder it was read from
  int64_t files = 0;   // text files read
};

// Reads `source` (a text file, or a folder of them: see above) at `level` ("char" or "word") and
// splits off the last `validation_fraction` of the token stream, in (0, 0.5], as validation
// text. Throws UsageError for a bad level or fraction, DataError for a missing or empty source,
// a folder without text, NUL bytes or invalid UTF-8 (naming the file and byte offset).
TextCorpus build_text_corpus(const std::string& source, const std::string& level,
                             double validation_fraction = 0.05);

// Writes `corpus` into `dir` (created if missing), replacing a text dataset already there.
void save_text_dataset(const TextCorpus& corpus, const std::string& dir);
// Reads a directory save_text_dataset wrote. DataError, naming the file (and the byte offset of a
// bad token), when text.json is malformed, a token file's size disagrees with it, a token is not
// below the vocabulary size or a checksum does not match.
TextCorpus load_text_dataset(const std::string& dir);
// True when `dir` holds a text.json of kind "text".
bool is_text_dataset(const std::string& dir);

// The text of `tokens`: their symbols joined. Error for a token outside the vocabulary.
std::string decode_tokens(const std::vector<std::string>& vocabulary,
                          const std::vector<int32_t>& tokens);
std::string decode_tokens(const TextCorpus& corpus, const std::vector<int32_t>& tokens);

// `text` as tokens of `vocabulary` at `level` (as build_text_corpus cuts it). A symbol not in the
// vocabulary, or text that is not UTF-8, is a UsageError naming the symbol and its byte offset.
std::vector<int32_t> encode_text(const std::vector<std::string>& vocabulary,
                                 const std::string& level, const std::string& text);

// A symbol made printable for messages: C escapes for control characters, backslash and the
// quote ("\n" -> "\\n", "\x01" -> "\\x01"); other UTF-8 is kept.
std::string escape_text(const std::string& s);

// Truncated-BPTT batches from a token stream. The stream is cut into R = batch * world rows of
// equal length L = (size - 1) / R (the tail that does not fill a row is unused). Batch k holds,
// for row r, tokens [r*L + k*steps, r*L + (k+1)*steps) as input and the same shifted by one as
// labels, so row r of batch k+1 continues row r of batch k and a recurrent state can be carried
// from one batch to the next. Rank `rank` gets rows [rank*batch, (rank+1)*batch): the ranks
// together see what one process with batch * world would. No shuffling.
class TextLoader : public BatchSource {
 public:
  // UsageError when batch or steps is below 1, rank is outside [0, world), or the stream is too
  // short for one batch of batch * world rows of `steps` tokens (the message gives the numbers).
  TextLoader(std::shared_ptr<const std::vector<int32_t>> tokens, int64_t batch, int64_t steps,
             int rank = 0, int world = 1);
  // Restarts at batch `skip_batches` of the stream (the order is the same every epoch).
  void start_epoch(int64_t epoch, int64_t skip_batches = 0) override;
  // Fills out.images (tokens, i32 [batch, steps]) and out.labels (next tokens, i32 [batch,
  // steps]), reusing their memory when the shapes match; count = batch. False at the epoch's end.
  // The first call without start_epoch() starts epoch 0.
  bool next(Batch& out) override;
  int64_t batches_per_epoch() const override;         // L / steps
  Shape batch_shape() const override;                 // [batch, steps]
  int64_t row_length() const { return row_length_; }  // L

 private:
  std::shared_ptr<const std::vector<int32_t>> tokens_;
  int64_t batch_, steps_, rank_, world_;
  int64_t row_length_ = 0, batches_ = 0;
  int64_t epoch_ = 0, next_ = 0;
};

}  // namespace myelin
