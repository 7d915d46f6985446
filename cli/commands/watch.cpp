// `linewire watch DEVICE COMMAND|RUN` and `logs DEVICE RUN` (SPEC §10, §12). A command:
// its retained newest line (`cmd/C/last`), then each new one, until Ctrl-C. A run: the
// lines its agent still holds (from --from N; none with --new), then the live ones until
// its final state, exiting as `run` would. `logs`: the held lines, then exit.
#include <csignal>
#include <nlohmann/json.hpp>

#include "cli/broker/requester.hpp"
#include "cli/commands/commands.hpp"
#include "cli/output/output.hpp"
#include "cli/run/catch_up.hpp"
#include "cli/run/exit_status.hpp"
#include "cli/run/offline_grace.hpp"
#include "cli/run/run_streams.hpp"
#include "protocol/names.hpp"

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
  RunWatch(Connection& c, const protocol::Topics& topics, std::string run, const WatchFrom& from)
      : c_(c),
        topics_(topics),
        run_(std::move(run)),
        base_(topics.run(run_, "")),
        from_(from),
        requester_(c),
        streams_(
            [](Stream s, std::string_view line) { (s == Stream::out ? out() : err()).line(line); },
            from.only_new || !c.v5()),
        catch_up_(c, requester_, topics.run(run_, "replay"), streams_) {
    if (from.line > 1 && c.v5()) streams_.start_at(from.line);
  }

  // The kept lines first (SPEC §12), unless only new ones are wanted; live lines that
  // come meanwhile wait in the streams for their turn.
  // With MQTT 3.1.1 there is no seq to tell a replayed line from the same line live:
  // watch shows lines from now on, and `logs` the kept ones.
  void begin() {
    if (from_.only_new) return;
    if (!c_.v5()) {
      note("MQTT 3.1.1: showing the lines of run " + run_ +
           " from now on (`logs` shows the kept ones)");
      return;
    }
    const std::uint64_t first = std::max<std::uint64_t>(1, from_.line);
    ask(first, first);
  }

  std::optional<int> on_message(const Incoming& m) {
    if (m.topic.rfind(c_.replay_topic(), 0) == 0) return on_replay(m);
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
      if (!outcome_of(doc)) return std::nullopt;
      already_ended_ = m.retained;
      if (catch_up_.under_way()) {
        held_final_ = std::move(doc);  // the replay's lines come first
        return std::nullopt;
      }
      if (reask(doc)) return std::nullopt;
      return finish(doc);
    }
    return std::nullopt;
  }

  std::optional<int> on_deadline() {
    if (wake_ && Clock::now() >= *wake_) {
      wake_.reset();
      catch_up_.give_up();
      streams_.resync();
      note("no answer from " + topics_.device() + " to the replay of run " + run_ +
           "; showing what comes from now on");
      if (held_final_) return finish(*held_final_);
    }
    if (offline_.expired(Clock::now()).empty()) return std::nullopt;
    note(topics_.device() + " did not come back; the end of run " + run_ + " is unknown");
    return kExitFailure;
  }

  Clock::time_point deadline() const {
    return std::min(offline_.deadline().value_or(Clock::time_point::max()),
                    wake_.value_or(Clock::time_point::max()));
  }
  // Back after a lost connection: what went by meanwhile, from the history.
  void reconnected() {
    offline_.reconnected(Clock::now());
    if (c_.v5() && !from_.only_new && !catch_up_.under_way()) {
      catch_up_.ask_missing();
      wake_ = Clock::now() + CatchUp::kWait;
    }
  }
  bool ended() const { return held_final_.has_value(); }

 private:
  void ask(std::uint64_t from_out, std::uint64_t from_err) {
    catch_up_.ask(from_out, from_err);
    wake_ = Clock::now() + CatchUp::kWait;
  }

  // The run ended with lines not shown (a gap: history evicted ahead of a replay, or a
  // reconnect): asked once more.
  bool reask(json& final_state) {
    if (!c_.v5() || from_.only_new || reasked_ || !streams_.incomplete(final_state)) return false;
    reasked_ = true;
    held_final_ = std::move(final_state);
    catch_up_.ask_missing();
    wake_ = Clock::now() + CatchUp::kWait;
    return true;
  }

  std::optional<int> on_replay(const Incoming& m) {
    auto answer = catch_up_.on_message(m, held_final_ ? &*held_final_ : nullptr);
    if (!answer) {
      if (catch_up_.under_way()) wake_ = Clock::now() + CatchUp::kWait;  // not silent
      return std::nullopt;
    }
    wake_.reset();
    if (!answer->ok) {
      note(topics_.device() + ": no kept output of run " + run_ + " (" + answer->error +
           "); showing what comes from now on");
      streams_.resync();
    }
    if (!held_final_) return std::nullopt;
    json final_state = std::move(*held_final_);
    held_final_.reset();
    if (reask(final_state)) return std::nullopt;
    return finish(final_state);
  }

  int finish(const json& doc) {
    if (already_ended_) note("run " + run_ + " had already ended");
    auto outcome = outcome_of(doc);
    for (const auto& n : streams_.finish(doc)) note(n);
    if (!outcome->note.empty()) note(topics_.device() + ": run " + run_ + " " + outcome->note);
    return outcome->status;
  }

  Connection& c_;
  const protocol::Topics& topics_;
  std::string run_;
  std::string base_;
  WatchFrom from_;
  Requester requester_;
  RunStreams streams_;
  CatchUp catch_up_;
  OfflineGrace offline_{kOfflineGrace};
  std::optional<Clock::time_point> wake_;  // the replay's answer is due
  std::optional<json> held_final_;         // the run ended; its kept lines come first
  bool already_ended_ = false;             // its final state was retained: it ended before us
  bool reasked_ = false;                   // the one more replay at the end was asked
};

int follow_run(Connection& c, const protocol::Topics& topics, const std::string& run,
               const std::vector<Incoming>& seen, const std::string& status,
               const WatchFrom& from) {
  RunWatch w(c, topics, run, from);
  w.begin();
  // A run that ended says so whatever its device's status is now.
  for (const auto& m : seen) {
    if (m.topic == topics.status()) continue;
    if (auto done = w.on_message(m)) return *done;
  }
  if (status != "online" && !w.ended()) {
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

int watch(const Context& ctx, const std::string& device, const std::string& name,
          const WatchFrom& from) {
  Connection& c = open_connection(ctx, true);
  protocol::Topics topics(ctx.prefix, device);
  auto seen = collect_retained(c, {topics.status(), topics.info(), topics.command(name, "last"),
                                   topics.run(name, "#"), c.replay_topic() + "/#"});
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
  return follow_run(c, topics, name, seen, status, from);
}

int logs(const Context& ctx, const std::string& device, const std::string& run,
         const WatchFrom& from) {
  Connection& c = open_connection(ctx, true);
  protocol::Topics topics(ctx.prefix, device);
  c.subscribe({topics.status(), c.replay_topic() + "/#"});
  std::vector<Incoming> backlog;
  auto status = wait_for_status(c, topics.status(), backlog);
  if (auto why = offline_reason(status, device, c)) {
    note(*why);
    return kExitFailure;
  }
  Requester requester(c);
  RunStreams streams(
      [](Stream s, std::string_view line) { (s == Stream::out ? out() : err()).line(line); });
  const std::uint64_t first = std::max<std::uint64_t>(1, from.line);
  if (first > 1) streams.start_at(first);
  CatchUp catch_up(c, requester, topics.run(run, "replay"), streams);
  catch_up.ask(first, first);
  auto deadline = Clock::now() + CatchUp::kWait;  // for the next message, not for all
  for (;;) {
    auto e = c.next(deadline);
    if (!e) {
      note("no answer from " + device + " within " + std::to_string(CatchUp::kWait.count()) + " s");
      return kExitFailure;
    }
    if (e->kind == Event::Kind::interrupt) return 128 + e->signal;
    if (e->kind != Event::Kind::message) continue;
    auto answer = catch_up.on_message(e->message, nullptr);
    deadline = Clock::now() + CatchUp::kWait;
    if (out().broken()) return 128 + SIGPIPE;
    if (!answer) continue;
    if (!answer->ok) {
      note(device + " refused: " + answer->error);
      return kExitFailure;
    }
    streams.finish(json::object());
    for (Stream s : {Stream::out, Stream::err})
      if (auto gone = streams.gone(s))
        note(std::to_string(gone) + (s == Stream::out ? " stdout" : " stderr") + " line(s) from " +
             std::to_string(first) + " on are no longer held by " + device);
    return 0;
  }
}

}  // namespace linewire::cli
