// GPU tests skip, saying why, on machines without a CUDA device (CI, laptops).
#pragma once
#include <gtest/gtest.h>

#include "cuda/cuda_info.h"

#define REQUIRE_GPU()                                                                      \
  if (myelin::cuda_device_count() == 0)                                                    \
  GTEST_SKIP() << "no CUDA device on this machine (cudaGetDeviceCount reports none); run " \
                  "scripts/gpu-check.sh on a GPU machine"
