#include "cpu/simd.h"

namespace myelin::cpu {

bool cpu_has_avx512() {
  static const bool on = (__builtin_cpu_init(), __builtin_cpu_supports("avx512f") &&
                                                    __builtin_cpu_supports("avx512vl") &&
                                                    __builtin_cpu_supports("avx512dq"));
  return on;
}

bool cpu_has_avx2() {
  static const bool on =
      (__builtin_cpu_init(), __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"));
  return on;
}

}  // namespace myelin::cpu
