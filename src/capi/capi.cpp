// libmyelin: the C API of include/myelin/myelin.h over the inference code of `myelin classify`
// (train/evaluate.h). Every entry point catches every exception and turns it into a status and a
// thread-local message. One Session per model, sized for max_batch, runs one call at a time
// under a mutex; shorter batches are padded to the session's batch, longer ones run in chunks.
#include "myelin/myelin.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/archive.h"
#include "data/loader.h"
#include "model/network.h"
#include "train/evaluate.h"
#include "train/session.h"
#if MYELIN_WITH_ONNX
#include "onnx/import.h"
#include "onnx/onnx_io.h"
#endif

#ifndef MYELIN_C_VERSION
#define MYELIN_C_VERSION "0.0.0"
#endif

namespace fs = std::filesystem;
using namespace myelin;

struct myelin_model {
  NetworkSpec spec;
  std::vector<std::string> class_names;
  int64_t batch = 0, example = 0;  // session batch, floats per example
  std::unique_ptr<Session> session;
  std::mutex mutex;  // one evaluate at a time on the session
};

namespace {

thread_local std::string last_error;

myelin_status fail(myelin_status s, const std::string& message) {
  last_error = message;
  return s;
}

// Runs `f`, mapping every exception to a status and the thread's last error.
template <class F>
myelin_status guarded(F&& f) {
  try {
    f();
    return MYELIN_OK;
  } catch (const ShapeError& e) {
    return fail(MYELIN_ERROR_SHAPE, e.what());
  } catch (const DataError& e) {
    return fail(MYELIN_ERROR_DATA, e.what());
  } catch (const ParseError& e) {
    return fail(MYELIN_ERROR_DATA, e.what());
  } catch (const DeviceError& e) {
    return fail(MYELIN_ERROR_DEVICE, e.what());
  } catch (const UnsupportedError& e) {
    return fail(MYELIN_ERROR_DEVICE, e.what());
  } catch (const UsageError& e) {
    return fail(MYELIN_ERROR_USAGE, e.what());
  } catch (const std::bad_alloc&) {
    return fail(MYELIN_ERROR_INTERNAL, "out of memory");
  } catch (const std::exception& e) {
    return fail(MYELIN_ERROR_INTERNAL, e.what());
  } catch (...) {
    return fail(MYELIN_ERROR_INTERNAL, "unknown error");
  }
}

// A fresh directory under the system temp directory, removed with this object.
struct TempDir {
  fs::path path;
  TempDir() {
    std::string t = (fs::temp_directory_path() / "myelin-capi-XXXXXX").string();
    if (!mkdtemp(t.data())) throw Error("cannot create a temporary directory in " + t);
    path = t;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

std::vector<std::string> read_labels(const fs::path& file) {
  std::vector<std::string> names;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    names.push_back(line);
  }
  return names;
}

std::unique_ptr<myelin_model> open_model(const std::string& network, const std::string& weights,
                                         std::vector<std::string> names, const myelin_options* o) {
  auto m = std::make_unique<myelin_model>();
  m->spec = resolve_spec(std::nullopt, network, weights);
  if (m->spec.input_type != "image")
    throw UsageError("network '" + m->spec.name + "' reads " + m->spec.input_type +
                     ", not images: the C API runs image classifiers");
  m->batch = o && o->max_batch > 0 ? o->max_batch : 64;
  m->example = 1;
  for (int64_t d : m->spec.input) m->example *= d;
  std::string device = o && o->device && *o->device ? o->device : "cpu";
  m->session = inference_session(m->spec, device, o ? o->threads : 0, "fp32", m->batch, weights);
  if (static_cast<int64_t>(names.size()) != m->spec.classes)
    names = class_names_from(weights, static_cast<int>(m->spec.classes));
  m->class_names = std::move(names);
  return m;
}

// A bundle (.tar.gz): unpacked into a temporary directory, which is gone once the weights are in
// the session.
std::unique_ptr<myelin_model> open_bundle(const std::string& path, const myelin_options* o) {
  TempDir dir;
  ExtractLimits limits;
  limits.max_files = 100;
  ExtractResult x = extract_archive(path, (dir.path / "bundle").string(), limits);
  fs::path root = x.root;
  for (const char* f : {"network.yaml", "weights.safetensors"})
    if (!fs::exists(root / f))
      throw DataError(path, -1, std::string("not a model bundle: it holds no ") + f);
  return open_model((root / "network.yaml").string(), (root / "weights.safetensors").string(),
                    read_labels(root / "labels.txt"), o);
}

// An ONNX model's bytes, imported into a temporary network file and weights (`weights`, when
// given, in place of the model's own), gone once the weights are in the session.
std::unique_ptr<myelin_model> open_onnx(const void* bytes, size_t size, const std::string& origin,
                                        const char* weights, const myelin_options* o) {
#if MYELIN_WITH_ONNX
  ImportedNetwork net;
  try {
    net = import_onnx(onnx_io::parse_model(bytes, size, origin), origin);
  } catch (const UnsupportedError& e) {  // an op Myelin lacks: an unsupported network, not device
    throw UsageError(e.what());
  }
  TempDir dir;
  const std::string network = (dir.path / "network.yaml").string(),
                    imported = (dir.path / "weights.safetensors").string();
  write_imported(net, network, imported);
  return open_model(network, weights ? weights : imported, net.class_names, o);
#else
  (void)bytes, (void)size, (void)weights, (void)o;
  throw UnsupportedError(origin + ": this libmyelin was built without ONNX support");
#endif
}

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(path, -1, "cannot open the file");
  return std::string(std::istreambuf_iterator<char>(in), {});
}

bool is_onnx(const std::string& path) {
  return fs::path(path).extension() == ".onnx";
}

bool is_gzip(const void* bytes, size_t size) {
  const auto* b = static_cast<const unsigned char*>(bytes);
  return size >= 2 && b[0] == 0x1f && b[1] == 0x8b;
}

bool is_bundle(const std::string& path) {
  if (!fs::is_regular_file(path)) return false;
  std::ifstream in(path, std::ios::binary);
  unsigned char magic[2] = {0, 0};
  in.read(reinterpret_cast<char*>(magic), 2);
  return magic[0] == 0x1f && magic[1] == 0x8b;  // gzip
}

void softmax_rows(const float* logits, int64_t rows, int64_t classes, float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = logits + r * classes;
    float* y = out + r * classes;
    float top = *std::max_element(x, x + classes);
    double sum = 0;
    for (int64_t j = 0; j < classes; ++j) sum += y[j] = std::exp(x[j] - top);
    for (int64_t j = 0; j < classes; ++j) y[j] = static_cast<float>(y[j] / sum);
  }
}

void run_batch(myelin_model& m, const float* input, int64_t batch, float* scores) {
  const int64_t classes = m.spec.classes;
  Dims shape{m.batch};
  shape.insert(shape.end(), m.spec.input.begin(), m.spec.input.end());
  Batch b;
  b.images = Tensor::empty(Shape(shape));
  b.labels = Tensor::empty(Shape{m.batch}, DType::i32);
  std::fill_n(b.labels.data_as<int32_t>(), m.batch, 0);
  Tensor logits;
  for (int64_t first = 0; first < batch; first += m.batch) {
    int64_t n = std::min(batch - first, m.batch);
    float* images = b.images.f32();
    std::memcpy(images, input + first * m.example, sizeof(float) * n * m.example);
    std::fill(images + n * m.example, images + m.batch * m.example, 0.0f);  // padding
    b.count = n;
    {
      std::lock_guard<std::mutex> lock(m.mutex);
      m.session->evaluate(b, &logits);
    }
    softmax_rows(logits.f32(), n, classes, scores + first * classes);
  }
}

}  // namespace

extern "C" {

const char* myelin_version(void) {
  return MYELIN_C_VERSION;
}

const char* myelin_last_error(void) {
  return last_error.c_str();
}

myelin_status myelin_load(const char* path, const char* weights, const myelin_options* options,
                          myelin_model** out) {
  if (out) *out = nullptr;
  return guarded([&] {
    if (!path || !*path || !out) throw UsageError("myelin_load: path and out are required");
    std::unique_ptr<myelin_model> m;
    if (is_onnx(path)) {
      const std::string bytes = file_bytes(path);
      m = open_onnx(bytes.data(), bytes.size(), path, weights, options);
    } else if (weights) {
      if (!fs::exists(weights)) throw DataError(weights, -1, "no such file or directory");
      m = open_model(path, weights, {}, options);
    } else {
      if (!fs::exists(path)) throw DataError(path, -1, "no such file or directory");
      m = is_bundle(path) ? open_bundle(path, options) : open_model("", path, {}, options);
    }
    *out = m.release();
  });
}

myelin_status myelin_load_memory(const void* bundle, size_t size, const myelin_options* options,
                                 myelin_model** out) {
  if (out) *out = nullptr;
  return guarded([&] {
    if (!bundle || !out) throw UsageError("myelin_load_memory: bundle and out are required");
    if (!is_gzip(bundle, size)) {  // not a .tar.gz bundle: an ONNX model (protobuf)
      *out = open_onnx(bundle, size, "ONNX model in memory", nullptr, options).release();
      return;
    }
    TempDir dir;
    fs::path file = dir.path / "bundle.tar.gz";
    {
      std::ofstream f(file, std::ios::binary);
      f.write(static_cast<const char*>(bundle), static_cast<std::streamsize>(size));
      if (!f) throw Error("cannot write a temporary file " + file.string());
    }
    try {
      *out = open_bundle(file.string(), options).release();
    } catch (const DataError& e) {  // name the buffer, not the temporary file
      std::string what = e.what();
      std::string tmp = file.string();
      for (size_t at; (at = what.find(tmp)) != std::string::npos;)
        what.replace(at, tmp.size(), "bundle in memory");
      throw DataError("bundle in memory", -1, what.substr(what.find(": ") + 2));
    }
  });
}

void myelin_free(myelin_model* model) {
  delete model;
}

int myelin_input_rank(const myelin_model* model) {
  return model ? static_cast<int>(model->spec.input.size()) : 0;
}

int myelin_input_shape(const myelin_model* model, int64_t* dims) {
  if (!model) return 0;
  if (dims) std::copy(model->spec.input.begin(), model->spec.input.end(), dims);
  return static_cast<int>(model->spec.input.size());
}

int64_t myelin_input_size(const myelin_model* model) {
  return model ? model->example : 0;
}

int64_t myelin_classes(const myelin_model* model) {
  return model ? model->spec.classes : 0;
}

const char* myelin_class_name(const myelin_model* model, int64_t k) {
  if (!model || k < 0 || k >= static_cast<int64_t>(model->class_names.size())) return nullptr;
  return model->class_names[static_cast<size_t>(k)].c_str();
}

myelin_status myelin_run(myelin_model* model, const float* input, int64_t batch, float* scores) {
  return guarded([&] {
    if (!model || !input || !scores)
      throw UsageError("myelin_run: model, input and scores are required");
    if (batch <= 0)
      throw ShapeError("myelin_run: batch " + std::to_string(batch) + " (expected at least 1)");
    run_batch(*model, input, batch, scores);
  });
}

myelin_status myelin_run_shaped(myelin_model* model, const float* input, const int64_t* shape,
                                int rank, float* scores) {
  return guarded([&] {
    if (!model || !input || !shape || !scores)
      throw UsageError("myelin_run_shaped: model, input, shape and scores are required");
    Dims want{-1};
    want.insert(want.end(), model->spec.input.begin(), model->spec.input.end());
    bool ok = rank == static_cast<int>(want.size()) && shape[0] > 0;
    for (int i = 1; ok && i < rank; ++i) ok = shape[i] == want[static_cast<size_t>(i)];
    if (!ok) {
      std::string got, expect = "[N";
      for (int i = 0; i < rank; ++i) got += (i ? ", " : "[") + std::to_string(shape[i]);
      for (size_t i = 1; i < want.size(); ++i) expect += ", " + std::to_string(want[i]);
      throw ShapeError("myelin_run: input shape " + (rank > 0 ? got + "]" : "[]") +
                       " does not fit network '" + model->spec.name + "', which takes " + expect +
                       "] with N >= 1");
    }
    run_batch(*model, input, shape[0], scores);
  });
}

myelin_status myelin_classify_image(myelin_model* model, const void* image, size_t size, int k,
                                    int64_t* labels, float* probabilities) {
  return guarded([&] {
    if (!model || !image) throw UsageError("myelin_classify_image: model and image are required");
    std::vector<uint8_t> bytes(static_cast<const uint8_t*>(image),
                               static_cast<const uint8_t*>(image) + size);
    std::vector<float> input(static_cast<size_t>(model->example));
    prepare_image(model->spec, "squash", "image", bytes, input.data());
    const int64_t classes = model->spec.classes;
    std::vector<float> p(static_cast<size_t>(classes));
    run_batch(*model, input.data(), 1, p.data());
    std::vector<int64_t> order(static_cast<size_t>(classes));
    for (int64_t j = 0; j < classes; ++j) order[static_cast<size_t>(j)] = j;
    int64_t top = std::clamp<int64_t>(k, 1, classes);
    std::partial_sort(order.begin(), order.begin() + top, order.end(),
                      [&](int64_t a, int64_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
    for (int64_t j = 0; j < top; ++j) {
      if (labels) labels[j] = order[static_cast<size_t>(j)];
      if (probabilities) probabilities[j] = p[static_cast<size_t>(order[static_cast<size_t>(j)])];
    }
  });
}

}  // extern "C"
