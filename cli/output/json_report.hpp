// `linewire run --json` (SPEC §10): stdout carries one JSON object per line (NDJSON)
// and nothing else: each output line, each device's final state, each device that
// refused, was offline or gave no answer, and last a summary with the exit status.
// These build the lines; the callers write them.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "cli/run/fanout.hpp"

namespace linewire::cli {

bool valid_utf8(std::string_view text);

// {"device", "run", "stream": "out"|"err", "seq", "line"}; `line_b64` instead of `line`
// for a line that is not UTF-8; `seq` null when unknown (MQTT 3.1.1).
std::string json_line(std::string_view device, std::string_view run, bool err,
                      std::optional<std::uint64_t> seq, std::string_view text);
// {"device", "run", "final": {...the final state document...}}
std::string json_final(std::string_view device, std::string_view run, const nlohmann::json& state);
// {"device", "error": {"code", "message"}}
std::string json_error(std::string_view device, std::string_view code, std::string_view message);
// {"summary": {"targeted", "ok", "failed", "offline", "no_answer", "not_run", "skipped",
// "exit_status"}}
std::string json_summary(const Fanout::Counts& counts, int exit_status);

// The error line for a fan-out entry that has no final state (refused, offline, no
// answer, lost, not run); nullopt for one that finished.
std::optional<std::string> json_entry_error(const Fanout::Entry& e);

}  // namespace linewire::cli
