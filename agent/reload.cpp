// SIGHUP (SPEC §6): a new configuration, taken while runs go on. What a running agent
// made once (its broker connection, its output queue, its WebSocket listener) keeps its
// running value until a restart; the rest takes effect now.
#include <spdlog/spdlog.h>

#include "agent/agent.hpp"

namespace linewire::agent {

std::optional<std::string> Agent::reload(config::Config next) {
  if (next.device != config_.device || next.prefix != config_.prefix ||
      next.broker.url != config_.broker.url || next.broker.protocol != config_.broker.protocol ||
      next.broker.username != config_.broker.username ||
      next.broker.password_file != config_.broker.password_file ||
      next.state_dir != config_.state_dir)
    return "device, prefix, broker settings and state_dir change only with a restart";
  keep_restart_only_settings(next);
  config::Config previous = std::move(config_);
  config_ = std::move(next);
  compile_patterns();
  history_.set_max_total(config_.limits.history);
  forget_past_keep_runs(previous.keep_runs);
  metrics_.history_bytes = history_.bytes();  // a lower limits.history evicted at once
  // Services that are gone or no longer services are not restarted; their runs go on.
  services_->keep_only(config_);
  drop_queued([&](const Run& q) { return !config_.find_command(q.command().name); },
              "its command was removed from the configuration while it was queued");
  spdlog::info("reloaded {}: {} command(s)", config_.source, config_.commands.size());
  if (observer_) observer_->on_reconfigured(previous);
  publish_info();
  start_services();
  if (schedule_started_) schedule_->apply(config_);
  return std::nullopt;
}

// The running values of what a reload cannot change stay in the configuration, so that
// `info` and everything else tell what is in force; the log names what waits for a
// restart (before, such changes were dropped without a word).
void Agent::keep_restart_only_settings(config::Config& next) const {
  std::string waiting;
  auto changed = [&](bool differs, const char* what) {
    if (differs) waiting += std::string(waiting.empty() ? "" : ", ") + what;
  };
  const config::Broker& now = config_.broker;
  const config::Broker& then = next.broker;
  changed(then.tls != now.tls, "broker.tls");
  changed(then.keepalive != now.keepalive, "broker.keepalive");
  changed(then.session_expiry != now.session_expiry, "broker.session_expiry");
  changed(then.client_id != now.client_id, "broker.client_id");
  changed(then.reconnect_min != now.reconnect_min || then.reconnect_max != now.reconnect_max,
          "broker.reconnect_min/max");
  changed(next.qos != config_.qos, "qos");
  changed(next.limits.buffer != config_.limits.buffer, "limits.buffer");
  changed(next.websocket != config_.websocket, "websocket");
  next.broker = config_.broker;
  next.qos = config_.qos;
  next.limits.buffer = config_.limits.buffer;
  next.websocket = config_.websocket;
  if (!waiting.empty())
    spdlog::warn("reload: {} change only with a restart; the running values stay", waiting);
}

}  // namespace linewire::agent
