// Creating a store: read the source once with a few threads, write records in order, then the
// metadata and header, then rename into place.
#include "data/store.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <exception>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/error.h"
#include "data/image_codec.h"
#include "data/io.h"
#include "data/store_format.h"

namespace fs = std::filesystem;

namespace myelin {

using namespace data;

namespace {

// Reads examples [begin, end) of `d` into `pixels`/`labels` with `threads` threads; rethrows the
// error of the lowest failing example, so the message is the same on every run.
void read_chunk(const Dataset& d, int64_t begin, int64_t end, int threads, uint8_t* pixels,
                int32_t* labels, size_t example_bytes) {
  int64_t n = end - begin;
  int t_count = static_cast<int>(std::clamp<int64_t>(threads, 1, n));
  std::vector<std::exception_ptr> errors(static_cast<size_t>(t_count));
  std::vector<int64_t> error_at(static_cast<size_t>(t_count), n);
  auto work = [&](int t) {
    for (int64_t i = t; i < n; i += t_count) {
      try {
        d.read(begin + i, pixels + static_cast<size_t>(i) * example_bytes, labels + i);
      } catch (...) {
        errors[static_cast<size_t>(t)] = std::current_exception();
        error_at[static_cast<size_t>(t)] = i;
        return;
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < t_count; ++t) pool.emplace_back(work, t);
  work(0);
  for (auto& th : pool) th.join();
  auto first = std::min_element(error_at.begin(), error_at.end());
  if (*first < n) std::rethrow_exception(errors[static_cast<size_t>(first - error_at.begin())]);
}

void write_json(const std::string& path, const nlohmann::json& j) {
  std::string text = j.dump(2) + "\n";
  AtomicFile f(path);
  f.write(text.data(), text.size());
  f.commit();
}

void write_mean_png(const std::string& path, const std::vector<float>& mean, const Shape& s) {
  int c = static_cast<int>(s[0]), h = static_cast<int>(s[1]), w = static_cast<int>(s[2]);
  if (c != 1 && c != 3) return;  // the web UI shows gray or color only
  std::vector<uint8_t> hwc(mean.size());
  size_t plane = static_cast<size_t>(h) * w;
  for (int ch = 0; ch < c; ++ch)
    for (size_t i = 0; i < plane; ++i)
      hwc[i * c + ch] = static_cast<uint8_t>(std::lround(mean[ch * plane + i]));
  std::vector<uint8_t> png = encode_png(hwc.data(), w, h, c);
  AtomicFile f(path);
  f.write(png.data(), png.size());
  f.commit();
}

}  // namespace

StoreSplitInfo write_store_file(const Dataset& data, const std::string& path,
                                const std::string& split, int threads,
                                const CreateProgressFn& progress) {
  Shape s = data.example_shape();
  StoreHeader h;
  h.channels = static_cast<uint32_t>(s[0]);
  h.height = static_cast<uint32_t>(s[1]);
  h.width = static_cast<uint32_t>(s[2]);
  h.classes = static_cast<uint32_t>(data.num_classes());
  h.count = static_cast<uint64_t>(data.size());
  if (h.count == 0) throw Error(data.describe() + ": no examples to store");
  std::vector<uint8_t> names = encode_class_names(data.class_names());
  h.names_bytes = names.size();
  layout_store(h);

  const size_t eb = h.example_bytes();
  const int64_t n = data.size();
  const int64_t chunk = std::clamp<int64_t>(static_cast<int64_t>((16u << 20) / eb), 1, 8192);
  std::vector<uint8_t> pixels(static_cast<size_t>(chunk) * eb);
  std::vector<int32_t> labels(static_cast<size_t>(n));
  std::vector<uint64_t> sums(eb, 0);
  std::vector<int64_t> counts(h.classes, 0);
  AtomicFile out(path);
  uint32_t records_crc = 0;
  if (progress) progress({split, 0, n});
  for (int64_t begin = 0; begin < n; begin += chunk) {
    int64_t end = std::min(n, begin + chunk);
    read_chunk(data, begin, end, threads, pixels.data(), labels.data() + begin, eb);
    size_t bytes = static_cast<size_t>(end - begin) * eb;
    for (int64_t i = begin; i < end; ++i) {
      int32_t l = labels[static_cast<size_t>(i)];
      if (l < 0 || static_cast<uint32_t>(l) >= h.classes)
        throw Error(data.describe() + ": label " + std::to_string(l) + " of example " +
                    std::to_string(i) + " is out of range");
      ++counts[static_cast<size_t>(l)];
      const uint8_t* px = pixels.data() + static_cast<size_t>(i - begin) * eb;
      for (size_t k = 0; k < eb; ++k) sums[k] += px[k];
    }
    records_crc = crc32(records_crc, pixels.data(), bytes);
    out.pwrite(pixels.data(), bytes, h.records_offset + static_cast<uint64_t>(begin) * eb);
    if (progress) progress({split, end, n});
  }

  std::vector<float> mean(eb);
  for (size_t k = 0; k < eb; ++k) mean[k] = static_cast<float>(static_cast<double>(sums[k]) / n);
  std::vector<uint8_t> meta(h.labels_end() - h.names_offset, 0);
  std::memcpy(meta.data(), names.data(), names.size());
  std::memcpy(meta.data() + (h.counts_offset - h.names_offset), counts.data(), 8 * counts.size());
  std::memcpy(meta.data() + (h.mean_offset - h.names_offset), mean.data(), 4 * mean.size());
  std::memcpy(meta.data() + (h.labels_offset - h.names_offset), labels.data(), 4 * labels.size());
  h.meta_crc = crc32(0, meta.data(), meta.size());
  h.records_crc = records_crc;
  out.pwrite(meta.data(), meta.size(), h.names_offset);
  std::vector<uint8_t> header = encode_store_header(h);
  out.pwrite(header.data(), header.size(), 0);
  out.commit();

  StoreSplitInfo info;
  info.name = split;
  info.path = path;
  info.count = n;
  info.class_counts = counts;
  info.bytes = h.file_bytes;
  return info;
}

StoreInfo create_store(const std::string& source, const std::string& out_dir,
                       const CreateOptions& opts, const CreateProgressFn& progress) {
  auto t0 = std::chrono::steady_clock::now();
  if (is_store_dir(out_dir) && !opts.overwrite)
    throw Error(out_dir +
                " already holds a dataset store (train.mstore): choose another folder "
                "or overwrite it");
  DatasetSplits src = open_dataset(source, opts.open);
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) throw DataError(out_dir, -1, "cannot create the folder: " + ec.message());

  StoreInfo info;
  info.dir = out_dir;
  info.example_shape = src.train->example_shape();
  info.class_names = src.train->class_names();
  std::string train_path = (fs::path(out_dir) / "train.mstore").string();
  std::string val_path = (fs::path(out_dir) / "val.mstore").string();
  info.splits.push_back(write_store_file(*src.train, train_path, "train", opts.threads, progress));
  if (src.test)
    info.splits.push_back(write_store_file(*src.test, val_path, "val", opts.threads, progress));
  else
    fs::remove(val_path, ec);  // a stale split from an overwritten store

  // Re-open what was written: it validates the files and gives the mean back.
  auto train = open_store_file(train_path);
  std::shared_ptr<std::vector<float>> mean = train->mean_image();
  info.channel_mean = channel_means(*mean, info.example_shape);
  auto t1 = std::chrono::steady_clock::now();
  info.seconds = std::chrono::duration<double>(t1 - t0).count();

  nlohmann::json j;
  j["format"] = "myelin-store";
  j["version"] = kStoreVersion;
  j["source"] = source;
  j["shape"] = info.example_shape.dims;
  j["classes"] = info.class_names;
  j["resize"] = {{"height", opts.open.resize_h},
                 {"width", opts.open.resize_w},
                 {"mode", opts.open.resize_mode},
                 {"channels", opts.open.channels}};
  j["validation_percent"] = opts.open.validation_percent;
  j["seed"] = opts.open.seed;
  for (const StoreSplitInfo& s : info.splits)
    j["splits"][s.name] = {{"file", fs::path(s.path).filename().string()},
                           {"count", s.count},
                           {"class_counts", s.class_counts},
                           {"bytes", s.bytes}};
  j["mean_per_channel"] = info.channel_mean;
  j["mean_image"] = "mean.png";
  j["seconds"] = info.seconds;
  write_json((fs::path(out_dir) / "stats.json").string(), j);
  write_mean_png((fs::path(out_dir) / "mean.png").string(), *mean, info.example_shape);
  return info;
}

}  // namespace myelin
