/* Classifies PNG or JPEG images with a trained Myelin model through the C API:
 *
 *   classify MODEL IMAGE...
 *
 * MODEL is a bundle (.tar.gz), a training run directory, a .safetensors file or (where libmyelin
 * has ONNX: not the minimal build) an ONNX model. Prints, for each image, its three most probable
 * classes: "  93.21%  Sneaker (7)". */
#include <myelin/myelin.h>
#include <stdio.h>
#include <stdlib.h>

static unsigned char* read_file(const char* path, size_t* size) {
  FILE* f = fopen(path, "rb");
  unsigned char* data = NULL;
  long n;
  if (!f) return NULL;
  if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
    data = (unsigned char*)malloc((size_t)n + 1);
    if (data && fread(data, 1, (size_t)n, f) != (size_t)n) {
      free(data);
      data = NULL;
    }
    *size = (size_t)n;
  }
  fclose(f);
  return data;
}

int main(int argc, char** argv) {
  myelin_model* model;
  int i, j, failed = 0;
  if (argc < 3) {
    fprintf(stderr, "usage: %s MODEL IMAGE...\n", argv[0]);
    return 2;
  }
  if (myelin_load(argv[1], NULL, NULL, &model) != MYELIN_OK) {
    fprintf(stderr, "%s\n", myelin_last_error());
    return 1;
  }
  for (i = 2; i < argc; ++i) {
    size_t size = 0;
    unsigned char* image = read_file(argv[i], &size);
    int64_t labels[3];
    float p[3];
    int k = myelin_classes(model) < 3 ? (int)myelin_classes(model) : 3;
    if (!image) {
      fprintf(stderr, "cannot read %s\n", argv[i]);
      failed = 1;
      continue;
    }
    if (myelin_classify_image(model, image, size, k, labels, p) != MYELIN_OK) {
      fprintf(stderr, "%s: %s\n", argv[i], myelin_last_error());
      failed = 1;
    } else {
      printf("%s\n", argv[i]);
      for (j = 0; j < k; ++j)
        printf("  %6.2f%%  %s (%d)\n", 100.0 * p[j], myelin_class_name(model, labels[j]),
               (int)labels[j]);
    }
    free(image);
  }
  myelin_free(model);
  return failed;
}
