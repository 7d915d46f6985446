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
using nlohmann::json;
using protocol::Error;
using protocol::ErrorCode;
using protocol::RequestKind;

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
                               [this] {
                                 agent_.resume_output();
                                 replays_->resume();
                               }}),
      last_(std::make_unique<LastLines>()),
      verifier_(std::make_unique<agent::Verifier>(config_)),
      replays_(std::make_unique<Replays>(io, agent, client_, config_.qos)),
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
      topics_.device_filter("run", "eof"),    topics_.device_filter("run", "signal"),
      topics_.device_filter("run", "replay")};
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
    publish_state(run.id(), document);
    publish_result(run.command().name, document);
    return;
  }
  if (run.command().retain_last) {
    auto& slot = last_->entries[run.command().name];
    if (!slot) slot = std::make_unique<LastLines::Entry>(io_);
    slot->newest_run = run.id();
    slot->has_pending = false;  // an older run's line is no longer the newest run's
  }
  publish_state(run.id(), document);
}

void Transport::on_record_final(const agent::RunRecord& record, const std::string& document) {
  publish_state(record.run, document);
  publish_result(record.command, document);
}

// `cmd/{c}/result` (SPEC §4): the newest final state, retained with no expiry, right after
// the run's own state; keep_runs never clears it.
void Transport::publish_result(const std::string& command, const std::string& document) {
  client_.publish(topics_.command(command, "result"), document, retained_);
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
