#pragma once
// Tensor element types, numbered as in GGUF/ggml so files are byte-compatible with llama.cpp.
#include <cstddef>
#include <cstdint>
#include <string>

namespace lb {

enum class GgmlType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  BF16 = 30,
  // Layouts the engine rearranges weights (and their activations) into when it loads them; never
  // in a file (type_info rejects them), numbered outside GGUF's range.
  Q4_0_X8 = 0x10002,
  Q8_0_X8 = 0x10008,
  Q4_K_X8 = 0x1000c,
  Q8_K_X8 = 0x1000f,
};

// Dot product of one weight row (n elements, stored in the weight type) with one activation row
// (stored in that weight type's activation type, see TypeInfo::act_type).
using VecDotFn = float (*)(int64_t n, const void* weight_row, const void* act_row);
// Weight rows w + r * w_stride bytes (r < n_rows) against n_act (1..kMaxDotActs) activation rows
// a + t * a_stride bytes: y[t * y_stride + r] = vec_dot(n, weight row r, activation row t), bit for
// bit. Each weight row is loaded and unpacked once for all activation rows (what makes a batch of
// decode rows cheaper than its rows alone), and a kernel may prepare the activation rows once for
// all weight rows.
using VecDotMultiFn = void (*)(int64_t n, const void* w, size_t w_stride, int64_t n_rows,
                               const void* act, size_t a_stride, int n_act, float* y,
                               size_t y_stride);
constexpr int kMaxDotActs = 8;
// kDotRows weight rows (w + i * w_stride bytes) against one activation row: y[i] =
// vec_dot(n, row i, act_row), bit for bit, sharing the activation's loads and unpacking (decode).
// Several independent rows also give the out-of-order core independent dependency chains.
constexpr int kDotRows = 4;
using VecDotRowsFn = void (*)(int64_t n, const void* w, size_t w_stride, const void* act_row,
                              float* y);
// Converts n floats to a row of the given type (n a multiple of the block size).
using FromFloatFn = void (*)(const float* src, void* dst, int64_t n);
// Converts a row of n elements of the given type to floats.
using ToFloatFn = void (*)(const void* src, float* dst, int64_t n);

struct TypeInfo {
  const char* name;
  int64_t block_size;  // elements per block
  size_t block_bytes;  // bytes per block
  bool supported;      // layerbus can compute with it
};

// Layout facts for any type GGUF may name; returns nullptr for numbers that are no ggml type (and
// for the engine's own layouts, which no file may name).
const TypeInfo* type_info(uint32_t type);
const char* type_name(GgmlType t);
// Bytes of a row of n elements; n must be a multiple of the block size (checked by callers).
size_t row_bytes(GgmlType t, int64_t n);

}  // namespace lb
