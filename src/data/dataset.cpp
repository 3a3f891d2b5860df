// open_dataset: what a spec names, and the Dataset defaults.
#include "data/dataset.h"

#include <algorithm>
#include <filesystem>
#include <thread>

#include "core/error.h"
#include "data/idx.h"
#include "data/image_folder.h"
#include "data/store.h"

namespace fs = std::filesystem;

namespace myelin {

namespace {

constexpr const char* kDatasetsRoot = "/usr/share/datasets";

DatasetSplits open_known(const std::string& name, const OpenOptions& opts) {
  fs::path dir = fs::path(kDatasetsRoot) / name;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    if (name == "fashion-mnist")
      throw Error("Fashion-MNIST is not installed (" + dir.string() +
                  " is missing): install Debian's package dataset-fashion-mnist "
                  "(apt-get install dataset-fashion-mnist)");
    throw Error("MNIST is not installed (" + dir.string() +
                " is missing): install a dataset-mnist package where your distribution has one "
                "(Debian 12 has none), or put train-images-idx3-ubyte.gz, "
                "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and "
                "t10k-labels-idx1-ubyte.gz in a directory and pass that directory");
  }
  return data::open_idx_dir(dir.string(), name, opts);
}

// IDX files and stores have a fixed shape: a size or channel count that differs from it is a
// mistake to report, not an option to ignore.
DatasetSplits check_fixed_shape(DatasetSplits s, const OpenOptions& opts, const std::string& spec) {
  Shape shape = s.train->example_shape();
  bool size_differs =
      (opts.resize_h && opts.resize_h != shape[1]) || (opts.resize_w && opts.resize_w != shape[2]);
  bool channels_differ = opts.channels && opts.channels != shape[0];
  if (size_differs || channels_differ)
    throw Error(spec + " holds examples of " + shape.str() +
                ": resizing and channel conversion apply to image folders and list files only (" +
                "asked for " + std::to_string(opts.channels) + " channels, " +
                std::to_string(opts.resize_h) + "x" + std::to_string(opts.resize_w) + ")");
  return s;
}

}  // namespace

int32_t Dataset::label(int64_t index) const {
  std::vector<uint8_t> pixels(static_cast<size_t>(example_shape().numel()));
  int32_t l = 0;
  read(index, pixels.data(), &l);
  return l;
}

std::vector<int64_t> Dataset::class_counts() const {
  std::vector<int64_t> counts(static_cast<size_t>(num_classes()), 0);
  for (int64_t i = 0; i < size(); ++i) {
    int32_t l = label(i);
    if (l < 0 || l >= num_classes())
      throw Error(describe() + ": label " + std::to_string(l) + " of example " + std::to_string(i) +
                  " is out of range");
    ++counts[static_cast<size_t>(l)];
  }
  return counts;
}

std::shared_ptr<std::vector<float>> Dataset::mean_image() const {
  const size_t eb = static_cast<size_t>(example_shape().numel());
  const int threads = 2;
  std::vector<std::vector<uint64_t>> sums(threads, std::vector<uint64_t>(eb, 0));
  std::vector<std::exception_ptr> errors(threads);
  auto work = [&](int t) {
    std::vector<uint8_t> px(eb);
    int32_t l;
    try {
      for (int64_t i = t; i < size(); i += threads) {
        read(i, px.data(), &l);
        for (size_t k = 0; k < eb; ++k) sums[static_cast<size_t>(t)][k] += px[k];
      }
    } catch (...) {
      errors[static_cast<size_t>(t)] = std::current_exception();
    }
  };
  std::thread other(work, 1);
  work(0);
  other.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
  auto mean = std::make_shared<std::vector<float>>(eb);
  double n = static_cast<double>(std::max<int64_t>(size(), 1));
  for (size_t k = 0; k < eb; ++k) (*mean)[k] = static_cast<float>((sums[0][k] + sums[1][k]) / n);
  return mean;
}

std::vector<float> channel_means(const std::vector<float>& mean_image, const Shape& chw) {
  if (chw.rank() != 3 || static_cast<int64_t>(mean_image.size()) != chw.numel())
    throw ShapeError("channel_means: a mean image of " + std::to_string(mean_image.size()) +
                     " values does not fit the shape " + chw.str());
  size_t plane = static_cast<size_t>(chw[1] * chw[2]);
  std::vector<float> out(static_cast<size_t>(chw[0]));
  for (size_t c = 0; c < out.size(); ++c) {
    double s = 0;
    for (size_t i = 0; i < plane; ++i) s += mean_image[c * plane + i];
    out[c] = static_cast<float>(s / static_cast<double>(plane));
  }
  return out;
}

DatasetSplits open_dataset(const std::string& spec, const OpenOptions& opts) {
  std::error_code ec;
  fs::path p(spec);
  if (!fs::exists(p, ec)) {
    if (spec == "fashion-mnist" || spec == "mnist")
      return check_fixed_shape(open_known(spec, opts), opts, spec);
    throw Error("no dataset '" + spec +
                "': expected fashion-mnist, mnist, a directory (IDX files, class folders or a "
                "store made by `myelin dataset create`) or a list file");
  }
  if (fs::is_directory(p, ec)) {
    if (is_store_dir(spec)) return check_fixed_shape(open_store_dir(spec), opts, spec);
    if (data::has_idx_files(spec)) {
      std::string name = p.filename().string();
      return check_fixed_shape(data::open_idx_dir(spec, name.empty() ? spec : name, opts), opts,
                               spec);
    }
    return data::open_image_folder(spec, opts);
  }
  if (is_store_file(spec)) return check_fixed_shape({open_store_file(spec), nullptr}, opts, spec);
  return data::open_list_file(spec, opts);
}

}  // namespace myelin
