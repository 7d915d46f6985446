// The device's retained `info` document (SPEC §6): what it is, what it offers, how busy
// it is. Published on (re)connect, on reload, and when runs start or end (throttled).
#include <unistd.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "agent/agent.hpp"

namespace linewire::agent {

using nlohmann::json;

std::string Agent::info_document() const {
  json commands = json::object();
  for (const auto& c : config_.commands) {
    int max = c.max_instances > 0 ? std::min(c.max_instances, config_.limits.max_runs)
                                  : config_.limits.max_runs;
    commands[c.name] = {{"args", c.args.has_value()},
                        {"max_instances", max},
                        {"mode", c.mode == config::Mode::service ? "service" : "on_demand"}};
  }
  json doc = {{"device", config_.device},
              {"version", version_},
              {"host", host_},
              {"pid", static_cast<long>(getpid())},
              {"started", iso8601(started_)},
              {"commands", commands},
              {"runs", {{"active", runs_.size()}, {"max", config_.limits.max_runs}}},
              // As of this document: it is published when runs start and end.
              {"history", {{"bytes", history_.bytes()}, {"max", config_.limits.history}}},
              {"groups", config_.groups},
              {"websocket",
               config_.websocket.listen.empty() ? json(nullptr) : json(config_.websocket.listen)}};
  return doc.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace linewire::agent
