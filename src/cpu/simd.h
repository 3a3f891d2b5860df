// Vector code for the CPU engine's own loops. The build targets baseline x86-64 (SSE2) so the
// program runs anywhere; hot loops are compiled again for AVX2 and AVX-512 and the best clone
// for the running CPU is picked when the program loads (GCC function multiversioning).
#pragma once

#define MYELIN_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

// f<16>(args...) or f<8>(args...) by `lanes` (a blocked layout's channel block), inside the
// calling clone.
#define MYELIN_BY_LANES(f, lanes, ...) ((lanes) == 8 ? f<8>(__VA_ARGS__) : f<16>(__VA_ARGS__))

namespace myelin::cpu {

// What the running CPU has, for kernels written for one instruction set (target attributes)
// rather than cloned: AVX-512 with its VL and DQ parts; AVX2 with FMA.
bool cpu_has_avx512();
bool cpu_has_avx2();

}  // namespace myelin::cpu
