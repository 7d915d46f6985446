#include "transports/mqtt/homeassistant.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "agent/auth_policy.hpp"
#include "protocol/names.hpp"

namespace linewire::mqtt::homeassistant {

using nlohmann::json;

namespace {

// The keys a command's `homeassistant` mapping may pass through (config/homeassistant.cpp),
// per component: Home Assistant's discovery drops a key its platform does not know, so
// each entity gets only its own and a typo is refused by --check-config instead.
bool key_fits(std::string_view component, std::string_view key) {
  if (key == "icon" || key == "entity_category" || key == "device_class") return true;
  if (component == "sensor")
    return key == "unit_of_measurement" || key == "state_class" || key == "value_template" ||
           key == "expire_after" || key == "force_update";
  if (component == "binary_sensor")
    return key == "value_template" || key == "expire_after" || key == "force_update";
  if (component == "switch") return key == "value_template";
  return false;  // button: only the common keys
}

// The config keeps the pass-through values as text; HA wants numbers and booleans
// where its schema says so.
json typed(std::string_view key, const std::string& value) {
  if (key == "expire_after") {
    try {
      std::size_t used = 0;
      long n = std::stol(value, &used);
      if (used == value.size()) return n;
    } catch (const std::exception&) {
    }
  }
  if (key == "force_update" && (value == "true" || value == "false")) return value == "true";
  return value;
}

// HA's event payload (SPEC §9) from a final state document (§4): `event_type` from
// `state`, the useful fields as attributes. Not every state has every field (`killed` has
// no exit_code, `lost` neither), so they are read with .get() and come as null.
constexpr const char* kEventTemplate =
    R"({{ {"event_type": value_json.state, "exit_code": value_json.get("exit_code"), )"
    R"("signal": value_json.get("signal"), "reason": value_json.get("reason"), )"
    R"("error": value_json.get("error"), "duration_ms": value_json.get("duration_ms"), )"
    R"("lines": value_json.get("lines"), "run": value_json.get("run"), )"
    R"("key": value_json.get("key")} | tojson }})";

// A start request with the typed text as its one argument, JSON-escaped by Jinja.
constexpr const char* kArgsTemplate = R"({"args": [{{ value | tojson }}]})";

class Builder {
 public:
  Builder(const config::Config& config, const std::string& version)
      : config_(config), topics_(config.prefix, config.device) {
    device_ = {{"identifiers", json::array({"linewire_" + config.device})},
               {"name", config.device},
               {"sw_version", version},
               {"model", "linewired"},
               {"manufacturer", "linewire"}};
    origin_ = {{"name", "linewire"}, {"sw_version", version}};
  }

  void add(const config::Command& c) {
    const auto& ha = c.homeassistant;
    const std::string base = "linewire_" + config_.device + "_" + c.name;
    const bool control_named = ha.component == "button" || ha.component == "switch";
    const bool reader_named = ha.component == "sensor" || ha.component == "binary_sensor";

    // The control: a button starts an on-demand command, a switch starts and stops a
    // service; the command may name the other one.
    if (agent::accepts_unsigned(config_, c)) {
      std::string control =
          control_named ? ha.component : (c.mode == config::Mode::service ? "switch" : "button");
      json doc = common(control, c.name, base);
      if (control == "button") {
        doc["command_topic"] = topics_.command(c.name, "start");
        doc["payload_press"] = "{}";
      } else {
        doc["command_topic"] = topics_.command(c.name, "switch");
        doc["state_topic"] = topics_.command(c.name, "running");
        doc["payload_on"] = "ON";
        doc["payload_off"] = "OFF";
        doc["state_on"] = "ON";
        doc["state_off"] = "OFF";
        doc["optimistic"] = false;
      }
      // A retained press would start the command again at every reconnect.
      doc["retain"] = false;
      if (control_named) pass_through(doc, control, ha);
      emit(control, c.name, doc);
    }

    // The newest line, as a sensor (or the binary_sensor the command names).
    if (c.retain_last || reader_named) {
      std::string reader = reader_named ? ha.component : "sensor";
      json doc = common(reader, c.name, base + "_last");
      doc["state_topic"] = topics_.command(c.name, "last");
      if (reader == "sensor") {
        // HA refuses a sensor state over 255 characters; a line can be 64 KiB.
        doc["value_template"] = "{{ value[:255] }}";
        // A scheduled sensor that missed three ticks shows as unavailable, not stale.
        if (c.every) doc["expire_after"] = (c.every->count() * 3 + 999) / 1000;  // whole seconds
      } else {
        doc["payload_on"] = "ON";
        doc["payload_off"] = "OFF";
      }
      if (!control_named) pass_through(doc, reader, ha);
      // Both binary_sensors of the command would share one discovery topic.
      emit(reader, reader == "binary_sensor" ? c.name + "_last" : c.name, doc);
    }

    json running = common("binary_sensor", c.name + " running", base + "_running");
    running["state_topic"] = topics_.command(c.name, "running");
    running["payload_on"] = "ON";
    running["payload_off"] = "OFF";
    running["device_class"] = "running";
    emit("binary_sensor", c.name, running);

    // Runs that end (SPEC §9). HA ignores retained messages on an event's topic, so the
    // retained result never replays an old run's end.
    json finished = common("event", c.name + " finished", base + "_finished");
    finished["state_topic"] = topics_.command(c.name, "result");
    finished["event_types"] = {"exited", "killed", "failed", "lost"};
    finished["value_template"] = kEventTemplate;
    emit("event", c.name, finished);

    // An argument typed in HA. HA checks `pattern` with Python's re.match, a prefix match,
    // so it is anchored at both ends as the agent matches it.
    if (c.args && c.args->max > 0 && agent::accepts_unsigned(config_, c)) {
      json text = common("text", c.name + " args", base + "_args");
      text["command_topic"] = topics_.command(c.name, "start");
      text["command_template"] = kArgsTemplate;
      text["pattern"] = "^(?:" + c.args->pattern + ")$";
      text["min"] = 0;
      text["max"] = 255;  // HA's limit for a state
      text["mode"] = "text";
      text["retain"] = false;  // as the button: a retained start would replay
      emit("text", c.name, text);
    }
  }

  std::vector<Discovery> take() { return std::move(out_); }

 private:
  json common(const std::string& component, const std::string& name,
              const std::string& unique_id) const {
    // No object_id: HA stopped honouring it (2026.4); default_entity_id replaces it.
    return {{"name", name},
            {"unique_id", unique_id},
            {"default_entity_id", default_entity_id(component, unique_id)},
            {"availability_topic", topics_.status()},
            {"payload_available", "online"},
            {"payload_not_available", "offline"},
            {"qos", config_.qos},
            {"device", device_},
            {"origin", origin_}};
  }

  static void pass_through(json& doc, const std::string& component,
                           const config::HomeAssistantCommand& ha) {
    for (const auto& [key, value] : ha.extra)
      if (key_fits(component, key)) doc[key] = typed(key, value);
  }

  void emit(const std::string& component, const std::string& node, const json& doc) {
    out_.push_back({config_.homeassistant.prefix + "/" + component + "/" +
                        topic_name(config_.device) + "/" + topic_name(node) + "/config",
                    doc.dump(-1, ' ', false, json::error_handler_t::replace)});
  }

  const config::Config& config_;
  protocol::Topics topics_;
  json device_;
  json origin_;
  std::vector<Discovery> out_;
};

}  // namespace

std::string topic_name(std::string_view name) {
  std::string out(name);
  std::replace(out.begin(), out.end(), '.', '_');
  return out;
}

std::string default_entity_id(std::string_view component, std::string_view unique_id) {
  std::string id(component);
  id += '.';
  for (char c : unique_id) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    id += (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ? c : '_';
  }
  return id;
}

std::vector<Discovery> documents(const config::Config& config, const std::string& version) {
  if (!config.homeassistant.discovery) return {};
  Builder b(config, version);
  for (const auto& c : config.commands)
    if (c.homeassistant.enabled && c.mqtt) b.add(c);
  return b.take();
}

std::string status_topic(const config::Config& config) {
  return config.homeassistant.prefix + "/status";
}

std::vector<std::string> stale(const std::set<std::string>& published,
                               const std::vector<Discovery>& current) {
  std::set<std::string> now;
  for (const auto& d : current) now.insert(d.topic);
  std::vector<std::string> out;
  std::set_difference(published.begin(), published.end(), now.begin(), now.end(),
                      std::back_inserter(out));
  return out;
}

namespace {
std::string published_path(const std::string& state_dir) {
  return state_dir + "/homeassistant.json";
}
}  // namespace

std::set<std::string> load_published(const std::string& state_dir) {
  if (state_dir.empty()) return {};
  const std::string path = published_path(state_dir);
  std::ifstream in(path);
  if (!in) return {};  // never published from here
  std::set<std::string> topics;
  try {
    std::stringstream text;
    text << in.rdbuf();
    json doc = json::parse(text.str());
    for (const auto& t : doc.at("published")) topics.insert(t.get<std::string>());
  } catch (const std::exception& e) {
    spdlog::warn("{}: {}; ignored", path, e.what());
    return {};
  }
  return topics;
}

void save_published(const std::string& state_dir, const std::set<std::string>& topics) {
  if (state_dir.empty()) return;
  std::error_code ec;
  std::filesystem::create_directories(state_dir, ec);
  const std::string path = published_path(state_dir);
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << json{{"published", topics}}.dump() << "\n";
    if (!out.flush()) {
      spdlog::warn("cannot write {}", tmp);
      return;
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) spdlog::warn("cannot replace {}", path);
}

}  // namespace linewire::mqtt::homeassistant
