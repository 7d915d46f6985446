// The MQTT transport's request path (SPEC §3), mosquitto-shaped: a message is decoded
// into one Request with its reply route worked out once; the checks every request
// shares run once, in SPEC §3's order; a table sends each kind to its one handler,
// which makes the checks of its own kind and asks the agent. Read top to bottom.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "agent/verifier.hpp"
#include "protocol/signed_request.hpp"
#include "transports/mqtt/homeassistant.hpp"
#include "transports/mqtt/mqtt_transport.hpp"

namespace linewire::mqtt {

using nlohmann::json;
using protocol::Error;
using protocol::ErrorCode;
using protocol::RequestKind;

namespace {

std::string_view kind_name(RequestKind k) {
  switch (k) {
    case RequestKind::start:
      return "start";
    case RequestKind::stop:
      return "stop";
    case RequestKind::switch_:
      return "switch";
    case RequestKind::in:
      return "in";
    case RequestKind::eof:
      return "eof";
    case RequestKind::signal:
      return "signal";
    case RequestKind::replay:
      return "replay";
    case RequestKind::group_start:
      return "group start";
  }
  return "?";
}

std::string dump(const json& doc) {
  return doc.dump(-1, ' ', false, json::error_handler_t::replace);
}

// What a log line may show of a payload: short and printable.
std::string printable(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 200)) out.push_back(c >= 0x20 && c < 0x7f ? c : '.');
  if (s.size() > 200) out += "...";
  return out;
}

}  // namespace

// One request as decoded from its message.
struct Transport::Request {
  const Message& message;
  protocol::RequestTopic topic;  // what it asks (kind) of what (name, group)
  Reply reply;
  agent::Verified verified;  // once the signature check passed: the plain payload, the key
};

// The MQTT 5 Response Topic, else the `reply_to` field of the payload (a signed
// request's INNER, or a start's JSON object): read before anything else is checked, so
// that a refusal is answered where its sender listens. An oversize payload is not read.
Transport::Reply Transport::reply_route(const Message& m, RequestKind kind) const {
  Reply reply;
  if (!m.response_topic.empty()) {
    reply.topic = m.response_topic;
    reply.correlation = m.correlation;
    return reply;
  }
  if (m.payload.size() > config_.limits.max_payload) return reply;
  protocol::ReplyFields fields;
  if (protocol::is_envelope(m.payload)) {
    auto parsed = protocol::parse_envelope(m.payload);
    if (auto* env = std::get_if<protocol::Envelope>(&parsed))
      fields = protocol::inner_reply_fields(env->inner);
  } else if (kind == RequestKind::start || kind == RequestKind::group_start ||
             kind == RequestKind::replay) {
    fields = protocol::inner_reply_fields(m.payload);
  }
  reply.topic = std::move(fields.reply_to);
  reply.correlation_field = std::move(fields.correlation);
  return reply;
}

void Transport::on_message(Message m) {
  // Home Assistant came (back) online and forgot its entities. A retained `online`
  // only arrives right after our subscribe, when the configs were just published.
  if (config_.homeassistant.discovery && m.topic == homeassistant::status_topic(config_)) {
    if (m.payload == "online" && !m.retained) publish_discovery();
    return;
  }
  auto topic = topics_.parse(m.topic);
  if (!topic) return;  // not a request topic (cannot happen with our filters)
  // A group this device left (a reload during an outage could not unsubscribe, or a
  // persistent session kept the old subscription): not ours to answer or refuse.
  if (topic->kind == RequestKind::group_start &&
      std::find(config_.groups.begin(), config_.groups.end(), topic->group) ==
          config_.groups.end()) {
    spdlog::debug("ignored {}: not a member of group '{}'", m.topic, topic->group);
    return;
  }
  Request req{m, std::move(*topic), {}, {}};
  if (auto e = check(req)) return refuse(req, *e);
  if (auto e = dispatch(req)) refuse(req, *e);
}

// The checks every request shares, in SPEC §3's order: size, retained, the signature
// (before names and the command, so that with auth.require a stranger learns
// neither), names. The command and the payload's fields are the handlers'.
std::optional<Error> Transport::check(Request& req) {
  const Message& m = req.message;
  req.reply = reply_route(m, req.topic.kind);
  if (m.payload.size() > config_.limits.max_payload)
    return Error{ErrorCode::bad_request, "payload of " + std::to_string(m.payload.size()) +
                                             " bytes is over " +
                                             std::to_string(config_.limits.max_payload)};
  if (m.retained)
    return Error{ErrorCode::bad_request,
                 "retained requests are refused: clear it with an empty retained message"};
  auto checked = verifier_->check(m.topic, req.topic.kind, m.payload, auth_target(req.topic));
  if (!checked.verified) return checked.error;
  req.verified = std::move(*checked.verified);
  if (!protocol::valid_name(req.topic.name) ||
      (req.topic.kind == RequestKind::group_start && !protocol::valid_name(req.topic.group)))
    return Error{ErrorCode::bad_request,
                 "bad name in topic: names match [A-Za-z0-9][A-Za-z0-9_.-]{0,63}"};
  return std::nullopt;
}

// The command whose signature rules apply: the run's for in, eof and signal.
const config::Command* Transport::auth_target(const protocol::RequestTopic& t) const {
  if (!protocol::valid_name(t.name)) return nullptr;
  switch (t.kind) {
    case RequestKind::in:
    case RequestKind::eof:
    case RequestKind::signal:
      return agent_.command_of_run(t.name);
    case RequestKind::replay:
      return agent_.command_of_known_run(t.name);
    default:
      return agent_.find_command(t.name, "mqtt");
  }
}

std::optional<Error> Transport::dispatch(Request& req) {
  using Handler = std::optional<Error> (Transport::*)(Request&);
  static constexpr std::pair<RequestKind, Handler> kHandlers[] = {
      {RequestKind::start, &Transport::handle_start},
      {RequestKind::group_start, &Transport::handle_start},
      {RequestKind::switch_, &Transport::handle_switch},
      {RequestKind::stop, &Transport::handle_stop},
      {RequestKind::in, &Transport::handle_in},
      {RequestKind::eof, &Transport::handle_eof},
      {RequestKind::signal, &Transport::handle_signal},
      {RequestKind::replay, &Transport::handle_replay},
  };
  for (const auto& [kind, handler] : kHandlers)
    if (kind == req.topic.kind) return (this->*handler)(req);
  return Error{ErrorCode::bad_request, "not a request topic"};
}

void Transport::log_request(const Request& req, std::string_view detail) const {
  spdlog::info("request {} topic={} {} reply={} key={}", kind_name(req.topic.kind),
               req.message.topic, detail, req.reply.topic.empty() ? "-" : req.reply.topic,
               req.verified.key.empty() ? "-" : req.verified.key);
}

// Start (also a group's, and switch ON): the command, its keys, then the payload's
// fields; the agent checks the rest (arguments, id, capacity).
std::optional<Error> Transport::handle_start(Request& req) {
  protocol::ParsedStart parsed;
  if (req.topic.kind != RequestKind::switch_) parsed = protocol::parse_start(req.verified.payload);
  const auto& r = parsed.request;
  std::string args;
  for (const auto& a : r.args) args += (args.empty() ? "" : " ") + printable(a);
  log_request(
      req, "command=" + req.topic.name + " run=" + r.id.value_or("(new)") + " args=[" + args + "]");
  const config::Command* command = agent_.find_command(req.topic.name, "mqtt");
  if (!command)
    return Error{ErrorCode::unknown_command,
                 "no command '" + req.topic.name + "' on " + config_.device};
  if (auto e = verifier_->check_command_keys(req.verified, *command)) return e;
  if (parsed.error) return parsed.error;
  agent::RunOrigin origin;
  origin.topic = req.message.topic;
  origin.key = req.verified.key;
  auto result = agent_.start(*command, std::move(parsed.request), std::move(origin));
  if (auto* e = std::get_if<Error>(&result)) return *e;
  const auto& started = std::get<agent::Started>(result);
  json doc = {
      {"ok", true}, {"device", config_.device}, {"run", started.run}, {"command", command->name}};
  if (started.queued) doc["queued"] = true;
  if (!started.replaces.empty()) doc["replaces"] = started.replaces;
  if (started.pid > 0) doc["pid"] = started.pid;
  reply(req, std::move(doc));
  return std::nullopt;
}

// Every other kind: its command's keys (for in, eof and signal the run's command),
// then the payload's fields, then the agent.
std::optional<Error> Transport::handle_other(Request& req,
                                             const std::function<std::optional<Error>()>& act) {
  const bool about_command =
      req.topic.kind == RequestKind::stop || req.topic.kind == RequestKind::switch_;
  log_request(req, std::string(about_command ? "command=" : "run=") + req.topic.name +
                       " payload=" + printable(req.verified.payload));
  if (const auto* command = auth_target(req.topic))
    if (auto e = verifier_->check_command_keys(req.verified, *command)) return e;
  if (req.verified.fields_error) return req.verified.fields_error;
  if (auto e = act()) return e;
  reply(req, {{"ok", true}, {"device", config_.device}});
  return std::nullopt;
}

std::optional<Error> Transport::handle_switch(Request& req) {
  if (req.verified.payload == "ON") return handle_start(req);
  return handle_other(req, [&]() -> std::optional<Error> {
    if (req.verified.payload != "OFF")
      return Error{ErrorCode::bad_request, "switch takes ON or OFF"};
    return stop_command(req.topic.name);
  });
}

std::optional<Error> Transport::handle_stop(Request& req) {
  return handle_other(req, [&] { return stop_command(req.topic.name); });
}

std::optional<Error> Transport::stop_command(const std::string& name) {
  const config::Command* command = agent_.find_command(name, "mqtt");
  if (!command)
    return Error{ErrorCode::unknown_command, "no command '" + name + "' on " + config_.device};
  return agent_.stop(*command);
}

std::optional<Error> Transport::handle_in(Request& req) {
  return handle_other(req,
                      [&] { return agent_.write_stdin(req.topic.name, req.verified.payload); });
}

std::optional<Error> Transport::handle_eof(Request& req) {
  return handle_other(req, [&] { return agent_.close_stdin(req.topic.name); });
}

std::optional<Error> Transport::handle_signal(Request& req) {
  return handle_other(req, [&] { return agent_.signal(req.topic.name, req.verified.payload); });
}

// Replay (SPEC §12): the run's command's keys, the payload's fields, a reply
// destination (replayed lines must never land on the shared run topics), a run the
// agent knows; then it waits its turn among the replays.
std::optional<Error> Transport::handle_replay(Request& req) {
  auto parsed = protocol::parse_replay(req.verified.payload);
  const auto& r = parsed.request;
  log_request(req, "run=" + req.topic.name + " from=" + std::to_string(r.from_out) + "/" +
                       std::to_string(r.from_err));
  const auto* command = auth_target(req.topic);
  if (command)
    if (auto e = verifier_->check_command_keys(req.verified, *command)) return e;
  if (parsed.error) return parsed.error;
  if (req.reply.topic.empty())
    return Error{ErrorCode::bad_request,
                 "a replay needs a reply destination: the MQTT 5 Response Topic, or reply_to"};
  const auto* kept = agent_.history().find(req.topic.name);
  if (!kept)
    return Error{ErrorCode::unknown_run,
                 "no output kept for run '" + req.topic.name + "' on " + config_.device};
  // Its command was removed by a reload: the keys that guarded its output are gone with
  // it, so nobody's signature can be checked against them; served to no one.
  if (!command)
    return Error{ErrorCode::unknown_run, "run '" + req.topic.name + "' ran command '" +
                                             kept->command +
                                             "', which is no longer configured: its output "
                                             "is not served"};
  return replays_->add(req.topic.name, r, req.reply);
}

void Transport::refuse(const Request& req, const Error& e) {
  spdlog::info("refused {}: {} ({})", req.message.topic, to_string(e.code), e.message);
  json error = {{"code", to_string(e.code)}, {"message", e.message}};
  if (!req.reply.topic.empty())
    return reply(req, {{"ok", false}, {"device", config_.device}, {"error", std::move(error)}});
  PublishOptions o;
  o.qos = config_.qos;
  client_.publish(
      topics_.errors(),
      dump({{"device", config_.device}, {"topic", req.message.topic}, {"error", std::move(error)}}),
      o);
}

// The one reply a request gets, when it named where (SPEC §3).
void Transport::reply(const Request& req, json doc) {
  const Reply& r = req.reply;
  if (r.topic.empty()) return;
  PublishOptions o;
  o.qos = config_.qos;
  o.correlation = r.correlation ? &*r.correlation : nullptr;
  if (r.correlation_field) doc["correlation"] = *r.correlation_field;
  client_.publish(r.topic, dump(doc), o);
}

}  // namespace linewire::mqtt
