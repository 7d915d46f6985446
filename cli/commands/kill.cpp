// `linewire kill DEVICE RUN [SIGNAL]`: a signal to a run's process group (SPEC §2).
#include <nlohmann/json.hpp>

#include "cli/broker/ids.hpp"
#include "cli/broker/requester.hpp"
#include "cli/commands/commands.hpp"
#include "cli/output/output.hpp"
#include "cli/run/exit_status.hpp"
#include "protocol/names.hpp"

namespace linewire::cli {

using nlohmann::json;

namespace {

// MQTT 3.1.1 has no reply for a signal: a refusal goes to `errors`; this long without
// one counts as done.
constexpr std::chrono::seconds kErrorsWait{1};

int kill_v5(Connection& c, const protocol::Topics& topics, const std::string& run,
            const std::string& signal, double wait_s) {
  Requester requester(c);
  const std::string correlation = random_hex(16);
  requester.signal(topics.run(run, "signal"), signal, correlation);
  const auto end = Clock::now() + seconds(wait_s);
  while (auto e = c.next(end)) {
    if (e->kind == Event::Kind::interrupt) return 128 + e->signal;
    if (e->kind != Event::Kind::message || e->message.topic != c.reply_topic() ||
        e->message.correlation != correlation)
      continue;
    auto reply = parse_reply(e->message.payload);
    if (!reply) continue;
    if (reply->ok) return 0;
    note(topics.device() + " refused: " + reply->code +
         (reply->message.empty() ? "" : ": " + reply->message));
    return kExitFailure;
  }
  note("no reply from " + topics.device() + " within " + json(wait_s).dump() + " s");
  return kExitFailure;
}

int kill_v311(Connection& c, const protocol::Topics& topics, const std::string& run,
              const std::string& signal, std::vector<Incoming>& backlog) {
  // No reply is possible: look at the run's retained state first, then listen on
  // `errors` for a refusal.
  c.subscribe({topics.errors()});
  for (auto& m : collect_retained(c, {topics.run(run, "state")})) backlog.push_back(std::move(m));
  json state;
  for (const auto& m : backlog)
    if (m.topic == topics.run(run, "state") && !m.payload.empty())
      state = json::parse(m.payload, nullptr, false);
  if (!state.is_object() || state.value("state", "") != "running") {
    note(topics.device() + ": no running run '" + run + "'" +
         (state.is_object() ? " (it is " + state.value("state", "?") + ")" : ""));
    return kExitFailure;
  }
  const std::string topic = topics.run(run, "signal");
  Requester(c).signal(topic, signal);
  const auto end = Clock::now() + kErrorsWait;
  while (auto e = c.next(end)) {
    if (e->kind == Event::Kind::interrupt) return 128 + e->signal;
    if (e->kind != Event::Kind::message || e->message.topic != topics.errors()) continue;
    json doc = json::parse(e->message.payload, nullptr, false);
    if (!doc.is_object() || doc.value("topic", "") != topic) continue;
    const json error = doc.value("error", json::object());
    note(topics.device() + " refused: " + error.value("code", "?") + ": " +
         error.value("message", ""));
    return kExitFailure;
  }
  return 0;
}

}  // namespace

int kill_run(const Context& ctx, const std::string& device, const std::string& run,
             const std::string& signal, double wait_s) {
  Connection& c = open_connection(ctx, false);
  protocol::Topics topics(ctx.prefix, device);
  c.subscribe({topics.status(), c.reply_topic()});
  std::vector<Incoming> backlog;
  auto status = wait_for_status(c, topics.status(), backlog);
  if (auto why = offline_reason(status, device, c)) {
    note(*why);
    return kExitFailure;
  }
  int result =
      c.v5() ? kill_v5(c, topics, run, signal, wait_s) : kill_v311(c, topics, run, signal, backlog);
  c.wait_published(0, Clock::now() + std::chrono::seconds(2));
  return result;
}

}  // namespace linewire::cli
