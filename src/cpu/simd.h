// Vector code for the CPU engine's own loops. The build targets baseline x86-64 (SSE2) so the
// program runs anywhere; hot loops are compiled again for AVX2 and AVX-512 and the best clone
// for the running CPU is picked when the program loads (GCC function multiversioning).
#pragma once

#define MYELIN_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

// Kernels written for one instruction set, compiled for it whatever the build's -march and
// called only where the running CPU has it (cpu_has_avx512, cpu_has_avx2). Clang does not carry
// these attributes into an OpenMP region's outlined body: vector code there goes in a function.
#define MYELIN_AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,avx2,fma")))
#define MYELIN_AVX512_INLINE MYELIN_AVX512 inline __attribute__((always_inline))
#define MYELIN_AVX2 __attribute__((target("avx2,fma")))

// No predictive commoning in a kernel's products (GCC only): GCC would otherwise carry a
// broadcast's operand to the next step in a general register, and a broadcast from a register is
// a shuffle on an FMA port.
#if defined(__clang__)
#define MYELIN_NO_PCOM
#else
#define MYELIN_NO_PCOM __attribute__((optimize("no-predictive-commoning")))
#endif

// f<16>(args...) or f<8>(args...) by `lanes` (a blocked layout's channel block), inside the
// calling clone.
#define MYELIN_BY_LANES(f, lanes, ...) ((lanes) == 8 ? f<8>(__VA_ARGS__) : f<16>(__VA_ARGS__))

namespace myelin::cpu {

// What the running CPU has, for kernels written for one instruction set (target attributes)
// rather than cloned: AVX-512 with its VL and DQ parts; AVX2 with FMA.
bool cpu_has_avx512();
bool cpu_has_avx2();

}  // namespace myelin::cpu
