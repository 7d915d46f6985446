// The JSON documents the agent publishes: run states (SPEC §4) and info (§6).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace linewire::agent {

using Clock = std::chrono::system_clock;

// "2026-11-22T23:00:00.123Z"
std::string iso8601(Clock::time_point t);

enum class RunPhase { running, exited, killed, failed, lost };
std::string_view to_string(RunPhase phase);

// What a run's state document says. Filled in by Run, rendered by state_document.
struct RunRecord {
  std::string run;
  std::string command;
  std::vector<std::string> args;
  std::string transport = "mqtt";
  std::string key;  // the signing key's name (SPEC §11), empty when unsigned
  RunPhase phase = RunPhase::running;
  int pid = 0;
  Clock::time_point started{};
  Clock::time_point ended{};
  std::optional<int> exit_code;
  std::string signal;  // killed: the signal's short name
  std::string reason;  // killed: timeout, signal, stop, replaced, shutdown, disconnect
  std::string error;   // failed
  std::uint64_t lines = 0;
  std::uint64_t err_lines = 0;
  std::uint64_t dropped = 0;
  bool truncated = false;
};

std::string state_document(const RunRecord& r);

}  // namespace linewire::agent
