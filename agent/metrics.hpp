// Counters for `GET /metrics` (SPEC §8), kept by the agent and bumped by transports;
// all on the agent's one thread.
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace linewire::agent {

struct CommandMetrics {
  std::uint64_t runs_started = 0;
  std::uint64_t lines = 0;    // stdout and stderr lines handed to the transports
  std::uint64_t dropped = 0;  // lines of finished runs that were dropped (overflow, max_output)
  std::uint64_t schedule_ticks = 0;    // `every` ticks (SPEC §5)
  std::uint64_t schedule_skipped = 0;  // ticks that started nothing: the command was busy
};

struct Metrics {
  std::map<std::string, CommandMetrics> commands;
  std::uint64_t reconnects = 0;     // broker connections after the first
  std::uint64_t history_bytes = 0;  // output kept for replay now (SPEC §12)
  std::uint64_t replays = 0;        // replays served (MQTT `replay`, WebSocket `?from=`)
};

}  // namespace linewire::agent
