/* libmyelin: run trained Myelin models from C (or any language with a C FFI).
 *
 * A model is loaded once (a bundle downloaded from the server's models page, a training run
 * directory, a .safetensors file whose metadata names its network, a network plus weights, or
 * an ONNX model such as PyTorch exports) and then run from any number of threads. No C++ exception
 * crosses this interface: every call that can fail returns a myelin_status, and myelin_last_error()
 * gives the message of the last failure on the calling thread.
 *
 *   myelin_model* m;
 *   if (myelin_load("lenet.tar.gz", NULL, NULL, &m) != MYELIN_OK)
 *     fprintf(stderr, "%s\n", myelin_last_error());
 *
 * C89/C99 compatible. Link with -lmyelin (pkg-config: myelin; CMake: myelin::myelin_c).
 */
#ifndef MYELIN_MYELIN_H
#define MYELIN_MYELIN_H

#include <stddef.h>
#include <stdint.h>

/* The library is built with hidden visibility: only what is marked MYELIN_API is exported. */
#if defined(__GNUC__)
#define MYELIN_API __attribute__((visibility("default")))
#else
#define MYELIN_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* A loaded model: its network, weights, class names and `instances` inference sessions. Opaque. */
typedef struct myelin_model myelin_model;

typedef enum myelin_status {
  MYELIN_OK = 0,
  MYELIN_ERROR_USAGE,   /* a bad argument: NULL pointer, unknown option, unsupported network */
  MYELIN_ERROR_DATA,    /* a missing, corrupt or truncated file, or undecodable image bytes */
  MYELIN_ERROR_SHAPE,   /* an input whose shape is not the network's, or weights that do not fit */
  MYELIN_ERROR_DEVICE,  /* a device that failed or is not built in (e.g. "cuda" without CUDA) */
  MYELIN_ERROR_INTERNAL /* anything else (out of memory, a bug) */
} myelin_status;

/* Load options; a NULL pointer means all defaults. */
typedef struct myelin_options {
  const char* device; /* "cpu" (NULL: "cpu"), "cuda", "cuda:1" */
  int threads;   /* CPU threads of each instance; 0: all cores (shared out between instances) */
  int max_batch; /* examples run at once; 0: 64. Larger calls run in chunks of this. The network
                  * is compiled for 1, 2, 4, ... and max_batch examples, so a short call runs at
                  * the smallest size that holds it; each size holds its own copy of the weights
                  * (a lower max_batch saves memory) */
  int instances; /* copies of the network, so that as many calls run at once; 0: 1 */
} myelin_options;

/* The library's version, "MAJOR.MINOR.PATCH". */
MYELIN_API const char* myelin_version(void);

/* The message of the last failed call on this thread ("" if none). Valid until the next failing
 * call on this thread. */
MYELIN_API const char* myelin_last_error(void);

/* Loads a model. With weights == NULL, `path` is a bundle (.tar.gz), a training run directory,
 * a .safetensors file naming its network in its metadata, or an ONNX model (a path ending in
 * .onnx, as PyTorch exports CNNs; see `myelin import`); otherwise `path` is a network (model
 * name, .yaml file or .onnx model) and `weights` a .safetensors file, snapshot or run directory. On
 * success *out holds the model (free it with myelin_free); on failure *out is NULL. */
MYELIN_API myelin_status myelin_load(const char* path, const char* weights,
                                     const myelin_options* options, myelin_model** out);

/* Loads a model held in memory: the bytes of a .tar.gz bundle (they start with gzip's magic
 * bytes 1f 8b), or else of an ONNX model. A bundle is written to a temporary file, unpacked into a
 * temporary directory and loaded; both are removed before this returns. */
MYELIN_API myelin_status myelin_load_memory(const void* bundle, size_t size,
                                            const myelin_options* options, myelin_model** out);

/* Frees a model (NULL is ignored). No call on the model may be running. */
MYELIN_API void myelin_free(myelin_model* model);

/* The rank of one example's input (3 for [C, H, W] images), and its dimensions written to
 * dims[0..rank) when dims is not NULL. */
MYELIN_API int myelin_input_rank(const myelin_model* model);
MYELIN_API int myelin_input_shape(const myelin_model* model, int64_t* dims);
/* Elements of one example's input (C * H * W). */
MYELIN_API int64_t myelin_input_size(const myelin_model* model);
/* The number of classes the network scores, and the name of class k (NULL when out of range). */
MYELIN_API int64_t myelin_classes(const myelin_model* model);
MYELIN_API const char* myelin_class_name(const myelin_model* model, int64_t k);

/* Runs `batch` examples: input holds batch * myelin_input_size() floats, already normalised as
 * the network was trained (myelin_classify_image does that for images). Writes batch * classes
 * softmax probabilities to `scores`. Safe to call from several threads at once on one model:
 * each call runs on an idle instance (myelin_options.instances), or waits for one. */
MYELIN_API myelin_status myelin_run(myelin_model* model, const float* input, int64_t batch,
                                    float* scores);

/* The same, with the input's full shape [batch, dims...] checked against the network's:
 * MYELIN_ERROR_SHAPE when it differs. */
MYELIN_API myelin_status myelin_run_shaped(myelin_model* model, const float* input,
                                           const int64_t* shape, int rank, float* scores);

/* Classifies one encoded PNG or JPEG image: decoded, converted to the network's channels,
 * resized (squashed) to its input and normalised as in training. Writes the k most probable
 * classes, most probable first, to labels[0..k) and their probabilities to probabilities[0..k)
 * (either may be NULL); k is clamped to the number of classes. */
MYELIN_API myelin_status myelin_classify_image(myelin_model* model, const void* image, size_t size,
                                               int k, int64_t* labels, float* probabilities);

#ifdef __cplusplus
}
#endif

#endif /* MYELIN_MYELIN_H */
