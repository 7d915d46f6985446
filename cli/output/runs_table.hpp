// `runs DEVICE`: the device's recent runs, read from their retained states (SPEC §4).
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace linewire::cli {

using SystemTime = std::chrono::system_clock::time_point;

// The agent's timestamps: `2026-11-22T23:00:00.123Z` (fraction optional, UTC only).
std::optional<SystemTime> parse_timestamp(std::string_view text);

// `850ms`, `5.0s`, `3m05s`, `2h07m`, `3d04h`.
std::string format_duration(std::chrono::milliseconds d);

// Newest first (by `started`, then by run id); documents that are not run states go.
std::vector<nlohmann::json> newest_first(std::vector<nlohmann::json> states);

// RUN COMMAND STATE EXIT STARTED DURATION; a running run's duration counts up to `now`.
std::string format_runs(const std::vector<nlohmann::json>& states, SystemTime now, bool colour);

}  // namespace linewire::cli
