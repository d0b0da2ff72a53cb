#pragma once
// The per-type kernel table the engine computes with. For each weight type: the type activations
// are converted to before a dot product (as llama.cpp does: Q8_0 for Q4_0/Q8_0, Q8_K for K-quants,
// F16 for F16, F32 for F32), the converter, the weight dequantizer, and the dot product.
// Scalar reference variants always exist; AVX2 and AVX-512 variants are picked at run time.
#include "quant/ggml_type.hpp"

namespace lb {

enum class SimdLevel { Scalar = 0, Avx2 = 1, Avx512 = 2 };

struct Kernels {
  GgmlType act_type;           // activation row type for vec_dot
  FromFloatFn act_from_float;  // floats -> activation row
  ToFloatFn to_float;          // weight row -> floats
  VecDotFn vec_dot;            // weight row . activation row (llama.cpp's order for one row)
  // The order llama.cpp's GEMM path (llamafile tinyBLAS) sums in, which it uses for products of
  // 2+ activation rows when cols % 16 == 0 and the weight's rows % 4 == 0 (kGemmCols,
  // kGemmRows); nullptr where that order is vec_dot's own (Q8_0) or llama.cpp does not use it.
  VecDotFn gemm_dot;
  // vec_dot of one weight row against up to kMaxDotActs activation rows, bit for bit, unpacking
  // the weights once where a kernel for that exists (else one vec_dot per row).
  VecDotMultiFn vec_dot_multi;
  // vec_dot of kDotRows weight rows against one activation row, bit for bit; nullptr where no
  // kernel sharing the activation exists (then one vec_dot per row).
  VecDotRowsFn vec_dot_rows;
};

// The shapes llamafile's tinyBLAS accepts on AVX-512 (else ggml falls back to vec_dot).
constexpr int64_t kGemmCols = 16;
constexpr int64_t kGemmRows = 4;

// What this CPU supports (cpuid + OS state), computed once.
SimdLevel detected_simd();
const char* simd_name(SimdLevel level);

// Kernels for a weight type at the best level this CPU has; throws lb::Error for unsupported types.
const Kernels& kernels_for(GgmlType weight_type);
// Kernels at a given level (clamped to what the CPU has); tests compare levels against each other.
const Kernels& kernels_for(GgmlType weight_type, SimdLevel level);

// The layout the kernels at `level` compute fastest with, for weight rows of `cols` elements of
// `weight_type`, and the function that rearranges one row into it; {weight_type, nullptr} when
// that is the file's own layout. The results are the same bits either way.
struct Repack {
  GgmlType layout;
  void (*row)(const void* src, void* dst, int64_t n);
};
Repack repack_for(GgmlType weight_type, int64_t cols, SimdLevel level = detected_simd());

}  // namespace lb
