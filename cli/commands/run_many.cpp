// `linewire run --group G | --all COMMAND [ARGS...]`: one run per device, a small pdsh
// (SPEC §10). Every line is prefixed with its device (or, with --json, is an NDJSON
// object); the exit status is the highest; offline and silent members count as 255.
// --batch N asks the devices a few at a time, each with its own --wait and --timeout.
#include <deque>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>

#include "cli/broker/ids.hpp"
#include "cli/commands/commands.hpp"
#include "cli/output/devices.hpp"
#include "cli/output/json_report.hpp"
#include "cli/output/output.hpp"
#include "cli/run/catch_up.hpp"
#include "cli/run/exit_status.hpp"
#include "cli/run/fanout.hpp"
#include "cli/run/run_loop.hpp"
#include "cli/run/run_streams.hpp"
#include "cli/run/targets.hpp"
#include "protocol/names.hpp"

namespace linewire::cli {

using nlohmann::json;

namespace {

// `{prefix}/{device}/run/{id}/{leaf}` to device and leaf.
struct RunTopic {
  std::string device;
  std::string leaf;
};

std::optional<RunTopic> parse_run_topic(std::string_view topic, std::string_view prefix,
                                        std::string_view id) {
  if (topic.size() <= prefix.size() + 1 || topic.substr(0, prefix.size()) != prefix ||
      topic[prefix.size()] != '/')
    return std::nullopt;
  std::string_view rest = topic.substr(prefix.size() + 1);
  auto slash = rest.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  std::string_view device = rest.substr(0, slash);
  rest.remove_prefix(slash + 1);
  std::string middle = "run/" + std::string(id) + "/";
  if (rest.substr(0, middle.size()) != middle) return std::nullopt;
  rest.remove_prefix(middle.size());
  if (!protocol::valid_name(device) || rest.find('/') != std::string_view::npos)
    return std::nullopt;
  return RunTopic{std::string(device), std::string(rest)};
}

class ManyRuns : public RunLoop {
 public:
  ManyRuns(Connection& c, const Context& ctx, const RunOptions& o, const std::string& id)
      : RunLoop(c, o, id, "every run", "no final state after KILL"),
        ctx_(ctx),
        directory_(ctx.prefix),
        fanout_(o.fail_fast) {}

  int go() {
    c_.subscribe(
        {c_.reply_topic(), ctx_.prefix + "/+/run/" + id_ + "/#", c_.replay_topic() + "/#"});
    for (auto& m : collect_retained(c_, {ctx_.prefix + "/+/status", ctx_.prefix + "/+/info"}))
      on_message(m);
    auto choice = pick_targets(directory_, o_, fanout_, c_.url(), ctx_.prefix);
    for (const auto& n : choice.notes) note(n);
    if (!choice.go) return finish(kExitFailure);
    start();
    return finish(follow());
  }

 private:
  bool batched() const { return o_.batch != 0; }

  void start() {
    start_fields_ = starting();
    if (batched()) {
      launch();
      return;
    }
    if (fanout_.active() == 0 && !fanout_.entries().empty()) return;  // all offline or skipped
    if (o_.all) {
      for (const auto& [device, e] : fanout_.entries())
        if (e.phase == Fanout::Phase::waiting)
          requester_.start(protocol::Topics(ctx_.prefix, device).command(o_.command, "start"),
                           start_fields_, correlation_);
    } else {
      // One request for the whole group: the broker fans it out (SPEC §2).
      requester_.start(protocol::Topics(ctx_.prefix, "-").group_start(o_.group, o_.command),
                       start_fields_, correlation_);
    }
  }

  // --batch: asks the next devices while fewer than N are waiting or running, each on
  // its own start topic with its own --wait and --timeout. One that went offline while
  // it waited for its turn is not asked.
  void launch() {
    if (!batched()) return;
    for (;;) {
      auto next = fanout_.start_next(o_.batch);
      if (next.empty()) break;
      const auto now = Clock::now();
      for (const auto& device : next) {
        const Device* d = directory_.find(device);
        if (!d || !d->online()) {
          fanout_.offline(device);  // not asked
          note(device + ": offline, not run");
          continue;
        }
        requester_.start(protocol::Topics(ctx_.prefix, device).command(o_.command, "start"),
                         start_fields_, correlation_);
        reply_by_[device] = now + seconds(o_.wait_s);
        if (o_.timeout_s) term_at_[device] = now + seconds(*o_.timeout_s) + kTimeoutSlack;
      }
    }
    rearm();
  }

  // The earliest of --batch's per-device deadlines and a replay's, as the loop's wake-up.
  void rearm() {
    auto at = replay_by_.value_or(Clock::time_point::max());
    for (const auto* m : {&reply_by_, &term_at_, &give_up_at_})
      for (const auto& [device, t] : *m) at = std::min(at, t);
    if (at == Clock::time_point::max())
      deadlines_.clear_wake();
    else
      deadlines_.wake(at);
  }

  void batch_deadlines(Clock::time_point now) {
    for (auto it = reply_by_.begin(); it != reply_by_.end();) {
      const Fanout::Entry* e = fanout_.find(it->first);
      if (!e || e->phase != Fanout::Phase::waiting) {
        it = reply_by_.erase(it);
        continue;
      }
      if (now < it->second) {
        ++it;
        continue;
      }
      if (offline_.offline(it->first))
        fanout_.went_offline(it->first);
      else
        fanout_.no_answer(it->first);
      it = reply_by_.erase(it);
    }
    for (auto it = term_at_.begin(); it != term_at_.end();) {
      const Fanout::Entry* e = fanout_.find(it->first);
      if (!e || Fanout::terminal(e->phase)) {
        it = term_at_.erase(it);
        continue;
      }
      if (now < it->second) {
        ++it;
        continue;
      }
      fanout_.timed_out(it->first);
      note(it->first + ": timed out after " + json(*o_.timeout_s).dump() + " s; sending TERM");
      if (e->phase == Fanout::Phase::running)
        requester_.signal(run_topic(it->first, "signal"), "TERM");
      give_up_at_[it->first] = now + kAfterTimeout;
      it = term_at_.erase(it);
    }
    for (auto it = give_up_at_.begin(); it != give_up_at_.end();) {
      if (now < it->second) {
        ++it;
        continue;
      }
      fanout_.abandon(it->first, kExitTimeout, "timed out");
      it = give_up_at_.erase(it);
    }
  }

  bool awaiting_reply() const override { return !batched() && !window_over_; }

  std::optional<int> over() const override {
    if (!fanout_.done()) return std::nullopt;
    return fanout_.exit_status();
  }

  std::optional<int> on_deadline() override {
    auto now = Clock::now();
    for (const auto& device : offline_.expired(now))
      if (fanout_.went_offline(device)) note(device + " did not come back");
    deadlines_.wake_due(now);
    if (replay_by_ && now >= *replay_by_) replay_over(std::nullopt);
    if (batched()) {
      batch_deadlines(now);
      deadlines_.timeout_due(now);  // --batch: each device's own, above
      if (auto g = deadlines_.give_up_due(now)) fanout_.abandon(g->status, g->note);
      launch();
      return std::nullopt;
    }
    if (!window_over_ && deadlines_.reply_overdue(now)) {
      window_over_ = true;
      // A device that went offline before it could answer (killed as the request
      // arrived) is reported as offline, which says more than "no answer".
      for (const auto& [device, e] : fanout_.entries())
        if (e.phase == Fanout::Phase::waiting && offline_.offline(device))
          fanout_.went_offline(device);
      fanout_.reply_window_over();
    }
    if (deadlines_.timeout_due(now)) {
      timed_out_ = true;
      fanout_.timed_out();
      note("timed out after " + json(*o_.timeout_s).dump() + " s; sending TERM");
      signal_running("TERM");
      deadlines_.give_up(kAfterTimeout, kExitTimeout, "timed out");
    }
    if (auto g = deadlines_.give_up_due(now)) fanout_.abandon(g->status, g->note);
    rearm();
    return std::nullopt;
  }

  std::optional<int> on_message(const Incoming& m) override {
    if (m.topic == c_.reply_topic()) {
      on_reply(m);
    } else if (m.topic.rfind(c_.replay_topic(), 0) == 0) {
      on_replay(m);
    } else if (auto t = parse_run_topic(m.topic, ctx_.prefix, id_)) {
      on_run(*t, m);
    } else if (directory_.add(m.topic, m.payload) && m.topic.ends_with("/status")) {
      on_status(m);
    }
    launch();
    return std::nullopt;
  }

  void on_status(const Incoming& m) {
    // A device of ours that goes offline mid-run gets a grace to come back (OfflineGrace).
    const std::string device =
        m.topic.substr(ctx_.prefix.size() + 1, m.topic.rfind('/') - ctx_.prefix.size() - 1);
    const Fanout::Entry* e = fanout_.find(device);
    if (!e || (e->phase != Fanout::Phase::waiting && e->phase != Fanout::Phase::running)) return;
    device_status(device, m.payload);
  }

  void on_reply(const Incoming& m) {
    auto reply = our_reply(m);
    if (!reply || !protocol::valid_name(reply->device)) return;
    if (!reply->ok) {
      fanout_.refused(reply->device, reply->code, reply->message);
      return;
    }
    if (!answered(reply->device)) return;
    on_started(reply->device);
    if (reply->queued) note(reply->device + " is busy: its run is queued");
  }

  // The device's run exists (its reply, or its `running` state came first).
  bool answered(const std::string& device) {
    const Fanout::Entry* before = fanout_.find(device);
    const bool was_offline = before && (before->phase == Fanout::Phase::offline ||
                                        before->phase == Fanout::Phase::skipped);
    if (!fanout_.replied(device)) return false;
    // Its retained status said offline, but it was back in time for the group request.
    if (was_offline) note(device + " is back online and answered; following its run");
    return true;
  }

  void on_started(const std::string& device) {
    // A fan-out does not forward stdin: each run gets an empty one, as `ssh -n`.
    requester_.eof(run_topic(device, "eof"));
    if (timed_out_) {
      requester_.signal(run_topic(device, "signal"), "TERM");
    } else if (!sent_signal_.empty()) {
      requester_.signal(run_topic(device, "signal"), sent_signal_);
    }
  }

  void on_run(const RunTopic& t, const Incoming& m) {
    if (t.leaf == "out" || t.leaf == "err") {
      streams(t.device).line(t.leaf == "out" ? Stream::out : Stream::err, m.seq, m.payload);
      return;
    }
    if (t.leaf != "state" || m.payload.empty()) return;
    json doc = json::parse(m.payload, nullptr, false);
    auto outcome = outcome_of(doc);
    if (!outcome) {
      // `running` comes before the reply: the run exists.
      if (!m.retained && doc.is_object() && doc.value("state", "") == "running" &&
          answered(t.device))
        on_started(t.device);
      return;
    }
    // A retained final state of a device that has not answered is an older run's (--id).
    if (m.retained) {
      const Fanout::Entry* e = fanout_.find(t.device);
      if (!e || e->phase == Fanout::Phase::offline || e->phase == Fanout::Phase::skipped) return;
    }
    if (c_.v5()) {
      // Lines are missing (a reconnect, a broker that dropped some): the agent's history
      // may still hold them (SPEC §12). Asked once per device at its final state; a
      // replay asked or under way is waited for, at most CatchUp::kWait.
      if (replay_pending(t.device)) {
        held_finals_[t.device] = doc;
        return;
      }
      if (!final_asked_.count(t.device) && streams(t.device).incomplete(doc)) {
        final_asked_.insert(t.device);
        held_finals_[t.device] = doc;
        ask_replay(t.device);
        return;
      }
    }
    finish_device(t.device, doc);
  }

  void finish_device(const std::string& device, const json& doc) {
    auto outcome = outcome_of(doc);
    if (!outcome) return;
    for (const auto& n : streams(device).finish(doc)) note(device + ": " + n);
    if (fanout_.finished(device, *outcome) && o_.json) out().line(json_final(device, id_, doc));
  }

  // After a reconnect, each run under way asks for the lines it missed (MQTT 5 only:
  // without seq, replayed and live lines cannot be told apart). The replies share the
  // connection's replay topic, so one device's replay is under way at a time.
  void on_reconnected() override {
    if (!c_.v5()) return;
    for (const auto& device : fanout_.running()) ask_replay(device);
  }

  bool replay_pending(const std::string& device) const {
    return replaying_ == device ||
           std::find(replay_queue_.begin(), replay_queue_.end(), device) != replay_queue_.end();
  }

  void ask_replay(const std::string& device) {
    if (!replay_pending(device)) replay_queue_.push_back(device);
    next_replay();
  }

  void next_replay() {
    if (!replaying_.empty() || replay_queue_.empty()) return;
    replaying_ = replay_queue_.front();
    replay_queue_.pop_front();
    catch_up(replaying_).ask_missing();
    replay_by_ = Clock::now() + CatchUp::kWait;
    rearm();
  }

  CatchUp& catch_up(const std::string& device) {
    auto it = catch_ups_.find(device);
    if (it == catch_ups_.end())
      it = catch_ups_
               .emplace(device, std::make_unique<CatchUp>(
                                    c_, requester_, run_topic(device, "replay"), streams(device)))
               .first;
    return *it->second;
  }

  void on_replay(const Incoming& m) {
    if (replaying_.empty()) return;
    auto held = held_finals_.find(replaying_);
    auto answer =
        catch_up(replaying_).on_message(m, held == held_finals_.end() ? nullptr : &held->second);
    if (answer) replay_over(answer);
  }

  // The replay under way was answered, or not within CatchUp::kWait (an agent older
  // than replay, or gone again): what came is all there is. A held final state goes
  // out now, unless it shows lines still missing and none was asked for at the end yet.
  void replay_over(const std::optional<CatchUp::Answer>& answer) {
    const std::string device = std::move(replaying_);
    replaying_.clear();
    replay_by_.reset();
    if (!answer) catch_up(device).give_up();
    auto held = held_finals_.find(device);
    if (held != held_finals_.end()) {
      json doc = std::move(held->second);
      held_finals_.erase(held);
      if (!final_asked_.count(device) && streams(device).incomplete(doc)) {
        final_asked_.insert(device);
        held_finals_[device] = std::move(doc);
        replay_queue_.push_back(device);
      } else {
        finish_device(device, doc);
      }
    }
    next_replay();
    rearm();
  }

  RunStreams& streams(const std::string& device) {
    auto it = streams_.find(device);
    if (it == streams_.end()) {
      std::string prefix = device + ": ";
      it = streams_
               .emplace(device, RunStreams([this, device, prefix](Stream s, std::string_view line) {
                          if (o_.json) {
                            json_output(device, s, line);
                            return;
                          }
                          (s == Stream::out ? out() : err()).line(line, prefix, ansi::cyan);
                        }))
               .first;
    }
    return it->second;
  }

  // --json: the line as an object; its seq is the one after the highest shown so far
  // (the sequencer passes lines on in order), unknown without seq (MQTT 3.1.1).
  void json_output(const std::string& device, Stream s, std::string_view line) {
    std::optional<std::uint64_t> seq;
    if (c_.v5()) seq = streams_.at(device).highest(s) + 1;
    out().line(json_line(device, id_, s == Stream::err, seq, line));
  }

  // Ctrl-C: nothing new starts (--batch); the signal goes to the runs under way.
  void interrupt(const std::string& name) override {
    sent_signal_ = name;
    fanout_.stop_starting("interrupted");
    signal_running(name);
  }

  void terminate() override {
    fanout_.stop_starting("interrupted");
    signal_running("TERM");
  }

  void signal_running(const std::string& name) {
    for (const auto& device : fanout_.running())
      requester_.signal(run_topic(device, "signal"), name);
  }

  std::string run_topic(const std::string& device, std::string_view leaf) const {
    return protocol::Topics(ctx_.prefix, device).run(id_, leaf);
  }

  int finish(int status) {
    if (o_.json) {
      for (const auto& [device, e] : fanout_.entries())
        if (auto line = json_entry_error(e)) out().line(*line);
      out().line(json_summary(fanout_.counts(), status));
    }
    for (const auto& line : fanout_.summary()) note(line);
    if (requester_.signalled()) c_.wait_published(0, Clock::now() + std::chrono::seconds(2));
    return status;
  }

  const Context& ctx_;
  DeviceDirectory directory_;
  Fanout fanout_;
  std::map<std::string, RunStreams> streams_;
  std::string sent_signal_;
  bool window_over_ = false;
  StartFields start_fields_;
  // --batch: each device's reply deadline (--wait), local --timeout and last wait.
  std::map<std::string, Clock::time_point> reply_by_, term_at_, give_up_at_;
  // Catching up after a reconnect (SPEC §12): one replay under way at a time.
  std::map<std::string, std::unique_ptr<CatchUp>> catch_ups_;
  std::deque<std::string> replay_queue_;
  std::string replaying_;
  std::optional<Clock::time_point> replay_by_;
  std::map<std::string, json> held_finals_;  // final states waiting for a replay
  std::set<std::string> final_asked_;        // devices asked once more at their final state
};

}  // namespace

int run_many(const Context& ctx, const RunOptions& o) {
  Connection& c = open_connection(ctx, true);
  ManyRuns runs(c, ctx, o, o.id.empty() ? new_run_id() : o.id);
  return runs.go();
}

}  // namespace linewire::cli
