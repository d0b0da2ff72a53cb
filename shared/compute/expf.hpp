#pragma once
// e^x over rows of floats with the bits of std::exp(float) — glibc's expf, which llama.cpp's
// attention softmax calls — eight at a time.
#include <cstdint>
#include <vector>

namespace lb {

// y[i] = std::exp(x[i]). Uses the variant of the CPU's SIMD level (expf_row_avx512, else
// expf_row_avx2) when a one-time check finds it equal to this process's libm on a spread of
// arguments; else calls std::exp.
void expf_row(const float* x, float* y, int64_t n);  // y may be x

// glibc's expf algorithm (2.28 and later, the build it picks on CPUs with FMA) in double lanes:
// x·32/ln2 = k + r, e^x = 2^(k/32) · p(r) with a 32-entry table and a cubic polynomial, every
// operation as glibc's FMA build performs it (compute/expf_glibc.hpp). Arguments glibc treats as
// special (|x| >= 88, infinities, NaN) go to std::exp one by one. Four lanes at a time with a
// gather from the table (needs the Avx2 level), or eight with the table in registers (Avx512).
void expf_row_avx2(const float* x, float* y, int64_t n);
void expf_row_avx512(const float* x, float* y, int64_t n);

// Every step-th float bit pattern from 0 up: both signs, subnormals, infinities and NaNs (the
// arguments expf_row checks the vector variant on).
std::vector<float> spread_floats(uint32_t step);

}  // namespace lb
