// Home Assistant discovery documents (SPEC §9, transports/mqtt/homeassistant.hpp):
// for each component, the keys HA's MQTT integration requires, and the project's rules
// (names, default_entity_id, no object_id, value_template, retain, topics).
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "agent/auth_policy.hpp"
#include "config/checks.hpp"
#include "config/load.hpp"
#include "transports/mqtt/homeassistant.hpp"

namespace cfg = linewire::config;
namespace ha = linewire::mqtt::homeassistant;
using nlohmann::json;

namespace {

cfg::Config load(const std::string& yaml) {
  auto r = cfg::load_string(yaml, "/etc/linewire/linewire.yaml", "host");
  INFO(yaml);
  for (const auto& p : r.problems) INFO(p.message);
  REQUIRE(r.problems.empty());
  return *r.config;
}

// Discovery documents by topic.
std::map<std::string, json> docs(const cfg::Config& c) {
  std::map<std::string, json> out;
  for (const auto& d : ha::documents(c, "1.2.3")) {
    INFO(d.topic);
    CHECK(out.count(d.topic) == 0);  // every entity has its own topic
    out[d.topic] = json::parse(d.payload);
  }
  return out;
}

const std::string kHeader = R"(
device: pi-1
homeassistant: {discovery: true}
)";

// What every entity carries, whatever its component.
void check_common(const json& d, const std::string& component, const std::string& name,
                  const std::string& unique_id) {
  INFO(d.dump());
  CHECK(d.at("name") == name);
  CHECK(d.at("unique_id") == unique_id);
  CHECK(d.at("default_entity_id") == ha::default_entity_id(component, unique_id));
  CHECK_FALSE(d.contains("object_id"));
  CHECK(d.at("availability_topic") == "linewire/pi-1/status");
  CHECK(d.at("payload_available") == "online");
  CHECK(d.at("payload_not_available") == "offline");
  CHECK(d.at("device").at("identifiers") == json::array({"linewire_pi-1"}));
  CHECK(d.at("device").at("name") == "pi-1");
  CHECK(d.at("device").at("sw_version") == "1.2.3");
  CHECK(d.at("device").contains("model"));
}

}  // namespace

TEST_CASE("an on-demand command is a button, a sensor and a running binary_sensor", "[ha]") {
  auto c = load(kHeader + "commands: {count: {exec: [/bin/echo]}}\n");
  auto d = docs(c);
  REQUIRE(d.size() == 4);  // and the event, below

  const auto& button = d.at("homeassistant/button/pi-1/count/config");
  check_common(button, "button", "count", "linewire_pi-1_count");
  CHECK(button.at("default_entity_id") == "button.linewire_pi_1_count");
  CHECK(button.at("command_topic") == "linewire/pi-1/cmd/count/start");
  CHECK(button.at("payload_press") == "{}");
  CHECK(button.at("retain") == false);

  const auto& sensor = d.at("homeassistant/sensor/pi-1/count/config");
  check_common(sensor, "sensor", "count", "linewire_pi-1_count_last");
  CHECK(sensor.at("default_entity_id") == "sensor.linewire_pi_1_count_last");
  CHECK(sensor.at("state_topic") == "linewire/pi-1/cmd/count/last");
  CHECK(sensor.at("value_template") == "{{ value[:255] }}");

  const auto& running = d.at("homeassistant/binary_sensor/pi-1/count/config");
  check_common(running, "binary_sensor", "count running", "linewire_pi-1_count_running");
  CHECK(running.at("default_entity_id") == "binary_sensor.linewire_pi_1_count_running");
  CHECK(running.at("state_topic") == "linewire/pi-1/cmd/count/running");
  CHECK(running.at("payload_on") == "ON");
  CHECK(running.at("payload_off") == "OFF");
}

TEST_CASE("a service is a switch on cmd/{c}/switch that reads cmd/{c}/running", "[ha]") {
  auto c = load(kHeader + "commands: {temp: {exec: [/bin/cat], mode: service}}\n");
  auto d = docs(c);
  CHECK(d.count("homeassistant/button/pi-1/temp/config") == 0);
  const auto& sw = d.at("homeassistant/switch/pi-1/temp/config");
  check_common(sw, "switch", "temp", "linewire_pi-1_temp");
  CHECK(sw.at("default_entity_id") == "switch.linewire_pi_1_temp");
  CHECK(sw.at("command_topic") == "linewire/pi-1/cmd/temp/switch");
  CHECK(sw.at("state_topic") == "linewire/pi-1/cmd/temp/running");
  CHECK(sw.at("payload_on") == "ON");
  CHECK(sw.at("payload_off") == "OFF");
  CHECK(sw.at("state_on") == "ON");
  CHECK(sw.at("state_off") == "OFF");
  CHECK(sw.at("retain") == false);
  CHECK(d.count("homeassistant/sensor/pi-1/temp/config") == 1);
  CHECK(d.count("homeassistant/binary_sensor/pi-1/temp/config") == 1);
}

TEST_CASE("discovery off, a hidden command, retain_last off, mqtt off", "[ha]") {
  CHECK(ha::documents(load("commands: {a: {exec: [/bin/true]}}\n"), "1").empty());
  auto d = docs(load(kHeader + R"(commands:
  hidden: {exec: [/bin/true], homeassistant: false}
  quiet: {exec: [/bin/true], retain_last: false}
)"));
  for (const auto& [topic, doc] : d) CHECK(topic.find("/hidden/") == std::string::npos);
  CHECK(d.count("homeassistant/sensor/pi-1/quiet/config") == 0);
  CHECK(d.count("homeassistant/button/pi-1/quiet/config") == 1);
  CHECK(d.count("homeassistant/binary_sensor/pi-1/quiet/config") == 1);
}

TEST_CASE("a dot in a device or command name is an underscore in discovery topics", "[ha]") {
  auto d = docs(load(R"(device: pi.kitchen
homeassistant: {discovery: true, prefix: ha}
commands: {disk.free: {exec: [/bin/df]}}
)"));
  REQUIRE(d.count("ha/button/pi_kitchen/disk_free/config") == 1);
  const auto& b = d.at("ha/button/pi_kitchen/disk_free/config");
  CHECK(b.at("name") == "disk.free");
  CHECK(b.at("unique_id") == "linewire_pi.kitchen_disk.free");
  CHECK(b.at("default_entity_id") == "button.linewire_pi_kitchen_disk_free");
  CHECK(b.at("command_topic") == "linewire/pi.kitchen/cmd/disk.free/start");
  CHECK(ha::status_topic(load("homeassistant: {prefix: ha}\ncommands: {}\n")) == "ha/status");
}

TEST_CASE("default_entity_id lower-cases and replaces what HA does not allow", "[ha]") {
  CHECK(ha::default_entity_id("sensor", "linewire_Pi-7_Temp.C") == "sensor.linewire_pi_7_temp_c");
  CHECK(ha::topic_name("a.b.c") == "a_b_c");
  CHECK(ha::topic_name("a-b_c") == "a-b_c");
}

TEST_CASE("a command's entity keys go to its component, typed as HA wants them", "[ha]") {
  auto d = docs(load(kHeader + R"(commands:
  temp:
    exec: [/bin/cat]
    homeassistant: {unit_of_measurement: "°C", device_class: temperature, state_class: measurement,
                    expire_after: 600, force_update: true, icon: "mdi:thermometer"}
  door:
    exec: [/bin/cat]
    homeassistant: {component: binary_sensor, device_class: door}
  pump:
    exec: [/bin/cat]
    homeassistant: {component: switch, icon: "mdi:pump", unit_of_measurement: "W"}
)"));
  const auto& temp = d.at("homeassistant/sensor/pi-1/temp/config");
  CHECK(temp.at("unit_of_measurement") == "°C");
  CHECK(temp.at("device_class") == "temperature");
  CHECK(temp.at("state_class") == "measurement");
  CHECK(temp.at("expire_after") == 600);
  CHECK(temp.at("force_update") == true);
  CHECK(temp.at("icon") == "mdi:thermometer");
  // The running binary_sensor keeps its own device class.
  CHECK(d.at("homeassistant/binary_sensor/pi-1/temp/config").at("device_class") == "running");
  CHECK_FALSE(d.at("homeassistant/button/pi-1/temp/config").contains("unit_of_measurement"));

  // A binary_sensor reading `last`, beside the running one: two topics, two unique_ids.
  const auto& door = d.at("homeassistant/binary_sensor/pi-1/door_last/config");
  CHECK(door.at("state_topic") == "linewire/pi-1/cmd/door/last");
  CHECK(door.at("unique_id") == "linewire_pi-1_door_last");
  CHECK(door.at("device_class") == "door");
  CHECK(d.at("homeassistant/binary_sensor/pi-1/door/config").at("unique_id") ==
        "linewire_pi-1_door_running");

  // An on-demand command that names `switch`; a key a switch does not know is left out.
  const auto& pump = d.at("homeassistant/switch/pi-1/pump/config");
  CHECK(pump.at("command_topic") == "linewire/pi-1/cmd/pump/switch");
  CHECK(pump.at("icon") == "mdi:pump");
  CHECK_FALSE(pump.contains("unit_of_measurement"));
  CHECK(d.count("homeassistant/button/pi-1/pump/config") == 0);
}

TEST_CASE("HA cannot sign: controls only for commands that accept unsigned requests", "[ha]") {
  cfg::Config c;
  cfg::Command open;
  CHECK(linewire::agent::accepts_unsigned(c, open));
  cfg::Command keyed;
  keyed.keys = {"alice"};
  CHECK_FALSE(linewire::agent::accepts_unsigned(c, keyed));
  keyed.unsigned_ok = true;  // `keys` always wants a signature
  CHECK_FALSE(linewire::agent::accepts_unsigned(c, keyed));
  c.auth.require = true;
  CHECK_FALSE(linewire::agent::accepts_unsigned(c, open));
  open.unsigned_ok = true;
  CHECK(linewire::agent::accepts_unsigned(c, open));

  c.device = "pi-1";
  c.homeassistant.discovery = true;
  cfg::Command svc;
  svc.name = "svc";
  svc.mode = cfg::Mode::service;
  cfg::Command btn;
  btn.name = "btn";
  c.commands = {svc, btn};
  auto d = docs(c);
  // Signed-only: no switch, no button; the sensors stay (reading is not a request).
  CHECK(d.count("homeassistant/switch/pi-1/svc/config") == 0);
  CHECK(d.count("homeassistant/button/pi-1/btn/config") == 0);
  CHECK(d.count("homeassistant/sensor/pi-1/btn/config") == 1);
  CHECK(d.count("homeassistant/binary_sensor/pi-1/svc/config") == 1);
  c.commands[0].unsigned_ok = true;
  CHECK(docs(c).count("homeassistant/switch/pi-1/svc/config") == 1);
}

TEST_CASE("stale topics are those published before and not now", "[ha]") {
  auto now = ha::documents(load(kHeader + "commands: {a: {exec: [/bin/true]}}\n"), "1");
  std::set<std::string> before = {"homeassistant/button/pi-1/a/config",
                                  "homeassistant/button/pi-1/gone/config",
                                  "homeassistant/sensor/pi-1/gone/config"};
  CHECK(ha::stale(before, now) ==
        std::vector<std::string>{"homeassistant/button/pi-1/gone/config",
                                 "homeassistant/sensor/pi-1/gone/config"});
  CHECK(ha::stale(before, {}).size() == 3);
}

TEST_CASE("published topics survive a restart in the state_dir", "[ha]") {
  auto dir = std::filesystem::temp_directory_path() / ("lw-ha-test-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  CHECK(ha::load_published(dir.string()).empty());  // no file yet
  std::set<std::string> topics = {"homeassistant/button/x/a/config", "ha/sensor/x/b/config"};
  ha::save_published(dir.string(), topics);
  CHECK(ha::load_published(dir.string()) == topics);
  ha::save_published(dir.string(), {});
  CHECK(ha::load_published(dir.string()).empty());
  {
    std::ofstream bad(dir / "homeassistant.json");
    bad << "not json";
  }
  CHECK(ha::load_published(dir.string()).empty());
  CHECK(ha::load_published("").empty());
  std::filesystem::remove_all(dir);
}

TEST_CASE("every command HA sees has an event entity reading cmd/{c}/result", "[ha]") {
  auto d = docs(load(kHeader + R"(commands:
  backup: {exec: [/bin/true]}
  svc: {exec: [/bin/cat], mode: service}
  hidden: {exec: [/bin/true], homeassistant: false}
)"));
  for (const std::string name : {"backup", "svc"}) {
    const auto& e = d.at("homeassistant/event/pi-1/" + name + "/config");
    check_common(e, "event", name + " finished", "linewire_pi-1_" + name + "_finished");
    CHECK(e.at("state_topic") == "linewire/pi-1/cmd/" + name + "/result");
    CHECK(e.at("event_types") == json::array({"exited", "killed", "failed", "lost"}));
    // Every field read with .get(): killed has no exit_code, lost neither (SPEC §9).
    const std::string t = e.at("value_template");
    CHECK(t.find("\"event_type\": value_json.state") != std::string::npos);
    for (const std::string field :
         {"exit_code", "signal", "reason", "duration_ms", "lines", "run", "key"})
      CHECK(t.find("value_json.get(\"" + field + "\")") != std::string::npos);
    CHECK_FALSE(cfg::check_jinja(t));
  }
  CHECK(d.count("homeassistant/event/pi-1/hidden/config") == 0);
}

TEST_CASE("a command with unsigned arguments has a text entity; a signed one has none", "[ha]") {
  auto d = docs(load(kHeader + R"(auth:
  keys: {alice: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIABFecenpo/dUt0uXXh6ZQK6fsXERFlIXby54MsRZSMU a"}
commands:
  greet: {exec: [/bin/echo], args: {pattern: '[a-z]+|x', max: 1}}
  plain: {exec: [/bin/echo]}
  none: {exec: [/bin/echo], args: {pattern: '.*', max: 0}}
  keyed: {exec: [/bin/echo], args: {pattern: '.*'}, keys: [alice]}
)"));
  const auto& t = d.at("homeassistant/text/pi-1/greet/config");
  check_common(t, "text", "greet args", "linewire_pi-1_greet_args");
  CHECK(t.at("command_topic") == "linewire/pi-1/cmd/greet/start");
  CHECK(t.at("command_template") == "{\"args\": [{{ value | tojson }}]}");
  // HA matches with Python's re.match, a prefix match: anchored, and grouped so that an
  // alternation is anchored as a whole.
  CHECK(t.at("pattern") == "^(?:[a-z]+|x)$");
  CHECK(t.at("max") == 255);
  CHECK(t.at("min") == 0);
  CHECK(t.at("mode") == "text");
  CHECK(t.at("retain") == false);
  CHECK_FALSE(t.contains("state_topic"));
  CHECK(d.count("homeassistant/text/pi-1/plain/config") == 0);
  CHECK(d.count("homeassistant/text/pi-1/none/config") == 0);  // max: 0, no argument fits
  CHECK(d.count("homeassistant/text/pi-1/keyed/config") == 0);
}

TEST_CASE("a scheduled command's sensor expires after three periods", "[ha]") {
  auto d = docs(load(kHeader + R"(commands:
  temp: {exec: [/bin/cat], every: 1m}
  odd: {exec: [/bin/cat], every: 1500ms}
  own: {exec: [/bin/cat], every: 1m, homeassistant: {expire_after: 1000}}
  plain: {exec: [/bin/cat]}
)"));
  CHECK(d.at("homeassistant/sensor/pi-1/temp/config").at("expire_after") == 180);
  CHECK(d.at("homeassistant/sensor/pi-1/odd/config").at("expire_after") == 5);  // 4.5 s up
  CHECK(d.at("homeassistant/sensor/pi-1/own/config").at("expire_after") == 1000);
  CHECK_FALSE(d.at("homeassistant/sensor/pi-1/plain/config").contains("expire_after"));
}

namespace {

// The keys Home Assistant's MQTT platforms accept in a discovery config, read from
// home-assistant/core homeassistant/components/mqtt/: config.py (MQTT_BASE_SCHEMA: qos,
// encoding; MQTT_RO_SCHEMA: state_topic, value_template; MQTT_RW_SCHEMA: command_topic,
// optimistic, retain, state_topic), schemas.py (MQTT_ENTITY_COMMON_SCHEMA with the
// availability keys) and each platform's _PLATFORM_SCHEMA_BASE. Discovery drops any other
// key silently (extra=vol.REMOVE_EXTRA), so a misspelt key would just not work.
const std::set<std::string> kCommon = {"qos",
                                       "encoding",
                                       "availability",
                                       "availability_mode",
                                       "availability_template",
                                       "availability_topic",
                                       "payload_available",
                                       "payload_not_available",
                                       "device",
                                       "origin",
                                       "enabled_by_default",
                                       "entity_category",
                                       "entity_picture",
                                       "icon",
                                       "json_attributes_topic",
                                       "json_attributes_template",
                                       "default_entity_id",
                                       "unique_id",
                                       "name"};
const std::map<std::string, std::set<std::string>> kPlatform = {
    {"button", {"command_topic", "command_template", "device_class", "payload_press", "retain"}},
    {"sensor",
     {"state_topic", "value_template", "device_class", "expire_after", "force_update",
      "last_reset_value_template", "options", "suggested_display_precision", "state_class",
      "unit_of_measurement"}},
    {"binary_sensor",
     {"state_topic", "value_template", "device_class", "expire_after", "force_update", "off_delay",
      "payload_off", "payload_on"}},
    {"switch",
     {"command_topic", "command_template", "optimistic", "retain", "state_topic", "value_template",
      "device_class", "payload_off", "payload_on", "state_off", "state_on"}},
    {"event", {"state_topic", "value_template", "device_class", "event_types"}},
    {"text",
     {"command_topic", "command_template", "optimistic", "retain", "state_topic", "value_template",
      "max", "min", "mode", "pattern"}},
};
// MQTT_ENTITY_DEVICE_INFO_SCHEMA and MQTT_ORIGIN_INFO_SCHEMA.
const std::set<std::string> kDevice = {"identifiers", "connections",    "manufacturer",
                                       "model",       "model_id",       "name",
                                       "hw_version",  "serial_number",  "sw_version",
                                       "via_device",  "suggested_area", "configuration_url"};
const std::set<std::string> kOrigin = {"name", "sw_version", "support_url"};

}  // namespace

TEST_CASE("every key of every discovery config is one its HA platform knows", "[ha]") {
  auto c = load(kHeader + R"(commands:
  temp:
    exec: [/bin/cat]
    every: 1m
    args: {pattern: '[0-9]+'}
    homeassistant: {unit_of_measurement: "°C", device_class: temperature, state_class: measurement,
                    force_update: true, icon: "mdi:thermometer", entity_category: diagnostic,
                    value_template: "{{ value | float }}"}
  door: {exec: [/bin/cat], homeassistant: {component: binary_sensor, device_class: door,
                                            expire_after: 60}}
  pump: {exec: [/bin/cat], homeassistant: {component: switch, icon: "mdi:pump"}}
  reboot: {exec: [/bin/true], homeassistant: {component: button, device_class: restart}}
  svc: {exec: [/bin/cat], mode: service}
)");
  std::set<std::string> components;
  for (const auto& d : ha::documents(c, "1.2.3")) {
    const auto from = std::string("homeassistant/").size();
    const std::string component = d.topic.substr(from, d.topic.find('/', from) - from);
    INFO(d.topic);
    REQUIRE(kPlatform.count(component) == 1);
    components.insert(component);
    const json doc = json::parse(d.payload);
    for (const auto& [key, value] : doc.items()) {
      INFO(key);
      CHECK((kCommon.count(key) == 1 || kPlatform.at(component).count(key) == 1));
    }
    for (const auto& [key, value] : doc.at("device").items()) CHECK(kDevice.count(key) == 1);
    for (const auto& [key, value] : doc.at("origin").items()) CHECK(kOrigin.count(key) == 1);
  }
  // Every platform we publish was checked.
  CHECK(components ==
        std::set<std::string>{"button", "sensor", "binary_sensor", "switch", "event", "text"});
}
