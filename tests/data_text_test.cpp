// Text datasets: corpora from files and folders at both levels, encoding and decoding, the saved
// format and its damage, bad text, and the truncated-BPTT batches of TextLoader.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "core/error.h"
#include "data/text.h"
#include "support/data_files.h"
#include "support/expect_error.h"

using namespace myelin;
using myelin::testing::expect_error;
using myelin::testing::TempDir;
namespace tf = myelin::testing;
namespace fs = std::filesystem;

namespace {

void write_text(const std::string& path, const std::string& text) {
  tf::write_bytes(path, std::vector<uint8_t>(text.begin(), text.end()));
}

std::vector<int32_t> joined(const TextCorpus& c) {
  std::vector<int32_t> all = c.train;
  all.insert(all.end(), c.validation.begin(), c.validation.end());
  return all;
}

// 0, 1, 2, ... n-1: every token says where it is in the stream.
std::shared_ptr<const std::vector<int32_t>> counting(int32_t n) {
  auto v = std::make_shared<std::vector<int32_t>>(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) (*v)[static_cast<size_t>(i)] = i;
  return v;
}

std::vector<int32_t> row(const Tensor& t, int64_t r) {
  const int64_t steps = t.shape()[1];
  const int32_t* p = t.data_as<int32_t>() + r * steps;
  return {p, p + steps};
}

}  // namespace

TEST(TextCorpus, CharLevelFromAFile) {
  TempDir dir;
  const std::string text = "héllo wörld\nhello\n";
  write_text(dir / "a.txt", text);
  TextCorpus c = build_text_corpus(dir / "a.txt", "char", 0.25);
  EXPECT_EQ(c.level, "char");
  EXPECT_EQ(c.files, 1);
  // Code points, sorted by bytes: "\n", " ", d, e, h, l, o, r, w, é, ö.
  std::vector<std::string> want = {"\n", " ", "d", "e", "h", "l", "o", "r", "w", "é", "ö"};
  EXPECT_EQ(c.vocabulary, want);
  EXPECT_EQ(c.train.size() + c.validation.size(), 18u);  // code points, not bytes
  EXPECT_EQ(c.validation.size(), 4u);                    // floor(18 * 0.25)
  EXPECT_EQ(decode_tokens(c, joined(c)), text);
  EXPECT_EQ(decode_tokens(c, c.validation), "llo\n");
  EXPECT_EQ(encode_text(c.vocabulary, "char", text), joined(c));
}

TEST(TextCorpus, WordLevelTokensAndRoundTrip) {
  TempDir dir;
  const std::string text = "Don't panic!  Über 42 cats—\n\n\tthe end.\n";
  write_text(dir / "a.txt", text);
  TextCorpus c = build_text_corpus(dir / "a.txt", "word");
  std::vector<std::string> tokens;
  for (int32_t t : joined(c)) tokens.push_back(c.vocabulary[static_cast<size_t>(t)]);
  std::vector<std::string> want = {"Don",  "'",  "t",   " ", "panic", "!", "  ",
                                   "Über", " ",  "42",  " ", "cats",  "—", "\n",
                                   "\n",   "\t", "the", " ", "end",   ".", "\n"};
  EXPECT_EQ(tokens, want);
  EXPECT_TRUE(std::is_sorted(c.vocabulary.begin(), c.vocabulary.end()));
  EXPECT_EQ(std::set<std::string>(c.vocabulary.begin(), c.vocabulary.end()).size(),
            c.vocabulary.size());
  EXPECT_EQ(decode_tokens(c, joined(c)), text);
  EXPECT_EQ(encode_text(c.vocabulary, "word", "the cats\n"),
            (std::vector<int32_t>{
                static_cast<int32_t>(std::find(c.vocabulary.begin(), c.vocabulary.end(), "the") -
                                     c.vocabulary.begin()),
                static_cast<int32_t>(std::find(c.vocabulary.begin(), c.vocabulary.end(), " ") -
                                     c.vocabulary.begin()),
                static_cast<int32_t>(std::find(c.vocabulary.begin(), c.vocabulary.end(), "cats") -
                                     c.vocabulary.begin()),
                static_cast<int32_t>(std::find(c.vocabulary.begin(), c.vocabulary.end(), "\n") -
                                     c.vocabulary.begin())}));
}

TEST(TextCorpus, FolderIsSortedRecursiveAndSkipsBinaryEmptyHiddenAndLinks) {
  TempDir dir;
  write_text(dir / "src/b.txt", "bb\n");
  write_text(dir / "src/a.txt", "aa");  // no final newline: one is added
  write_text(dir / "src/sub/c", "cc\n");
  write_text(dir / "src/empty", "");
  write_text(dir / "src/.hidden", "zz\n");
  tf::write_bytes(dir / "src/a.dat", {0, 0, 0, 2, 'x', 'y'});  // like fortune's index files
  fs::create_symlink("a.txt", dir / "src/a.u8");
  TextCorpus c = build_text_corpus(dir / "src", "char", 0.1);
  EXPECT_EQ(c.files, 3);
  EXPECT_EQ(decode_tokens(c, joined(c)), "aa\nbb\ncc\n");
  EXPECT_EQ(c.vocabulary, (std::vector<std::string>{"\n", "a", "b", "c"}));
  EXPECT_EQ(c.validation.size(), 1u);  // at least one token
  EXPECT_EQ(c.source, dir / "src");
}

TEST(TextCorpus, BadSourcesAndArguments) {
  TempDir dir;
  write_text(dir / "empty.txt", "");
  expect_error([&] { build_text_corpus(dir / "empty.txt", "char"); },
               {dir / "empty.txt", "empty", "expected text"});
  EXPECT_THROW(build_text_corpus(dir / "empty.txt", "char"), DataError);

  std::string nul = "first line\nsecond";
  nul += '\0';
  nul += "rest\n";
  write_text(dir / "nul.txt", nul);
  std::string msg = expect_error([&] { build_text_corpus(dir / "nul.txt", "char"); },
                                 {dir / "nul.txt", "at byte 17", "NUL", "binary"});

  write_text(dir / "latin1.txt", "caf\xe9 au lait\n");  // Latin-1, not UTF-8
  expect_error([&] { build_text_corpus(dir / "latin1.txt", "word"); },
               {dir / "latin1.txt", "at byte 3", "invalid UTF-8", "e9"});
  write_text(dir / "cut.txt", "ok \xe2\x82");  // a sequence cut short by the end of the file
  expect_error([&] { build_text_corpus(dir / "cut.txt", "char"); },
               {dir / "cut.txt", "at byte 3", "invalid UTF-8"});
  write_text(dir / "surrogate.txt", "a\xed\xa0\x80");
  expect_error([&] { build_text_corpus(dir / "surrogate.txt", "char"); }, {"at byte 1"});

  // A text file in a folder with bad bytes after the first 8000 is named too.
  std::string late(9000, 'x');
  late += "\xff\n";
  write_text(dir / "folder/ok.txt", "fine\n");
  write_text(dir / "folder/late.txt", late);
  expect_error([&] { build_text_corpus(dir / "folder", "char"); },
               {dir / "folder/late.txt", "at byte 9000", "invalid UTF-8"});

  fs::create_directories(dir / "nothing");
  tf::write_bytes(dir / "nothing/x.dat", {0, 1, 2});
  write_text(dir / "nothing/e", "");
  expect_error([&] { build_text_corpus(dir / "nothing", "char"); },
               {dir / "nothing", "no text", "1 binary", "1 empty"});
  expect_error([&] { build_text_corpus(dir / "missing", "char"); },
               {dir / "missing", "no such file"});

  write_text(dir / "ok.txt", "abc\n");
  EXPECT_THROW(build_text_corpus(dir / "ok.txt", "byte"), UsageError);
  expect_error([&] { build_text_corpus(dir / "ok.txt", "byte"); }, {"'byte'", "char", "word"});
  EXPECT_THROW(build_text_corpus(dir / "ok.txt", "char", 0), UsageError);
  EXPECT_THROW(build_text_corpus(dir / "ok.txt", "char", 0.6), UsageError);
  EXPECT_THROW(build_text_corpus(dir / "ok.txt", "char", -0.1), UsageError);
  EXPECT_NO_THROW(build_text_corpus(dir / "ok.txt", "char", 0.5));
}

TEST(TextCorpus, EncodeNamesUnknownSymbolsAndOffsets) {
  std::vector<std::string> vocab = {"\n", " ", "a", "b"};
  EXPECT_EQ(encode_text(vocab, "char", "ab a\n"), (std::vector<int32_t>{2, 3, 1, 2, 0}));
  EXPECT_THROW(encode_text(vocab, "char", "abc"), UsageError);
  expect_error(
      [] {
        encode_text({"\n", " ", "a", "b"}, "char", "ab\tc");
      },
      {"'\\t'", "byte 2", "not in the vocabulary"});
  expect_error([] { encode_text({"\n", " ", "a", "b"}, "char", "aé"); }, {"'é'", "byte 1"});
  expect_error([] { encode_text({"hello", " "}, "word", "hello world"); }, {"'world'", "byte 6"});
  expect_error([] { encode_text({"a"}, "char", "a\xff"); }, {"byte 1", "invalid UTF-8"});
  EXPECT_THROW(decode_tokens(vocab, {0, 4}), Error);
  EXPECT_EQ(escape_text("a\n\t'\\\x01 \xc2\xa0é"), "a\\n\\t\\'\\\\\\x01 \\u{00a0}é");
}

TEST(TextDataset, SaveLoadRoundTrip) {
  TempDir dir;
  write_text(dir / "a.txt", "The quick brown fox jumps over the lazy dog.\nÄrger über Öl.\n");
  for (const char* level : {"char", "word"}) {
    TextCorpus c = build_text_corpus(dir / "a.txt", level, 0.2);
    std::string out = dir / (std::string("ds-") + level);
    EXPECT_FALSE(is_text_dataset(out));
    save_text_dataset(c, out);
    EXPECT_TRUE(is_text_dataset(out));
    EXPECT_TRUE(fs::exists(out + "/train.tokens"));
    EXPECT_EQ(fs::file_size(out + "/train.tokens"), c.train.size() * 4);
    EXPECT_EQ(fs::file_size(out + "/validation.tokens"), c.validation.size() * 4);
    TextCorpus d = load_text_dataset(out);
    EXPECT_EQ(d.level, c.level);
    EXPECT_EQ(d.vocabulary, c.vocabulary);
    EXPECT_EQ(d.train, c.train);
    EXPECT_EQ(d.validation, c.validation);
    EXPECT_EQ(d.source, c.source);
    EXPECT_EQ(d.files, 1);
  }
  // Little-endian int32 on disk.
  TextCorpus c = load_text_dataset(dir / "ds-char");
  auto b = tf::read_bytes(dir / "ds-char/train.tokens");
  EXPECT_EQ(b[0] | b[1] << 8 | b[2] << 16 | b[3] << 24, c.train[0]);
  EXPECT_FALSE(is_text_dataset(dir.str()));
}

TEST(TextDataset, DamageIsADataErrorNamingTheFile) {
  TempDir dir;
  write_text(dir / "a.txt", "abcabcabcabc\n");
  TextCorpus c = build_text_corpus(dir / "a.txt", "char", 0.25);
  const std::string ds = dir / "ds";
  save_text_dataset(c, ds);
  const std::string train = ds + "/train.tokens";
  const auto good = tf::read_bytes(train);

  // A token past the vocabulary (4 symbols): the file and the byte offset of the token.
  auto bad = good;
  bad[8] = 9;
  tf::write_bytes(train, bad);
  EXPECT_THROW(load_text_dataset(ds), DataError);
  expect_error([&] { load_text_dataset(ds); },
               {train, "at byte 8", "token 9", "outside the vocabulary of 4"});
  // A negative token.
  bad = good;
  bad[7] = 0x80;
  tf::write_bytes(train, bad);
  expect_error([&] { load_text_dataset(ds); }, {train, "at byte 4", "token -"});
  // In range but changed: the checksum.
  bad = good;
  bad[0] = static_cast<uint8_t>((good[0] + 1) % 4);
  tf::write_bytes(train, bad);
  expect_error([&] { load_text_dataset(ds); }, {train, "checksum"});
  // Cut short.
  bad.assign(good.begin(), good.end() - 2);
  tf::write_bytes(train, bad);
  expect_error([&] { load_text_dataset(ds); }, {train, "bytes", "tokens"});
  tf::write_bytes(train, good);
  EXPECT_NO_THROW(load_text_dataset(ds));

  // The header.
  const std::string header = ds + "/text.json";
  const auto json = tf::read_bytes(header);
  write_text(header, "{\"kind\": \"text\", ");
  expect_error([&] { load_text_dataset(ds); }, {header, "JSON"});
  std::string s(json.begin(), json.end());
  write_text(header, std::string(s).replace(s.find("\"char\""), 6, "\"byte\""));
  expect_error([&] { load_text_dataset(ds); }, {header, "level"});
  write_text(header, std::string(s).replace(s.find("\"vocabulary_size\": 4"), 20,
                                            "\"vocabulary_size\": 5"));
  expect_error([&] { load_text_dataset(ds); }, {header, "vocabulary_size"});
  fs::remove(header);
  EXPECT_FALSE(is_text_dataset(ds));
  expect_error([&] { load_text_dataset(ds); }, {ds, "not a text dataset"});
}

TEST(TextLoader, BatchesAreContiguousRowsWithShiftedLabels) {
  // 103 tokens, batch 4: rows of L = 102 / 4 = 25; steps 6: 4 batches per epoch.
  auto tokens = counting(103);
  TextLoader loader(tokens, 4, 6);
  EXPECT_EQ(loader.row_length(), 25);
  EXPECT_EQ(loader.batches_per_epoch(), 4);
  EXPECT_EQ(loader.batch_shape(), (Shape{4, 6}));
  Batch b;
  std::vector<std::vector<int32_t>> last(4);
  int64_t k = 0;
  const void* images_memory = nullptr;
  while (loader.next(b)) {
    EXPECT_EQ(b.images.dtype(), DType::i32);
    EXPECT_EQ(b.labels.dtype(), DType::i32);
    EXPECT_EQ(b.images.shape(), (Shape{4, 6}));
    EXPECT_EQ(b.labels.shape(), (Shape{4, 6}));
    EXPECT_EQ(b.count, 4);
    EXPECT_EQ(b.index, k);
    EXPECT_EQ(b.epoch, 0);
    if (k == 0) images_memory = b.images.data();
    EXPECT_EQ(b.images.data(), images_memory);  // reused, not reallocated
    for (int64_t r = 0; r < 4; ++r) {
      std::vector<int32_t> in = row(b.images, r), next = row(b.labels, r);
      EXPECT_EQ(in[0], r * 25 + k * 6);  // row r starts at r*L and moves by steps
      for (int64_t t = 0; t < 6; ++t) EXPECT_EQ(next[t], in[t] + 1);  // labels: next tokens
      if (k > 0) {  // continues the previous batch's row
        EXPECT_EQ(in[0], last[r].back() + 1);
      }
      last[r] = in;
    }
    ++k;
  }
  EXPECT_EQ(k, 4);
  EXPECT_FALSE(loader.next(b));

  // A new epoch is the same stream again; skip resumes mid-epoch.
  loader.start_epoch(1, 2);
  ASSERT_TRUE(loader.next(b));
  EXPECT_EQ(b.epoch, 1);
  EXPECT_EQ(b.index, 2);
  EXPECT_EQ(row(b.images, 1)[0], 25 + 12);
  ASSERT_TRUE(loader.next(b));
  EXPECT_FALSE(loader.next(b));
  loader.start_epoch(2, 99);
  EXPECT_FALSE(loader.next(b));
}

TEST(TextLoader, RanksTogetherAreOneProcessWithTheWholeBatch) {
  auto tokens = counting(1000);
  TextLoader whole(tokens, 6, 7);
  TextLoader rank0(tokens, 3, 7, 0, 2), rank1(tokens, 3, 7, 1, 2);
  EXPECT_EQ(whole.batches_per_epoch(), rank0.batches_per_epoch());
  EXPECT_EQ(whole.batches_per_epoch(), rank1.batches_per_epoch());
  Batch w, a, b;
  int64_t n = 0;
  while (whole.next(w)) {
    ASSERT_TRUE(rank0.next(a));
    ASSERT_TRUE(rank1.next(b));
    for (int64_t r = 0; r < 3; ++r) {
      EXPECT_EQ(row(a.images, r), row(w.images, r));
      EXPECT_EQ(row(b.images, r), row(w.images, r + 3));
      EXPECT_EQ(row(a.labels, r), row(w.labels, r));
      EXPECT_EQ(row(b.labels, r), row(w.labels, r + 3));
    }
    ++n;
  }
  EXPECT_EQ(n, (999 / 6) / 7);
  EXPECT_FALSE(rank0.next(a));
  EXPECT_FALSE(rank1.next(b));
}

TEST(TextLoader, TooShortTextAndBadArguments) {
  // batch 4 x steps 5 needs 21 tokens.
  EXPECT_NO_THROW(TextLoader(counting(21), 4, 5));
  EXPECT_THROW(TextLoader(counting(20), 4, 5), UsageError);
  expect_error([] { TextLoader(counting(20), 4, 5); },
               {"20 tokens", "too short", "batch 4", "steps 5", "21"});
  expect_error([] { TextLoader(counting(40), 4, 5, 0, 2); }, {"x 2 ranks", "41"});
  EXPECT_THROW(TextLoader(counting(100), 4, 0), UsageError);
  expect_error([] { TextLoader(counting(100), 4, 0); }, {"steps", "at least 1", "got 0"});
  EXPECT_THROW(TextLoader(counting(100), 0, 5), UsageError);
  EXPECT_THROW(TextLoader(counting(100), 2, 5, 2, 2), UsageError);
  EXPECT_THROW(TextLoader(counting(0), 1, 1), UsageError);
}

TEST(TextLoader, IsABatchSource) {
  std::unique_ptr<BatchSource> src = std::make_unique<TextLoader>(counting(50), 2, 3);
  EXPECT_EQ(src->batch_shape(), (Shape{2, 3}));
  EXPECT_EQ(src->batches_per_epoch(), 8);  // L = 24, 24 / 3
  src->start_epoch(0);
  Batch b;
  EXPECT_TRUE(src->next(b));
}

TEST(TextCorpus, Fortunes) {
  const std::string fortunes = "/usr/share/games/fortunes";
  if (!fs::is_directory(fortunes))
    GTEST_SKIP() << "the Debian package fortunes is not installed (scripts/install-deps.sh)";
  TextCorpus c = build_text_corpus(fortunes, "char");
  EXPECT_GT(c.files, 10);
  EXPECT_GE(c.vocabulary.size(), 60u);
  EXPECT_LE(c.vocabulary.size(), 200u);
  const size_t total = c.train.size() + c.validation.size();
  EXPECT_GT(total, 1000000u);
  EXPECT_EQ(c.validation.size(), static_cast<size_t>(static_cast<double>(total) * 0.05));
  // Only text: no symbol of the binary .dat index files.
  for (const std::string& s : c.vocabulary) EXPECT_NE(s, std::string(1, '\0'));
  EXPECT_NE(std::find(c.vocabulary.begin(), c.vocabulary.end(), "%"), c.vocabulary.end());
  TextLoader loader(std::make_shared<const std::vector<int32_t>>(c.train), 32, 100);
  EXPECT_GT(loader.batches_per_epoch(), 100);
}
