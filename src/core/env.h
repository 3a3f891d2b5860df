// Environment switches (MYELIN_CUDA_FUSE=0 and the like): whether a variable is set to a value.
#pragma once
#include <cstdlib>
#include <cstring>

namespace myelin {

inline bool env_is(const char* name, const char* value) {
  const char* e = std::getenv(name);
  return e && std::strcmp(e, value) == 0;
}

}  // namespace myelin
