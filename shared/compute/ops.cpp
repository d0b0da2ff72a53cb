#include "compute/ops.hpp"

#include <cmath>

namespace lb {

void rms_norm(const float* x, const float* w, float* y, int64_t n, float eps) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += double(x[i] * x[i]);
  const float mean = float(sum / double(n));
  const float scale = 1.0f / std::sqrt(mean + eps);
  for (int64_t i = 0; i < n; ++i) y[i] = (x[i] * scale) * w[i];
}

void rope_angles(int64_t pos, const RopeParams& p, float* cos, float* sin) {
  // The angle advances by repeated float multiplication, not powf per pair, as ggml's rope cache
  // computes it.
  const float theta_scale = std::pow(p.base, -2.0f / float(p.dims));
  float theta_base = float(pos);
  for (int64_t i = 0; i < p.dims / 2; ++i) {
    const float ff = p.freq_factors ? p.freq_factors[i] : 1.0f;
    const float theta = p.freq_scale * (theta_base / ff);
    cos[i] = std::cos(theta);
    sin[i] = std::sin(theta);
    theta_base *= theta_scale;
  }
}

// Built twice, chosen when the program loads: without FMA instructions each std::fma below is a
// call into libm, 2304 of them per layer of the 1.1B model, a few microseconds in which the other
// threads wait. fma rounds once either way, so both builds give the same bits.
__attribute__((target_clones("fma", "default"))) void rope_rotate(float* x, const float* cos,
                                                                  const float* sin, int64_t dims,
                                                                  bool neox) {
  const int64_t half = dims / 2;
  for (int64_t i = 0; i < half; ++i) {
    const int64_t a = neox ? i : 2 * i;
    const int64_t b = neox ? i + half : 2 * i + 1;
    const float x0 = x[a];
    const float x1 = x[b];
    // ggml's rotate_pairs writes x0*cos - x1*sin and x0*sin + x1*cos; GCC (-ffp-contract=fast,
    // FMA available) fuses the first product of each into an fma with the second, rounded.
    x[a] = std::fma(x0, cos[i], -(x1 * sin[i]));
    x[b] = std::fma(x0, sin[i], x1 * cos[i]);
  }
}

void add_inplace(float* x, const float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

}  // namespace lb
