// myelin dataset: pack an image folder or IDX files into a store once (`create`), then describe
// (`info`) or fully check (`verify`) datasets.
#include <cstdio>

#include "cli/command.h"
#include "cli/common.h"
#include "cli/progress.h"
#include "data/store.h"

namespace myelin::cli {

namespace {

const std::vector<Flag>& dataset_flags() {
  static const std::vector<Flag> f = [] {
    std::vector<Flag> v = {{"source", "SPEC", "create: image folder, list file, IDX directory or name", ""},
                           {"out", "DIR", "create: where the store is written", ""},
                           {"threads", "T", "create: decoding threads", "2"},
                           {"overwrite", "", "create: replace an existing store", ""},
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

int create(const Args& a) {
  if (!a.has("source") || !a.has("out"))
    throw UsageError("dataset create needs --source SPEC and --out DIR");
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
      std::printf(" %s=%lld", info.class_names[c].c_str(), static_cast<long long>(s.class_counts[c]));
    std::printf("\n");
  }
  return 0;
}

int run_dataset(const std::vector<std::string>& argv) {
  const std::string help = help_text(
      "myelin dataset create --source SPEC --out DIR [--size HxW] [--channels C]\n"
      "       myelin dataset info SPEC\n"
      "       myelin dataset verify DIR",
      "create: reads an image folder (one subfolder per class), a list file (\"path label\" per\n"
      "line) or IDX files once, resizes, splits off validation and writes a packed store with the\n"
      "mean image and per-class counts; training then reads it at memory speed (--data DIR).\n"
      "info: what a dataset holds. verify: reads every byte of a store and checks its checksums.",
      dataset_flags(),
      "  myelin dataset create --source photos/ --out data/photos --size 64x64 --resize crop\n"
      "  myelin dataset info fashion-mnist\n");
  if (wants_help(argv, help)) return 0;
  Args a("dataset", argv, dataset_flags());
  const auto& pos = a.positional();
  std::string verb = pos.empty() ? "" : pos[0];
  if (verb == "create") return create(a);
  if (verb == "info" && pos.size() == 2) {
    print_splits(open_dataset(pos[1], open_options(a)));
    return 0;
  }
  if (verb == "verify" && pos.size() == 2) {
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
