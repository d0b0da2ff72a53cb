#include "util/bytes.hpp"

#include <cctype>
#include <cstdio>

#include "util/error.hpp"

namespace lb {

std::string format_bytes(uint64_t bytes) {
  static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (bytes < 1024) return std::to_string(bytes) + " B";
  int unit = 0;
  while (unit < 6 && bytes >> (10 * (unit + 1)) != 0) ++unit;
  const double value = static_cast<double>(bytes) / static_cast<double>(1ull << (10 * unit));
  // A decimal only when it says something: "6 GiB" is exact, "6.0 GiB" is rounded.
  const bool exact = bytes % (1ull << (10 * unit)) == 0;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f %s", exact || value >= 100 ? 0 : 1, value, kUnits[unit]);
  return buf;
}

namespace {

// Bytes per unit, or 0 when the (lower-cased) unit is unknown.
uint64_t unit_multiplier(const std::string& unit) {
  struct Unit {
    const char* name;
    uint64_t bytes;
  };
  static const Unit kUnits[] = {
      {"", 1},
      {"b", 1},
      {"k", 1ull << 10},
      {"kib", 1ull << 10},
      {"kb", 1000ull},
      {"m", 1ull << 20},
      {"mib", 1ull << 20},
      {"mb", 1000000ull},
      {"g", 1ull << 30},
      {"gib", 1ull << 30},
      {"gb", 1000000000ull},
      {"t", 1ull << 40},
      {"tib", 1ull << 40},
      {"tb", 1000000000000ull},
      {"p", 1ull << 50},
      {"pib", 1ull << 50},
      {"pb", 1000000000000000ull},
  };
  for (const Unit& u : kUnits) {
    if (unit == u.name) return u.bytes;
  }
  return 0;
}

}  // namespace

uint64_t parse_bytes(std::string_view text) {
  auto fail = [&](const std::string& why) {
    return Error("invalid size \"" + std::string(text) + "\": " + why);
  };
  const auto space = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
  const auto digit = [](char c) { return c >= '0' && c <= '9'; };
  size_t i = 0;
  const size_t n = text.size();
  while (i < n && space(text[i])) ++i;
  if (i < n && text[i] == '-') throw fail("a size cannot be negative");
  if (i == n || !digit(text[i])) {
    throw fail(
        "expected a number of bytes, optionally followed by a unit (e.g. 512MiB, 6GiB, 2GB)");
  }

  uint64_t whole = 0;
  for (; i < n && digit(text[i]); ++i) {
    if (__builtin_mul_overflow(whole, 10, &whole) ||
        __builtin_add_overflow(whole, text[i] - '0', &whole)) {
      throw fail("too large (the limit is 16 EiB)");
    }
  }
  // The fraction as digits over a power of ten; digits past the 18th cannot change the byte count
  // of anything that fits in 64 bits by more than rounding, so they are read but dropped.
  uint64_t frac = 0, frac_scale = 1;
  if (i < n && text[i] == '.') {
    ++i;
    if (i == n || !digit(text[i])) throw fail("expected digits after the decimal point");
    for (; i < n && digit(text[i]); ++i) {
      if (frac_scale < 1000000000000000000ull) {
        frac = frac * 10 + static_cast<uint64_t>(text[i] - '0');
        frac_scale *= 10;
      }
    }
  }

  while (i < n && space(text[i])) ++i;
  size_t end = n;
  while (end > i && space(text[end - 1])) --end;
  std::string unit;
  for (size_t j = i; j < end; ++j)
    unit += static_cast<char>(std::tolower(static_cast<unsigned char>(text[j])));
  const uint64_t mult = unit_multiplier(unit);
  if (mult == 0) {
    throw fail("unknown unit \"" + std::string(text.substr(i, end - i)) +
               "\" (use B, KiB, MiB, GiB, TiB, K, M, G, T or KB, MB, GB, TB)");
  }
  if (mult == 1 && frac != 0) throw fail("a byte count must be a whole number");

  uint64_t result = 0;
  // frac * mult < 10^18 * 2^50 needs more than 64 bits; the quotient (< mult) does not.
  const unsigned __int128 scaled = static_cast<unsigned __int128>(frac) * mult;
  const uint64_t frac_bytes = static_cast<uint64_t>((scaled + frac_scale / 2) / frac_scale);
  if (__builtin_mul_overflow(whole, mult, &result) ||
      __builtin_add_overflow(result, frac_bytes, &result)) {
    throw fail("too large (the limit is 16 EiB)");
  }
  return result;
}

}  // namespace lb
