#include "transports/mqtt/name_claim.hpp"

#include <mqtt/async_client.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "transports/mqtt/broker_login.hpp"
#include "transports/mqtt/homeassistant.hpp"

namespace linewire::mqtt {

namespace paho = ::mqtt;
using nlohmann::json;

namespace {

constexpr auto kConnectWait = std::chrono::seconds(3);
constexpr auto kAnswerWait = std::chrono::seconds(2);
constexpr auto kSlice = std::chrono::milliseconds(50);

std::string random_hex(std::size_t n) {
  std::random_device rd;
  std::string out;
  for (std::size_t i = 0; i < n; ++i) out += "0123456789abcdef"[rd() % 16];
  return out;
}

std::string this_host() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

bool is_live_linewired(long pid) {
  if (pid <= 0 || pid == static_cast<long>(getpid())) return false;
  std::ifstream comm("/proc/" + std::to_string(pid) + "/comm");
  std::string name;
  return std::getline(comm, name) && name == "linewired";
}

paho::connect_options options(const config::Broker& b, bool v5) {
  paho::connect_options_builder builder;
  builder.mqtt_version(v5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1)
      .connect_timeout(kConnectWait)
      .keep_alive_interval(std::chrono::seconds(10));
  if (v5)
    builder.clean_start(true);
  else
    builder.clean_session(true);
  apply_login(builder, b);
  return builder.finalize();
}

// The verdict on what the broker holds for the device (see the header).
std::optional<std::string> judge(const std::string& device, const std::string& status,
                                 const std::string& info_text) {
  if (status != "online") return std::nullopt;
  json info = json::parse(info_text, nullptr, false);
  if (!info.is_object()) return std::nullopt;  // nothing to compare: let it start
  const std::string host = info.value("host", "");
  const long pid =
      info.contains("pid") && info["pid"].is_number_integer() ? info["pid"].get<long>() : 0;
  const std::string started = info.value("started", "");
  const std::string who = "host '" + host + "'" + (pid > 0 ? ", pid " + std::to_string(pid) : "") +
                          (started.empty() ? "" : ", started " + started);
  if (host == this_host()) {
    // Its pid gone (killed, or this host rebooted before the broker saw the old
    // connection drop): a stale `online`, ours to take over.
    if (!is_live_linewired(pid)) return std::nullopt;
  }
  return "device '" + device + "' is already online (" + who +
         "): another linewired uses this device name. Give each agent its own `device:`, "
         "or stop the other one first";
}

// SPEC §9: a `.` becomes `_` in discovery topics, so devices `b.up` and `b_up` share them
// and their entities would replace each other in Home Assistant. One config cannot see
// the other device (--check-config refuses the same for commands): warn at start-up.
bool warn_if_discovery_taken(const std::string& device, const std::string& config_text) {
  json doc = json::parse(config_text, nullptr, false);
  if (!doc.is_object() || !doc.contains("device") || !doc["device"].is_object()) return false;
  const json ids = doc["device"].value("identifiers", json::array());
  const std::string ours = "linewire_" + device;
  if (!ids.is_array() || ids.empty() || ids[0] == ours) return false;
  spdlog::warn(
      "homeassistant: another device ({}) has discovery configs under this device's "
      "topics ('.' is '_' there): the entities of the two would replace each other in Home "
      "Assistant; give one of them another device name",
      ids[0].is_string() ? ids[0].get<std::string>() : ids[0].dump());
  return true;
}

}  // namespace

std::optional<std::string> name_claimed_elsewhere(const config::Config& cfg,
                                                  const std::function<bool()>& cancelled) {
  // `auto` asks in 3.1.1, which every broker speaks; the check needs no v5 feature.
  const bool v5 = cfg.broker.protocol == config::Protocol::v5;
  const std::string base = cfg.prefix + "/" + cfg.device;
  const std::string echo = base + "/claim/" + random_hex(12);
  // Paho's waits, a slice at a time, so that a signal ends the check within one slice.
  auto wait = [&](paho::token& token, std::chrono::milliseconds total) {
    const auto end = std::chrono::steady_clock::now() + total;
    while (!token.wait_for(kSlice))
      if (cancelled() || std::chrono::steady_clock::now() >= end) return false;
    return true;
  };
  try {
    paho::create_options create(v5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1);
    paho::async_client client(cfg.broker.url, "lwclaim-" + random_hex(12), create, nullptr);
    client.start_consuming();
    if (!wait(*client.connect(options(cfg.broker, v5)), kConnectWait + std::chrono::seconds(1))) {
      spdlog::debug("name check: no answer from the broker; skipped");
      return std::nullopt;
    }
    // Every command has a `running` binary_sensor: its configs show who owns the topics.
    const std::string discovery = cfg.homeassistant.prefix + "/binary_sensor/" +
                                  homeassistant::topic_name(cfg.device) + "/+/config";
    std::vector<std::string> filters = {base + "/status", base + "/info", echo};
    if (cfg.homeassistant.discovery) filters.push_back(discovery);
    auto topics = paho::string_collection::create(filters);
    wait(*client.subscribe(topics, std::vector<int>(filters.size(), 1)), kAnswerWait);
    // The broker sends the retained messages while it handles the subscription, so
    // once our own message on `echo` is back, whatever is retained has arrived.
    client.publish(paho::make_message(echo, "", 0, false));
    std::string status, info;
    bool warned_discovery = false;  // once, not per command of the other device
    const auto end = std::chrono::steady_clock::now() + kAnswerWait;
    while (std::chrono::steady_clock::now() < end && !cancelled()) {
      paho::const_message_ptr m;
      if (!client.try_consume_message_for(&m, kSlice) || !m) continue;
      if (m->get_topic() == echo) break;
      if (m->get_topic() == base + "/status")
        status = m->to_string();
      else if (m->get_topic() == base + "/info")
        info = m->to_string();
      else if (!warned_discovery && !m->get_payload().empty())
        warned_discovery = warn_if_discovery_taken(cfg.device, m->to_string());
    }
    if (cancelled()) return std::nullopt;
    try {
      wait(*client.disconnect(), std::chrono::seconds(1));
    } catch (const paho::exception&) {
    }
    return judge(cfg.device, status, info);
  } catch (const std::exception& e) {
    spdlog::debug("name check skipped: {}", e.what());
    return std::nullopt;
  }
}

}  // namespace linewire::mqtt
