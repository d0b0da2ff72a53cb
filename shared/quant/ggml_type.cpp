// Layout facts for every type number GGUF may carry (as in ggml's type_traits table). Numbers
// 4, 5, 31..33 and 36..38 were ggml types once but were removed from the format: nullptr.
#include "quant/ggml_type.hpp"

namespace lb {
namespace {

struct Entry {
  uint32_t number;
  TypeInfo info;
};

// clang-format off
constexpr Entry kTypes[] = {
    {0,  {"f32",     1,   4,   true}},
    {1,  {"f16",     1,   2,   true}},
    {2,  {"q4_0",    32,  18,  true}},
    {3,  {"q4_1",    32,  20,  false}},
    {6,  {"q5_0",    32,  22,  false}},
    {7,  {"q5_1",    32,  24,  false}},
    {8,  {"q8_0",    32,  34,  true}},
    {9,  {"q8_1",    32,  36,  false}},
    {10, {"q2_K",    256, 84,  false}},
    {11, {"q3_K",    256, 110, false}},
    {12, {"q4_K",    256, 144, true}},
    {13, {"q5_K",    256, 176, false}},
    {14, {"q6_K",    256, 210, true}},
    {15, {"q8_K",    256, 292, false}},  // activation type only: no weight kernels
    {16, {"iq2_xxs", 256, 66,  false}},
    {17, {"iq2_xs",  256, 74,  false}},
    {18, {"iq3_xxs", 256, 98,  false}},
    {19, {"iq1_s",   256, 50,  false}},
    {20, {"iq4_nl",  32,  18,  false}},
    {21, {"iq3_s",   256, 110, false}},
    {22, {"iq2_s",   256, 82,  false}},
    {23, {"iq4_xs",  256, 136, false}},
    {24, {"i8",      1,   1,   false}},
    {25, {"i16",     1,   2,   false}},
    {26, {"i32",     1,   4,   false}},
    {27, {"i64",     1,   8,   false}},
    {28, {"f64",     1,   8,   false}},
    {29, {"iq1_m",   256, 56,  false}},
    {30, {"bf16",    1,   2,   false}},
    {34, {"tq1_0",   256, 54,  false}},
    {35, {"tq2_0",   256, 66,  false}},
    {39, {"mxfp4",   32,  17,  false}},
    {40, {"nvfp4",   64,  36,  false}},
    {41, {"q1_0",    128, 18,  false}},
};
constexpr Entry kEngineLayouts[] = {
    {0x10002, {"q4_0_x8", 256, 144, true}},
    {0x10008, {"q8_0_x8", 256, 320, false}},  // activation type only
    {0x1000c, {"q4_K_x8", 256, 144, true}},
    {0x1000f, {"q8_K_x8", 256, 320, false}},  // activation type only
};
// clang-format on

const TypeInfo* any_info(GgmlType t) {
  for (const Entry& e : kEngineLayouts) {
    if (e.number == static_cast<uint32_t>(t)) return &e.info;
  }
  return type_info(static_cast<uint32_t>(t));
}

}  // namespace

const TypeInfo* type_info(uint32_t type) {
  for (const Entry& e : kTypes) {
    if (e.number == type) return &e.info;
  }
  return nullptr;
}

const char* type_name(GgmlType t) {
  const TypeInfo* info = any_info(t);
  return info ? info->name : "unknown";
}

size_t row_bytes(GgmlType t, int64_t n) {
  const TypeInfo* info = any_info(t);
  if (!info) return 0;
  return static_cast<size_t>(n / info->block_size) * info->block_bytes;
}

}  // namespace lb
