// Durations ("500ms", "30s", "5m", "1h") and sizes ("64KiB", "8MiB") of SPEC §7.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

#include "config/config.hpp"

namespace linewire::config {

// A bare number is seconds for a duration and bytes for a size. Returns nullopt for
// anything else (negative, empty, unknown unit, overflow).
std::optional<Duration> parse_duration(std::string_view text);
std::optional<std::size_t> parse_size(std::string_view text);

}  // namespace linewire::config
