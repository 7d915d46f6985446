// Durations ("500ms", "30s", "5m", "1h") and sizes ("64KiB", "8MiB") of SPEC §7.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "config/config.hpp"

namespace linewire::config {

// A bare number is seconds for a duration and bytes for a size. Returns nullopt for
// anything else (negative, empty, unknown unit, overflow).
//
// Durations: ms, s, m, h, d; decimals ("1.5", "0.5s") and sums ("1h30m") too, rounded
// down to whole milliseconds. Sizes: B, KiB, MiB, GiB, TiB (powers of 1024) and kB/KB,
// MB, GB, TB (powers of 1000); a decimal needs a unit ("1.5KiB") and is rounded down to
// whole bytes. No signs, no spaces.
std::optional<Duration> parse_duration(std::string_view text);
std::optional<std::size_t> parse_size(std::string_view text);

// The shortest exact spelling that the parsers read back: "1h30m", "500ms", "0s";
// "64KiB", "1000B". For messages and logs.
std::string format_duration(Duration d);
std::string format_size(std::size_t bytes);

}  // namespace linewire::config
