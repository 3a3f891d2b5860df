// libmyelin: the C API of include/myelin/myelin.h over train/predictor.h, the inference path that
// `myelin serve-model` and the Python module share. Every entry point catches every exception and
// turns it into a status and a thread-local message. A model holds `instances` copies of the
// network; concurrent calls each take an idle one (or wait for one in turn).
#include "myelin/myelin.h"

#include <algorithm>
#include <filesystem>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "core/error.h"
#include "train/predictor.h"
#if MYELIN_WITH_ONNX
#include "onnx/model_files.h"
#endif

#ifndef MYELIN_C_VERSION
#define MYELIN_C_VERSION "0.0.0"
#endif

namespace fs = std::filesystem;
using namespace myelin;

struct myelin_model {
  std::unique_ptr<Predictor> predictor;
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

PredictorOptions predictor_options(const myelin_options* o, const char* weights) {
  PredictorOptions p;
  if (weights) p.weights = weights;
  if (!o) return p;
  if (o->device && *o->device) p.device = o->device;
  p.threads = o->threads;
  if (o->max_batch > 0) p.max_batch = o->max_batch;
  if (o->instances > 0) p.instances = o->instances;
  return p;
}

// An ONNX model (its path, or its bytes named `origin`), imported into a temporary network file
// and weights (`weights`, when given, in place of the model's own), gone once the weights are in
// the predictor.
std::unique_ptr<Predictor> open_onnx(const std::string& path, const void* bytes, size_t size,
                                     const std::string& origin, const myelin_options* o,
                                     const char* weights) {
#if MYELIN_WITH_ONNX
  TemporaryDirectory dir;
  OnnxModelFiles files;
  try {
    files = bytes ? write_onnx_model_files(bytes, size, origin, dir.path())
                  : write_onnx_model_files(path, dir.path());
  } catch (const UnsupportedError& e) {  // an op Myelin lacks: an unsupported network, not device
    throw UsageError(e.what());
  }
  return std::make_unique<Predictor>(
      files.network, predictor_options(o, weights ? weights : files.weights.c_str()));
#else
  (void)path, (void)bytes, (void)size, (void)o, (void)weights;
  throw UnsupportedError(origin + ": this libmyelin was built without ONNX support");
#endif
}

bool is_onnx_path(const std::string& path) {
  return fs::path(path).extension() == ".onnx";
}

bool is_gzip(const void* bytes, size_t size) {
  const auto* b = static_cast<const unsigned char*>(bytes);
  return size >= 2 && b[0] == 0x1f && b[1] == 0x8b;
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
    auto m = std::make_unique<myelin_model>();
    if (is_onnx_path(path))
      m->predictor = open_onnx(path, nullptr, 0, path, options, weights);
    else
      m->predictor = std::make_unique<Predictor>(path, predictor_options(options, weights));
    *out = m.release();
  });
}

myelin_status myelin_load_memory(const void* bundle, size_t size, const myelin_options* options,
                                 myelin_model** out) {
  if (out) *out = nullptr;
  return guarded([&] {
    if (!bundle || !out) throw UsageError("myelin_load_memory: bundle and out are required");
    auto m = std::make_unique<myelin_model>();
    if (is_gzip(bundle, size))
      m->predictor = std::make_unique<Predictor>(bundle, size, "bundle in memory",
                                                 predictor_options(options, nullptr));
    else  // not a .tar.gz bundle: an ONNX model (protobuf)
      m->predictor = open_onnx("", bundle, size, "ONNX model in memory", options, nullptr);
    *out = m.release();
  });
}

void myelin_free(myelin_model* model) {
  delete model;
}

int myelin_input_rank(const myelin_model* model) {
  return model ? static_cast<int>(model->predictor->spec().input.size()) : 0;
}

int myelin_input_shape(const myelin_model* model, int64_t* dims) {
  if (!model) return 0;
  const Dims& input = model->predictor->spec().input;
  if (dims) std::copy(input.begin(), input.end(), dims);
  return static_cast<int>(input.size());
}

int64_t myelin_input_size(const myelin_model* model) {
  return model ? model->predictor->example_size() : 0;
}

int64_t myelin_classes(const myelin_model* model) {
  return model ? model->predictor->classes() : 0;
}

const char* myelin_class_name(const myelin_model* model, int64_t k) {
  if (!model || k < 0 || k >= model->predictor->classes()) return nullptr;
  return model->predictor->class_names()[static_cast<size_t>(k)].c_str();
}

myelin_status myelin_run(myelin_model* model, const float* input, int64_t batch, float* scores) {
  return guarded([&] {
    if (!model || !input || !scores)
      throw UsageError("myelin_run: model, input and scores are required");
    if (batch <= 0)
      throw ShapeError("myelin_run: batch " + std::to_string(batch) + " (expected at least 1)");
    model->predictor->run(input, batch, scores);
  });
}

myelin_status myelin_run_shaped(myelin_model* model, const float* input, const int64_t* shape,
                                int rank, float* scores) {
  myelin_status s = guarded([&] {
    if (!model || !input || !shape || !scores)
      throw UsageError("myelin_run_shaped: model, input, shape and scores are required");
    model->predictor->check_shape(Dims(shape, shape + std::max(rank, 0)));
  });
  return s == MYELIN_OK ? myelin_run(model, input, shape[0], scores) : s;
}

myelin_status myelin_classify_image(myelin_model* model, const void* image, size_t size, int k,
                                    int64_t* labels, float* probabilities) {
  return guarded([&] {
    if (!model || !image) throw UsageError("myelin_classify_image: model and image are required");
    Predictor& p = *model->predictor;
    const auto* bytes = static_cast<const uint8_t*>(image);
    std::vector<float> input(static_cast<size_t>(p.example_size()));
    p.prepare("image", std::vector<uint8_t>(bytes, bytes + size), input.data());
    std::vector<float> scores(static_cast<size_t>(p.classes()));
    p.run(input.data(), 1, scores.data());
    const std::vector<Prediction> top = top_classes(scores.data(), p.classes(), k, p.class_names());
    for (size_t j = 0; j < top.size(); ++j) {
      if (labels) labels[j] = top[j].label;
      if (probabilities) probabilities[j] = static_cast<float>(top[j].probability);
    }
  });
}

}  // extern "C"
