#include "cli/common.h"

#include <algorithm>
#include <cstdio>
#include <random>

#include "core/text.h"

namespace myelin::cli {

std::vector<Flag> device_flags() {
  return {{"device", "DEV", "cpu, cuda or cuda:N", "cpu"},
          {"threads", "T", "CPU threads for kernels", "all cores"},
          {"precision", "P",
           "CUDA arithmetic: fp32; tf32 (fp32 values, tensor-core convolutions and products); "
           "bf16 or fp16 (16-bit activations, fp32 master weights; fp16 with loss scaling)",
           "fp32"}};
}

Flag conv_search_flag() {
  return {"conv-search", "MODE",
          "CUDA: how each convolution's algorithm is chosen: heuristic (cuDNN's ranking, no time "
          "at start), find (times cuDNN's algorithms), tune (times the graph API's engines, as "
          "PyTorch's cudnn.benchmark does: the fastest steps for long runs, seconds at start, "
          "cached on disk), auto (a tuned choice where the cache holds one, else heuristic in "
          "bf16/fp16 and find in fp32/tf32)",
          "auto"};
}

std::string choice_from(const Args& a, const std::string& flag, const std::string& fallback,
                        const std::vector<std::string>& names) {
  std::string v = a.str(flag, fallback);
  if (std::ranges::find(names, v) == names.end())
    throw UsageError("--" + flag + " must be " + either_of(names) + ", got '" + v + "'");
  return v;
}

std::string conv_search_from(const Args& a) {
  return choice_from(a, "conv-search", "auto", conv_search_names());
}

Device device_from(const Args& a) {
  return Device::parse(a.str("device", "cpu"));
}

BackendOptions backend_from(const Args& a) {
  BackendOptions o;
  o.threads = static_cast<int>(a.integer("threads", 0));
  o.precision = choice_from(a, "precision", "fp32", precision_names());
  if (o.threads < 0) throw UsageError("--threads must be positive");
  return o;
}

std::vector<Flag> data_flags() {
  return {{"size", "HxW", "image folders: resize to this size", "first image"},
          {"resize", "MODE", "image folders: crop, squash or fill", "squash"},
          {"channels", "C", "image folders: 1 (gray) or 3 (color)", "from images"},
          {"val-percent", "P", "image folders without a test set: validation share", "20"}};
}

OpenOptions open_options(const Args& a) {
  OpenOptions o;
  if (a.has("size")) {
    std::string s = a.str("size");
    auto x = s.find('x');
    try {
      o.resize_h = std::stoll(s.substr(0, x));
      o.resize_w = x == std::string::npos ? o.resize_h : std::stoll(s.substr(x + 1));
    } catch (const std::exception&) {
      throw UsageError("--size expects HxW (e.g. 64x64), got '" + s + "'");
    }
    if (o.resize_h < 1 || o.resize_w < 1) throw UsageError("--size must be positive");
  }
  o.resize_mode = choice_from(a, "resize", "squash", {"crop", "squash", "fill"});
  o.channels = static_cast<int>(a.integer("channels", 0));
  if (o.channels != 0 && o.channels != 1 && o.channels != 3)
    throw UsageError("--channels must be 1 or 3");
  o.validation_percent = a.number("val-percent", 20);
  o.seed = static_cast<uint64_t>(a.integer("seed", 1));
  return o;
}

bool wants_help(const std::vector<std::string>& argv, const std::string& text) {
  for (const std::string& a : argv)
    if (a == "--help" || a == "-h") {
      std::fputs(text.c_str(), stdout);
      return true;
    }
  return false;
}

Batch synthetic_batch(const BuiltNetwork& net, int64_t classes, uint64_t seed) {
  const Value &data = net.graph.value(net.data), &label = net.graph.value(net.label);
  Batch b;
  b.images = Tensor::empty(data.shape, data.dtype);
  b.labels = Tensor::empty(label.shape, DType::i32);
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (int64_t i = 0; i < b.images.numel(); ++i)
    if (data.dtype == DType::i32)  // symbol ids
      b.images.data_as<int32_t>()[i] = static_cast<int32_t>(rng() % classes);
    else
      b.images.f32()[i] = u(rng);
  auto* y = b.labels.data_as<int32_t>();
  for (int64_t i = 0; i < b.labels.numel(); ++i) y[i] = static_cast<int32_t>(rng() % classes);
  b.count = data.shape[0];
  return b;
}

}  // namespace myelin::cli
