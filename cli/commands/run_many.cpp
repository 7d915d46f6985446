// `linewire run --group G | --all COMMAND [ARGS...]`: one run per device, a small pdsh
// (SPEC §10). Every line is prefixed with its device; the exit status is the highest.
#include <map>
#include <nlohmann/json.hpp>

#include "protocol/names.hpp"
#include "cli/broker/ids.hpp"
#include "cli/commands/commands.hpp"
#include "cli/output/devices.hpp"
#include "cli/output/output.hpp"
#include "cli/run/exit_status.hpp"
#include "cli/run/fanout.hpp"
#include "cli/run/run_loop.hpp"
#include "cli/run/run_streams.hpp"

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
  if (!protocol::valid_name(device) || rest.find('/') != std::string_view::npos) return std::nullopt;
  return RunTopic{std::string(device), std::string(rest)};
}

class ManyRuns : public RunLoop {
 public:
  ManyRuns(Connection& c, const Context& ctx, const RunOptions& o, const std::string& id)
      : RunLoop(c, o, id, "every run", "no final state after KILL"),
        ctx_(ctx),
        directory_(ctx.prefix) {}

  int go() {
    c_.subscribe({c_.reply_topic(), ctx_.prefix + "/+/run/" + id_ + "/#"});
    for (auto& m : collect_retained(c_, {ctx_.prefix + "/+/status", ctx_.prefix + "/+/info"}))
      on_message(m);
    if (!pick_devices()) return kExitFailure;
    start();
    return finish(follow());
  }

 private:
  bool pick_devices() {
    std::vector<std::string> expected =
        o_.all ? directory_.online() : directory_.online_in_group(o_.group);
    if (o_.all && expected.empty()) {
      note("no device is online on " + c_.url() + " under " + ctx_.prefix + "/");
      return false;
    }
    if (expected.empty())
      note("no online device lists group '" + o_.group + "' in its info; waiting " +
           json(o_.wait_s).dump() + " s for answers");
    for (const auto& d : expected) fanout_.expect(d);
    return true;
  }

  void start() {
    const StartFields f = starting();
    if (o_.all) {
      for (const auto& [device, e] : fanout_.entries())
        requester_.start(protocol::Topics(ctx_.prefix, device).command(o_.command, "start"), f,
                         correlation_);
    } else {
      // One request for the whole group: the broker fans it out (SPEC §2).
      requester_.start(protocol::Topics(ctx_.prefix, "-").group_start(o_.group, o_.command), f,
                       correlation_);
    }
  }

  bool awaiting_reply() const override { return !window_over_; }

  std::optional<int> over() const override {
    if (!fanout_.done()) return std::nullopt;
    return fanout_.exit_status();
  }

  std::optional<int> on_deadline() override {
    auto now = Clock::now();
    for (const auto& device : offline_.expired(now))
      if (fanout_.went_offline(device)) note(device + " did not come back");
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
    return std::nullopt;
  }

  std::optional<int> on_message(const Incoming& m) override {
    if (m.topic == c_.reply_topic()) {
      on_reply(m);
    } else if (auto t = parse_run_topic(m.topic, ctx_.prefix, id_)) {
      on_run(*t, m);
    } else if (directory_.add(m.topic, m.payload) && m.topic.ends_with("/status")) {
      on_status(m);
    }
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
    if (!fanout_.replied(reply->device)) return;
    on_started(reply->device);
    if (reply->queued) note(reply->device + " is busy: its run is queued");
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
          fanout_.replied(t.device))
        on_started(t.device);
      return;
    }
    if (m.retained && !fanout_.find(t.device)) return;  // an older run with this --id
    for (const auto& n : streams(t.device).finish(doc)) note(t.device + ": " + n);
    fanout_.finished(t.device, *outcome);
  }

  RunStreams& streams(const std::string& device) {
    auto it = streams_.find(device);
    if (it == streams_.end()) {
      std::string prefix = device + ": ";
      it = streams_
               .emplace(device, RunStreams([prefix](Stream s, std::string_view line) {
                          (s == Stream::out ? out() : err()).line(line, prefix, ansi::cyan);
                        }))
               .first;
    }
    return it->second;
  }

  void interrupt(const std::string& name) override {
    sent_signal_ = name;
    signal_running(name);
  }

  void terminate() override { signal_running("TERM"); }

  void signal_running(const std::string& name) {
    for (const auto& device : fanout_.running())
      requester_.signal(run_topic(device, "signal"), name);
  }

  std::string run_topic(const std::string& device, std::string_view leaf) const {
    return protocol::Topics(ctx_.prefix, device).run(id_, leaf);
  }

  int finish(int status) {
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
};

}  // namespace

int run_many(const Context& ctx, const RunOptions& o) {
  Connection& c = open_connection(ctx, true);
  ManyRuns runs(c, ctx, o, o.id.empty() ? new_run_id() : o.id);
  return runs.go();
}

}  // namespace linewire::cli
