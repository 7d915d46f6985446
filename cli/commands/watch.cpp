// `linewire watch DEVICE COMMAND|RUN` (SPEC §10). A command: its retained newest line
// (`cmd/C/last`), then each new one, until Ctrl-C. A run: its output from now on, until
// its final state, exiting as `run` would.
#include <csignal>
#include <nlohmann/json.hpp>

#include "protocol/names.hpp"
#include "cli/commands/commands.hpp"
#include "cli/output/output.hpp"
#include "cli/run/exit_status.hpp"
#include "cli/run/offline_grace.hpp"
#include "cli/run/run_streams.hpp"

namespace linewire::cli {

using nlohmann::json;

namespace {

// How long a watched run's device may stay offline before its end is called unknown.
constexpr std::chrono::seconds kOfflineGrace{10};

void on_status(const std::string& device, const std::string& status) {
  note(device + " is " + (status.empty() ? "gone" : status));
}

int follow_command(Connection& c, const protocol::Topics& topics, const std::string& command,
                   const std::vector<Incoming>& seen) {
  const std::string last = topics.command(command, "last");
  for (const auto& m : seen)
    if (m.topic == last) out().line(m.payload);
  for (;;) {
    auto e = c.next(Clock::time_point::max());
    if (!e) continue;
    if (e->kind == Event::Kind::interrupt) return 128 + e->signal;
    if (e->kind == Event::Kind::lost) note("connection to the broker lost; reconnecting");
    if (e->kind != Event::Kind::message) continue;
    if (e->message.topic == last && !e->message.payload.empty()) {
      if (!out().line(e->message.payload)) return 128 + SIGPIPE;
    } else if (e->message.topic == topics.status()) {
      on_status(topics.device(), e->message.payload);
    }
  }
}

class RunWatch {
 public:
  RunWatch(const protocol::Topics& topics, std::string run)
      : topics_(topics),
        run_(std::move(run)),
        base_(topics.run(run_, "")),
        streams_(
            [](Stream s, std::string_view line) { (s == Stream::out ? out() : err()).line(line); },
            true) {}

  std::optional<int> on_message(const Incoming& m) {
    if (m.topic == topics_.status()) {
      const bool was_offline = offline_.offline(topics_.device());
      if (offline_.status(topics_.device(), m.payload, Clock::now())) {
        note(topics_.device() + " went " + (m.payload.empty() ? "away" : m.payload) + "; waiting " +
             std::to_string(kOfflineGrace.count()) + " s for it to come back");
      } else if (was_offline && m.payload == "online") {
        note(topics_.device() + " is back online");
      }
      return std::nullopt;
    }
    if (m.topic.rfind(base_, 0) != 0) return std::nullopt;
    std::string_view leaf = std::string_view(m.topic).substr(base_.size());
    if (leaf == "out" || leaf == "err") {
      streams_.line(leaf == "out" ? Stream::out : Stream::err, m.seq, m.payload);
    } else if (leaf == "state" && !m.payload.empty()) {
      json doc = json::parse(m.payload, nullptr, false);
      auto outcome = outcome_of(doc);
      if (!outcome) return std::nullopt;
      for (const auto& n : streams_.finish(doc)) note(n);
      if (!outcome->note.empty()) note(topics_.device() + ": run " + run_ + " " + outcome->note);
      return outcome->status;
    }
    return std::nullopt;
  }

  std::optional<int> on_deadline() {
    if (offline_.expired(Clock::now()).empty()) return std::nullopt;
    note(topics_.device() + " did not come back; the end of run " + run_ + " is unknown");
    return kExitFailure;
  }

  Clock::time_point deadline() const {
    return offline_.deadline().value_or(Clock::time_point::max());
  }
  void reconnected() { offline_.reconnected(Clock::now()); }

 private:
  const protocol::Topics& topics_;
  std::string run_;
  std::string base_;
  RunStreams streams_;
  OfflineGrace offline_{kOfflineGrace};
};

int follow_run(Connection& c, const protocol::Topics& topics, const std::string& run,
               const std::vector<Incoming>& seen, const std::string& status) {
  RunWatch w(topics, run);
  // A run that ended says so whatever its device's status is now.
  for (const auto& m : seen) {
    if (m.topic == topics.status()) continue;
    if (auto done = w.on_message(m)) {
      if (m.retained) note("run " + run + " had already ended");
      return *done;
    }
  }
  if (status != "online") {
    note("run " + run + " has not ended, and its device will not say how it does");
    return kExitFailure;
  }
  for (;;) {
    auto e = c.next(w.deadline());
    if (!e) {
      if (auto done = w.on_deadline()) return *done;
      continue;
    }
    if (e->kind == Event::Kind::interrupt) return 128 + e->signal;
    if (e->kind == Event::Kind::lost) note("connection to the broker lost; reconnecting");
    if (e->kind == Event::Kind::reconnected) w.reconnected();
    if (e->kind != Event::Kind::message) continue;
    if (auto done = w.on_message(e->message)) return *done;
    if (out().broken()) return 128 + SIGPIPE;
  }
}

}  // namespace

int watch(const Context& ctx, const std::string& device, const std::string& name) {
  Connection& c = open_connection(ctx, true);
  protocol::Topics topics(ctx.prefix, device);
  auto seen = collect_retained(
      c, {topics.status(), topics.info(), topics.command(name, "last"), topics.run(name, "#")});
  std::string status;
  bool is_command = false, has_last = false, has_run = false;
  for (const auto& m : seen) {
    if (m.topic == topics.status()) {
      status = m.payload;
    } else if (m.topic == topics.info()) {
      json info = json::parse(m.payload, nullptr, false);
      is_command = info.is_object() && info.contains("commands") && info["commands"].is_object() &&
                   info["commands"].contains(name);
    } else if (m.topic == topics.command(name, "last")) {
      has_last = has_last || !m.payload.empty();
    } else if (m.topic == topics.run(name, "state")) {
      has_run = has_run || !m.payload.empty();
    }
  }
  if (!is_command && !has_run && !has_last) {
    note(status.empty() ? "no device '" + device + "' on " + c.url()
                        : device + " has no command or run named '" + name + "'");
    return kExitFailure;
  }
  if (status != "online")
    note(device + " is " + (status.empty() ? "not seen (no status)" : status));
  if (is_command || !has_run) return follow_command(c, topics, name, seen);
  return follow_run(c, topics, name, seen, status);
}

}  // namespace linewire::cli
