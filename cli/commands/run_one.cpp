// `linewire run DEVICE COMMAND [ARGS...]`: one run on one device, like ssh (SPEC §10).
#include <nlohmann/json.hpp>

#include "cli/broker/ids.hpp"
#include "cli/commands/commands.hpp"
#include "cli/output/json_report.hpp"
#include "cli/output/output.hpp"
#include "cli/run/catch_up.hpp"
#include "cli/run/exit_status.hpp"
#include "cli/run/run_loop.hpp"
#include "cli/run/run_streams.hpp"
#include "cli/run/stdin_forwarder.hpp"
#include "protocol/names.hpp"

namespace linewire::cli {

using nlohmann::json;

namespace {

class OneRun : public RunLoop {
 public:
  OneRun(Connection& c, const std::string& prefix, const RunOptions& o, const std::string& id)
      : RunLoop(c, o, id, "run " + id, "no final state from run " + id + " after KILL"),
        topics_(prefix, o.device),
        run_base_(topics_.run(id_, "")),
        streams_([this](Stream s, std::string_view line) {
          if (o_.json) {
            // --json: the line as an object; the sequencer passes lines on in order,
            // so its seq is the one after the highest shown (none with MQTT 3.1.1).
            std::optional<std::uint64_t> seq;
            if (c_.v5()) seq = streams_.highest(s) + 1;
            out().line(json_line(o_.device, id_, s == Stream::err, seq, line));
            return;
          }
          (s == Stream::out ? out() : err()).line(line);
        }),
        catch_up_(c, requester_, topics_.run(id_, "replay"), streams_) {}

  int go() {
    c_.subscribe(
        {topics_.status(), topics_.run(id_, "#"), c_.reply_topic(), c_.replay_topic() + "/#"});
    std::vector<Incoming> backlog;
    auto status = wait_for_status(c_, topics_.status(), backlog);
    if (auto why = offline_reason(status, o_.device, c_)) {
      note(*why);
      failed("offline", *why);
      return kExitFailure;
    }
    start();
    for (auto& m : backlog)
      if (auto done = on_message(m)) return finish(*done);
    return finish(follow());
  }

 private:
  void start() {
    StartFields f = starting();
    requester_.start(topics_.command(o_.command, "start"), std::move(f), correlation_);
  }

  bool awaiting_reply() const override { return !replied_; }

  std::optional<int> on_deadline() override {
    auto now = Clock::now();
    if (!offline_.expired(now).empty()) {
      note(o_.device + " did not come back within " + json(o_.wait_s).dump() +
           " s; the end of run " + id_ + " is unknown");
      failed("lost", "went offline and did not come back");
      return kExitFailure;
    }
    if (auto g = deadlines_.give_up_due(now)) {
      note(g->note);
      failed("lost", g->note);
      return g->status;
    }
    if (deadlines_.timeout_due(now)) {
      timed_out_ = true;
      note("timed out after " + json(*o_.timeout_s).dump() + " s; sending TERM to run " + id_);
      signal("TERM");
      deadlines_.give_up(kAfterTimeout, kExitTimeout, "run " + id_ + " timed out");
      return std::nullopt;
    }
    if (deadlines_.wake_due(now)) {
      // No answer to a replay (an agent older than replay, or gone again): what came is
      // all there is.
      catch_up_.give_up();
      if (held_final_) return finish_state(*held_final_);
    }
    if (!replied_ && deadlines_.reply_overdue(now)) {
      note("no reply from " + o_.device + " within " + json(o_.wait_s).dump() + " s");
      failed("no_answer", "no reply within " + json(o_.wait_s).dump() + " s");
      return kExitFailure;
    }
    return std::nullopt;
  }

  std::optional<int> on_message(const Incoming& m) override {
    if (m.topic == c_.reply_topic()) return on_reply(m);
    if (m.topic.rfind(c_.replay_topic(), 0) == 0) return on_replay(m);
    if (m.topic == topics_.status()) {
      device_status(o_.device, m.payload, " (run " + id_ + " goes on there)");
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
    auto reply = our_reply(m);
    if (!reply || replied_) return std::nullopt;
    if (!reply->ok) {
      note(o_.device + " refused: " + reply->code +
           (reply->message.empty() ? "" : ": " + reply->message));
      failed(reply->code, reply->message);
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
    // Lines are missing (a reconnect, a broker that dropped some): the agent's history
    // may still hold them (SPEC §12). Asked once; a replay under way is waited for.
    if (c_.v5() && catch_up_.under_way()) {
      held_final_ = doc;
      return std::nullopt;
    }
    if (c_.v5() && !final_replay_asked_ && streams_.incomplete(doc)) {
      final_replay_asked_ = true;
      held_final_ = doc;
      ask_replay();
      return std::nullopt;
    }
    return finish_state(doc);
  }

  std::optional<int> finish_state(const json& doc) {
    auto outcome = outcome_of(doc);
    if (!outcome) return std::nullopt;
    for (const auto& n : streams_.finish(doc)) note(n);
    final_ = doc;
    if (!outcome->note.empty()) note(o_.device + ": run " + id_ + " " + outcome->note);
    return timed_out_ ? kExitTimeout : outcome->status;
  }

  // After a reconnect: the lines published while we were away, from the agent's
  // history (SPEC §12). MQTT 5 only: without seq, replayed and live lines cannot be
  // told apart, and the final state's count says what was lost.
  void on_reconnected() override {
    if (replied_ && c_.v5() && !catch_up_.under_way()) ask_replay();
  }

  void ask_replay() {
    catch_up_.ask_missing();
    deadlines_.wake(Clock::now() + CatchUp::kWait);
  }

  std::optional<int> on_replay(const Incoming& m) {
    auto answer = catch_up_.on_message(m, held_final_ ? &*held_final_ : nullptr);
    if (!answer) {
      // A long replay is not a silent one: the wait is for the next message.
      if (catch_up_.under_way()) deadlines_.wake(Clock::now() + CatchUp::kWait);
      return std::nullopt;
    }
    deadlines_.clear_wake();
    if (!held_final_) return std::nullopt;
    json final_state = std::move(*held_final_);
    held_final_.reset();
    if (!final_replay_asked_ && streams_.incomplete(final_state)) {
      final_replay_asked_ = true;
      held_final_ = std::move(final_state);
      ask_replay();
      return std::nullopt;
    }
    return finish_state(final_state);
  }

  void interrupt(const std::string& name) override { signal(name); }

  void terminate() override {
    if (replied_) signal("TERM");
  }

  void signal(const std::string& name) {
    if (!replied_) {
      pending_signal_ = name;  // sent as soon as the run exists
      return;
    }
    requester_.signal(topics_.run(id_, "signal"), name);
  }

  void failed(std::string code, std::string message) {
    error_code_ = std::move(code);
    error_message_ = std::move(message);
  }

 public:
  // --json: the run's final state or why there is none, then the summary (SPEC §10).
  void report(int status) {
    Fanout::Counts c;
    c.targeted = 1;
    if (final_) {
      out().line(json_final(o_.device, id_, *final_));
      (status == 0 ? c.ok : c.failed) = 1;
    } else {
      std::string code = error_code_.empty() ? "lost" : error_code_;
      out().line(
          json_error(o_.device, code,
                     error_message_.empty() ? "the end of the run is unknown" : error_message_));
      (code == "offline" ? c.offline : code == "no_answer" ? c.no_answer : c.failed) = 1;
    }
    out().line(json_summary(c, status));
  }

 private:
  int finish(int status) {
    if (stdin_) stdin_->stop();
    if (requester_.signalled()) c_.wait_published(0, Clock::now() + std::chrono::seconds(2));
    return status;
  }

  protocol::Topics topics_;
  std::string run_base_;  // {prefix}/{device}/run/{id}/
  RunStreams streams_;
  std::unique_ptr<StdinForwarder> stdin_;
  bool replied_ = false;
  std::string pending_signal_;
  CatchUp catch_up_;
  bool final_replay_asked_ = false;
  std::optional<json> held_final_;  // the final state, while a replay may fill gaps
  std::optional<json> final_;       // --json: the final state shown
  std::string error_code_;          // --json: why there is no final state
  std::string error_message_;
};

}  // namespace

int run_one(const Context& ctx, const RunOptions& o) {
  Connection& c = open_connection(ctx, true);
  OneRun run(c, ctx.prefix, o, o.id.empty() ? new_run_id() : o.id);
  const int status = run.go();
  if (o.json) run.report(status);
  return status;
}

}  // namespace linewire::cli
