#include "agent/documents.hpp"

#include <ctime>
#include <nlohmann/json.hpp>

namespace linewire::agent {

using nlohmann::json;

std::string iso8601(Clock::time_point t) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[48];
  std::snprintf(out, sizeof out, "%s.%03dZ", buf, static_cast<int>(ms % 1000));
  return out;
}

std::string_view to_string(RunPhase phase) {
  switch (phase) {
    case RunPhase::running:
      return "running";
    case RunPhase::exited:
      return "exited";
    case RunPhase::killed:
      return "killed";
    case RunPhase::failed:
      return "failed";
    case RunPhase::lost:
      return "lost";
  }
  return "failed";
}

std::string state_document(const RunRecord& r) {
  json doc = {{"run", r.run},
              {"command", r.command},
              {"args", r.args},
              {"state", to_string(r.phase)},
              {"started", iso8601(r.started)},
              {"transport", r.transport}};
  if (r.pid > 0) doc["pid"] = r.pid;
  if (!r.key.empty()) doc["key"] = r.key;
  if (r.phase != RunPhase::running) {
    doc["ended"] = iso8601(r.ended);
    doc["duration_ms"] =
        std::chrono::duration_cast<std::chrono::milliseconds>(r.ended - r.started).count();
    // A lost run's counts died with the agent that kept them: none rather than 0s
    // that read as "no output".
    if (r.phase != RunPhase::lost) {
      doc["lines"] = r.lines;
      doc["err_lines"] = r.err_lines;
      doc["dropped"] = r.dropped;
    }
    if (r.truncated) doc["truncated"] = true;
    if (r.exit_code) doc["exit_code"] = *r.exit_code;
    if (r.phase == RunPhase::killed) {
      doc["signal"] = r.signal;
      doc["reason"] = r.reason;
    }
    if (r.phase == RunPhase::failed || r.phase == RunPhase::lost) doc["error"] = r.error;
  }
  // Args need not be valid UTF-8 (a WebSocket query can carry any bytes): replace
  // rather than throw.
  return doc.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace linewire::agent
