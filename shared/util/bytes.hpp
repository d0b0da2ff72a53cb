#pragma once
// Byte counts as people write them: config files, CLI flags and the planner's messages all use
// these two so a size reads the same everywhere.
#include <cstdint>
#include <string>
#include <string_view>

namespace lb {

// "512 B", "1.5 GiB", "900 MiB", "6 GiB": binary units; one decimal when the value is below 100
// and not a whole number of the unit, none otherwise.
std::string format_bytes(uint64_t bytes);

// Parses "6GiB", "512MiB", "1.5G", "100000", "2GB", "6 GiB". Units are case-insensitive: KiB/MiB/
// GiB/TiB/PiB and K/M/G/T/P alone are powers of 1024, KB/MB/GB/TB/PB powers of 1000, B or no unit
// is bytes. A fraction is allowed with a unit and rounded to the nearest byte. Throws lb::Error
// naming the text for garbage, negatives, fractional plain bytes and values over 2^64 - 1.
uint64_t parse_bytes(std::string_view text);

}  // namespace lb
