/* The C API (include/myelin/myelin.h) through C alone: loading a bundle, a run directory and a
 * bundle in memory, and an ONNX model PyTorch exported; clear statuses and messages for missing,
 * truncated and corrupt files and wrong input shapes; concurrent runs on one model (two instances)
 * equal to a single-threaded run. Also run on the minimal libmyelin (tests/capi_minimal.cmake),
 * which has no ONNX.
 *
 *   capi_test DIR    (DIR from tests/capi_setup.cmake: run/ and lenet.tar.gz) */
#include <math.h>
#include <myelin/myelin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;

#define CHECK(cond)                                                                      \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      fprintf(stderr, "%s:%d: failed: %s (last error: %s)\n", __FILE__, __LINE__, #cond, \
              myelin_last_error());                                                      \
      ++failures;                                                                        \
    }                                                                                    \
  } while (0)

static char dir[4096];
static int have_onnx = 1; /* cleared where the library was built without ONNX */

static const char* in_dir(const char* name) {
  static char path[4096 + 64];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  return path;
}

static unsigned char* read_all(const char* path, size_t* size) {
  FILE* f = fopen(path, "rb");
  unsigned char* data;
  long n;
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  n = ftell(f);
  fseek(f, 0, SEEK_SET);
  data = (unsigned char*)malloc((size_t)n);
  *size = fread(data, 1, (size_t)n, f);
  fclose(f);
  return data;
}

static void write_all(const char* path, const unsigned char* data, size_t size) {
  FILE* f = fopen(path, "wb");
  fwrite(data, 1, size, f);
  fclose(f);
}

/* Inputs and the single-threaded reference for the concurrency check. */
#define EXAMPLES 100 /* more than a session's 64: run in two chunks */
#define CLASSES 10
#define PIXELS (28 * 28)
static float inputs[EXAMPLES * PIXELS];
static float reference[EXAMPLES * CLASSES];

struct worker {
  myelin_model* model;
  int ok;
};

static void* run_worker(void* arg) {
  struct worker* w = (struct worker*)arg;
  float* scores = (float*)malloc(sizeof reference);
  int r, i;
  w->ok = 1;
  for (r = 0; r < 5; ++r) {
    if (myelin_run(w->model, inputs, EXAMPLES, scores) != MYELIN_OK) w->ok = 0;
    for (i = 0; i < EXAMPLES * CLASSES; ++i)
      if (fabsf(scores[i] - reference[i]) > 1e-5f) w->ok = 0;
  }
  free(scores);
  return NULL;
}

/* e^x for x <= 0 without libm (the test links libmyelin alone): e^(x / 2^16) by its series,
 * squared 16 times. */
static double exp_nonpositive(double x) {
  double y = x / 65536.0, r = 1 + y * (1 + y / 2 * (1 + y / 3 * (1 + y / 4)));
  int i;
  for (i = 0; i < 16; ++i) r *= r;
  return r;
}

/* An ONNX model PyTorch exported (DIR/onnx, which capi_setup writes where /usr/bin/python3 has
 * torch and onnx), loaded from its path and from memory: its probabilities are the softmax of
 * PyTorch's logits for the same input. */
static void check_onnx_model(void) {
  size_t size = 0, input_size = 0, logits_size = 0;
  unsigned char* model = read_all(in_dir("onnx/lenet.onnx"), &size);
  float* input = (float*)read_all(in_dir("onnx/lenet.input.f32"), &input_size);
  float* logits = (float*)read_all(in_dir("onnx/lenet.logits.f32"), &logits_size);
  myelin_model *from_path = NULL, *from_memory = NULL, *other = NULL;
  float p[4 * CLASSES], q[4 * CLASSES];
  int i, k;
  if (!have_onnx) {
    fprintf(stderr, "ONNX model: skipped (this libmyelin has no ONNX)\n");
  } else if (!model || !input || !logits) {
    fprintf(stderr, "ONNX model: skipped (no DIR/onnx: python3 lacks torch or onnx)\n");
  } else {
    CHECK(logits_size == sizeof p && input_size == 4 * PIXELS * sizeof(float));
    CHECK(myelin_load(in_dir("onnx/lenet.onnx"), NULL, NULL, &from_path) == MYELIN_OK);
    CHECK(myelin_load_memory(model, size, NULL, &from_memory) == MYELIN_OK);
    CHECK(myelin_load(in_dir("onnx/unsupported.onnx"), NULL, NULL, &other) == MYELIN_ERROR_USAGE);
    CHECK(other == NULL && strstr(myelin_last_error(), "node '/Erf' (Erf)") != NULL);
    fprintf(stderr, "unsupported ONNX op: %s\n", myelin_last_error());
  }
  if (from_path && from_memory && logits_size == sizeof p) {
    CHECK(myelin_run(from_path, input, 4, p) == MYELIN_OK);
    CHECK(myelin_run(from_memory, input, 4, q) == MYELIN_OK);
    for (i = 0; i < 4; ++i) {
      const float* l = logits + i * CLASSES;
      double top = l[0], sum = 0;
      for (k = 1; k < CLASSES; ++k) top = l[k] > top ? l[k] : top;
      for (k = 0; k < CLASSES; ++k) sum += exp_nonpositive(l[k] - top);
      for (k = 0; k < CLASSES; ++k) {
        CHECK(fabsf(p[i * CLASSES + k] - (float)(exp_nonpositive(l[k] - top) / sum)) < 1e-5f);
        CHECK(p[i * CLASSES + k] == q[i * CLASSES + k]);
      }
    }
  }
  myelin_free(from_path);
  myelin_free(from_memory);
  free(model);
  free(input);
  free(logits);
}

int main(int argc, char** argv) {
  myelin_model *m = NULL, *from_run = NULL, *from_memory = NULL;
  int64_t dims[8], bad_shape[4] = {2, 1, 27, 28}, good_shape[4] = {2, 1, 28, 28};
  unsigned char* bytes;
  size_t size = 0;
  float scores[2 * CLASSES], other[2 * CLASSES], sum;
  struct worker workers[4];
  pthread_t threads[4];
  int i;
  myelin_options options = {"cpu", 2, 0, 2}; /* two instances: concurrent runs at once */

  if (argc != 2) {
    fprintf(stderr, "usage: capi_test DIR\n");
    return 2;
  }
  snprintf(dir, sizeof dir, "%s", argv[1]);
  CHECK(strlen(myelin_version()) > 0);

  /* Bad arguments and missing files. */
  CHECK(myelin_load(NULL, NULL, NULL, &m) == MYELIN_ERROR_USAGE && m == NULL);
  CHECK(myelin_load(in_dir("no-such.tar.gz"), NULL, NULL, &m) == MYELIN_ERROR_DATA);
  CHECK(strstr(myelin_last_error(), "no-such.tar.gz") != NULL);
  CHECK(m == NULL);

  /* A truncated bundle, on disk and in memory. */
  bytes = read_all(in_dir("lenet.tar.gz"), &size);
  CHECK(bytes != NULL && size > 1000);
  write_all(in_dir("truncated.tar.gz"), bytes, size / 2);
  CHECK(myelin_load(in_dir("truncated.tar.gz"), NULL, NULL, &m) == MYELIN_ERROR_DATA);
  CHECK(strstr(myelin_last_error(), "truncated.tar.gz") != NULL);
  fprintf(stderr, "truncated bundle: %s\n", myelin_last_error());
  CHECK(myelin_load_memory(bytes, size / 2, NULL, &m) == MYELIN_ERROR_DATA);
  CHECK(strstr(myelin_last_error(), "bundle in memory") != NULL);
  fprintf(stderr, "truncated bundle in memory: %s\n", myelin_last_error());

  /* A truncated weights file beside a named network. */
  {
    size_t wsize = 0;
    unsigned char* w = read_all(in_dir("run/weights.safetensors"), &wsize);
    CHECK(w != NULL && wsize > 1000);
    write_all(in_dir("half.safetensors"), w, wsize / 2);
    CHECK(myelin_load("lenet", in_dir("half.safetensors"), NULL, &m) == MYELIN_ERROR_DATA);
    CHECK(strstr(myelin_last_error(), "half.safetensors") != NULL);
    fprintf(stderr, "truncated weights: %s\n", myelin_last_error());
    free(w);
  }

  /* A corrupt ONNX model, on disk and in memory (bytes that are not gzip are read as ONNX). A
   * library built without ONNX says so instead. */
  {
    unsigned char junk[200];
    size_t i;
    myelin_status s;
    for (i = 0; i < sizeof junk; ++i) junk[i] = (unsigned char)(i * 37 + 11);
    write_all(in_dir("corrupt.onnx"), junk, sizeof junk);
    s = myelin_load(in_dir("corrupt.onnx"), NULL, NULL, &m);
    have_onnx = s != MYELIN_ERROR_DEVICE;
    CHECK(m == NULL && strstr(myelin_last_error(), "corrupt.onnx") != NULL);
    CHECK(s == MYELIN_ERROR_DATA ? strstr(myelin_last_error(), "not a valid ONNX model") != NULL
                                 : s == MYELIN_ERROR_DEVICE);
    fprintf(stderr, "corrupt ONNX model: %s\n", myelin_last_error());
    s = myelin_load_memory(junk, sizeof junk, NULL, &m);
    CHECK(m == NULL && strstr(myelin_last_error(), "ONNX model in memory") != NULL);
    CHECK(s == MYELIN_ERROR_DATA || s == MYELIN_ERROR_DEVICE);
    fprintf(stderr, "corrupt ONNX model in memory: %s\n", myelin_last_error());
  }

  /* An unknown device. */
  {
    myelin_options bad = {"tpu", 0, 0};
    CHECK(myelin_load(in_dir("lenet.tar.gz"), NULL, &bad, &m) != MYELIN_OK && m == NULL);
    fprintf(stderr, "unknown device: %s\n", myelin_last_error());
  }

  /* The bundle: shape, classes, names. */
  CHECK(myelin_load(in_dir("lenet.tar.gz"), NULL, &options, &m) == MYELIN_OK);
  if (!m) return 1;
  CHECK(myelin_input_rank(m) == 3);
  CHECK(myelin_input_shape(m, dims) == 3 && dims[0] == 1 && dims[1] == 28 && dims[2] == 28);
  CHECK(myelin_input_size(m) == PIXELS);
  CHECK(myelin_classes(m) == CLASSES);
  CHECK(myelin_class_name(m, 7) && strcmp(myelin_class_name(m, 7), "Sneaker") == 0);
  CHECK(myelin_class_name(m, 10) == NULL);

  /* Wrong shapes. */
  for (i = 0; i < EXAMPLES * PIXELS; ++i) inputs[i] = (float)((i * 7919) % 1000) / 1000.0f;
  CHECK(myelin_run_shaped(m, inputs, bad_shape, 4, scores) == MYELIN_ERROR_SHAPE);
  CHECK(strstr(myelin_last_error(), "[2, 1, 27, 28]") != NULL);
  fprintf(stderr, "wrong shape: %s\n", myelin_last_error());
  CHECK(myelin_run_shaped(m, inputs, good_shape, 3, scores) == MYELIN_ERROR_SHAPE);
  CHECK(myelin_run(m, inputs, 0, scores) == MYELIN_ERROR_SHAPE);
  CHECK(myelin_run(m, NULL, 1, scores) == MYELIN_ERROR_USAGE);

  /* Probabilities, and the same from the run directory and from memory. */
  CHECK(myelin_run_shaped(m, inputs, good_shape, 4, scores) == MYELIN_OK);
  for (sum = 0, i = 0; i < CLASSES; ++i) sum += scores[i];
  CHECK(fabsf(sum - 1.0f) < 1e-4f);
  CHECK(myelin_load(in_dir("run"), NULL, &options, &from_run) == MYELIN_OK);
  CHECK(myelin_load_memory(bytes, size, &options, &from_memory) == MYELIN_OK);
  if (from_run) {
    CHECK(myelin_run(from_run, inputs, 2, other) == MYELIN_OK);
    for (i = 0; i < 2 * CLASSES; ++i) CHECK(fabsf(other[i] - scores[i]) < 1e-5f);
  }
  if (from_memory) {
    CHECK(myelin_run(from_memory, inputs, 2, other) == MYELIN_OK);
    for (i = 0; i < 2 * CLASSES; ++i) CHECK(fabsf(other[i] - scores[i]) < 1e-5f);
    CHECK(strcmp(myelin_class_name(from_memory, 0), "T-shirt/top") == 0);
  }
  CHECK(myelin_classify_image(m, bytes, 10, 1, NULL, NULL) == MYELIN_ERROR_DATA);
  fprintf(stderr, "not an image: %s\n", myelin_last_error());

  /* Four threads at once on one model, each equal to the single-threaded run. */
  CHECK(myelin_run(m, inputs, EXAMPLES, reference) == MYELIN_OK);
  for (i = 0; i < 4; ++i) {
    workers[i].model = m;
    pthread_create(&threads[i], NULL, run_worker, &workers[i]);
  }
  for (i = 0; i < 4; ++i) {
    pthread_join(threads[i], NULL);
    CHECK(workers[i].ok);
  }

  myelin_free(from_memory);
  myelin_free(from_run);
  myelin_free(m);
  myelin_free(NULL);
  free(bytes);
  check_onnx_model();
  if (failures)
    fprintf(stderr, "%d checks failed\n", failures);
  else
    printf("capi_test: all checks passed\n");
  return failures ? 1 : 0;
}
