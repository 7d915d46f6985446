#include "transports/mqtt/mqtt_transport.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include "agent/verifier.hpp"
#include "transports/mqtt/homeassistant.hpp"

namespace linewire::mqtt {

namespace asio = boost::asio;
using agent::Error;
using agent::ErrorCode;
using agent::RequestKind;
using nlohmann::json;

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

// Where an answer goes: the MQTT 5 Response Topic, else `reply_to` (MQTT 3.1.1).
struct Transport::Reply {
  std::string topic;
  std::optional<std::string> correlation;        // MQTT 5 Correlation Data
  std::optional<std::string> correlation_field;  // 3.1.1 `correlation`, echoed in JSON
};

// `cmd/{c}/last` is retained and rewritten per line; under a flood it is coalesced to
// at most one publish per 100 ms and command, and always flushed before a final
// state, so it ends right.
struct Transport::LastLines {
  struct Entry {
    explicit Entry(asio::io_context& io) : timer(io) {}
    asio::steady_timer timer;
    std::string newest_run;  // only the newest run of the command writes `last`
    std::string pending;
    bool has_pending = false;
    bool armed = false;
  };
  std::map<std::string, std::unique_ptr<Entry>> entries;
};

Transport::Transport(asio::io_context& io, agent::Agent& agent)
    : io_(io),
      agent_(agent),
      config_(agent.config()),
      topics_(config_.prefix, config_.device),
      client_(io, config_, topics_.status(),
              Client::Handlers{[this] { on_connected(); },
                               [this](const std::string& cause) {
                                 ++agent_.metrics().reconnects;  // /metrics
                                 spdlog::warn("mqtt: connection lost{}{}; reconnecting",
                                              cause.empty() ? "" : ": ", cause);
                               },
                               [this](Message m) { on_message(std::move(m)); },
                               [this] { agent_.resume_output(); }}),
      last_(std::make_unique<LastLines>()),
      verifier_(std::make_unique<agent::Verifier>(config_)),
      discovery_published_(homeassistant::load_published(config_.state_dir)) {
  out_.qos = config_.qos;
  retained_.qos = config_.qos;
  retained_.retain = true;
  agent_.set_observer(this);
}

Transport::~Transport() { agent_.set_observer(nullptr); }

void Transport::start() {
  spdlog::info("mqtt: connecting to {} as device '{}' (MQTT {})", config_.broker.url,
               config_.device,
               config_.broker.protocol == config::Protocol::automatic ? "5, else 3.1.1"
               : client_.v5()                                         ? "5"
                                                                      : "3.1.1");
  client_.start();
}

void Transport::stop(std::function<void()> done) {
  client_.stop(topics_.status(), "offline", std::move(done));
}

std::vector<std::string> Transport::filters() const {
  std::vector<std::string> f = {
      topics_.device_filter("cmd", "start"),  topics_.device_filter("cmd", "stop"),
      topics_.device_filter("cmd", "switch"), topics_.device_filter("run", "in"),
      topics_.device_filter("run", "eof"),    topics_.device_filter("run", "signal")};
  for (const auto& g : config_.groups) f.push_back(topics_.group_filter(g));
  if (config_.homeassistant.discovery) f.push_back(homeassistant::status_topic(config_));
  return f;
}

void Transport::on_connected() {
  spdlog::info("mqtt: connected to {} (MQTT {})", config_.broker.url, client_.v5() ? "5" : "3.1.1");
  // A clean session forgets subscriptions: subscribe on every connect.
  client_.subscribe(filters(), [this] {
    if (ready_) ready_();
  });
  client_.publish(topics_.status(), "online", retained_);
  client_.publish(topics_.info(), agent_.info_document(), retained_);
  publish_running();
  publish_discovery();
}

// Every discovery config again, and an empty retained message for each one published
// before (also by an earlier agent process, see state_dir) that the config no longer has.
void Transport::publish_discovery() {
  auto documents = homeassistant::documents(config_, agent_.version());
  for (const auto& topic : homeassistant::stale(discovery_published_, documents))
    client_.publish(topic, "", retained_);
  std::set<std::string> published;
  for (const auto& d : documents) {
    client_.publish(d.topic, d.payload, retained_);
    published.insert(d.topic);
  }
  if (published == discovery_published_) return;
  discovery_published_ = std::move(published);
  homeassistant::save_published(config_.state_dir, discovery_published_);
}

void Transport::publish_running() {
  for (const auto& c : config_.commands)
    client_.publish(topics_.command(c.name, "running"), agent_.running(c.name) ? "ON" : "OFF",
                    retained_);
}

void Transport::on_reconfigured(const config::Config& previous) {
  std::vector<std::string> gone;
  for (const auto& g : previous.groups)
    if (std::find(config_.groups.begin(), config_.groups.end(), g) == config_.groups.end())
      gone.push_back(topics_.group_filter(g));
  if (previous.homeassistant.discovery &&
      (!config_.homeassistant.discovery ||
       previous.homeassistant.prefix != config_.homeassistant.prefix))
    gone.push_back(homeassistant::status_topic(previous));
  client_.unsubscribe(gone);
  client_.subscribe(filters());  // subscribing again to a filter only replaces it
  publish_running();
  verifier_->reconfigure(config_);
  publish_discovery();
}

// ---- requests ----

void Transport::on_message(Message m) {
  // Home Assistant came (back) online and forgot its entities. A retained `online`
  // only arrives right after our subscribe, when the configs were just published.
  if (config_.homeassistant.discovery && m.topic == homeassistant::status_topic(config_)) {
    if (m.payload == "online" && !m.retained) publish_discovery();
    return;
  }
  auto t = topics_.parse(m.topic);
  if (!t) return;  // not a request topic (cannot happen with our filters)
  Reply reply;
  if (!m.response_topic.empty()) {
    reply.topic = m.response_topic;
    reply.correlation = m.correlation;
  }
  // Checks in SPEC §3's order: size, the signature, names and the command, then the
  // payload.
  if (m.payload.size() > config_.limits.max_payload) {
    refuse(m, reply,
           {ErrorCode::bad_request, "payload of " + std::to_string(m.payload.size()) +
                                        " bytes is over " +
                                        std::to_string(config_.limits.max_payload)});
    return;
  }
  if (m.retained) {
    refuse(m, reply,
           {ErrorCode::bad_request,
            "retained requests are refused: clear it with an empty retained message"});
    return;
  }
  // SPEC §11: before names and the command, so that with auth.require a stranger
  // learns neither; a refused request reaches nothing.
  auto checked = verifier_->check(m.topic, t->kind, m.payload, auth_target(*t));
  if (!checked.verified) {
    if (reply.topic.empty() && !checked.reply.reply_to.empty()) {
      reply.topic = checked.reply.reply_to;
      reply.correlation_field = checked.reply.correlation;
    }
    refuse(m, reply, checked.error);
    return;
  }
  if (!agent::valid_name(t->name) ||
      (t->kind == RequestKind::group_start && !agent::valid_name(t->group))) {
    refuse(
        m, reply,
        {ErrorCode::bad_request, "bad name in topic: names match [A-Za-z0-9][A-Za-z0-9_.-]{0,63}"});
    return;
  }
  if (agent_.shutting_down()) {
    refuse(m, reply, {ErrorCode::shutting_down, "the agent is shutting down"});
    return;
  }
  handle(m, *t, reply, *checked.verified);
}

// The command whose signature rules apply: the run's for in, eof and signal.
const config::Command* Transport::auth_target(const agent::RequestTopic& t) const {
  if (!agent::valid_name(t.name)) return nullptr;
  switch (t.kind) {
    case RequestKind::in:
    case RequestKind::eof:
    case RequestKind::signal:
      return agent_.command_of_run(t.name);
    default:
      return config_.find_command(t.name);
  }
}

void Transport::handle(const Message& m, const agent::RequestTopic& t, Reply& reply,
                       const agent::Verified& v) {
  const std::string key = v.key.empty() ? "-" : v.key;
  const bool is_start = t.kind == RequestKind::start || t.kind == RequestKind::group_start ||
                        (t.kind == RequestKind::switch_ && v.payload == "ON");
  if (is_start) {
    agent::ParsedStart parsed;
    if (t.kind != RequestKind::switch_) parsed = agent::parse_start(v.payload);
    if (reply.topic.empty() && !parsed.request.reply_to.empty()) {
      reply.topic = parsed.request.reply_to;
      reply.correlation_field = parsed.request.correlation;
    }
    const auto& r = parsed.request;
    std::string args;
    for (const auto& a : r.args) args += (args.empty() ? "" : " ") + printable(a);
    spdlog::info("request {} topic={} command={} run={} args=[{}] reply={} key={}",
                 kind_name(t.kind), m.topic, t.name, r.id.value_or("(new)"), args,
                 reply.topic.empty() ? "-" : reply.topic, key);
    const config::Command* command = config_.find_command(t.name);
    if (!command) {
      refuse(m, reply,
             {ErrorCode::unknown_command, "no command '" + t.name + "' on " + config_.device});
      return;
    }
    if (auto e = verifier_->check_command_keys(v, *command)) {
      refuse(m, reply, *e);
      return;
    }
    if (parsed.error) {
      refuse(m, reply, *parsed.error);
      return;
    }
    agent::RunOrigin origin;
    origin.topic = m.topic;
    origin.key = v.key;
    auto result = agent_.start(t.name, std::move(parsed.request), std::move(origin));
    if (auto* e = std::get_if<Error>(&result)) {
      refuse(m, reply, *e);
      return;
    }
    const auto& started = std::get<agent::Started>(result);
    if (reply.topic.empty()) return;
    json doc = {
        {"ok", true}, {"device", config_.device}, {"run", started.run}, {"command", t.name}};
    if (started.queued) doc["queued"] = true;
    if (!started.replaces.empty()) doc["replaces"] = started.replaces;
    if (started.pid > 0) doc["pid"] = started.pid;
    publish_reply(reply, dump(doc));
    return;
  }

  if (reply.topic.empty() && !v.reply.reply_to.empty()) {
    reply.topic = v.reply.reply_to;
    reply.correlation_field = v.reply.correlation;
  }
  spdlog::info("request {} topic={} {}={} payload={} reply={} key={}", kind_name(t.kind), m.topic,
               t.kind == RequestKind::stop || t.kind == RequestKind::switch_ ? "command" : "run",
               t.name, printable(v.payload), reply.topic.empty() ? "-" : reply.topic, key);
  if (const auto* command = auth_target(t)) {
    if (auto e = verifier_->check_command_keys(v, *command)) {
      refuse(m, reply, *e);
      return;
    }
  }
  if (v.fields_error) {
    refuse(m, reply, *v.fields_error);
    return;
  }
  std::optional<Error> error;
  switch (t.kind) {
    case RequestKind::stop:
      error = agent_.stop(t.name);
      break;
    case RequestKind::switch_:
      if (v.payload == "OFF")
        error = agent_.stop(t.name);
      else
        error = Error{ErrorCode::bad_request, "switch takes ON or OFF"};
      break;
    case RequestKind::in:
      error = agent_.write_stdin(t.name, v.payload);
      break;
    case RequestKind::eof:
      error = agent_.close_stdin(t.name);
      break;
    case RequestKind::signal:
      error = agent_.signal(t.name, v.payload);
      break;
    default:
      break;
  }
  if (error) {
    refuse(m, reply, *error);
  } else if (!reply.topic.empty()) {
    publish_reply(reply, dump({{"ok", true}, {"device", config_.device}}));
  }
}

void Transport::refuse(const Message& m, const Reply& reply, const Error& e) {
  spdlog::info("refused {}: {} ({})", m.topic, to_string(e.code), e.message);
  json error = {{"code", to_string(e.code)}, {"message", e.message}};
  if (!reply.topic.empty()) {
    publish_reply(reply, dump({{"ok", false}, {"device", config_.device}, {"error", error}}));
    return;
  }
  PublishOptions o;
  o.qos = config_.qos;
  client_.publish(topics_.errors(),
                  dump({{"device", config_.device}, {"topic", m.topic}, {"error", error}}), o);
}

void Transport::publish_reply(const Reply& reply, const std::string& document) {
  PublishOptions o;
  o.qos = config_.qos;
  o.correlation = reply.correlation ? &*reply.correlation : nullptr;
  if (reply.correlation_field) {
    json doc = json::parse(document);
    doc["correlation"] = *reply.correlation_field;
    client_.publish(reply.topic, dump(doc), o);
    return;
  }
  client_.publish(reply.topic, document, o);
}

// ---- output ----

void Transport::on_line(const agent::Run& run, agent::Stream stream, std::string_view line,
                        std::uint64_t seq) {
  PublishOptions o = out_;
  o.seq = seq;
  client_.publish(topics_.run(run.id(), stream == agent::Stream::out ? "out" : "err"), line, o);
  if (stream != agent::Stream::out || !run.command().retain_last) return;

  auto& slot = last_->entries[run.command().name];
  if (!slot) slot = std::make_unique<LastLines::Entry>(io_);
  if (slot->newest_run != run.id()) return;
  slot->pending.assign(line);
  slot->has_pending = true;
  if (slot->armed) return;
  publish_last(run.command().name);
  slot->armed = true;
  slot->timer.expires_after(std::chrono::milliseconds(100));
  slot->timer.async_wait([this, name = run.command().name](const boost::system::error_code& ec) {
    if (ec) return;
    auto it = last_->entries.find(name);
    if (it == last_->entries.end()) return;
    it->second->armed = false;
    publish_last(name);
  });
}

void Transport::publish_last(const std::string& command) {
  auto it = last_->entries.find(command);
  if (it == last_->entries.end() || !it->second->has_pending) return;
  it->second->has_pending = false;
  client_.publish(topics_.command(command, "last"), it->second->pending, retained_);
}

void Transport::on_state(const agent::Run& run, const std::string& document, bool final) {
  if (final) {
    publish_last(run.command().name);
  } else if (run.command().retain_last) {
    auto& slot = last_->entries[run.command().name];
    if (!slot) slot = std::make_unique<LastLines::Entry>(io_);
    slot->newest_run = run.id();
    slot->has_pending = false;  // an older run's line is no longer the newest run's
  }
  publish_state(run.id(), document);
}

void Transport::on_record_final(const agent::RunRecord& record, const std::string& document) {
  publish_state(record.run, document);
}

// Retained, and with MQTT 5 expiring after run_state_ttl (SPEC §4).
void Transport::publish_state(const std::string& run, const std::string& document) {
  PublishOptions o = retained_;
  o.expiry_s = static_cast<std::uint32_t>(
      std::chrono::duration_cast<std::chrono::seconds>(config_.run_state_ttl).count());
  client_.publish(topics_.run(run, "state"), document, o);
}

void Transport::on_running(const std::string& command, bool running) {
  client_.publish(topics_.command(command, "running"), running ? "ON" : "OFF", retained_);
}

void Transport::on_info(const std::string& document) {
  client_.publish(topics_.info(), document, retained_);
}

void Transport::on_forget(const std::string& run) {
  client_.publish(topics_.run(run, "state"), "", retained_);
}

}  // namespace linewire::mqtt
