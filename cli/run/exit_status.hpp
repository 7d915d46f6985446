// A run's final state (SPEC §4) to the client's exit status, as ssh does it (SPEC §10):
// the remote exit code; 128+N when killed by signal N; 124 on timeout; 255 when it
// failed, was lost, or linewire itself could not do its part.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace linewire::cli {

inline constexpr int kExitTimeout = 124;
inline constexpr int kExitFailure = 255;  // offline, unreachable, refused, failed, lost

// `TERM`, `SIGTERM`, `15` and every other name glibc knows (`SEGV`, `PWR`, ...) to the
// signal's number; nullopt otherwise.
std::optional<int> signal_number(std::string_view name);

struct Outcome {
  int status = kExitFailure;
  // What stderr should say about it, empty for a normal exit ("killed by TERM (stop)").
  std::string note;
};

// nullopt while the state is not final (`running`, or not a state document at all).
std::optional<Outcome> outcome_of(const nlohmann::json& state);

bool is_final_state(std::string_view state);

}  // namespace linewire::cli
