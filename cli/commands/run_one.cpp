// `linewire run DEVICE COMMAND [ARGS...]`: one run on one device, like ssh (SPEC §10).
#include <csignal>
#include <nlohmann/json.hpp>

#include "agent/names.hpp"
#include "cli/commands.hpp"
#include "cli/exit_status.hpp"
#include "cli/offline_grace.hpp"
#include "cli/output.hpp"
#include "cli/requester.hpp"
#include "cli/run_streams.hpp"
#include "cli/stdin_forwarder.hpp"

namespace linewire::cli {

using nlohmann::json;

namespace {

constexpr int kExitBrokenPipe = 128 + 13;  // as if killed by SIGPIPE, like any filter

class OneRun {
 public:
  OneRun(Connection& c, const std::string& prefix, const RunOptions& o, std::string id)
      : c_(c),
        o_(o),
        topics_(prefix, o.device),
        id_(std::move(id)),
        run_base_(topics_.run(id_, "")),
        requester_(c),
        offline_(seconds(o.wait_s)),
        streams_([](Stream s, std::string_view line) {
          (s == Stream::out ? out() : err()).line(line);
        }) {}

  int go() {
    c_.subscribe({topics_.status(), topics_.run(id_, "#"), c_.reply_topic()});
    std::vector<Incoming> backlog;
    auto status = wait_for_status(c_, topics_.status(), backlog);
    if (auto why = offline_reason(status, o_.device, c_)) {
      note(*why);
      return kExitFailure;
    }
    start();
    for (auto& m : backlog)
      if (auto done = on_message(m)) return finish(*done);
    for (;;) {
      auto e = c_.next(deadline());
      std::optional<int> done;
      if (!e) {
        done = on_deadline();
      } else if (e->kind == Event::Kind::message) {
        done = on_message(e->message);
      } else if (e->kind == Event::Kind::interrupt) {
        done = on_interrupt(e->signal);
      } else {
        connection_changed(*e, offline_);
      }
      if (!done && out().broken()) {
        // Whoever read our stdout is gone (`| head -1`): the run's output has nowhere
        // to go, so it ends as a local filter would.
        signal("TERM");
        done = kExitBrokenPipe;
      }
      if (done) return finish(*done);
    }
  }

 private:
  void start() {
    correlation_ = random_hex(16);
    StartFields f;
    f.id = id_;
    f.args = o_.args;
    f.timeout_s = o_.timeout_s;
    deadlines_.start(o_);
    requester_.start(topics_.command(o_.command, "start"), std::move(f), correlation_);
  }

  Clock::time_point deadline() const { return deadlines_.next(!replied_, offline_.deadline()); }

  std::optional<int> on_deadline() {
    auto now = Clock::now();
    if (!offline_.expired(now).empty()) {
      note(o_.device + " did not come back within " + json(o_.wait_s).dump() +
           " s; the end of run " + id_ + " is unknown");
      return kExitFailure;
    }
    if (auto g = deadlines_.give_up_due(now)) {
      note(g->note);
      return g->status;
    }
    if (deadlines_.timeout_due(now)) {
      timed_out_ = true;
      note("timed out after " + json(*o_.timeout_s).dump() + " s; sending TERM to run " + id_);
      signal("TERM");
      deadlines_.give_up(kAfterTimeout, kExitTimeout, "run " + id_ + " timed out");
      return std::nullopt;
    }
    if (!replied_ && deadlines_.reply_overdue(now)) {
      note("no reply from " + o_.device + " within " + json(o_.wait_s).dump() + " s");
      return kExitFailure;
    }
    return std::nullopt;
  }

  std::optional<int> on_message(const Incoming& m) {
    if (m.topic == c_.reply_topic()) return on_reply(m);
    if (m.topic == topics_.status()) {
      const bool was_offline = offline_.offline(o_.device);
      if (offline_.status(o_.device, m.payload, Clock::now())) {
        note(o_.device + " went " + (m.payload.empty() ? "away" : m.payload) + "; waiting " +
             json(o_.wait_s).dump() + " s for it to come back (run " + id_ + " goes on there)");
      } else if (was_offline && m.payload == "online") {
        note(o_.device + " is back online");
      }
      return std::nullopt;
    }
    if (m.topic.rfind(run_base_, 0) != 0) return std::nullopt;
    std::string_view leaf = std::string_view(m.topic).substr(run_base_.size());
    // Our own `in`/`eof`/`signal` come back with MQTT 3.1.1 (no No Local): ignored.
    if (leaf == "out") {
      streams_.line(Stream::out, m.seq, m.payload);
    } else if (leaf == "err") {
      streams_.line(Stream::err, m.seq, m.payload);
    } else if (leaf == "state") {
      return on_state(m);
    }
    return std::nullopt;
  }

  std::optional<int> on_reply(const Incoming& m) {
    auto reply = parse_reply(m.payload);
    if (!reply || replied_) return std::nullopt;
    const std::string& correlation = c_.v5() ? m.correlation : reply->correlation;
    if (correlation != correlation_) return std::nullopt;
    if (!reply->ok) {
      note(o_.device + " refused: " + reply->code +
           (reply->message.empty() ? "" : ": " + reply->message));
      return kExitFailure;
    }
    on_started();
    if (reply->queued) note(o_.device + " is busy: run " + id_ + " is queued");
    return std::nullopt;
  }

  void on_started() {
    replied_ = true;
    if (o_.no_stdin) {
      requester_.eof(topics_.run(id_, "eof"));  // as `ssh -n`: an empty stdin
    } else {
      stdin_ = std::make_unique<StdinForwarder>(c_, requester_, topics_.run(id_, "in"),
                                                topics_.run(id_, "eof"));
      stdin_->start();
    }
    if (!pending_signal_.empty()) signal(pending_signal_);
  }

  std::optional<int> on_state(const Incoming& m) {
    if (m.payload.empty()) return std::nullopt;
    // A retained state before our reply is an older run's that had this id (--id).
    if (m.retained && !replied_) return std::nullopt;
    json doc = json::parse(m.payload, nullptr, false);
    auto outcome = outcome_of(doc);
    if (!outcome) {
      // The agent publishes `running` before its reply: the run exists, stdin can go.
      if (!replied_ && doc.is_object() && doc.value("state", "") == "running") on_started();
      return std::nullopt;
    }
    for (const auto& n : streams_.finish(doc)) note(n);
    if (!outcome->note.empty()) note(o_.device + ": run " + id_ + " " + outcome->note);
    return timed_out_ ? kExitTimeout : outcome->status;
  }

  std::optional<int> on_interrupt(int sig) {
    if (sig != SIGINT) {
      // Terminal closed or we were told to stop: the run should not outlive us.
      if (replied_) signal("TERM");
      return 128 + sig;
    }
    ++interrupts_;
    if (interrupts_ == 1) {
      note("sending INT to run " + id_ + " (Ctrl-C again sends KILL)");
      signal("INT");
    } else if (interrupts_ == 2) {
      note("sending KILL to run " + id_ + " (Ctrl-C again leaves at once)");
      signal("KILL");
      deadlines_.give_up(kAfterKill, kExitFailure,
                         "no final state from run " + id_ + " after KILL");
    } else {
      return 128 + SIGINT;
    }
    return std::nullopt;
  }

  void signal(const std::string& name) {
    if (!replied_) {
      pending_signal_ = name;  // sent as soon as the run exists
      return;
    }
    requester_.signal(topics_.run(id_, "signal"), name);
  }

  int finish(int status) {
    if (stdin_) stdin_->stop();
    if (requester_.signalled()) c_.wait_published(0, Clock::now() + std::chrono::seconds(2));
    return status;
  }

  Connection& c_;
  const RunOptions& o_;
  agent::Topics topics_;
  std::string id_;
  std::string run_base_;  // {prefix}/{device}/run/{id}/
  Requester requester_;
  OfflineGrace offline_;
  RunStreams streams_;
  std::unique_ptr<StdinForwarder> stdin_;
  std::string correlation_;
  bool replied_ = false;
  bool timed_out_ = false;
  int interrupts_ = 0;
  std::string pending_signal_;
  RunDeadlines deadlines_;
};

}  // namespace

int run_one(const Context& ctx, const RunOptions& o) {
  Connection& c = open_connection(ctx, true);
  OneRun run(c, ctx.prefix, o, o.id.empty() ? new_run_id() : o.id);
  return run.go();
}

}  // namespace linewire::cli
