// myelin dataset: pack an image folder or IDX files into a store once (`create`), or turn text
// into a tokenized text dataset (`create --text char|word`), then describe (`info`) or fully check
// (`verify`) datasets.
#include <algorithm>
#include <cstdio>
#include <numeric>

#include "cli/command.h"
#include "cli/common.h"
#include "cli/progress.h"
#include "data/store.h"
#include "data/text.h"

namespace myelin::cli {

namespace {

const std::vector<Flag>& dataset_flags() {
  static const std::vector<Flag> f = [] {
    std::vector<Flag> v = {
        {"source", "SPEC", "create: image folder, list file, IDX directory, name; text with --text",
         ""},
        {"text", "LEVEL", "create: read the source as text; char or word symbols", ""},
        {"validation", "F", "create --text: the last fraction of the text kept for validation",
         "0.05"},
        {"out", "DIR", "create: where the store or text dataset is written", ""},
        {"threads", "T", "create: decoding threads", "2"},
        {"overwrite", "", "create: replace an existing dataset", ""},
        {"seed", "N", "validation split seed", "1"}};
    for (const Flag& d : data_flags()) v.push_back(d);
    return v;
  }();
  return f;
}

void print_splits(const DatasetSplits& s) {
  std::printf("train: %s\n", s.train->describe().c_str());
  if (s.test) std::printf("test:  %s\n", s.test->describe().c_str());
}

// Files, token counts, vocabulary size and the most frequent symbols of a text dataset.
void print_text(const std::string& dir, const TextCorpus& c) {
  const size_t total = c.train.size() + c.validation.size();
  std::printf("text dataset %s: %s level, %lld file%s from %s\n", dir.c_str(), c.level.c_str(),
              static_cast<long long>(c.files), c.files == 1 ? "" : "s", c.source.c_str());
  std::printf("  tokens:     %zu (train %zu, validation %zu)\n", total, c.train.size(),
              c.validation.size());
  std::printf("  vocabulary: %zu symbols\n", c.vocabulary.size());
  std::vector<int64_t> counts(c.vocabulary.size(), 0);
  for (const auto* split : {&c.train, &c.validation})
    for (int32_t t : *split) ++counts[static_cast<size_t>(t)];
  std::vector<size_t> order(counts.size());
  std::iota(order.begin(), order.end(), size_t{0});
  const size_t top = std::min<size_t>(20, order.size());
  std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(top), order.end(),
                    [&](size_t x, size_t y) { return counts[x] > counts[y]; });
  std::printf("  most frequent:");
  for (size_t i = 0; i < top; ++i)
    std::printf(
        " '%s' %.1f%%", escape_text(c.vocabulary[order[i]]).c_str(),
        total ? 100.0 * static_cast<double>(counts[order[i]]) / static_cast<double>(total) : 0.0);
  std::printf("\n");
}

int create_text(const Args& a) {
  const std::string out = a.str("out");
  if (!a.has("overwrite") && (is_text_dataset(out) || is_store_dir(out)))
    throw UsageError(out +
                     " already holds a dataset: choose another --out folder or pass --overwrite");
  TextCorpus c = build_text_corpus(a.str("source"), a.str("text"), a.number("validation", 0.05));
  save_text_dataset(c, out);
  print_text(out, c);
  return 0;
}

int create(const Args& a) {
  if (!a.has("source") || !a.has("out"))
    throw UsageError("dataset create needs --source SPEC and --out DIR");
  if (a.has("text")) return create_text(a);
  if (a.has("validation"))
    throw UsageError(
        "--validation is for text datasets (with --text char|word); image folders take "
        "--val-percent");
  CreateOptions o;
  o.open = open_options(a);
  o.threads = static_cast<int>(a.integer("threads", 2));
  o.overwrite = a.has("overwrite");
  ProgressBar bar("packing");
  StoreInfo info = create_store(a.str("source"), a.str("out"), o, [&](const CreateProgress& p) {
    bar.update(p.done, p.total, p.split);
  });
  bar.finish();
  std::printf("store %s: %s, %zu classes, %.1f s\n", info.dir.c_str(),
              info.example_shape.str().c_str(), info.class_names.size(), info.seconds);
  for (const StoreSplitInfo& s : info.splits) {
    std::printf("  %-5s %lld examples, %.1f MB:", s.name.c_str(), static_cast<long long>(s.count),
                static_cast<double>(s.bytes) / 1e6);
    for (size_t c = 0; c < s.class_counts.size(); ++c)
      std::printf(" %s=%lld", info.class_names[c].c_str(),
                  static_cast<long long>(s.class_counts[c]));
    std::printf("\n");
  }
  return 0;
}

int run_dataset(const std::vector<std::string>& argv) {
  const std::string help = help_text(
      "myelin dataset create --source SPEC --out DIR [--size HxW] [--channels C]\n"
      "       myelin dataset create --source PATH --text char|word --out DIR [--validation F]\n"
      "       myelin dataset info SPEC\n"
      "       myelin dataset verify DIR",
      "create: reads an image folder (one subfolder per class), a list file (\"path label\" per\n"
      "line) or IDX files once, resizes, splits off validation and writes a packed store with the\n"
      "mean image and per-class counts; training then reads it at memory speed (--data DIR).\n"
      "create --text: reads a UTF-8 text file, or every text file under a folder (binary files\n"
      "skipped), as characters or words, and writes the vocabulary and the token stream, its last\n"
      "--validation fraction kept for validation, for recurrent networks.\n"
      "info: what a dataset holds. verify: reads every byte of a dataset and checks its checksums.",
      dataset_flags(),
      "  myelin dataset create --source photos/ --out data/photos --size 64x64 --resize crop\n"
      "  myelin dataset create --source /usr/share/games/fortunes --text char --out data/fortunes\n"
      "  myelin dataset info fashion-mnist\n");
  if (wants_help(argv, help)) return 0;
  Args a("dataset", argv, dataset_flags());
  const auto& pos = a.positional();
  std::string verb = pos.empty() ? "" : pos[0];
  if (verb == "create") return create(a);
  if (verb == "info" && pos.size() == 2) {
    if (is_text_dataset(pos[1])) {
      print_text(pos[1], load_text_dataset(pos[1]));
      return 0;
    }
    print_splits(open_dataset(pos[1], open_options(a)));
    return 0;
  }
  if (verb == "verify" && pos.size() == 2) {
    if (is_text_dataset(pos[1])) {  // loading checks sizes, token ranges and checksums
      load_text_dataset(pos[1]);
      std::printf("%s: ok\n", pos[1].c_str());
      return 0;
    }
    for (const char* split : {"/train.mstore", "/val.mstore"}) {
      std::string path = pos[1] + split;
      if (!is_store_file(path)) continue;
      verify_store(path);
      std::printf("%s: ok\n", path.c_str());
    }
    return 0;
  }
  throw UsageError("expected 'create', 'info SPEC' or 'verify DIR'; see 'myelin dataset --help'");
}

const bool registered = register_command(
    {"dataset", "pack image folders into a fast store; describe or verify datasets", run_dataset});

}  // namespace

}  // namespace myelin::cli
